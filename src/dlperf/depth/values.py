"""The depth section's numbers as report macros: Table 1, the coursework's parameter counts and the gradient
ratio of every run (see report/sections/depth.tex).
"""
from __future__ import annotations

import math
from typing import Mapping

import pandas as pd

from dlperf.models.vgg_mlp import vgg_mlp_from_name
from dlperf.report.latex import Latex, macro_name
from dlperf.report.values import count, fixed, plain, significant, words
from dlperf.workflow import lr_label


DEPTH_LABELS = {"vgg08": "VGG-08", "vgg38": "VGG-38", "vgg38_bn": "VGG-38 BN", "vgg38_rc": "VGG-38 RC",
                "vgg38_bn_rc": "VGG-38 BN+RC"}
REPAIRED = ("vgg38_bn", "vgg38_rc", "vgg38_bn_rc")
COURSEWORK_FILTERS = 32


def base_lr(summary: pd.DataFrame) -> float:
    """The grid's base learning rate: the one most runs use (the smaller on a tie), at which every variant is run."""
    counts = summary.lr.value_counts()
    return float(min(counts.index[counts == counts.max()]))


def repair_sentences(summary: pd.DataFrame, grad_ratio: pd.DataFrame) -> dict[str, Latex]:
    """The repaired VGG-38 variants a grid ran, listed with their learning rates: ``RepairAccuracies`` (validation
    accuracies) and ``RepairGradRatios`` (first-over-last gradient ratios), in the variants' fixed order."""
    def rows(frame: pd.DataFrame) -> list:
        order = {name: i for i, name in enumerate(REPAIRED)}
        repaired = frame[frame.model.isin(REPAIRED)]
        return sorted(repaired.itertuples(), key=lambda row: (order[row.model], row.lr))

    accuracies = [f"{fixed(row.val_acc, 1)}\\,\\% ({DEPTH_LABELS[row.model]} at {significant(row.lr, 1)})"
                  for row in rows(summary)]
    ratios = [f"$10^{{{fixed(math.log10(row.ratio), 1)}}}$ for {DEPTH_LABELS[row.model]} at {significant(row.lr, 1)}"
              for row in rows(grad_ratio)]
    return {"RepairAccuracies": Latex(words(accuracies) if accuracies else "none run"),
            "RepairGradRatios": Latex(words(ratios) if ratios else "not recorded")}


def depth_values(*, summary: pd.DataFrame, grad_ratio: pd.DataFrame, runs: Mapping[str, Mapping],
                 dataset: Mapping) -> dict[str, object]:
    """Macros of the depth section.

    ``summary`` is results/depth/summary.csv (accuracies in %), ``grad_ratio`` results/depth/grad_ratio.csv (each
    run's first over last layer's mean |grad| in its first recorded epoch, :mod:`dlperf.depth.gradients`), ``runs``
    every run's provenance.json, ``dataset`` the CIFAR-100 directory's. ``GradLogRatio`` is a ratio's log10.
    """
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
    for row in grad_ratio.itertuples():
        values[macro_name("GradLogRatio", row.model, "lr", lr_label(row.lr))] = fixed(math.log10(row.ratio), 1)
    # The grid's base learning rate (the coursework's 1e-3 at full scale): its rows also get macros without the lr,
    # so that the text reads the same whatever rate a config's grid is built around.
    base = base_lr(summary)
    values["BaseLr"] = significant(base, 1)
    values |= repair_sentences(summary, grad_ratio)
    suffix = macro_name("lr", lr_label(base))
    for name, value in list(values.items()):
        if name.endswith(suffix) and name != suffix:
            values[name[: -len(suffix)]] = value
    return {macro_name("depth", key): value for key, value in values.items()}
