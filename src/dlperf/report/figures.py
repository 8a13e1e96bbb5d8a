"""Figures shared by several studies; each function takes data and returns a matplotlib figure."""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.lines import Line2D

from dlperf.report.style import figure

LOG_LOSS_RANGE = 1e3  # a loss axis spanning more than this factor is drawn on a log scale: one diverged run
                      # would otherwise flatten every other curve onto the axis


def run_colors(n: int) -> list:
    """``n`` distinct colours: the house cycle for up to 10 runs, tab20 beyond (the full config has 18)."""
    return [f"C{i}" for i in range(n)] if n <= 10 else [colormaps["tab20"](i % 20) for i in range(n)]


def learning_curves(runs: dict[str, pd.DataFrame], splits=("train", "test")):
    """Loss (left) and accuracy (right) per epoch for every run; train solid, evaluation splits dashed.

    The legend sits below the panels, one entry per run (its colour) and one per split (its line style), so it
    covers no curve however many runs there are.
    """
    fig, (ax_loss, ax_acc) = figure("double", aspect=0.32, ncols=2)
    styles = dict(zip(splits, ["-", "--", ":", "-."]))
    handles, losses = [], []
    for (name, df), color in zip(sorted(runs.items()), run_colors(len(runs))):
        marker = "o" if len(df) == 1 else None  # a one-epoch run is a point, which a bare line does not draw
        for split, ls in styles.items():
            if f"{split}_loss" in df:
                ax_loss.plot(df.epoch, df[f"{split}_loss"], ls, color=color, marker=marker)
                ax_acc.plot(df.epoch, 100 * df[f"{split}_acc"], ls, color=color, marker=marker)
                losses.append(df[f"{split}_loss"].to_numpy(float))
        handles.append(Line2D([], [], color=color, label=name))
    handles += [Line2D([], [], color="0.3", linestyle=ls, label=split) for split, ls in styles.items()]
    positive = np.concatenate(losses) if losses else np.array([])
    positive = positive[np.isfinite(positive) & (positive > 0)]
    if positive.size and positive.max() > LOG_LOSS_RANGE * positive.min():
        ax_loss.set_yscale("log")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)")
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncols=min(len(handles), 5))
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


def grad_flow(frames: dict[str, pd.DataFrame], epochs):
    """Mean |grad| of every weight layer (input to output), averaged over each chosen epoch's records, one panel
    per run; a log scale shows the orders of magnitude that vanish through a deep plain network."""
    names = sorted(frames)
    ncols = min(4, len(names))
    nrows = -(-len(names) // ncols)
    fig, axes = figure("double", aspect=0.33 * nrows, nrows=nrows, ncols=ncols, squeeze=False, sharey=True,
                       gridspec_kw={"hspace": 0.45})  # room for a row's titles under the row above
    for ax, name in zip(axes.flat, names):
        df = frames[name]
        for i, epoch in enumerate(e for e in epochs if e in set(df.epoch)):
            per_layer = df[df.epoch == epoch].groupby("layer", sort=False).mean_abs_grad.mean()
            ax.plot(range(len(per_layer)), per_layer.to_numpy(), "-", color=f"C{i}", label=f"epoch {epoch}")
        ax.set_yscale("log")
        ax.set_title(name, fontsize=7)
    fig.supxlabel("weight layer (input → output)", fontsize=8)
    for row in axes:
        row[0].set_ylabel("mean |grad|")
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    axes.flat[0].legend()
    return fig


def class_distribution(classes: pd.DataFrame):
    """Images per class and split (the columns n_<split> of a classes.csv), stacked bars."""
    fig, ax = figure("double", aspect=0.28)
    bottom = None
    for i, column in enumerate(c for c in classes.columns if c.startswith("n_")):
        values = classes[column].to_numpy()
        ax.bar(range(len(classes)), values, bottom=bottom, color=f"C{i}", label=column.removeprefix("n_"))
        bottom = values if bottom is None else bottom + values
    step = max(1, len(classes) // 25)
    ax.set_xticks(range(0, len(classes), step), classes["class"].iloc[::step], rotation=90, fontsize=6)
    ax.set(xlabel="class", ylabel="images")
    ax.legend()
    return fig


def sample_grid(samples: dict[str, list]):
    """One row per class of its sample images (uint8 HWC arrays), the class name on the left."""
    rows, cols = len(samples), max(len(images) for images in samples.values())
    fig, axes = figure("single", aspect=rows / cols, nrows=rows, ncols=cols, squeeze=False)
    for row, (name, images) in zip(axes, samples.items()):
        for ax, image in zip(row, images):
            ax.imshow(image)
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
        row[0].set_ylabel(name, fontsize=7)
    return fig
