"""Trained quantization for Deep Compression (Han et al., ICLR 2016, §3): a pruned network's conv and linear
weights share a k-means codebook per layer, and the codebook is fine-tuned while the pruning masks stay fixed.

:func:`share_layers` clusters each layer's *nonzero* weights (a pruned weight is not stored, so it takes no part)
with :func:`dlperf.compress.sharing.kmeans_1d` (linear initialisation, Han et al.'s best), with ``k = 2**bits`` and
``bits`` chosen by layer kind (the paper: 8 for conv, 5 for fully connected). Each layer then computes its weight
as ``where(kept, codebook[index], 0)`` before every forward call, from

* ``weight_codebook``: the ``k`` centroids, an ``nn.Parameter``;
* ``weight_index``: each weight's centroid (int32 buffer, 0 where pruned);
* ``weight_kept``: the pruning mask (bool buffer).

Autograd through the gather gives each centroid the sum of the gradients of the weights that share it, which is
Han et al.'s centroid update (§3.2, Fig. 3), and a pruned weight stays exactly +0.0 whatever the optimizer does.
The index never changes: weights keep their cluster, only the cluster values move.

:func:`train_only_centroids` freezes every other parameter. The training engine builds its optimizer from the
parameters with ``requires_grad`` (``dlperf.train.engine.train``), so it then updates the codebooks alone. Two
things still change during such a run: BatchNorm's running statistics (the engine trains in train mode, and they
follow the activations of the shared weights; the codec stores them, so a decoded model is the trained one), and
the optimizer's weight decay, if any, pulls the centroids toward zero. Set ``weight_decay: 0`` to avoid that.

:func:`bake` turns a shared model back into a plain one (ordinary ``weight`` parameters holding the codebook
values), for ``accuracy()``, ONNX export and ``load_state_dict`` into the bare architecture; :func:`layer_codes`
reads each layer's ``(codebook, index, kept)`` for the codec (:mod:`dlperf.compress.codec`).
"""
from __future__ import annotations

import numbers
from typing import Mapping, NamedTuple

import torch
from torch import nn

from dlperf.compress.pruning import prunable_layers
from dlperf.compress.sharing import kmeans_1d

KINDS = {nn.Conv2d: "conv", nn.Linear: "linear"}
MAX_BITS = 16   # the codec stores an index in at most 16 bits; k = 2**bits >= 2 needs bits >= 1


class LayerCode(NamedTuple):
    """One shared layer: ``codebook`` (k values), ``index`` (int32, the weight's shape) and ``kept`` (bool mask)."""
    codebook: torch.Tensor
    index: torch.Tensor
    kept: torch.Tensor


def layer_kind(module: nn.Module) -> str:
    """``conv`` or ``linear``: the key of a layer's bit widths."""
    return next(kind for cls, kind in KINDS.items() if isinstance(module, cls))


def check_bits(bits_by_kind: Mapping[str, int], what: str = "bits") -> dict[str, int]:
    """``bits_by_kind`` as a dict, or a ValueError unless it gives every layer kind a width in 1..16 (index bits:
    ``k = 2**bits`` centroids, so k >= 2; gap bits: a gap field of at least one bit)."""
    missing = set(KINDS.values()) - set(bits_by_kind)
    unknown = set(bits_by_kind) - set(KINDS.values())
    if missing or unknown:
        raise ValueError(f"{what} needs exactly the layer kinds {sorted(KINDS.values())}, "
                         f"got {sorted(bits_by_kind)}")
    for kind, bits in bits_by_kind.items():
        if isinstance(bits, bool) or not isinstance(bits, numbers.Integral) or not 1 <= bits <= MAX_BITS:
            raise ValueError(f"{what} for {kind} must be an integer in 1..{MAX_BITS} (the widest field the codec "
                             f"stores), got {bits!r}")
    return {kind: int(bits) for kind, bits in bits_by_kind.items()}


def shared_weight(module: nn.Module) -> torch.Tensor:
    """The weight a shared layer computes: its centroid where kept, +0.0 where pruned."""
    return torch.where(module.weight_kept, module.weight_codebook[module.weight_index],
                       torch.zeros((), dtype=module.weight_codebook.dtype, device=module.weight_codebook.device))


class SharedWeight:
    """A shared layer's forward hooks, as torch's pruning recomputes ``weight`` from ``weight_orig``: before each
    call (``before``) the weight is computed from the codebook, so gradients reach the codebook; after it, the
    attribute keeps a detached copy, so the module can be deep-copied (a tensor inside an autograd graph cannot be)
    while the graph keeps what the backward pass needs."""

    def __init__(self, before: bool):
        self.before = before

    def __call__(self, module: nn.Module, *_) -> None:
        module.weight = shared_weight(module) if self.before else module.weight.detach()


