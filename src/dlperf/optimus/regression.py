"""Regression of the loss-model coefficients β0, β1, β2 on network depth and device label.

The homework fits one loss curve per (ResNet depth, GPU type) and asks for β as a function of both,
so that an unseen depth (ResNet-50) gets a predicted curve. The model shares one depth slope across
devices and gives every device its own intercept: depth changes what is learnt, the device at most
shifts it (with progress in epochs the loss curve should hardly depend on the GPU at all, which the
fitted intercepts let a reader check).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

TARGETS = ("beta0", "beta1", "beta2")
FORMS = ("linear_depth_device_intercept", "log")

Form = Literal["linear_depth_device_intercept", "log"]


def _device_term(device: str) -> str:
    return f"device[{device}]"


@dataclass(frozen=True)
class BetaRegression:
    """β = a·depth + b_device (``form="linear_depth_device_intercept"``) or
    log β = a·depth + b_device (``form="log"``).

    ``coefficients`` maps ``"depth"`` to a and ``"device[<label>]"`` to b_device. ``r2`` and ``rmse``
    are measured on β itself for both forms, so the two forms can be compared directly.
    """

    target: str
    form: Form
    coefficients: dict[str, float]
    r2: float
    rmse: float
    n: int

    @property
    def devices(self) -> tuple[str, ...]:
        prefix, suffix = "device[", "]"
        return tuple(term[len(prefix):-len(suffix)] for term in self.coefficients if term.startswith(prefix))

    def predict(self, depth, device: str):
        """Predicted β for ``depth`` (scalar or array) on ``device``.

        The linear form is clipped at 0 because β < 0 is outside the loss model; the log form is
        positive by construction. A device the regression never saw has no intercept: ValueError.
        """
        term = _device_term(device)
        if term not in self.coefficients:
            raise ValueError(
                f"device {device!r} was not in the {self.target} regression data; known: {list(self.devices)}"
            )
        linear = self.coefficients["depth"] * np.asarray(depth, dtype=float) + self.coefficients[term]
        predicted = np.exp(linear) if self.form == "log" else np.maximum(linear, 0.0)
        return float(predicted) if predicted.ndim == 0 else predicted


def fit_beta_regression(
    df: pd.DataFrame,
    *,
    target: str,
    form: Form = "linear_depth_device_intercept",
) -> BetaRegression:
    """Least-squares fit of one β on depth with one intercept per device.

    ``df`` holds one successful loss fit per row with columns ``depth``, ``device`` and ``target``
    (failed fits are the caller's to exclude). With a single device the model is the plain line
    β = a·depth + b.

    The default is the linear form: it is the regression the homework asks for, it is exact on data
    that is linear in depth, and it accepts β = 0, which bounded loss fits do return (β2 of a curve
    that keeps falling, β1 at its bound). Its predictions are clipped at 0; the depth to predict
    (ResNet-50) lies inside the fitted range (ResNet-18…56), where clipping rarely matters.
    ``form="log"`` fits log β instead, for β that spread over orders of magnitude with depth; it
    needs every β > 0 and always predicts a positive β.
    """
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    missing = {"depth", "device", target} - set(df.columns)
    if missing:
        raise ValueError(f"regression data lacks column(s) {sorted(missing)}")
    if df.empty:
        raise ValueError(f"no loss fits to regress {target} on")

    depth = df["depth"].to_numpy(dtype=float)
    beta = df[target].to_numpy(dtype=float)
    device = df["device"].astype(str).to_numpy()
    if not (np.all(np.isfinite(depth)) and np.all(np.isfinite(beta))):
        raise ValueError(f"depth and {target} must be finite; exclude failed loss fits first")
    if form == "log" and np.any(beta <= 0):
        n_bad = int(np.count_nonzero(beta <= 0))
        raise ValueError(f"form='log' needs {target} > 0; got {n_bad} value(s) <= 0")

    labels = sorted(set(device))
    design = np.column_stack([depth] + [(device == label).astype(float) for label in labels])
    if np.linalg.matrix_rank(design) < design.shape[1]:
        raise ValueError(
            f"cannot separate the depth slope from the device intercepts for {target}: "
            "at least one device needs two different depths"
        )
    response = np.log(beta) if form == "log" else beta
    solution, *_ = np.linalg.lstsq(design, response, rcond=None)
    coefficients = {"depth": float(solution[0])}
    coefficients.update({_device_term(label): float(b) for label, b in zip(labels, solution[1:])})

    linear = design @ solution
    fitted = np.exp(linear) if form == "log" else linear
    residual = beta - fitted
    total = float(np.sum((beta - beta.mean()) ** 2))
    r2 = 1.0 - float(np.sum(residual**2)) / total if total > 0 else float("nan")
    rmse = float(np.sqrt(np.mean(residual**2)))
    return BetaRegression(target, form, coefficients, r2, rmse, int(beta.size))


def regression_table(fits: dict[str, BetaRegression]) -> pd.DataFrame:
    """One row per coefficient (columns target, term, coefficient, r2, rmse, n) for ``beta_regression.csv``.

    ``target`` is the dict key, written ``log(<key>)`` for the log form so that a reader of the CSV
    knows the coefficients predict log β.
    """
    rows = [
        {
            "target": f"log({name})" if fit.form == "log" else name,
            "term": term,
            "coefficient": value,
            "r2": fit.r2,
            "rmse": fit.rmse,
            "n": fit.n,
        }
        for name, fit in fits.items()
        for term, value in fit.coefficients.items()
    ]
    return pd.DataFrame(rows, columns=["target", "term", "coefficient", "r2", "rmse", "n"])
