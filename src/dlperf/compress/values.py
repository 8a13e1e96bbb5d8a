"""The compression section's numbers as report macros: pruning, INT8 quantization, weight sharing and
distillation (see report/sections/compress.tex).
"""
from __future__ import annotations

from typing import Mapping

import pandas as pd

from dlperf.report.latex import macro_name
from dlperf.report.values import change, count, fixed, model_label, percent, plain, significant, words, yes_no


def compress_values(*, summary: pd.DataFrame, pruning: pd.DataFrame, classifier: pd.DataFrame,
                    latency: pd.DataFrame, sharing: pd.DataFrame, distill: pd.DataFrame, deep: pd.DataFrame,
                    qat: pd.DataFrame, quantize: Mapping, settings: Mapping, ssd: bool) -> dict[str, object]:
    """Macros of the compression section.

    ``settings`` is the config's ``compress`` section, ``quantize`` the provenance of the classifier's
    quantization (device, threads, calibration and test images); ``ssd`` says whether the SSD was quantized too
    (its rows are then in ``summary``).
    """
    q, lat = settings["quantize"], settings["latency"]
    batches = [int(b) for b in lat["batch_sizes"]]
    top1 = classifier.set_index("variant").top1
    values = {
        "Arch": model_label(settings["arch"]),
        "TestImages": count(quantize["test_images"]),
        "Cpu": quantize.get("cpu") or "unknown",
        "Threads": quantize["config"]["threads"],
        "LatencyBatches": words(batches),
        "LatencyBatch": batches[0],
        "LatencyWarmup": lat["warmup"],
        "LatencyRepeats": lat["repeats"],
        "Ssd": yes_no(ssd),
    }
    values |= _pruning_values(pruning, settings["prune"])
    values |= _quantize_values(classifier, latency, q, quantize, batches)
    values |= _sharing_values(sharing, settings["share"], top1["eager_fp32"])
    values |= _distill_values(distill, settings["distill"])
    values |= _deep_values(deep, settings["deep"])
    values |= _qat_values(qat, settings["qat"])
    if ssd:
        rows = summary[summary.metric == "mAP"].set_index("method")
        values |= {
            "SsdMapFpThirtyTwo": percent(rows.loc["baseline", "metric_value"]),
            "SsdMapStatic": percent(rows.loc["quantize_static", "metric_value"]),
            "SsdMapDynamic": percent(rows.loc["quantize_dynamic", "metric_value"]),
            "SsdStaticSpeedup": fixed(rows.loc["quantize_static", "speedup"], 2),
            "SsdDynamicSpeedup": fixed(rows.loc["quantize_dynamic", "speedup"], 2),
            "SsdSizeRatio": fixed(rows.loc["baseline", "size_bytes"] / rows.loc["quantize_static", "size_bytes"], 2),
            "SsdCalibrationImages": q["ssd_calibration_images"],
        }
    return {macro_name("compress", key): value for key, value in values.items()}


def _pruning_values(pruning: pd.DataFrame, prune: Mapping) -> dict:
    df = pruning.sort_values("sparsity")
    pruned = df[df.sparsity > 0]
    control = df[df.sparsity == 0]
    top = pruned.iloc[-1]
    values = {
        "Sparsities": words(percent(s, 0) for s in pruned.sparsity),
        "DenseAccuracy": percent(df.dense_test_acc.iloc[0]),
        "RetrainImages": count(int(df.retrain_images.iloc[0])),
        "RetrainEpochs": int(df.retrain_epochs.iloc[0]),
        "HasControl": yes_no(len(control) > 0),
        "ControlAccuracy": percent(control.retrained_test_acc.iloc[0]) if len(control) else "n/a",
        "TopSparsity": percent(top.sparsity, 0),
        "TopPrunedAccuracy": percent(top.pruned_test_acc),
        "TopRetrainedAccuracy": percent(top.retrained_test_acc),
        "TopPrunedChange": change(percent(df.dense_test_acc.iloc[0]), percent(top.pruned_test_acc),
                                  "rises", "falls", "stays"),
        "TopRetrainedChange": change(percent(top.pruned_test_acc), percent(top.retrained_test_acc),
                                     "recovers", "drops", "stays"),
        "TopNonzero": count(int(top.nonzero_params)),
        "TopSizeRatio": fixed(top.dense_size_bytes / top.size_bytes, 2),
        "PrunableWeights": count(int(df.prunable_weights.iloc[0])),
    }
    for row in pruned.itertuples():
        key = round(100 * row.sparsity)
        values[macro_name("PrunedAccuracy", "s", key)] = percent(row.pruned_test_acc)
        values[macro_name("RetrainedAccuracy", "s", key)] = percent(row.retrained_test_acc)
    return values


