"""Tables are CSV first; booktabs LaTeX and GitHub Markdown are renderings of the same frame."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from dlperf.atomic import atomic_write

_LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                   "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                   # signs of tolerances and bounds, which LaTeX's input encoding lacks
                   "≥": r"$\geq$", "≤": r"$\leq$", "−": r"$-$", "±": r"$\pm$"}


def latex_escape(text) -> str:
    return "".join(_LATEX_SPECIALS.get(ch, ch) for ch in str(text))


def _cell(value, fmt: str | None) -> str:
    if isinstance(value, float) and fmt:
        return format(value, fmt)
    return str(value)


def to_booktabs(df: pd.DataFrame, *, formats: dict[str, str] | None = None, bold_rows: set[int] | None = None,
                align: str | None = None) -> str:
    """A booktabs ``tabular`` of ``df``: text columns left-aligned, numeric ones right-aligned.

    ``formats`` maps a column to a format spec (``".3f"``); rows whose position is in ``bold_rows`` are set bold.
    """
    formats, bold_rows = formats or {}, bold_rows or set()
    align = align or "".join("r" if pd.api.types.is_numeric_dtype(df[c]) else "l" for c in df.columns)
    lines = [rf"\begin{{tabular}}{{{align}}}", r"\toprule",
             " & ".join(latex_escape(c) for c in df.columns) + r" \\", r"\midrule"]
    for i, row in enumerate(df.itertuples(index=False)):
        cells = [latex_escape(_cell(v, formats.get(c))) for c, v in zip(df.columns, row)]
        if i in bold_rows:
            cells = [rf"\textbf{{{c}}}" for c in cells]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def to_markdown(df: pd.DataFrame, *, formats: dict[str, str] | None = None) -> str:
    formats = formats or {}
    rows = [[_cell(v, formats.get(c)) for c, v in zip(df.columns, row)] for row in df.itertuples(index=False)]
    return tabulate(rows, headers=list(df.columns), tablefmt="github", disable_numparse=True) + "\n"


def write_table(df: pd.DataFrame, tex_path: str | os.PathLike, *, formats: dict[str, str] | None = None,
                bold_rows: set[int] | None = None) -> tuple[Path, Path]:
    """Write ``df`` as ``tex_path`` (booktabs) and its ``.md`` twin, atomically."""
    tex_path = Path(tex_path)
    md_path = tex_path.with_suffix(".md")
    with atomic_write(tex_path) as fh:
        fh.write(to_booktabs(df, formats=formats, bold_rows=bold_rows))
    with atomic_write(md_path) as fh:
        fh.write(to_markdown(df, formats=formats))
    return tex_path, md_path
