"""The compress study's plan, from its config section: its pruning and distillation runs and what each reads."""
from __future__ import annotations

from typing import Mapping

PRUNE_RUNS = "results/compress/prune/{arch}-{device}-s{seed}-sp{sparsity}"
DEEP = "results/compress/deep"   # Deep Compression's stage files, one rule each
QAT_RUNS = "results/compress/qat/runs/{arch}-{device}-s{seed}-{variant}"
DISTILL_RUNS = "results/compress/distill/{arch}-{mode}-{device}-s{seed}"
MODES = ("labels", "kd")  # a distillation student trained on labels only, and on soft targets
# The classifier's quantization settings; the SSD's add its calibration size and operator types.
QUANTIZE_KEYS = ("format", "activation_type", "weight_type", "per_channel", "reduce_range", "calibrate_method",
                 "dynamic_weight_type")


def sparsity_label(sparsity: float) -> str:
    """0.5 -> '0.5': a sparsity as it appears in run names."""
    return f"{sparsity:g}"


def sparsities(c: Mapping) -> list[float]:
    """Every pruned model trained: the pruning curve's, and the one Deep Compression compresses."""
    return sorted({*c["prune"]["sparsities"], c["deep"]["sparsity"]})


def prune_runs(c: Mapping) -> list[str]:
    return [prune_run(c, s) for s in sparsities(c)]


def prune_run(c: Mapping, sparsity: float) -> str:
    return PRUNE_RUNS.format(arch=c["arch"], device=c["device"], seed=c["seed"], sparsity=sparsity_label(sparsity))


def distill_runs(c: Mapping) -> list[str]:
    return [DISTILL_RUNS.format(arch=c["distill"]["student"], mode=mode, device=c["device"], seed=c["seed"])
            for mode in MODES]


def soft_targets(c: Mapping, mode: str) -> dict | None:
    """What a student learns from besides the labels: the teacher's soft targets, in mode kd only."""
    d = c["distill"]
    return {k: d[k] for k in ("teacher", "temperature", "alpha")} if mode == "kd" else None


def quantize(c: Mapping, *extra: str) -> dict:
    """The quantization settings a job reads: the shared ones and ``extra`` keys."""
    q = c["quantize"]
    return {k: q[k] for k in (*QUANTIZE_KEYS, *extra)}


def qat_variants(c: Mapping) -> dict[str, dict]:
    """Quantization-aware training's runs, by name: INT8 weights and activations (beside static PTQ), and weight-only
    at ``qat.weight_only_bits`` (beside weight-only PTQ at the same width)."""
    bits = c["qat"]["weight_only_bits"]
    return {"int8": {"weight_bits": 8, "activation_bits": 8}, f"int{bits}w": {"weight_bits": bits, "activation_bits": None}}


def qat_runs(c: Mapping) -> list[str]:
    return [QAT_RUNS.format(arch=c["arch"], device=c["device"], seed=c["seed"], variant=v) for v in qat_variants(c)]
