"""Global magnitude pruning of conv and linear weights, with masks that stay fixed while the model re-trains.

:func:`prune_global` removes the ``round(sparsity × N)`` weights of smallest magnitude among all ``N`` weights
of every ``Conv2d`` and ``Linear`` layer taken together (``torch.nn.utils.prune.global_unstructured`` with
L1 magnitude), so layers lose different shares of their weights: Han et al.'s magnitude criterion with one
global threshold instead of a threshold per layer. :func:`prune_layers` sets the share per layer instead, as Han et
al. prune AlexNet and VGG-16 (Deep Compression, Tables 3 and 4). Biases and BatchNorm parameters are not pruned.

The masks are torch's: each pruned module holds ``weight_orig`` (a parameter) and ``weight_mask`` (a buffer),
and a forward pre-hook sets ``weight = weight_orig * weight_mask`` before every call. Re-training updates
``weight_orig`` (the gradient of a masked entry is zero), the mask never changes, so a pruned weight stays zero
whatever the optimizer does; :func:`make_permanent` then folds the masks into plain ``weight`` tensors.

Size on disk (:func:`sparse_size_bytes`) counts a bitmap format: every pruned layer stores its surviving weights
as 32-bit floats plus one bit per weight position, every other tensor of the state dict densely.
"""
from __future__ import annotations

import math
from typing import Mapping

import pandas as pd
import torch
from torch import nn
from torch.nn.utils import prune

PRUNABLE = (nn.Conv2d, nn.Linear)


def prunable_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every conv and linear layer, in module order: the layers whose weights are pruned."""
    return [(name, module) for name, module in model.named_modules() if isinstance(module, PRUNABLE)]


def check_sparsity(sparsity: float) -> float:
    sparsity = float(sparsity)
    if not 0 <= sparsity < 1:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    return sparsity


def pruned_count(total: int, sparsity: float) -> int:
    """How many of ``total`` weights a ``sparsity`` removes: torch's ``round(sparsity × total)``."""
    return round(check_sparsity(sparsity) * total)


def prune_global(model: nn.Module, sparsity: float) -> nn.Module:
    """Mask the ``pruned_count(N, sparsity)`` smallest-magnitude weights of all conv and linear layers together.

    The model is changed in place (and returned): its pruned layers carry ``weight_orig``/``weight_mask`` and
    a forward pre-hook, so the masks survive any later training.
    """
    layers = prunable_layers(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no Conv2d or Linear layer to prune")
    total = sum(module.weight.numel() for _, module in layers)
    prune.global_unstructured([(module, "weight") for _, module in layers], pruning_method=prune.L1Unstructured,
                              amount=pruned_count(total, sparsity))
    return model


def prune_layers(model: nn.Module, keep: Mapping[str, float]) -> nn.Module:
    """Mask each conv and linear layer's smallest-magnitude weights so that ``keep[name]`` of them remain (Han et al.
    prune layer by layer, at rates set per layer); in place, with masks as :func:`prune_global` leaves them. ``keep``
    must name every such layer, and nothing else, with a fraction in (0, 1]."""
    layers = dict(prunable_layers(model))
    missing, unknown = sorted(set(layers) - set(keep)), sorted(set(keep) - set(layers))
    if missing or unknown:
        raise ValueError(f"{type(model).__name__}: the kept fractions must name exactly its conv and linear layers; "
                         f"missing {missing}, not layers {unknown}")
    for name, module in layers.items():
        fraction = keep[name]
        if not 0 < fraction <= 1:
            raise ValueError(f"layer {name}: kept fraction {fraction!r} outside (0, 1]")
        weight = module.weight.detach()
        mask = torch.zeros_like(weight)
        largest = weight.abs().flatten().topk(round(fraction * weight.numel()), sorted=False).indices
        mask.view(-1)[largest] = 1
        prune.custom_from_mask(module, "weight", mask)
    return model


def masks(model: nn.Module) -> dict[str, torch.Tensor]:
    """Copies of the current pruning masks, by layer name."""
    return {name: module.weight_mask.detach().clone() for name, module in prunable_layers(model)
            if prune.is_pruned(module) and hasattr(module, "weight_mask")}


def make_permanent(model: nn.Module) -> nn.Module:
    """Fold every mask into its layer's ``weight`` (a plain parameter again, zeros where pruned); in place."""
    for _, module in prunable_layers(model):
        if hasattr(module, "weight_mask"):
            prune.remove(module, "weight")
            with torch.no_grad():
                module.weight.add_(0.0)   # -0.0 (a pruned negative weight times the mask) is +0.0, as a file stores it
    return model


def sparsity_table(model: nn.Module) -> pd.DataFrame:
    """Per prunable layer: ``layer, params, zeros, sparsity``, and a last row ``all`` over them together."""
    rows = []
    for name, module in prunable_layers(model):
        weight = module.weight.detach()
        rows.append({"layer": name, "params": weight.numel(), "zeros": int((weight == 0).sum())})
    table = pd.DataFrame(rows, columns=["layer", "params", "zeros"])
    table.loc[len(table)] = {"layer": "all", "params": int(table.params.sum()), "zeros": int(table.zeros.sum())}
    return table.assign(sparsity=table.zeros / table.params)


def nonzero_params(model: nn.Module) -> int:
    """Parameters with a nonzero value (effective weights of pruned layers, not their ``weight_orig``)."""
    pruned = {id(module.weight_orig) for _, module in prunable_layers(model) if hasattr(module, "weight_orig")}
    count = sum(int((p != 0).sum()) for p in model.parameters() if id(p) not in pruned)
    return count + sum(int((module.weight != 0).sum()) for _, module in prunable_layers(model)
                       if hasattr(module, "weight_orig"))


def dense_size_bytes(state: dict[str, torch.Tensor]) -> int:
    """Bytes of every tensor of a state dict stored densely."""
    return sum(t.numel() * t.element_size() for t in state.values())


def sparse_size_bytes(model: nn.Module) -> int:
    """Bytes of ``model`` with its conv and linear weights in the bitmap format: 4 bytes per nonzero weight plus
    ``ceil(N / 8)`` bytes of mask per layer of N weights; every other tensor dense. A model whose masks were
    made permanent gives the same size as one still carrying them."""
    model_state = {k: v for k, v in model.state_dict().items() if not k.endswith(("weight_orig", "weight_mask"))}
    for name, module in prunable_layers(model):
        model_state.pop(f"{name}.weight" if name else "weight", None)
    size = dense_size_bytes(model_state)
    for _, module in prunable_layers(model):
        weight = module.weight.detach()
        size += int((weight != 0).sum()) * weight.element_size() + math.ceil(weight.numel() / 8)
    return size


def check_masks_kept(model: nn.Module, before: dict[str, torch.Tensor]) -> None:
    """Raise unless every layer still has the mask it had in ``before`` and its pruned weights are zero."""
    after = masks(model)
    changed = [name for name in before if name not in after or not torch.equal(before[name], after[name])]
    nonzero = [name for name, module in prunable_layers(model) if name in before
               and bool((module.weight.detach()[before[name] == 0] != 0).any())]
    if changed or nonzero:
        raise RuntimeError(f"pruning masks changed in {changed} or pruned weights became nonzero in {nonzero}")