def _quantize_values(classifier: pd.DataFrame, latency: pd.DataFrame, q: Mapping, quantize: Mapping,
                     batches: list[int]) -> dict:
    c = classifier.set_index("variant")
    on = latency[latency.model == "classifier"].set_index(["variant", "batch"]).median_ms
    loss = 100 * (c.loc["ort_fp32", "top1"] - c.loc["ort_int8_static", "top1"])
    values = {
        "Format": q["format"].upper() if q["format"] == "qdq" else "QOperator",
        "ActivationType": q["activation_type"],
        "WeightType": q["weight_type"],
        "PerChannel": yes_no(q["per_channel"]),
        "ReduceRange": yes_no(q["reduce_range"]),
        "CalibrateMethod": q["calibrate_method"],
        "CalibrationImages": count(quantize["calibration_images"]),
        "DynamicWeightType": q["dynamic_weight_type"],
        "EagerTop": percent(c.loc["eager_fp32", "top1"]),
        "OrtTop": percent(c.loc["ort_fp32", "top1"]),
        "StaticTop": percent(c.loc["ort_int8_static", "top1"]),
        "DynamicTop": percent(c.loc["ort_int8_dynamic", "top1"]),
        "StaticLoss": fixed(loss, 1),
        "StaticAgreement": percent(c.loc["ort_int8_static", "top1_agreement"]),
        "DynamicAgreement": percent(c.loc["ort_int8_dynamic", "top1_agreement"]),
        "StaticMaxRelDiff": percent(c.loc["ort_int8_static", "max_rel_diff"]),
        "OrtKilobytes": significant(c.loc["ort_fp32", "size_bytes"] / 1e3),
        "StaticKilobytes": significant(c.loc["ort_int8_static", "size_bytes"] / 1e3),
        "DynamicKilobytes": significant(c.loc["ort_int8_dynamic", "size_bytes"] / 1e3),
        "StaticSizeRatio": fixed(c.loc["ort_fp32", "size_bytes"] / c.loc["ort_int8_static", "size_bytes"], 2),
    }
    goal = []
    for b in batches:
        static = on[("ort_int8_static", b)]
        values |= {
            macro_name("EagerMs", "b", b): significant(on[("eager_fp32", b)]),
            macro_name("OrtMs", "b", b): significant(on[("ort_fp32", b)]),
            macro_name("StaticMs", "b", b): significant(static),
            macro_name("DynamicMs", "b", b): significant(on[("ort_int8_dynamic", b)]),
            macro_name("StaticSpeedup", "b", b): fixed(on[("ort_fp32", b)] / static, 2),
            macro_name("DynamicSpeedup", "b", b): fixed(on[("ort_fp32", b)] / on[("ort_int8_dynamic", b)], 2),
            macro_name("OrtOverEager", "b", b): fixed(on[("eager_fp32", b)] / on[("ort_fp32", b)], 2),
        }
        goal.append(on[("ort_fp32", b)] / static >= 2 and loss <= 1)
    values["StaticSpeedupFirst"] = values[macro_name("StaticSpeedup", "b", batches[0])]
    values["StaticSpeedupLast"] = values[macro_name("StaticSpeedup", "b", batches[-1])]
    values["OrtOverEagerFirst"] = values[macro_name("OrtOverEager", "b", batches[0])]
    values["DynamicSpeedupFirst"] = values[macro_name("DynamicSpeedup", "b", batches[0])]
    values["DynamicFaster"] = yes_no(on[("ort_fp32", batches[0])] > on[("ort_int8_dynamic", batches[0])])
    values["GoalMet"] = yes_no(any(goal))
    values["GoalBatches"] = words(b for b, met in zip(batches, goal) if met) if any(goal) else "none"
    return values


