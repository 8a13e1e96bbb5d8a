"""The transfer study's summaries of finished runs: seconds per epoch and each mode's winner."""
from __future__ import annotations

import pandas as pd


def epoch_seconds(epochs: pd.DataFrame, skip_first: bool = True) -> float:
    """Median training seconds per epoch; the first epoch pays one-time costs (allocator, kernel selection)."""
    timed = epochs.iloc[1:] if skip_first and len(epochs) > 1 else epochs
    return float(timed.epoch_seconds.median())


def mark_winners(summary: pd.DataFrame, by: str = "mode", metric: str = "best_val_acc") -> pd.Series:
    """True on the row of each ``by`` group with the highest ``metric`` (the first on ties)."""
    best = summary.groupby(by, sort=False)[metric].idxmax()
    return summary.index.isin(best.to_numpy())
