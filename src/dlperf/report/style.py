"""One figure style for every study: two-column paper sizes, vector PDF, PNG twin.

Widths follow a two-column paper: 3.3 in for a single column, 6.9 in across both. Fonts are sized to match
9-10 pt body text when the PDF is included at 100 %. Each figure is saved as PDF (for LaTeX) and PNG (for the
HTML report and README), both atomically, each with the figure's fidelity (scale, device, commit) in its
metadata (:mod:`dlperf.report.fidelity`).
"""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from dlperf.atomic import atomic_write  # noqa: E402
from dlperf.report.fidelity import Fidelity  # noqa: E402

WIDTHS = {"single": 3.3, "double": 6.9}

STYLE = {
    "font.family": "serif",
    "font.serif": ["Latin Modern Roman", "CMU Serif", "DejaVu Serif"],
    "mathtext.fontset": "cm",
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "legend.fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "axes.linewidth": 0.6,
    "lines.linewidth": 1.2,
    "lines.markersize": 3,
    "axes.grid": True,
    "grid.linewidth": 0.4,
    "grid.alpha": 0.4,
    "legend.frameon": False,
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.02,
    "pdf.fonttype": 42,
    "figure.dpi": 150,
}


def figure(width: str = "single", aspect: float = 0.75, nrows: int = 1, ncols: int = 1, **kwargs):
    """A figure ``WIDTHS[width]`` inches wide and ``aspect`` times as high, in the house style."""
    plt.rcParams.update(STYLE)
    w = WIDTHS[width]
    return plt.subplots(nrows, ncols, figsize=(w, w * aspect), **kwargs)


def save_figure(fig, pdf_path: str | os.PathLike, fidelity: Fidelity) -> tuple[Path, Path]:
    """Write ``fig`` as vector PDF at ``pdf_path`` and a PNG twin beside it, each carrying ``fidelity`` in its
    metadata and no timestamp (the same figure gives the same bytes); close the figure."""
    pdf_path = Path(pdf_path)
    png_path = pdf_path.with_suffix(".png")
    with atomic_write(pdf_path, "wb") as fh:
        fig.savefig(fh, format="pdf", metadata=fidelity.pdf_metadata(pdf_path.stem))
    with atomic_write(png_path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=200, metadata=fidelity.png_metadata(pdf_path.stem))
    plt.close(fig)
    return pdf_path, png_path
