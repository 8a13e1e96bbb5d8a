"""The Optimus section's numbers as report macros: the loss fits, the target model's predicted and measured
epochs to its accuracy, and the speed model's optimum (see report/sections/optimus.tex).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping

import pandas as pd

from dlperf.report.latex import Latex, macro_name
from dlperf.report.values import (INFINITY, count, fixed, model_label, percent, plain, significant, unique, words,
                                  yes_no)


def optimus_values(*, fits: pd.DataFrame, regression: pd.DataFrame, errors: pd.DataFrame, curves: pd.DataFrame,
                   time_to_accuracy: pd.DataFrame, theta: Mapping, runs: Mapping[str, Mapping],
                   dataset: Mapping, fitting: Mapping, prediction: Mapping, speed: Mapping, horizon_epochs: int,
                   prediction_device: str, prediction_figure: str) -> dict[str, object]:
    """Macros of the Optimus section.

    ``runs`` holds every training run's provenance.json, ``dataset`` the CIFAR-10 directory's, ``fitting``,
    ``prediction`` and ``speed`` those of the loss fits, the prediction and the time-to-accuracy results; ``prediction_device`` is the device
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
        "BinsPerEpoch": fitting["config"]["optimus"]["fit"]["bins_per_epoch"],
        "FitWeighting": fitting["config"]["optimus"]["fit"]["weighting"],
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
