"""What the compress rules write, fake but well formed, for the tests of the study's report values
(tests/test_compress.py): ``write_compress(root, cfg)``.

Numbers are made up but consistent: ResNet-20 at 41 % dense, static INT8 at 40.8 % and 1.6x faster than FP32
onnxruntime at batch 1, 2.2x at 32; KD student 1.5 points better than its labels-only twin.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from dlperf.compress.stages import stages_table
from dlperf.compress.summary import accuracy_sparsity_figure, size_accuracy_figure, summary_frame, summary_table
from conftest import FIXTURE_FIDELITY

from dlperf.report.style import save_figure
from dlperf.report.tables import write_table

PROVENANCE = {"git": {"commit": "0123456789abcdef0123", "dirty": False},
              "packages": {"python": "3.11.7", "dlperf": "0.1.0", "torch": "2.14.1", "torchvision": "0.29.1",
                           "snakemake": "9.27.1"},
              "device": "cpu", "cpu": "Fixture CPU", "cpu_count": 2, "peak_flops": 4.0e10,
              "start": "2026-01-02T10:00:00+00:00", "end": "2026-01-02T10:05:00+00:00"}


def _json(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2))


def _csv(path: Path, df: pd.DataFrame) -> pd.DataFrame:
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)
    return df


def write_compress(root: Path, cfg: dict) -> None:
    c, out = cfg["compress"], Path(root) / "results" / "compress"
    arch, device, seed = c["arch"], c["device"], c["seed"]
    d = c["distill"]
    batches = c["latency"]["batch_sizes"]
    dense_bytes, dense_params = 1_084_544, 269_722
    pruning = _csv(out / "pruning.csv", pd.DataFrame([
        {"arch": arch, "sparsity": s, "achieved_sparsity": s, "pruned_weights": round(s * 268_336),
         "prunable_weights": 268_336, "nonzero_params": dense_params - round(s * 268_336),
         "size_bytes": int(dense_bytes * (1 - 0.9 * s)) + 33_542, "pruned_test_acc": 0.41 - 0.3 * s ** 3,
         "retrained_test_acc": 0.52 - 0.15 * s ** 3, "latency_ms": 5.5, "latency_batch": batches[0],
         "retrain_images": c["prune"]["n_train"] or 5000, "retrain_epochs": c["prune"]["train"]["epochs"],
         "dense_test_acc": 0.41, "dense_nonzero_params": dense_params, "dense_size_bytes": dense_bytes,
         "dense_latency_ms": 5.6} for s in c["prune"]["sparsities"]]))
    classifier = _csv(out / "quantize" / "classifier.csv", pd.DataFrame([
        {"variant": v, "runtime": rt, "file": f, "size_bytes": size, "nonzero_params": dense_params, "top1": acc,
         "top1_agreement": agree, "max_abs_diff": diff, "mean_abs_diff": diff / 10, "max_rel_diff": diff / 20}
        for v, rt, f, size, acc, agree, diff in [
            ("eager_fp32", "pytorch", "", dense_bytes, 0.41, 1.0, 0.0),
            ("ort_fp32", "onnxruntime", "classifier.fp32.onnx", 1_161_180, 0.41, 1.0, 5e-6),
            ("ort_int8_dynamic", "onnxruntime", "classifier.int8_dynamic.onnx", 343_235, 0.409, 0.986, 0.22),
            ("ort_int8_static", "onnxruntime", "classifier.int8_static.onnx", 372_117, 0.408, 0.976, 1.1)]]))
    per_image = {"eager_fp32": 2.3, "ort_fp32": 2.0, "ort_int8_dynamic": 2.3, "ort_int8_static": 0.9}
    overhead = {"eager_fp32": 5.0, "ort_fp32": 0.4, "ort_int8_dynamic": 1.2, "ort_int8_static": 0.3}
    models = ["classifier", "ssd"] if c["quantize"]["ssd"] else ["classifier"]
    latency = _csv(out / "quantize" / "latency.csv", pd.DataFrame([
        {"model": m, "variant": v, "batch": b, "median_ms": overhead[v] + per_image[v] * b,
         "p10_ms": overhead[v] + 0.9 * per_image[v] * b, "p90_ms": overhead[v] + 1.2 * per_image[v] * b}
        for m in models for v in per_image for b in batches]))
    ssd = None
    if c["quantize"]["ssd"]:   # the SSD study's detector quantized too: mAP 50 % in FP32, 48 % static INT8
        ssd = pd.DataFrame([{"variant": v, "size_bytes": size, "nonzero_params": 600_000, "map": m}
                            for v, size, m in [("ort_fp32", 2_400_000, 0.50), ("ort_int8_dynamic", 700_000, 0.49),
                                               ("ort_int8_static", 650_000, 0.48)]])
    _json(out / "quantize" / "provenance.json",
          {"config": {"compress": {"arch": arch, "quantize": c["quantize"], "latency": c["latency"]}, "threads": 1},
           **PROVENANCE, "calibration_images": c["quantize"]["calibration_images"], "test_images": 1000})
    sharing = _csv(out / "share" / "sharing.csv", pd.DataFrame([
        {"clusters": k, "index_bits": max(1, (k - 1).bit_length()), "bits_before": 8_586_752,
         "bits_after": 268_336 * max(1, (k - 1).bit_length()) + 22 * k * 32,
         "ratio": 8_586_752 / (268_336 * max(1, (k - 1).bit_length()) + 22 * k * 32), "size_bytes": 40_000 + 34_000 * i,
         "nonzero_params": dense_params, "top1": min(0.41, 0.1 + 0.08 * 2 ** i), "dense_top1": 0.41,
         "latency_ms": 5.6, "dense_latency_ms": 5.6, "latency_batch": batches[0]}
        for i, k in enumerate(sorted(c["share"]["clusters"]))]))
    _json(out / "share" / "provenance.json", {"config": {"compress": {"arch": arch, "share": c["share"]}},
                                              **PROVENANCE})
    distill = _csv(out / "distill.csv", pd.DataFrame([
        {"role": role, "mode": mode, "arch": a, "params": params, "nonzero_params": params, "size_bytes": 4 * params,
         "test_acc": acc, "test_loss": 1.5, "latency_ms": ms, "latency_batch": batches[0], "checkpoint": ""}
        for role, mode, a, params, acc, ms in [("teacher", "", d["teacher"], 853_018, 0.50, 15.0),
                                               ("student", "labels", d["student"], dense_params, 0.45, 5.6),
                                               ("student", "kd", d["student"], dense_params, 0.465, 5.6)]]))
    for s in c["prune"]["sparsities"]:
        _json(out / "prune" / f"{arch}-{device}-s{seed}-sp{s:g}" / "provenance.json",
              {"config": {"compress": {"arch": arch, "sparsity": s, "prune": c["prune"]}}, **PROVENANCE,
               "study": "compress"})
    for mode in ("labels", "kd"):
        _json(out / "distill" / f"{d['student']}-{mode}-{device}-s{seed}" / "provenance.json",
              {"config": {"compress": {"student": d["student"], "mode": mode}}, **PROVENANCE, "study": "compress"})
    deep_sparsity, bits = c["deep"]["sparsity"], c["deep"]["bits"]
    deep = _csv(out / "deep" / "stages.csv", pd.DataFrame([
        {"stage": stage, "sparsity": 0.0 if stage == "dense" else deep_sparsity,
         "conv_bits": 32 if stage in ("dense", "pruned") else bits["conv"],
         "linear_bits": 32 if stage in ("dense", "pruned") else bits["linear"], "size_bytes": size,
         "ratio": 1_120_279 / size, "formula_ratio": formula, "top1": top1}
        for stage, size, formula, top1 in [("dense", 1_120_279, 1.0, 0.41), ("pruned", 149_146, 8.0, 0.39),
                                           ("shared", 56_456, 26.0, 0.40), ("huffman", 42_254, 41.5, 0.40)]]))
    _json(out / "deep" / "shared" / "provenance.json",
          {"config": {"compress": {"arch": arch, "deep": c["deep"]}}, **PROVENANCE, "study": "compress"})
    w = c["qat"]["weight_only_bits"]
    qat = _csv(out / "qat" / "classifier.csv", pd.DataFrame([
        {"variant": v, "method": m, "runtime": "onnxruntime", "file": f"{v}.onnx", "size_bytes": size,
         "nonzero_params": dense_params, "tensor_bytes": size - 80_000, "weight_bits": wb, "activation_bits": ab,
         "top1": acc, "top1_agreement": 0.98, "max_abs_diff": 0.5, "mean_abs_diff": 0.05, "max_rel_diff": 0.02}
        for v, m, size, wb, ab, acc in [("ort_fp32", "baseline", 1_161_180, 32, 32, 0.41),
                                        ("ort_int8_static", "quantize_static", 372_117, 8, 8, 0.408),
                                        ("ort_int8_qat", "qat", 476_441, 8, 8, 0.412),
                                        (f"ort_int{w}w_ptq", "ptq_weight_only", 227_234, w, 32, 0.38),
                                        (f"ort_int{w}w_qat", "qat_weight_only", 227_173, w, 32, 0.405)]]))
    qat_latency = _csv(out / "qat" / "latency.csv", pd.DataFrame([
        {"model": "classifier", "variant": v, "batch": batches[0], "median_ms": ms, "p10_ms": ms, "p90_ms": ms}
        for v, ms in zip(qat.variant, (2.4, 1.2, 1.2, 2.4, 2.4))]))
    _json(out / "qat" / "provenance.json", {"config": {"compress": {"arch": arch}}, **PROVENANCE, "study": "compress"})
    for variant in ("int8", f"int{w}w"):
        _json(out / "qat" / "runs" / f"{arch}-{device}-s{seed}-{variant}" / "provenance.json",
              {"config": {"compress": {"arch": arch, "variant": variant}}, **PROVENANCE, "study": "compress"})
    summary = summary_frame(arch=arch, pruning=pruning, classifier=classifier, latency=latency, sharing=sharing,
                            distill=distill, ssd=ssd, deep=deep, qat=qat, qat_latency=qat_latency,
                            temperature=d["temperature"], alpha=d["alpha"])
    _csv(out / "summary.csv", summary)
    write_table(summary_table(summary), out / "tables" / "summary.tex")
    save_figure(accuracy_sparsity_figure(pruning), out / "figures" / "accuracy_sparsity.pdf", FIXTURE_FIDELITY)
    save_figure(size_accuracy_figure(summary), out / "figures" / "size_accuracy.pdf", FIXTURE_FIDELITY)
    write_table(stages_table(deep), out / "tables" / "deep.tex")
