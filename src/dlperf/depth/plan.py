"""The depth study's plan, from its config section: one run per (model, lr) of depth.runs."""
from __future__ import annotations

from typing import Mapping

from dlperf.workflow import lr_label

RUNS = "results/depth/runs/{model}-lr{lr}-s{seed}"


def runs(d: Mapping) -> list[str]:
    return [RUNS.format(model=r["model"], lr=lr_label(r["lr"]), seed=d["seed"]) for r in d["runs"]]


def run_lr(d: Mapping, model: str, label: str) -> float:
    """The configured learning rate of a run (the exact float, not its label)."""
    for r in d["runs"]:
        if r["model"] == model and lr_label(r["lr"]) == label:
            return r["lr"]
    raise ValueError(f"no depth run {model} at lr {label} in config depth.runs")
