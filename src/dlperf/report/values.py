"""The numbers the report quotes, as LaTeX macros: functions from results (frames, dicts) to {macro name: text}.

Every number in the report's prose is one of these macros (written to ``results/report/values.tex`` by
``scripts/report_values.py``), so a rerun on other data or another config changes the text with the tables.
Names follow ``<Study><Quantity><Qualifier…>`` (see :func:`dlperf.report.latex.macro_name`): ``OptimusWStarPTwo``,
``FlopsGmacsVggSixteen``, ``FlopsConvShareVggSixteen``; values shared by all studies have no study prefix.
Yes/no facts (``OptimusTargetPredictedReached``) let the LaTeX choose its wording with ``\\ifdefstring``.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Iterable, Mapping

import numpy as np
import pandas as pd

from dlperf.report.latex import Latex, macro_name
from dlperf.workflow import lr_label

INFINITY = Latex(r"$\infty$")
MODEL_LABELS = {"vgg16": "VGG-16", "vgg19": "VGG-19", "googlenet": "GoogLeNet", "resnet50": "ResNet-50",
                "mobilenet_v2": "MobileNetV2", "inception_v3": "Inception-v3"}


# ---- formatting ---------------------------------------------------------------------------------------------
def significant(x: float, digits: int = 3) -> str:
    """``x`` to ``digits`` significant digits in positional notation (never 1e-05): 0.043621 -> 0.0436."""
    x = float(x)
    if math.isnan(x):
        return "n/a"
    if math.isinf(x):
        return INFINITY if x > 0 else Latex(r"$-\infty$")
    if x == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(x))))
    return f"{x:.{decimals}f}"


def plain(x: float) -> str:
    """A configured value as written, without padding or exponent: 0.05, 0.9, 10."""
    return np.format_float_positional(float(x), trim="-")


def fixed(x: float, decimals: int) -> str:
    x = float(x)
    return f"{x:.{decimals}f}" if math.isfinite(x) else significant(x)


def percent(fraction: float, decimals: int = 1) -> str:
    """A fraction as a percentage number (the prose adds the % sign): 0.8146 -> 81.5."""
    return fixed(100 * float(fraction), decimals)


def count(n: int) -> str:
    """An integer; five digits and more grouped by thin spaces (138 357 544), as in typeset tables."""
    n = int(n)
    return Latex(f"{n:,}".replace(",", r"\,")) if abs(n) >= 10_000 else str(n)


def words(items: Iterable) -> str:
    """An English list: a; a and b; a, b and c."""
    items = [str(i) for i in items]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def change(before: str, after: str, up: str, down: str, same: str) -> str:
    """The words for how a value went from ``before`` to ``after``, compared as printed: two values that read the
    same are the same to the reader."""
    return up if float(after) > float(before) else down if float(after) < float(before) else same


def model_label(name: str) -> str:
    """How a model is written in prose: vgg16 -> VGG-16, resnet20 -> ResNet-20."""
    if name in MODEL_LABELS:
        return MODEL_LABELS[name]
    if name.startswith("resnet") and name[6:].isdigit():
        return f"ResNet-{name[6:]}"
    return name


def unique(values: Iterable) -> list:
    """Distinct values in order of first appearance, ``None`` dropped."""
    return list(dict.fromkeys(v for v in values if v is not None))


def merge(*groups: Mapping[str, object]) -> dict[str, object]:
    """One macro table from several; a name defined twice is an error, not a silent overwrite."""
    merged: dict[str, object] = {}
    for group in groups:
        clash = merged.keys() & group.keys()
        if clash:
            raise ValueError(f"macro(s) defined twice: {sorted(clash)}")
        merged.update(group)
    return merged


# ---- shared by every study ----------------------------------------------------------------------------------
def provenance_values(records: Iterable[Mapping], scale: str) -> dict[str, object]:
    """Scale, commit(s), package versions, compute devices and date of the results, from their provenance.json.

    Results made at several commits list every commit rather than pretend to one.
    """
    records = list(records)
    commits = unique((r.get("git") or {}).get("commit") for r in records)
    packages = [r.get("packages", {}) for r in records]
    ends = [r["end"] for r in records if r.get("end")]
    devices = unique(r.get("gpu") or r.get("cpu") for r in records)
    return {
        "ReportScale": scale,
        "GitCommit": ", ".join(c[:12] for c in commits) if commits else "unknown",
        "GitDirty": yes_no(any((r.get("git") or {}).get("dirty") for r in records)),
        **{macro_name(name, "version"): ", ".join(unique(p.get(name) for p in packages)) or "unknown"
           for name in ("python", "torch", "torchvision", "snakemake", "dlperf")},
        "ComputeDevices": words(devices) if devices else "unknown",
        "ResultsDate": max(ends)[:10] if ends else "unknown",
    }


# ---- Optimus ------------------------------------------------------------------------------------------------
def optimus_values(*, fits: pd.DataFrame, regression: pd.DataFrame, errors: pd.DataFrame, curves: pd.DataFrame,
                   time_to_accuracy: pd.DataFrame, theta: Mapping, runs: Mapping[str, Mapping],
                   dataset: Mapping, prediction: Mapping, speed: Mapping, horizon_epochs: int,
                   prediction_device: str, prediction_figure: str) -> dict[str, object]:
    """Macros of the Optimus section.

    ``runs`` holds every training run's provenance.json, ``dataset`` the CIFAR-10 directory's, ``prediction``
    and ``speed`` those of the prediction and time-to-accuracy results; ``prediction_device`` is the device
    label whose target-model prediction the report shows (the speed model's), drawn in ``prediction_figure``.
    """
    settings = prediction["config"]["optimus"]
    target = settings["target_arch"]
    shown_run = next(r for r in runs.values()
                     if r["config"]["arch"] == target and r["config"]["device_label"] == prediction_device)
    train = shown_run["config"]["train"]
    regression_archs = fits[fits.arch != target].sort_values("depth").arch.unique()
    final = curves.set_index("run")
    best = final.test_acc.idxmax()
    ok = fits[fits.status == "ok"]
    worst = ok.loc[ok.r2.idxmin()]
    values = {
        "TargetArch": model_label(target),
        "RegressionArchs": words(map(model_label, regression_archs)),
        "Devices": words(unique(fits.device)),
        "Runs": len(fits),
        "TrainImages": count(dataset["n_train"]),
        "TestImages": count(dataset["n_test"]),
        "Classes": dataset["classes"],
        "ImagesPerEpoch": count(shown_run["config"]["n_train"] or dataset["n_train"]),
        "ImagenetWidth": shown_run["config"]["imagenet_width"],
        "Epochs": train["epochs"],
        "BatchSize": train["batch_size"],
        "Optimizer": train["optimizer"]["name"].upper(),
        "LearningRate": plain(train["optimizer"]["lr"]),
        "Momentum": plain(train["optimizer"]["momentum"]),
        "Schedule": train["schedule"]["name"],
        "TargetTestAccuracy": percent(final.loc[shown_run["run"], "test_acc"]),
        "BestTestAccuracy": percent(final.loc[best, "test_acc"]),
        "BestTestAccuracyRun": best,
        "BinsPerEpoch": settings["fit"]["bins_per_epoch"],
        "FitWeighting": settings["fit"]["weighting"],
        "FitPoints": int(fits.n_points.median()),
        "FitsFailed": int((fits.status != "ok").sum()),
        "FitRsqMedian": fixed(ok.r2.median(), 3),
        "FitRsqMin": fixed(worst.r2, 3),
        "FitRsqMinRun": f"{worst.arch}-{worst.device}-s{worst.seed}",
        "FitRsqMax": fixed(ok.r2.max(), 3),
        "RegressionRuns": int(regression.n.iloc[0]),
        **{macro_name("RegressionRsq", beta): fixed(rows.r2.iloc[0], 3)
           for beta, rows in regression.groupby("target")},
        **_prediction_values(errors, settings["target_accuracy"], horizon_epochs, prediction_device),
        "PredictionFigure": Latex(Path(prediction_figure).as_posix()),
        **_speed_values(time_to_accuracy, theta, speed["config"]["optimus"]["speed_model"]),
    }
    return {macro_name("optimus", key): value for key, value in values.items()}


def _prediction_values(errors: pd.DataFrame, target_accuracy: float, horizon_epochs: int, device: str) -> dict:
    shown = errors.set_index("device").loc[device]
    predicted = float(shown.predicted_epochs_to_target)
    measured = pd.to_numeric(pd.Series([shown.measured_epochs_to_target]), errors="coerce").iloc[0]
    return {
        "TargetAccuracy": percent(target_accuracy, 0),
        "HorizonEpochs": horizon_epochs,
        "PredictionDevice": device,
        "TargetMape": fixed(shown.mape_percent, 1),
        **{macro_name("TargetMape", d): fixed(m, 1) for d, m in zip(errors.device, errors.mape_percent)},
        "TargetPredictedReached": yes_no(math.isfinite(predicted)),
        "TargetPredictedEpochs": significant(predicted),
        "TargetMeasuredReached": yes_no(pd.notna(measured)),
        "TargetMeasuredEpochs": significant(measured) if pd.notna(measured) else "none",
    }


def _speed_values(tta: pd.DataFrame, theta: Mapping, speed: Mapping) -> dict:
    t = theta["theta"]
    bandwidth_bytes = speed["bandwidth_gbit_s"] * 1e9 / 8
    values = {
        "SpeedDevice": speed["device"],
        "GlobalBatch": speed["global_batch"],
        "WorkersMin": speed["workers"]["min"],
        "WorkersMax": speed["workers"]["max"],
        "ServerCounts": words(speed["ps"]),
        "BandwidthGbit": plain(speed["bandwidth_gbit_s"]),
        # θ is derived from a measured throughput unless the config gives it; the prose explains only the former.
        "ThetaDerived": yes_no(t.get("provenance", "").startswith("derived")),
        "ImagesPerSecond": significant(1 / t["theta0"]),
        "ModelMegabytes": significant(t["theta2"] * bandwidth_bytes / 2 / 1e6),
        **{macro_name("Theta", i, "ms"): significant(1e3 * t[f"theta{i}"]) for i in range(5)},
        "StepsNeeded": count(round(theta["steps_needed"])) if math.isfinite(theta["steps_needed"]) else INFINITY,
    }
    for ps, df in tta.groupby("ps"):
        fastest = df.loc[df.steps_per_s.idxmax()]
        quickest = df.loc[df.hours_to_target.idxmin()]
        values |= {
            macro_name("WStar", "p", ps): significant(theta["optimum"][str(ps)]["closed_form_w_star"]),
            macro_name("PeakStepsPerSecond", "p", ps): significant(fastest.steps_per_s),
            macro_name("PeakStepsWorkers", "p", ps): int(fastest.workers),
            macro_name("MinHours", "p", ps): significant(quickest.hours_to_target),
            macro_name("MinHoursWorkers", "p", ps): int(quickest.workers),
        }
    return values


# ---- FLOPs / PALEO ------------------------------------------------------------------------------------------
def flops_values(*, summary: pd.DataFrame, layers: Mapping[str, pd.DataFrame], peak_time: pd.DataFrame,
                 timing: pd.DataFrame, ppp: pd.DataFrame, training_ppp: pd.DataFrame, peak: Mapping,
                 measure: Mapping, image_size: int, flop_per_mac: int) -> dict[str, object]:
    """Macros of the FLOPs/PALEO section.

    ``layers`` maps each ``results/flops/<model>_layers.csv`` path to its frame; ``peak`` is the measuring
    device's peak record, ``measure`` the provenance of the timing results.
    """
    values = {
        "Models": words(map(model_label, summary.model)),
        "ImageSize": image_size,
        "FlopPerMac": flop_per_mac,
    }
    for row in summary.itertuples():
        values |= {
            macro_name("Gmacs", row.model): significant(row.gmacs),
            macro_name("Gflops", row.model): significant(row.gflops),
            macro_name("ParamsMillions", row.model): significant(row.params / 1e6),
            macro_name("ConvShare", row.model): fixed(100 * row.conv_share, 2),
        }
    for path, df in layers.items():
        model = Path(path).name.removesuffix("_layers.csv")
        conv_params = df.loc[df.type.str.startswith("Conv"), "params"].sum()
        values[macro_name("ConvParamShare", model)] = percent(conv_params / df.params.sum())
    values |= _peak_model_values(peak_time)
    values |= _measured_values(timing, ppp, peak, measure["config"]["flops"]["measure"])
    values |= {
        "TrainingRuns": len(training_ppp),
        "TrainingPppMedian": percent(training_ppp.ppp.median()),
        "TrainingPppMin": percent(training_ppp.ppp.min()),
        "TrainingPppMax": percent(training_ppp.ppp.max()),
        "TrainingPppMaxRun": training_ppp.loc[training_ppp.ppp.idxmax(), "run"],
        "TrainingPppAboveFull": yes_no(bool((training_ppp.ppp > 1).any())),
    }
    return {macro_name("flops", key): value for key, value in values.items()}


def _peak_model_values(peak_time: pd.DataFrame) -> dict:
    """PALEO's lower bound t = FLOPs / peak on the fastest and the slowest datasheet peak."""
    peaks = peak_time.drop_duplicates("device").set_index("device").peak_tflops
    fastest, slowest = peaks.idxmax(), peaks.idxmin()
    values = {
        "PeakModelDevices": len(peaks),
        "FastestDevice": fastest,
        "FastestPeakTflops": significant(peaks[fastest]),
        "SlowestDevice": slowest,
        "SlowestPeakTflops": significant(peaks[slowest]),
    }
    for model, df in peak_time.groupby("model", sort=False):
        on = df.set_index("device")
        values |= {
            macro_name("PeakTimeFastestMs", model): significant(on.loc[fastest, "time_ms"]),
            macro_name("PeakTimeSlowestMs", model): significant(on.loc[slowest, "time_ms"]),
            macro_name("PeakImagesPerSecondFastest", model): count(round(on.loc[fastest, "images_per_s"])),
        }
    return values


def _measured_values(timing: pd.DataFrame, ppp: pd.DataFrame, peak: Mapping, measure: Mapping) -> dict:
    top, bottom = ppp.loc[ppp.ppp.idxmax()], ppp.loc[ppp.ppp.idxmin()]
    layer_share = timing.layer_sum_ms / timing.forward_ms
    values = {
        "DeviceLabel": peak["device_label"],
        "DeviceName": peak["device_name"],
        "DeviceThreads": peak["threads"],
        "PeakTflops": significant(peak["peak_tflops"]),
        "PeakGflops": significant(peak["peak_flops"] / 1e9),
        "PeakSource": peak["source"],
        "MeasureImageSize": measure["image_size"],
        "MeasureBatches": words(measure["batch_sizes"]),
        "MeasureWarmup": measure["warmup"],
        "MeasureRepeats": measure["repeats"],
        "PppMax": percent(top.ppp),
        "PppMaxModel": model_label(top.model),
        "PppMaxBatch": int(top.batch),
        "PppMin": percent(bottom.ppp),
        "PppMinModel": model_label(bottom.model),
        "PppMinBatch": int(bottom.batch),
        "LayerSumShareMin": percent(layer_share.min(), 0),
        "LayerSumShareMax": percent(layer_share.max(), 0),
    }
    for row in ppp.itertuples():
        values[macro_name("Ppp", row.model, "batch", row.batch)] = percent(row.ppp)
    return values


# ---- Depth ----------------------------------------------------------------------------------------------------
DEPTH_LABELS = {"vgg08": "VGG-08", "vgg38": "VGG-38", "vgg38_bn": "VGG-38 BN", "vgg38_rc": "VGG-38 RC",
                "vgg38_bn_rc": "VGG-38 BN+RC"}
COURSEWORK_FILTERS = 32


def depth_values(*, summary: pd.DataFrame, grad_flow: pd.DataFrame, runs: Mapping[str, Mapping],
                 dataset: Mapping) -> dict[str, object]:
    """Macros of the depth section.

    ``summary`` is results/depth/summary.csv (accuracies in %), ``grad_flow`` the per-layer records of every run,
    ``runs`` every run's provenance.json, ``dataset`` the CIFAR-100 directory's. The gradient ratio of a run is its first weight layer's mean |grad| over
    its last layer's, averaged over the first recorded epoch; ``GradLogRatio`` is its log10.
    """
    from dlperf.models.vgg_mlp import vgg_mlp_from_name  # torch only where the depth section is reported

    d = next(iter(runs.values()))["config"]["depth"]
    train = d["train"]
    classes = dataset["classes"]
    best = summary.loc[summary.val_acc.idxmax()]
    values = {
        "Runs": len(summary),
        "Classes": classes,
        "NumFilters": d["num_filters"],
        "CourseworkFilters": COURSEWORK_FILTERS,
        "TrainImages": count(d["n_train"] - d["val_size"]),
        "ValImages": count(d["val_size"]),
        "Epochs": train["epochs"],
        "BatchSize": train["batch_size"],
        "Optimizer": train["optimizer"]["name"].capitalize(),
        "WeightDecay": plain(train["optimizer"]["weight_decay"]),
        "CosineTmax": train["schedule"]["t_max"],
        "CosineEtaMin": significant(train["schedule"]["eta_min"], 2),
        "CosineStepPer": train["schedule"]["step_per"],
        "GradEvery": d["grad_flow"]["every"],
        "ChanceLoss": fixed(math.log(classes), 3),
        "ChanceAccuracy": fixed(100 / classes, 1),
        "BestModel": DEPTH_LABELS.get(best.model, best.model),
        "BestLr": significant(best.lr, 1),
        "BestValAccuracy": fixed(best.val_acc, 1),
        "BestTestAccuracy": fixed(best.test_acc, 1),
    }
    for name in ("vgg08", "vgg38", "vgg38_bn"):
        values[macro_name("CourseworkParams", name)] = count(
            sum(p.numel() for p in vgg_mlp_from_name(name, classes, COURSEWORK_FILTERS).parameters()))
    for row in summary.itertuples():
        key = (row.model, "lr", lr_label(row.lr))
        values |= {
            macro_name("Params", *key): count(row.params),
            macro_name("TrainLoss", *key): fixed(row.train_loss, 2),
            macro_name("ValLoss", *key): fixed(row.val_loss, 2),
            macro_name("ValAccuracy", *key): fixed(row.val_acc, 1),
            macro_name("TestAccuracy", *key): fixed(row.test_acc, 1),
        }
    for run, df in grad_flow.groupby("run", sort=False):
        model, lr = run.rsplit("-s", 1)[0].split("-lr")
        first_epoch = df[df.epoch == df.epoch.min()]
        per_layer = first_epoch.groupby("layer", sort=False).mean_abs_grad.mean()
        values[macro_name("GradLogRatio", model, "lr", lr)] = fixed(math.log10(per_layer.iloc[0] / per_layer.iloc[-1]), 1)
    return {macro_name("depth", key): value for key, value in values.items()}


# ---- Transfer -------------------------------------------------------------------------------------------------
TRANSFER_MODES = {"finetune": "fine-tuning", "feature_extractor": "the feature extractor"}


def transfer_values(*, classes: pd.DataFrame, summary: pd.DataFrame, backbones: pd.DataFrame,
                    timing: pd.DataFrame, dataset: Mapping, finetune: Mapping, pretrain: Mapping | None = None
                    ) -> dict[str, object]:
    """Macros of the transfer section.

    ``dataset`` is the target directory's provenance.json, ``finetune`` one fine-tuning run's and ``pretrain``
    the in-DAG pretraining run's of the backbone (None for downloaded weights); ``classes``, ``summary``,
    ``backbones`` and ``timing`` are the study's CSVs.
    """
    t = finetune["config"]["transfer"]
    train = finetune["config"]["train"]
    entry = t["backbone"]
    data_entry = next(iter(dataset["config"]["data"].values()))
    best = summary.loc[summary.best_val_acc.idxmax()]
    values = {
        "DatasetSource": data_entry["source"],
        "DatasetFormat": data_entry.get("format", "flowers102") if data_entry["source"] == "download" else "synthetic",
        "Classes": len(classes),
        "TrainImages": count(classes.n_train.sum()),
        "ValImages": count(classes.n_val.sum()),
        "TestImages": count(classes.n_test.sum()),
        "ImageSize": t["image_size"],
        "Arch": model_label(entry["arch"]),
        "Width": entry.get("width", 64),
        "WeightsPretrained": yes_no(entry["weights"] == "pretrain"),
        "Epochs": train["epochs"],
        "BatchSize": train["batch_size"],
        "Milestones": words(map(plain, train["schedule"]["milestones"])),
        "Gamma": plain(train["schedule"]["gamma"]),
        "Momentum": plain(train["optimizer"]["momentum"]),
        "BestMode": TRANSFER_MODES[best["mode"]],
        "BestLr": plain(best.lr),
        "BestValAccuracy": percent(best.best_val_acc),
        "BestTestAccuracy": percent(best.final_test_acc),
    }
    if pretrain is not None:
        values |= {"SourceClasses": pretrain["source_classes"],
                   "SourceEpochs": pretrain["config"]["transfer"]["pretrain"]["train"]["epochs"],
                   "SourceValAccuracy": percent(pretrain["metrics"]["best_val_acc"])}
    for mode, rows in summary.groupby("mode", sort=False):
        top = rows.loc[rows.best_val_acc.idxmax()]
        values |= {
            macro_name(mode, "lrs"): words(map(plain, rows.lr)),
            macro_name(mode, "BestLr"): plain(top.lr),
            macro_name(mode, "BestValAccuracy"): percent(top.best_val_acc),
            macro_name(mode, "BestTestAccuracy"): percent(top.final_test_acc),
            macro_name(mode, "WorstValAccuracy"): percent(rows.best_val_acc.min()),
        }
    cpu = timing[timing.device == "cpu"].set_index("mode")
    values |= {
        "CpuName": cpu.device_name.iloc[0],
        "CpuFinetuneEpochSeconds": significant(cpu.loc["finetune", "epoch_seconds"]),
        "CpuCachedEpochSeconds": significant(cpu.loc["feature_extractor_cached", "epoch_seconds"]),
        "CpuUncachedEpochSeconds": significant(cpu.loc["feature_extractor_uncached", "epoch_seconds"]),
        "CpuCacheSeconds": significant(cpu.loc["feature_extractor_cached", "one_time_seconds"]),
        "CpuCacheSpeedup": significant(cpu.loc["feature_extractor_cached", "speedup_vs_uncached"]),
        "GpuTimed": yes_no("cuda" in set(timing.device)),
    }
    if "cuda" in set(timing.device):
        gpu = timing[timing.device == "cuda"].set_index("mode")
        values |= {
            "GpuName": gpu.device_name.iloc[0],
            "GpuFinetuneEpochSeconds": significant(gpu.loc["finetune", "epoch_seconds"]),
            "GpuCacheSpeedup": significant(gpu.loc["feature_extractor_cached", "speedup_vs_uncached"]),
            "GpuFinetuneSpeedup": significant(cpu.loc["finetune", "epoch_seconds"]
                                              / gpu.loc["finetune", "epoch_seconds"]),
        }
    if len(backbones):
        top = backbones.loc[backbones.val_acc.idxmax()]
        values |= {
            "ComparedBackbones": words(map(model_label, backbones.backbone.unique())),
            "ComparisonLrs": words(map(plain, backbones.lr.unique())),
            "BestBackbone": model_label(top.backbone),
            "BestBackboneLr": plain(top.lr),
            "BestBackboneValAccuracy": percent(top.val_acc),
        }
    return {macro_name("transfer", key): value for key, value in values.items()}
# ---- SSD ----------------------------------------------------------------------------------------------------
PUBLISHED_VOC_MAP = 0.6755  # pytorch-ssd README: mobilenet-v1-ssd-mp-0_675.pth on VOC2007 test, VOC07 11-point


def ssd_values(*, voc_ap: pd.DataFrame, before: pd.DataFrame, after: pd.DataFrame, voc: Mapping,
               finetune: Mapping, openimages: Mapping, width_mult: float, image_size: int,
               pretrained_source: str) -> dict[str, object]:
    """Macros of the SSD section from ``results/ssd/voc/ap.csv``, ``openimages/ap_{before,after}.csv`` (class, ap;
    the last row is the mAP) and the provenance of the VOC evaluation, the fine-tune and the Open Images evaluation."""
    per_class = voc_ap.iloc[:-1]
    best, worst = per_class.loc[per_class.ap.idxmax()], per_class.loc[per_class.ap.idxmin()]
    voc_map = float(voc_ap.ap.iloc[-1])
    ft = finetune["config"]["ssd"]["finetune"]
    values = {
        "WidthMult": plain(width_mult),
        "ImageSize": image_size,
        "Priors": count(voc["num_priors"]),
        "Params": count(finetune["params"]),
        "PretrainedSource": pretrained_source,
        "VocMap": fixed(voc_map, 4),
        "VocPublishedMap": fixed(PUBLISHED_VOC_MAP, 4),
        "VocMatchesPublished": yes_no(abs(voc_map - PUBLISHED_VOC_MAP) < 5e-5),
        "VocTestImages": count(voc["test_images"]),
        "VocBestClass": best["class"], "VocBestAp": fixed(best.ap, 3),
        "VocWorstClass": worst["class"], "VocWorstAp": fixed(worst.ap, 3),
        "Classes": words(before["class"].iloc[:-1]),
        "FinetuneEpochs": ft["epochs"],
        "FinetuneBatch": ft["batch_size"],
        "FinetuneLr": plain(ft["lr"]),
        "FinetuneBaseNetLr": plain(ft["lr"] if ft.get("base_net_lr") is None else ft["base_net_lr"]),
        "FinetuneTrainImages": count(finetune["train_images"]),
        "OpenImagesTestImages": count(openimages["test_images"]),
        "OpenImagesMissingImages": count(openimages["missing_images"]),
        "MapBefore": fixed(before.ap.iloc[-1], 3),
        "MapAfter": fixed(after.ap.iloc[-1], 3),
    }
    values["MapChange"] = change(values["MapBefore"], values["MapAfter"], "rises", "falls", "stays the same,")
    for frame, stage in ((before, "before"), (after, "after")):
        for row in frame.iloc[:-1].itertuples():
            values[macro_name("Ap", stage, row[1])] = fixed(row.ap, 3)
    return {macro_name("ssd", key): value for key, value in values.items()}
# ---- Compression --------------------------------------------------------------------------------------------
def compress_values(*, summary: pd.DataFrame, pruning: pd.DataFrame, classifier: pd.DataFrame,
                    latency: pd.DataFrame, sharing: pd.DataFrame, distill: pd.DataFrame, quantize: Mapping,
                    settings: Mapping, ssd: bool) -> dict[str, object]:
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


# What each study's section quotes: the study's key in the config -> its function. A study's inputs and params
# (rules/report.smk) are this function's keyword arguments.
STUDIES: dict[str, Callable[..., dict[str, object]]] = {
    "optimus": optimus_values,
    "flops": flops_values,
    "depth": depth_values,
    "transfer": transfer_values,
    "ssd": ssd_values,
    "compress": compress_values,
}


# ---- Serving ------------------------------------------------------------------------------------------------
def scientific(x: float, digits: int = 2) -> Latex:
    """``x`` as LaTeX scientific notation: 1.19e-07 -> $1.2\\times10^{-7}$; zero as 0."""
    x = float(x)
    if x == 0 or not math.isfinite(x):
        return Latex(significant(x))
    exponent = math.floor(math.log10(abs(x)))
    return Latex(rf"${x / 10**exponent:.{digits - 1}f}\times10^{{{exponent}}}$")


def serving_values(*, bench: pd.DataFrame, parity: Mapping, export: Mapping, detections: Mapping,
                   classes: list[str], batching: Mapping) -> dict[str, object]:
    """Macros of the serving section: the export (graph size, parity), the server under load with and without
    dynamic batching, ORT against PyTorch eager at batch 1, and the demo's detections.

    ``parity`` is results/ssd/onnx/parity.json, ``export`` the export's provenance, ``detections`` the demo's
    detections.json; ``bench`` is results/ssd/serving/bench.csv.
    """
    server = bench[bench.benchmark == "server"]
    most = int(server.clients.max())
    at_most = server[server.clients == most].set_index("batching")
    single = server[(server.clients == server.clients.min()) & (server.batching == "off")].iloc[0]
    direct = bench[bench.benchmark == "direct"].set_index("runtime")
    ort_speedup = direct.loc["onnxruntime", "speedup"]
    batching_speedup = at_most.loc["dynamic", "speedup"]
    model = export["config"]["ssd"]["model"]
    values = {
        "WidthMult": plain(model["width_mult"]),
        "ImageSize": model["image_size"],
        "Opset": parity["opset"],
        "Nodes": parity["nodes"],
        "OpTypes": len(parity["op_types"]),
        "ConvNodes": parity["op_types"].get("Conv", 0),
        "DocStringNodes": parity["doc_strings"]["stack_trace"],
        "ModelMegabytes": significant(parity["bytes"] / 2**20),
        "ParityImages": len(parity["images"]),
        "ParityBatches": words(parity["batch_sizes"]),
        "ParityTolerance": scientific(parity["tolerance"], 1),
        "ParityScoresDiff": scientific(parity["max_abs_diff"]["scores"]),
        "ParityBoxesDiff": scientific(parity["max_abs_diff"]["boxes"]),
        "MaxBatchSize": batching["max_batch_size"],
        "MaxDelayMs": plain(batching["max_delay_ms"]),
        "Clients": words(sorted(server.clients.unique())),
        "ClientsMax": most,
        "RequestsPerClient": int(server.requests.iloc[0] // server.clients.iloc[0]),
        "SingleClientPFiftyMs": significant(single.p50_ms),
        "SingleClientPNinetyNineMs": significant(single.p99_ms),
        "ThroughputOffMax": significant(at_most.loc["off", "throughput_rps"]),
        "ThroughputDynamicMax": significant(at_most.loc["dynamic", "throughput_rps"]),
        "PNinetyNineOffMax": significant(at_most.loc["off", "p99_ms"]),
        "PNinetyNineDynamicMax": significant(at_most.loc["dynamic", "p99_ms"]),
        "MeanBatchMax": fixed(at_most.loc["dynamic", "mean_batch"], 1),
        "BatchingSpeedup": fixed(batching_speedup, 2),
        "BatchingGoalMet": yes_no(batching_speedup >= 2),
        "EagerMs": significant(direct.loc["pytorch_eager", "p50_ms"]),
        "OrtMs": significant(direct.loc["onnxruntime", "p50_ms"]),
        "OrtSpeedup": fixed(ort_speedup, 1),
        "OrtGoalMet": yes_no(ort_speedup >= 2),
        "DemoClasses": words(classes),
        # the demo figure: one panel per class, side by side, and what each shows
        "DemoPanels": Latex(r"\hfill".join(
            rf"\includegraphics[width={0.96 / len(classes):.2f}\linewidth]{{results/ssd/serving/annotated_{name}.png}}"
            for name in classes)),
        "DemoPanelCaptions": words(
            f"{name} ({len(detections[name]['detections'])} detected, {detections[name]['ground_truth']} present)"
            for name in classes),
    }
    return {macro_name("serve", key): value for key, value in values.items()}


STUDIES["serve"] = serving_values
