"""The transfer section's numbers as report macros: the target data, both sweeps' winners, the backbone
comparison and the device timing (see report/sections/transfer.tex).
"""
from __future__ import annotations

from typing import Mapping

import pandas as pd

from dlperf.report.latex import macro_name
from dlperf.report.values import count, model_label, percent, plain, significant, words, yes_no


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