def _sharing_values(sharing: pd.DataFrame, share: Mapping, dense_top1: float) -> dict:
    df = sharing.sort_values("clusters")
    close = df[df.top1 >= dense_top1 - 0.01]
    values = {
        "Clusters": words(df.clusters),
        "KmeansIterations": share["iterations"],
        "ShareCloseFound": yes_no(len(close) > 0),
        "ShareCloseK": int(close.clusters.iloc[0]) if len(close) else "none",
        "ShareCloseRatio": fixed(close.ratio.iloc[0], 1) if len(close) else "n/a",
        "ShareCloseAccuracy": percent(close.top1.iloc[0]) if len(close) else "n/a",
        "ShareMinK": int(df.clusters.iloc[0]),
        "ShareMinKRatio": fixed(df.ratio.iloc[0], 1),
        "ShareMinKAccuracy": percent(df.top1.iloc[0]),
    }
    for row in df.itertuples():
        values[macro_name("ShareRatio", "k", row.clusters)] = fixed(row.ratio, 1)
        values[macro_name("ShareAccuracy", "k", row.clusters)] = percent(row.top1)
    return values


def _distill_values(distill: pd.DataFrame, d: Mapping) -> dict:
    teacher = distill[distill.role == "teacher"].iloc[0]
    students = distill[distill.role == "student"].set_index("mode")
    kd, labels = students.loc["kd"], students.loc["labels"]
    gain = 100 * (kd.test_acc - labels.test_acc)
    return {
        "Teacher": model_label(teacher.arch),
        "Student": model_label(kd.arch),
        "Temperature": plain(d["temperature"]),
        "Alpha": plain(d["alpha"]),
        "StudentEpochs": d["train"]["epochs"],
        "StudentImages": count(d["n_train"]) if d["n_train"] else "all",
        "TeacherAccuracy": percent(teacher.test_acc),
        "LabelsAccuracy": percent(labels.test_acc),
        "KdAccuracy": percent(kd.test_acc),
        "KdGain": fixed(abs(gain), 1),
        "KdBetter": yes_no(gain > 0),
        "TeacherAhead": yes_no(teacher.test_acc > labels.test_acc),
        "TeacherParamsMillions": significant(teacher.params / 1e6),
        "StudentParamsMillions": significant(kd.params / 1e6),
        "StudentSpeedup": fixed(teacher.latency_ms / kd.latency_ms, 2),
    }


def _deep_values(deep: pd.DataFrame, settings: Mapping) -> dict[str, object]:
    """Deep Compression's stages (results/compress/deep/stages.csv): each stage's size on disk, the ratio measured
    and computed, and the decoded model's accuracy."""
    rows = deep.set_index("stage")
    values = {"DeepSparsity": plain(round(100 * settings["sparsity"], 1)),
              "DeepConvBits": settings["bits"]["conv"], "DeepLinearBits": settings["bits"]["linear"],
              "DeepConvGapBits": settings["gap_bits"]["conv"], "DeepLinearGapBits": settings["gap_bits"]["linear"],
              "DeepDenseKilobytes": significant(rows.loc["dense", "size_bytes"] / 1e3),
              "DeepDenseAccuracy": percent(rows.loc["dense", "top1"])}
    for stage in ("pruned", "shared", "huffman"):
        name = stage.capitalize()
        values |= {f"Deep{name}Kilobytes": significant(rows.loc[stage, "size_bytes"] / 1e3),
                   f"Deep{name}Ratio": fixed(rows.loc[stage, "ratio"], 1),
                   f"Deep{name}FormulaRatio": fixed(rows.loc[stage, "formula_ratio"], 1),
                   f"Deep{name}Accuracy": percent(rows.loc[stage, "top1"])}
    return values


def _qat_values(qat: pd.DataFrame, settings: Mapping) -> dict[str, object]:
    """Quantization-aware training beside post-training quantization (results/compress/qat/classifier.csv): top-1
    through onnxruntime and file size of each, at 8 bits and weight-only at ``weight_only_bits``."""
    rows = qat.set_index("method")
    values = {"QatImages": count(settings["n_train"]) if settings["n_train"] else "all",
              "QatEpochs": settings["train"]["epochs"], "QatWeightOnlyBits": settings["weight_only_bits"]}
    for method, name in (("baseline", "QatFp"), ("quantize_static", "QatPtqEight"), ("qat", "QatEight"),
                         ("ptq_weight_only", "QatPtqWeightOnly"), ("qat_weight_only", "QatWeightOnly")):
        values |= {f"{name}Top": percent(rows.loc[method, "top1"]),
                   f"{name}Kilobytes": significant(rows.loc[method, "size_bytes"] / 1e3)}
    gain = 100 * (rows.loc["qat_weight_only", "top1"] - rows.loc["ptq_weight_only", "top1"])
    values["QatWeightOnlyGain"] = fixed(gain, 1)
    return values
