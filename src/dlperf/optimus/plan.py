"""The Optimus study's plan, from its config section: its runs, their files, and the settings each job reads.
Pure functions of the config; the rules (rules/optimus.smk) call them."""
from __future__ import annotations

from typing import Mapping

from dlperf.models.archs import IMAGENET_STYLE

RUNS = "results/optimus/runs/{arch}-{device}-s{seed}"


def runs(o: Mapping, archs=None) -> list[str]:
    """Run directories of ``archs`` (default: the regression archs and the target) on every label and seed."""
    archs = archs or [*o["archs"], o["target_arch"]]
    return [RUNS.format(arch=a, device=d, seed=s) for a in archs for d in o["devices"] for s in o["seeds"]]


def files(o: Mapping, name: str, archs=None) -> list[str]:
    return [f"{run}/{name}" for run in runs(o, archs)]


def target_files(o: Mapping, name: str) -> list[str]:
    """``name`` of the target model's runs: the first seed on every device label."""
    return [f"{RUNS.format(arch=o['target_arch'], device=d, seed=o['seeds'][0])}/{name}" for d in o["devices"]]


def n_train(o: Mapping, cifar10: Mapping) -> int:
    """Training images per epoch of a run: the configured subset, else the whole training set."""
    return o["n_train"] or (cifar10["synthetic"]["n_train"] if cifar10["source"] == "synthetic" else 50000)


def imagenet_width(o: Mapping, *archs: str) -> int | None:
    """The base width the CIFAR models ``archs`` read: only ImageNet-style resnet18/resnet50 have one."""
    return o["imagenet_width"] if set(archs) & set(IMAGENET_STYLE) else None
