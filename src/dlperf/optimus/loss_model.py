"""Optimus training-loss model: l(k) = 1 / (β0·k + β1) + β2 with β ≥ 0.

k is training progress in *epochs* (fractional: epoch + batch / batches_per_epoch), the convention of
the official Optimus code (pengyanghua/optimus, ``scheduler/estimator.py``), which keeps β0 of order one
instead of scaling it with the number of steps per epoch. β2 is the loss the curve approaches, 1/β1 + β2
the loss at k = 0, and β0 how fast the excess loss shrinks.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit

MIN_POINTS = 3
"""Three parameters need points at three different k; the official code also waits for three epochs."""

OPTIMUS_SEGMENTS = 3
OPTIMUS_SEGMENT_FACTOR = 4.0


@dataclass(frozen=True)
class LossFit:
    """Result of :func:`fit_loss_curve`; betas are NaN unless ``status == "ok"``.

    ``rmse`` and ``r2`` are unweighted and measured on the points used for the fit, so fits with
    different weightings can be compared on the same footing.
    """

    beta0: float
    beta1: float
    beta2: float
    rmse: float
    r2: float
    n_points: int
    status: Literal["ok", "failed", "too_few_points"]
    message: str

    @property
    def beta(self) -> tuple[float, float, float]:
        return (self.beta0, self.beta1, self.beta2)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def loss_curve(k, beta0: float, beta1: float, beta2: float):
    """l(k) = 1 / (β0·k + β1) + β2, elementwise over ``k`` (epochs)."""
    k = np.asarray(k, dtype=float)
    with np.errstate(divide="ignore"):
        return 1.0 / (beta0 * k + beta1) + beta2


def optimus_sigma(n: int) -> np.ndarray:
    """Per-point sigma of the official Optimus fit for ``n`` points in progress order.

    The points are cut into 3 consecutive segments of ``ceil(n / 3)`` points; segment s gets
    sigma = 4^-s, i.e. a least-squares weight 16^s. The late part of the curve decides where training
    ends, and early points (warm-up, learning-rate drops still ahead) fit the hyperbola worst, so the
    fit trusts recent progress more. Mirrors ``Estimator._loss_curve_fitting`` line for line.
    """
    segment_length = math.ceil(n / OPTIMUS_SEGMENTS)
    segment = np.arange(n) // segment_length
    return OPTIMUS_SEGMENT_FACTOR ** -segment.astype(float)


def _initial_guess(k: np.ndarray, loss: np.ndarray) -> tuple[float, float, float]:
    """Start β from the data so one routine converges at loss ~0.1 and at loss ~4.6 alike.

    β2 starts just below the smallest loss (by 10 % of the observed drop); with β2 fixed the model is
    linear, 1 / (l - β2) = β0·k + β1, and a straight-line fit gives β0 and β1. Clamping the excess
    loss away from zero keeps the guess finite for flat or zero-loss curves.
    """
    drop = float(loss.max() - loss.min())
    floor = max(0.1 * drop, 1e-6)
    beta2 = max(float(loss.min()) - floor, 0.0)
    slope, intercept = np.polyfit(k, 1.0 / np.maximum(loss - beta2, floor), 1)
    return (max(float(slope), 1e-6), max(float(intercept), 1e-6), beta2)


def _failed(status: str, n_points: int, message: str) -> LossFit:
    nan = float("nan")
    return LossFit(nan, nan, nan, nan, nan, n_points, status, message)


def fit_loss_curve(k, loss, *, weighting: Literal["optimus", "none"] = "optimus") -> LossFit:
    """Fit l(k) = 1/(β0·k + β1) + β2 with β ≥ 0 by bounded least squares (``curve_fit``).

    ``weighting="optimus"`` reproduces the official code's sigma (see :func:`optimus_sigma`);
    ``"none"`` weighs all points equally. Points are sorted by k first, so segments are in progress
    order whatever order the caller logged them in.

    Bad data never raises, because one diverged run must not stop a workflow that fits many:
    non-finite points are dropped and counted in ``message``; usable points at fewer than three
    distinct k give status ``"too_few_points"``, a non-converging or non-finite fit status
    ``"failed"``, both with NaN betas.
    """
    if weighting not in ("optimus", "none"):
        raise ValueError(f"weighting must be 'optimus' or 'none', got {weighting!r}")
    k = np.ravel(np.asarray(k, dtype=float))
    loss = np.ravel(np.asarray(loss, dtype=float))
    if k.shape != loss.shape:
        raise ValueError(f"k and loss differ in length: {k.size} vs {loss.size}")

    finite = np.isfinite(k) & np.isfinite(loss)
    n_dropped = int(np.count_nonzero(~finite))
    notes = [f"dropped {n_dropped} non-finite point(s)"] if n_dropped else []
    order = np.argsort(k[finite], kind="stable")
    k, loss = k[finite][order], loss[finite][order]
    n = int(k.size)
    n_distinct = int(np.unique(k).size)
    if n_distinct < MIN_POINTS:
        return _failed("too_few_points", n, "; ".join(
            notes + [f"{n} usable point(s) at {n_distinct} distinct k, need {MIN_POINTS} distinct k"]
        ))

    sigma = optimus_sigma(n) if weighting == "optimus" else np.ones(n)
    try:
        with warnings.catch_warnings():
            # An unidentifiable covariance (e.g. a flat curve) does not invalidate the point estimate.
            warnings.simplefilter("ignore", OptimizeWarning)
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                beta, _ = curve_fit(
                    loss_curve, k, loss,
                    p0=_initial_guess(k, loss), sigma=sigma, absolute_sigma=False,
                    bounds=([0.0, 0.0, 0.0], [np.inf, np.inf, np.inf]),
                    method="trf", max_nfev=10_000,
                )
    except (RuntimeError, ValueError, np.linalg.LinAlgError) as error:
        return _failed("failed", n, "; ".join(notes + [f"curve_fit: {error}"]))

    fitted = loss_curve(k, *beta)
    if not (np.all(np.isfinite(beta)) and np.all(np.isfinite(fitted))):
        return _failed("failed", n, "; ".join(notes + ["fit produced non-finite values"]))
    residual = loss - fitted
    rmse = float(np.sqrt(np.mean(residual**2)))
    total = float(np.sum((loss - loss.mean()) ** 2))
    r2 = 1.0 - float(np.sum(residual**2)) / total if total > 0 else float("nan")
    return LossFit(
        float(beta[0]), float(beta[1]), float(beta[2]), rmse, r2, n, "ok",
        "; ".join(notes + [f"fitted {n} points, weighting={weighting}"]),
    )


def epochs_to_loss(beta: Sequence[float], target_loss: float) -> float:
    """Epochs k at which l(k) first reaches ``target_loss``: k = (1/(target - β2) - β1) / β0.

    The curve only ever decreases towards β2, so a target at or below β2 is never reached (inf), and a
    target at or above the starting loss l(0) = 1/β1 + β2 is already met at k = 0. NaN betas (a failed
    fit) give NaN.
    """
    beta0, beta1, beta2 = (float(b) for b in beta)
    if any(math.isnan(b) for b in (beta0, beta1, beta2, target_loss)):
        return float("nan")
    if target_loss <= beta2:
        return math.inf
    needed = 1.0 / (target_loss - beta2) - beta1
    if needed <= 0.0:
        return 0.0
    return needed / beta0 if beta0 > 0.0 else math.inf
