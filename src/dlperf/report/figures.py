"""Figures shared by several studies; each function takes data and returns a matplotlib figure."""
from __future__ import annotations

import pandas as pd

from dlperf.report.style import figure


def learning_curves(runs: dict[str, pd.DataFrame], splits=("train", "test")):
    """Loss (left) and accuracy (right) per epoch for every run; train solid, evaluation splits dashed."""
    fig, (ax_loss, ax_acc) = figure("double", aspect=0.32, ncols=2)
    styles = ["-", "--", ":", "-."]
    for i, (name, df) in enumerate(sorted(runs.items())):
        color = f"C{i % 10}"
        for split, ls in zip(splits, styles):
            if f"{split}_loss" not in df:
                continue
            label = f"{name} {split}"
            ax_loss.plot(df.epoch, df[f"{split}_loss"], ls, color=color, label=label)
            ax_acc.plot(df.epoch, 100 * df[f"{split}_acc"], ls, color=color, label=label)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)")
    ax_acc.legend(loc="lower right", ncols=1 + len(runs) // 6)
    return fig


def percent_of_peak(measured: pd.DataFrame, device_name: str):
    """Achieved percent of peak against batch size, one line per model."""
    fig, ax = figure("single", aspect=0.7)
    for i, (model, df) in enumerate(measured.groupby("model")):
        ax.plot(df.batch, 100 * df.ppp, "-o", color=f"C{i}", label=model)
    ax.set_xscale("log", base=2)
    ax.set(xlabel="batch size", ylabel="percent of peak (%)", title=device_name)
    ax.legend()
    return fig
