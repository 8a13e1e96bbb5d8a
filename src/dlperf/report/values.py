"""The numbers the report quotes, as LaTeX macros: the formatting every study's macros share, and the writing
and gathering of them.

Each study's macro function (``optimus_values`` in :mod:`dlperf.optimus.values`, ``flops_values`` in
:mod:`dlperf.flops.values`, …) maps its results (frames, dicts) to {macro name: value}; its rule's script calls
:func:`write_study_values`, which writes them as TeX to ``results/<study>/values.json``, and rule report_values
gathers every reported study's file into ``results/report/values.tex``. So a rerun on other data or another config
changes the text with the tables. Names follow ``<Study><Quantity><Qualifier…>`` (see
:func:`dlperf.report.latex.macro_name`): ``OptimusWStarPTwo``, ``FlopsGmacsVggSixteen``; values shared by all
studies (:func:`provenance_values`) have no study prefix. Yes/no facts (``OptimusTargetPredictedReached``) let the
LaTeX choose its wording with ``\\ifdefstring``.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Callable, Iterable, Mapping

import numpy as np
import pandas as pd

from dlperf.atomic import write_json
from dlperf.report.latex import Latex, macro_name
from dlperf.report.tables import latex_escape
from dlperf.workflow import script_logging

INFINITY = Latex(r"$\infty$")
MODEL_LABELS = {"vgg16": "VGG-16", "vgg19": "VGG-19", "googlenet": "GoogLeNet", "resnet50": "ResNet-50",
                "mobilenet_v2": "MobileNetV2", "inception_v3": "Inception-v3"}


# ---- formatting ---------------------------------------------------------------------------------------------
def significant(x: float, digits: int = 3) -> str:
    """``x`` to ``digits`` significant digits in positional notation (never 1e-05): 0.043621 -> 0.0436."""
    x = float(x)
    if math.isnan(x):
        return "n/a"
    if math.isinf(x):
        return INFINITY if x > 0 else Latex(r"$-\infty$")
    if x == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(x))))
    return f"{x:.{decimals}f}"


def plain(x: float) -> str:
    """A configured value as written, without padding or exponent: 0.05, 0.9, 10."""
    return np.format_float_positional(float(x), trim="-")


def fixed(x: float, decimals: int) -> str:
    x = float(x)
    return f"{x:.{decimals}f}" if math.isfinite(x) else significant(x)


def percent(fraction: float, decimals: int = 1) -> str:
    """A fraction as a percentage number (the prose adds the % sign): 0.8146 -> 81.5."""
    return fixed(100 * float(fraction), decimals)


def count(n: int) -> str:
    """An integer; five digits and more grouped by thin spaces (138 357 544), as in typeset tables."""
    n = int(n)
    return Latex(f"{n:,}".replace(",", r"\,")) if abs(n) >= 10_000 else str(n)


def scientific(x: float, digits: int = 2) -> Latex:
    """``x`` as LaTeX scientific notation: 1.19e-07 -> $1.2\\times10^{-7}$; zero as 0."""
    x = float(x)
    if x == 0 or not math.isfinite(x):
        return Latex(significant(x))
    exponent = math.floor(math.log10(abs(x)))
    return Latex(rf"${x / 10**exponent:.{digits - 1}f}\times10^{{{exponent}}}$")



def words(items: Iterable) -> str:
    """An English list: a; a and b; a, b and c."""
    items = [str(i) for i in items]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def change(before: str, after: str, up: str, down: str, same: str) -> str:
    """The words for how a value went from ``before`` to ``after``, compared as printed: two values that read the
    same are the same to the reader."""
    return up if float(after) > float(before) else down if float(after) < float(before) else same


def model_label(name: str) -> str:
    """How a model is written in prose: vgg16 -> VGG-16, resnet20 -> ResNet-20."""
    if name in MODEL_LABELS:
        return MODEL_LABELS[name]
    if name.startswith("resnet") and name[6:].isdigit():
        return f"ResNet-{name[6:]}"
    return name


def unique(values: Iterable) -> list:
    """Distinct values in order of first appearance, ``None`` dropped."""
    return list(dict.fromkeys(v for v in values if v is not None))


def merge(*groups: Mapping[str, object]) -> dict[str, object]:
    """One macro table from several; a name defined twice is an error, not a silent overwrite."""
    merged: dict[str, object] = {}
    for group in groups:
        clash = merged.keys() & group.keys()
        if clash:
            raise ValueError(f"macro(s) defined twice: {sorted(clash)}")
        merged.update(group)
    return merged


# ---- shared by every study ----------------------------------------------------------------------------------
PROVENANCE_PACKAGES = ("python", "torch", "torchvision", "snakemake", "dlperf")


def provenance_record(record: Mapping) -> dict:
    """The part of one provenance.json that :func:`provenance_values` reads: git commit and dirtiness, the
    versions of :data:`PROVENANCE_PACKAGES`, the GPU or CPU, and the end time. A compact record gives the same
    values as the whole one, and a compact record's own record is itself."""
    git = record.get("git") or {}
    packages = record.get("packages") or {}
    return {"git": {"commit": git.get("commit"), "dirty": git.get("dirty")},
            "packages": {name: packages.get(name) for name in PROVENANCE_PACKAGES},
            "gpu": record.get("gpu"), "cpu": record.get("cpu"), "end": record.get("end")}


