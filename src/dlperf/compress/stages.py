"""Deep Compression's stages as the workflow runs them: each stage's file written, read back into a fresh model, and
its accuracy measured on the decoded model (so the number reported is the file's), beside the in-memory model's.

A stage's record (``results/compress/deep/<stage>.json``, with the job's provenance) holds ``size_bytes`` (the
file, by ``os.stat``), ``dense_bytes`` (the dense FP32 checkpoint, ``dense.pt``: the state dict, as ``torch.save``
writes it),
``ratio`` (their quotient: the R measured on disk) and ``top1`` (the decoded model's). The accuracy of the decoded
model must equal the in-memory model's exactly: a codec that changed one weight fails the job.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Mapping

import pandas as pd
import torch
from torch import nn

from dlperf.atomic import atomic_write
from dlperf.compress import codec
from dlperf.compress.deep import plain_state, share_layers, shared_layers, shared_weight
from dlperf.compress.codec import STAGES
from dlperf.compress.pruning import sparsity_table


def write_dense(model: nn.Module, path: str | os.PathLike) -> int:
    """The dense FP32 checkpoint every ratio divides: the state dict alone (under ``model``, the training engine's
    checkpoint layout, without its optimizer state), with ``torch.save``; its bytes."""
    with atomic_write(path, "wb") as fh:
        torch.save({"model": model.state_dict()}, fh)
    return os.stat(path).st_size


def record_stage(stage: str, model: nn.Module, fresh: Callable[[], nn.Module], *, path: str | os.PathLike,
                 dense_path: str | os.PathLike, gap_bits: Mapping[str, int],
                 accuracy: Callable[[nn.Module], float]) -> dict:
    """Write ``model`` (plain for ``pruned``, shared for the others) as ``stage`` to ``path``, decode it into
    ``fresh()``, and measure it; the stage's record. Raises if the decoded model scores otherwise."""
    codec.write(path, stage, model, gap_bits=gap_bits)
    decoded = fresh()
    decoded.load_state_dict(codec.read(path, decoded))
    top1 = accuracy(decoded)
    reference = model if stage == "pruned" else _baked_copy(model, fresh)
    in_memory = accuracy(reference)
    if top1 != in_memory:
        raise RuntimeError(f"{path}: the decoded model scores {top1}, the model written {in_memory}")
    return {"stage": stage, "size_bytes": os.stat(path).st_size, "dense_bytes": os.stat(dense_path).st_size,
            "ratio": codec.measured_ratio(dense_path, path), "top1": top1, "gap_bits": dict(gap_bits)}


def _baked_copy(shared: nn.Module, fresh: Callable[[], nn.Module]) -> nn.Module:
    plain = fresh()
    plain.load_state_dict(plain_state(shared))
    return plain


def stage_sparsity(configured: float | None, pruned: nn.Module) -> float:
    """A stage's sparsity: the one its pruned model was pruned to (a CIFAR network's ``compress.deep.sparsity``), or,
    for layer-wise pruning (None), the share of conv and linear weights that are zero."""
    return configured if configured is not None else float(sparsity_table(pruned).sparsity.iloc[-1])


def shared_model(pruned: nn.Module, codes: str | os.PathLike | None, *, bits: Mapping[str, int],
                 iterations: int) -> nn.Module:
    """The ``pruned`` model (plain: masks made permanent) with its layers shared
    (:func:`dlperf.compress.deep.share_layers`), in place; and, given the ``codes`` a shared stage saved, its
    re-trained codebooks, indices, masks and BatchNorm statistics. With ``codes`` no k-means runs: the saved state
    replaces every codebook and index, so only their shapes are built."""
    model = share_layers(pruned, bits, 0 if codes is not None else iterations)
    if codes is not None:
        model.load_state_dict(torch.load(codes, map_location="cpu", weights_only=True))
        with torch.no_grad():
            for _, module in shared_layers(model):
                module.weight = shared_weight(module)   # from the loaded codebook, not the unclustered one
    return model.eval()


def save_codes(model: nn.Module, path: str | os.PathLike) -> Path:
    """A shared model's state dict (codebooks, indices, masks and everything else), for the next stage."""
    with atomic_write(path, "wb") as fh:
        torch.save(model.state_dict(), fh)
    return Path(path)


STAGE_COLUMNS = ("stage", "sparsity", "conv_bits", "linear_bits", "size_bytes", "ratio", "formula_ratio", "top1",
                 "connection_ratio")


def stages_frame(records: list[dict], formula: pd.DataFrame) -> pd.DataFrame:
    """``stages.csv``: the dense checkpoint, then each stage (``records`` in any order): its size on disk, the ratio
    measured (dense bytes over the file's), Deep Compression's computed ratio over the same layers (``formula``,
    :func:`dlperf.compress.codec.formula_table`), the decoded model's top-1, and the conv and linear weights over
    those kept (``connection_ratio``, 1 / (1 - sparsity): what Han et al.'s pruning ratios count)."""
    by_stage = {r["stage"]: r for r in records}
    first = by_stage["pruned"]
    rows = [{"stage": "dense", "sparsity": 0.0, "conv_bits": 32, "linear_bits": 32, "size_bytes": first["dense_bytes"],
             "ratio": 1.0, "formula_ratio": 1.0, "top1": first["dense_top1"], "connection_ratio": 1.0}]
    for stage in STAGES:
        r = by_stage[stage]
        bits = r["bits"] or {"conv": 32, "linear": 32}
        rows.append({"stage": stage, "sparsity": r["sparsity"], "conv_bits": bits["conv"],
                     "linear_bits": bits["linear"], "size_bytes": r["size_bytes"], "ratio": r["ratio"],
                     "formula_ratio": codec.formula_ratio(formula, stage), "top1": r["top1"],
                     "connection_ratio": 1 / (1 - r["sparsity"])})
    return pd.DataFrame(rows, columns=list(STAGE_COLUMNS))


def networks_frame(stages: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """``networks.csv``: each network's :func:`stages_frame` (``stages``: by network name, in order), under a
    ``network`` column."""
    return pd.concat([frame.assign(network=name) for name, frame in stages.items()], ignore_index=True)[
        ["network", *STAGE_COLUMNS]]


def stages_table(stages: pd.DataFrame) -> pd.DataFrame:
    """The stages as the report shows them; with a ``network`` column (:func:`networks_frame`), each network's."""
    network = {"network": stages.network} if "network" in stages else {}
    return pd.DataFrame({
        **network,
        "stage": stages.stage,
        "sparsity (%)": (100 * stages.sparsity).map(lambda v: f"{v:.0f}"),
        "bits (conv/fc)": [f"{c}/{f}" for c, f in zip(stages.conv_bits, stages.linear_bits)],
        "size (kB)": (stages.size_bytes / 1e3).map(lambda v: f"{v:.1f}"),
        "R on disk": stages.ratio.map(lambda v: f"{v:.1f}"),
        "R computed": stages.formula_ratio.map(lambda v: f"{v:.1f}"),
        "top-1 (%)": (100 * stages.top1).map(lambda v: f"{v:.1f}"),
    })
