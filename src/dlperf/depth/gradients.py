"""The gradient ratio of each depth run: how much of the gradient at the last weight layer reaches the first.

The coursework's diagnosis in one number per run: the first weight layer's mean |grad| over the last one's,
each averaged over the records of the run's first recorded epoch. Plain VGG-38's ratio is vanishingly small (its
first layers receive no signal); VGG-08's and the repaired networks' are of order one.
"""
from __future__ import annotations

from typing import Mapping

import pandas as pd

COLUMNS = ("run", "model", "lr", "first_layer_grad", "last_layer_grad", "ratio")


def gradient_ratios(grad_flow: pd.DataFrame, runs: Mapping[str, Mapping]) -> pd.DataFrame:
    """One row per run of ``grad_flow`` (results/depth/grad_flow.csv: run, step, layer, mean_abs_grad, epoch);
    ``runs`` maps a run's name to its ``{"model", "lr"}`` (its provenance's ``config.depth.run``)."""
    rows = []
    for run, df in grad_flow.groupby("run", sort=False):
        per_layer = df[df.epoch == df.epoch.min()].groupby("layer", sort=False).mean_abs_grad.mean()
        first, last = float(per_layer.iloc[0]), float(per_layer.iloc[-1])
        rows.append({"run": run, "model": runs[run]["model"], "lr": runs[run]["lr"], "first_layer_grad": first,
                     "last_layer_grad": last, "ratio": first / last})
    return pd.DataFrame(rows, columns=COLUMNS)