def is_shared(module: nn.Module) -> bool:
    return any(isinstance(hook, SharedWeight) for hook in module._forward_pre_hooks.values())


def share_layers(model: nn.Module, bits_by_kind: Mapping[str, int], iterations: int) -> nn.Module:
    """Replace every conv and linear weight of ``model`` by a trainable codebook of ``2**bits_by_kind[kind]``
    centroids over its nonzero weights (k-means, ``iterations`` Lloyd steps at most); in place, returns ``model``.

    The model must be plain: pruned weights zero, masks made permanent (``pruning.make_permanent``).
    """
    bits_by_kind = check_bits(bits_by_kind)
    for name, module in prunable_layers(model):
        if hasattr(module, "weight_orig") or is_shared(module):
            raise ValueError(f"layer {name} still carries a mask or a codebook: share a plain model "
                             "(make the pruning masks permanent first)")
        weight = module.weight.detach()
        kept = weight != 0
        k = 2 ** bits_by_kind[layer_kind(module)]
        if kept.any():
            centroids, members = kmeans_1d(weight[kept].cpu(), k, iterations)
        else:   # a layer pruned away entirely has nothing to cluster; its codebook is never read
            centroids, members = torch.zeros(k, dtype=torch.float64), torch.zeros(0, dtype=torch.int64)
        index = torch.zeros_like(weight, dtype=torch.int32)
        index[kept] = members.to(device=weight.device, dtype=torch.int32)
        del module._parameters["weight"]
        module.register_parameter("weight_codebook", nn.Parameter(centroids.to(weight.device, weight.dtype)))
        module.register_buffer("weight_index", index)
        module.register_buffer("weight_kept", kept)
        with torch.no_grad():
            module.weight = shared_weight(module)
        module.register_forward_pre_hook(SharedWeight(before=True))
        module.register_forward_hook(SharedWeight(before=False))
    return model


def shared_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of the layers carrying a codebook, in module order."""
    return [(name, module) for name, module in prunable_layers(model) if is_shared(module)]


def train_only_centroids(model: nn.Module) -> list[nn.Parameter]:
    """Freeze every parameter of ``model`` but the codebooks (see the module docstring for what still changes);
    returns the codebooks, the parameters left to train."""
    codebooks = [module.weight_codebook for _, module in shared_layers(model)]
    if not codebooks:
        raise ValueError(f"{type(model).__name__} has no shared layer: call share_layers first")
    trainable = {id(p) for p in codebooks}
    for param in model.parameters():
        param.requires_grad_(id(param) in trainable)
    return codebooks


def layer_codes(model: nn.Module) -> dict[str, LayerCode]:
    """Each shared layer's ``(codebook, index, kept)``, detached, by layer name."""
    return {name: LayerCode(module.weight_codebook.detach(), module.weight_index, module.weight_kept)
            for name, module in shared_layers(model)}


def plain_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict ``bake(model)`` would have, without changing ``model``: each shared layer's ``weight`` in
    place of its codebook, index and mask (the order is that of the state dict, a weight where its codebook was)."""
    shared = dict(shared_layers(model))
    state = {}
    for key, tensor in model.state_dict().items():
        prefix, _, leaf = key.rpartition(".")
        if prefix not in shared or leaf not in ("weight_codebook", "weight_index", "weight_kept"):
            state[key] = tensor
        elif leaf == "weight_codebook":
            with torch.no_grad():
                state[f"{prefix}.weight" if prefix else "weight"] = shared_weight(shared[prefix])
    return state


def bake(model: nn.Module) -> nn.Module:
    """Turn every shared layer back into a plain one whose ``weight`` parameter holds the values the codebook
    gives; in place, returns ``model``. The weights take at most ``k`` distinct nonzero values per layer; they
    require grad, and parameters that :func:`train_only_centroids` froze stay frozen."""
    for _, module in shared_layers(model):
        with torch.no_grad():
            weight = shared_weight(module)
        for hooks in (module._forward_pre_hooks, module._forward_hooks):
            for key in [key for key, hook in hooks.items() if isinstance(hook, SharedWeight)]:
                del hooks[key]
        del module._parameters["weight_codebook"], module._buffers["weight_index"], module._buffers["weight_kept"]
        del module.weight
        module.weight = nn.Parameter(weight)
    return model
