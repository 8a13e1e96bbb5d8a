"""The SSD study's AP tables and figures, between the library and the rules; its datasets are prepared in
:mod:`dlperf.detection.datasets`."""
from __future__ import annotations

import os

import pandas as pd

from dlperf.atomic import write_csv
from dlperf.detection.voc_eval import VOCResult
from dlperf.report.style import figure

MEAN_ROW = "mAP"  # the last row of every ap*.csv: the mean over the classes above it


def ap_frame(result: VOCResult) -> pd.DataFrame:
    """``class, ap`` per class, then the ``mAP`` row."""
    rows = [{"class": name, "ap": ap} for name, ap in result.per_class.items()]
    return pd.DataFrame(rows + [{"class": MEAN_ROW, "ap": result.mean_ap}])


def write_ap_csv(result: VOCResult, path: str | os.PathLike) -> pd.DataFrame:
    frame = ap_frame(result)
    write_csv(path, frame)
    return frame


def read_ap_csv(path: str | os.PathLike) -> pd.DataFrame:
    frame = pd.read_csv(path, keep_default_na=False, na_values=[""])
    if list(frame.columns[:2]) != ["class", "ap"] or frame["class"].iloc[-1] != MEAN_ROW:
        raise ValueError(f"{path}: expected columns class, ap and a final {MEAN_ROW} row")
    return frame


def comparison_frame(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """``class, ap_before, ap_after, change`` from two ap*.csv frames over the same classes."""
    merged = before[["class", "ap"]].merge(after[["class", "ap"]], on="class", suffixes=("_before", "_after"),
                                           validate="one_to_one", sort=False)
    if len(merged) != len(before) or len(merged) != len(after):
        raise ValueError(f"the two AP tables name different classes: {list(before['class'])} vs {list(after['class'])}")
    return merged.assign(change=merged.ap_after - merged.ap_before)


def ap_bars(frame: pd.DataFrame, title: str = ""):
    """Per-class AP as horizontal bars (classes top to bottom in table order), the mAP as a dashed line."""
    per_class = frame[frame["class"] != MEAN_ROW]
    mean_ap = float(frame.loc[frame["class"] == MEAN_ROW, "ap"].iloc[0])
    fig, ax = figure("single", aspect=0.25 + 0.045 * len(per_class))
    ax.barh(range(len(per_class)), per_class.ap, color="C0")
    ax.axvline(mean_ap, color="C3", ls="--", label=f"mAP {mean_ap:.3f}")
    ax.set_yticks(range(len(per_class)), per_class["class"])
    ax.invert_yaxis()
    ax.set(xlabel="AP (VOC07 11-point)", xlim=(0, 1), title=title)
    ax.legend(loc="lower right")
    return fig


def comparison_bars(comparison: pd.DataFrame):
    """AP per class before and after fine-tuning, side by side."""
    fig, ax = figure("single", aspect=0.6)
    x = range(len(comparison))
    ax.bar([i - 0.2 for i in x], comparison.ap_before, width=0.4, label="before (heads untrained)", color="C7")
    ax.bar([i + 0.2 for i in x], comparison.ap_after, width=0.4, label="after fine-tuning", color="C0")
    ax.set_xticks(list(x), comparison["class"])
    ax.set(ylabel="AP (VOC07 11-point)", ylim=(0, 1))
    ax.legend(loc="upper left")
    return fig
