"""From training loss to test accuracy, and epochs until a target accuracy.

The loss model predicts training loss, the homework's target is a test accuracy (92 %). The bridge
is a map fitted on (loss, accuracy) pairs measured at the end of each epoch of the training runs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from dlperf.optimus.loss_model import loss_curve


def pool_adjacent_violators(y: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted least-squares non-decreasing fit of ``y`` (already in x order) by pool-adjacent-violators.

    Returns the blocks as (mean, total weight, index of the first element): each new value starts a
    block, and while the last block's mean falls below the one before it the two are pooled into their
    weighted mean.
    """
    means: list[float] = []
    weights: list[float] = []
    starts: list[int] = []
    for index, (value, w) in enumerate(zip(y, weight)):
        means.append(float(value))
        weights.append(float(w))
        starts.append(index)
        while len(means) > 1 and means[-2] > means[-1]:
            total = weights[-2] + weights[-1]
            means[-2] = (means[-2] * weights[-2] + means[-1] * weights[-1]) / total
            weights[-2] = total
            del means[-1], weights[-1], starts[-1]
    return np.array(means), np.array(weights), np.array(starts)


@dataclass(frozen=True)
class MonotoneMap:
    """Piecewise-linear, non-increasing map from training loss to test accuracy.

    ``loss`` are the knots (strictly increasing, one per isotonic block, at the block's mean loss),
    ``accuracy`` the block means. Between knots the map interpolates linearly; outside it holds the
    end values, because extrapolating beyond measured accuracies would invent them.
    """

    loss: np.ndarray
    accuracy: np.ndarray

    def __call__(self, loss):
        mapped = np.interp(np.asarray(loss, dtype=float), self.loss, self.accuracy)
        return float(mapped) if mapped.ndim == 0 else mapped


def fit_loss_to_accuracy(loss, acc) -> MonotoneMap:
    """Isotonic (non-increasing) regression of test accuracy on training loss.

    Isotonic because the only thing known about the relation is its direction: lower training loss
    should not mean lower test accuracy. A parametric curve (logistic, linear) would impose a shape the
    pooled runs need not follow, while the isotonic fit is the least-squares fit among all monotone
    maps and still guarantees that a falling predicted loss curve never maps to a falling accuracy, so
    "first epoch above the target" is well defined. Pairs with equal loss are merged first (their
    mean accuracy, weighted by count); non-finite pairs are ignored.
    """
    loss = np.ravel(np.asarray(loss, dtype=float))
    acc = np.ravel(np.asarray(acc, dtype=float))
    if loss.shape != acc.shape:
        raise ValueError(f"loss and acc differ in length: {loss.size} vs {acc.size}")
    finite = np.isfinite(loss) & np.isfinite(acc)
    if not finite.any():
        raise ValueError("no finite (loss, accuracy) pair to fit")
    unique_loss, group, count = np.unique(loss[finite], return_inverse=True, return_counts=True)
    mean_acc = np.bincount(group, weights=acc[finite]) / count

    # Non-increasing in loss = non-decreasing fit of the negated accuracy.
    neg_means, block_weight, starts = pool_adjacent_violators(-mean_acc, count.astype(float))
    block = np.repeat(np.arange(starts.size), np.diff(np.append(starts, unique_loss.size)))
    knot_loss = np.bincount(block, weights=unique_loss * count) / block_weight
    return MonotoneMap(loss=knot_loss, accuracy=-neg_means)


def predicted_epochs_to_accuracy(
    beta: Sequence[float],
    acc_map: MonotoneMap,
    target_acc: float,
    max_epochs: float,
    resolution: float = 0.01,
) -> float:
    """First k on the grid 0, resolution, 2·resolution, … ≤ ``max_epochs`` where the accuracy mapped from
    the predicted loss l(k) reaches ``target_acc``; inf if it never does within ``max_epochs``.

    A grid instead of a root finder, because the isotonic map is flat on stretches and may jump;
    the answer is exact up to ``resolution`` epochs.
    """
    if resolution <= 0:
        raise ValueError(f"resolution must be > 0, got {resolution}")
    if any(math.isnan(float(b)) for b in beta):
        return float("nan")
    steps = int(math.floor(max_epochs / resolution + 1e-9))
    epochs = np.arange(steps + 1) * resolution
    reached = np.flatnonzero(acc_map(loss_curve(epochs, *beta)) >= target_acc)
    return float(epochs[reached[0]]) if reached.size else math.inf


def measured_epochs_to_accuracy(epochs, acc, target: float) -> float | None:
    """First logged epoch whose test accuracy reaches ``target``; None if no epoch does."""
    epochs = np.ravel(np.asarray(epochs, dtype=float))
    acc = np.ravel(np.asarray(acc, dtype=float))
    if epochs.shape != acc.shape:
        raise ValueError(f"epochs and acc differ in length: {epochs.size} vs {acc.size}")
    order = np.argsort(epochs, kind="stable")
    reached = np.flatnonzero(acc[order] >= target)
    return float(epochs[order][reached[0]]) if reached.size else None
