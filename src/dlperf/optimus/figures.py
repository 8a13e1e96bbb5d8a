"""Figures of the Optimus study; each takes data and returns a figure (house style)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from dlperf.optimus.loss_model import loss_curve
from dlperf.optimus.speed_model import optimal_workers
from dlperf.report.style import figure


def loss_fits(points: dict[str, tuple[np.ndarray, np.ndarray]], fits: pd.DataFrame):
    """Binned training loss (dots) and the fitted l(k) (line) for every run, one panel per run."""
    names = sorted(points)
    ncols = min(3, len(names))
    nrows = math.ceil(len(names) / ncols)
    fig, axes = figure("double", aspect=0.28 * nrows, nrows=nrows, ncols=ncols, squeeze=False, sharex=True)
    for ax, name in zip(axes.flat, names):
        k, loss = points[name]
        arch, device, seed = name.rsplit("-", 2)
        row = fits[(fits.arch == arch) & (fits.device == device) & (fits.seed == int(seed[1:]))].iloc[0]
        ax.plot(k, loss, ".", color="0.5", markersize=1.5, label="measured")
        if row.status == "ok":
            grid = np.linspace(k.min(), k.max(), 200)
            ax.plot(grid, loss_curve(grid, row.beta0, row.beta1, row.beta2), color="C0", label="fit")
            ax.set_title(f"{name}  $R^2$={row.r2:.3f}")
        else:
            ax.set_title(f"{name}  fit {row.status}")
        ax.set_ylabel("training loss")
    for ax in axes[-1]:
        ax.set_xlabel("epoch")
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    axes.flat[0].legend()
    return fig


def prediction(curve: pd.DataFrame, arch: str, device: str):
    """Predicted (from the β regression) and measured training-loss curve of the target model on one device."""
    fig, ax = figure("single", aspect=0.7)
    ax.plot(curve.epoch, curve.measured_loss, ".", color="0.5", markersize=2, label="measured")
    ax.plot(curve.epoch, curve.predicted_loss, color="C3", label="predicted")
    ax.set(xlabel="epoch", ylabel="training loss", title=f"{arch} on {device}")
    ax.legend()
    return fig


def time_to_accuracy(tta: pd.DataFrame, theta: dict, global_batch: int, target_accuracy: float):
    """Hours to the target accuracy against workers, one curve per server count, the optimum marked."""
    fig, ax = figure("single", aspect=0.7)
    reached = np.isfinite(tta.hours_to_target).any()
    for i, (ps, df) in enumerate(tta.groupby("ps")):
        color = f"C{i}"
        ax.plot(df.workers, df.hours_to_target, "-o", color=color, markersize=2, label=f"p = {ps}")
        if reached:
            best = df.loc[df.hours_to_target.idxmin()]
            ax.plot(best.workers, best.hours_to_target, "*", color=color, markersize=9)
        w_star = optimal_workers(ps, theta, global_batch)
        if math.isfinite(w_star):
            ax.axvline(w_star, color=color, lw=0.6, ls=":")
    ax.set(xlabel="workers w", ylabel=f"hours to {100 * target_accuracy:.0f}% accuracy",
           xlim=(tta.workers.min() - 0.5, tta.workers.max() + 0.5))
    if not reached:  # the predicted curve never reaches the target: no time to plot, only w*
        ax.set_yticks([])
        ax.text(0.5, 0.5, "target not reached within the prediction horizon", transform=ax.transAxes,
                ha="center", va="center")
    ax.legend(title="parameter servers")
    return fig