def provenance_values(records: Iterable[Mapping], scale: str) -> dict[str, object]:
    """Scale, commit(s), package versions, compute devices and date of the results, from their provenance.json
    records, whole or as :func:`provenance_record` makes them (it keeps every key read here).

    Results made at several commits list every commit rather than pretend to one.
    """
    records = list(records)
    commits = unique((r.get("git") or {}).get("commit") for r in records)
    packages = [r.get("packages") or {} for r in records]
    ends = [r["end"] for r in records if r.get("end")]
    devices = unique(r.get("gpu") or r.get("cpu") for r in records)
    return {
        "ReportScale": scale,
        "GitCommit": ", ".join(c[:12] for c in commits) if commits else "unknown",
        "GitDirty": yes_no(any((r.get("git") or {}).get("dirty") for r in records)),
        **{macro_name(name, "version"): ", ".join(unique(p.get(name) for p in packages)) or "unknown"
           for name in PROVENANCE_PACKAGES},
        "ComputeDevices": words(devices) if devices else "unknown",
        "ResultsDate": max(ends)[:10] if ends else "unknown",
    }


# ---- a study's values.json, and the report's gathering of them ------------------------------------------------
NOT_ARGUMENTS = ("provenance", "includes", "code")  # a values rule's inputs that are not its function's arguments


def load_result(path) -> object:
    """A CSV as a frame, a JSON file as a dict, a directory (a dataset's) as its provenance.json."""
    path = Path(path)
    if path.is_dir():
        path = path / "provenance.json"
    return pd.read_csv(path) if path.suffix == ".csv" else json.loads(path.read_text())


def macro_text(name: str, value) -> str:
    """A macro's value as the TeX its ``\\newcommand`` holds: a :class:`Latex` value verbatim, anything else
    escaped (as :func:`dlperf.report.latex.newcommand` writes it)."""
    if not re.fullmatch(r"[A-Za-z]+", name):
        raise ValueError(f"macro name {name!r} is not a control word (ASCII letters only); build it with macro_name")
    return str(value) if isinstance(value, Latex) else latex_escape(str(value))


def study_values(study: str, macros: Mapping[str, object], provenance: Iterable[Mapping]) -> dict:
    """What ``results/<study>/values.json`` holds: the study's key, its macros as TeX text, and the compact
    provenance of the results they come from."""
    return {"study": study, "macros": {name: macro_text(name, value) for name, value in macros.items()},
            "provenance": [provenance_record(r) for r in provenance]}


def write_study_values(snakemake, study: str, function: Callable[..., Mapping[str, object]]) -> dict:
    """The body of a study's values script: ``function`` called with the rule's named inputs, loaded (one file
    with :func:`load_result`, a list of files as {path: loaded}), and every param as keyword arguments; its macros
    and the rule's ``provenance`` records written to ``output.values`` (see :func:`study_values`).

    The inputs ``provenance`` (provenance.json files or dataset directories), ``includes`` (files the section
    includes, dependencies only) and ``code`` (the rule's source files, rules/common.smk's render_code) are not
    arguments.
    """
    with script_logging(snakemake.log[0] if len(snakemake.log) else None):
        inputs = {name: load_result(files) if isinstance(files, str) else {str(f): load_result(f) for f in files}
                  for name, files in snakemake.input.items() if name not in NOT_ARGUMENTS}
        provenance = snakemake.input.get("provenance", [])
        records = [load_result(f) for f in ([provenance] if isinstance(provenance, str) else provenance)]
        values = study_values(study, function(**inputs, **dict(snakemake.params.items())), records)
        write_json(snakemake.output.values, values)
        print(f"{len(values['macros'])} macros of study {study} in {snakemake.output.values}")
        return values


def gather_values(studies: Iterable[Mapping], scale: str) -> dict[str, Latex]:
    """The report's macros as TeX, from every study's values.json content (:func:`study_values`) in the order
    given, after the :func:`provenance_values` of all their records; a macro defined twice is an error that names
    the studies defining it."""
    studies = [{"study": "shared", "macros": {}, "provenance": []}] + list(studies)
    shared = provenance_values((r for s in studies for r in s["provenance"]), scale)
    studies[0]["macros"] = {name: macro_text(name, value) for name, value in shared.items()}
    try:
        macros = merge(*(s["macros"] for s in studies))
    except ValueError as error:
        owners: dict[str, list[str]] = {}
        for s in studies:
            for name in s["macros"]:
                owners.setdefault(name, []).append(s["study"])
        clashes = "; ".join(f"{name} by {' and '.join(by)}" for name, by in owners.items() if len(by) > 1)
        raise ValueError(f"{error}: {clashes}") from None
    return {name: Latex(text) for name, text in macros.items()}
