"""Weight sharing as in Deep Compression (Han et al., ICLR 2016, §3): a k-means codebook per layer.

The weights of each conv and linear layer are clustered into ``k`` groups by one-dimensional k-means (Lloyd's
algorithm from linearly spaced centroids, the initialisation Han et al. found best: it keeps the few large
weights, which matter most, as their own centroids). Every weight is then replaced by its centroid, so the layer
stores a ``ceil(log2 k)``-bit index per weight and a codebook of ``k`` ``b``-bit values. With ``n`` weights of
``b`` bits before, the compression ratio is Deep Compression's equation (1),

    R = n·b / (n·log2(k) + k·b),

with ``log2 k`` rounded up to whole bits when ``k`` is not a power of two; over several layers R is the ratio
of the summed bits. Here every weight of a dense model is shared and the centroids stay where k-means left them
(the post-training variant, whose accuracy is that of the plain codebook). Deep Compression proper is in
:mod:`dlperf.compress.deep` (codebooks over a pruned model's nonzero weights, centroids re-trained with the masks
fixed, built on :func:`kmeans_1d`) and :mod:`dlperf.compress.codec` (the sparse, shared and Huffman-coded file).
"""
from __future__ import annotations

import copy
import math

import pandas as pd
import torch
from torch import nn

from dlperf.compress.pruning import dense_size_bytes, prunable_layers

FLOAT_BITS = 32


def index_bits(k: int) -> int:
    """Bits of one codebook index: ``ceil(log2 k)``."""
    if k < 2:
        raise ValueError(f"a codebook needs at least 2 centroids, got k={k}")
    return math.ceil(math.log2(k))


def shared_bits(n: int, k: int, bits: int = FLOAT_BITS) -> int:
    """Bits of ``n`` weights stored as indices into a ``k``-entry codebook of ``bits``-bit values."""
    return n * index_bits(k) + k * bits


def compression_ratio(n: int, k: int, bits: int = FLOAT_BITS) -> float:
    """Deep Compression's R = n·b / (n·log2 k + k·b) for one layer of ``n`` weights."""
    return n * bits / shared_bits(n, k, bits)


def kmeans_1d(values: torch.Tensor, k: int, iterations: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means on a flat tensor from ``k`` linearly spaced centroids; returns ``(centroids, index)``.

    In one dimension the nearest centroid is found by bucketing against the midpoints of the sorted centroids.
    A cluster that loses all its members keeps its centroid. Stops early once no assignment changes.
    """
    index_bits(k)
    values = values.detach().flatten().double()
    centroids = torch.linspace(values.min().item(), values.max().item(), k, dtype=torch.float64)
    index = None
    for _ in range(iterations):
        new_index = torch.bucketize(values, (centroids[1:] + centroids[:-1]) / 2)
        if index is not None and torch.equal(new_index, index):
            break
        index = new_index
        sums = torch.zeros(k, dtype=torch.float64).index_add_(0, index, values)
        counts = torch.bincount(index, minlength=k)
        centroids = torch.where(counts > 0, sums / counts.clamp(min=1), centroids)
        centroids = centroids.sort().values
    index = torch.bucketize(values, (centroids[1:] + centroids[:-1]) / 2)
    return centroids, index


def share_weights(model: nn.Module, k: int, iterations: int) -> tuple[nn.Module, pd.DataFrame]:
    """A copy of ``model`` whose conv and linear weights are replaced by their layer's k-means centroids, and a
    table per layer (``layer, params, clusters, bits_before, bits_after, ratio``) with a last row ``all``."""
    shared = copy.deepcopy(model)
    rows = []
    for name, module in prunable_layers(shared):
        weight = module.weight
        centroids, index = kmeans_1d(weight, k, iterations)
        with torch.no_grad():
            weight.copy_(centroids[index].to(weight.dtype).view_as(weight))
        n, bits = weight.numel(), weight.element_size() * 8
        rows.append({"layer": name, "params": n, "clusters": k, "bits_before": n * bits,
                     "bits_after": shared_bits(n, k, bits)})
    table = pd.DataFrame(rows)
    table.loc[len(table)] = {"layer": "all", "params": int(table.params.sum()), "clusters": k,
                             "bits_before": int(table.bits_before.sum()), "bits_after": int(table.bits_after.sum())}
    return shared, table.assign(ratio=table.bits_before / table.bits_after)


def shared_size_bytes(model: nn.Module, k: int) -> int:
    """Bytes of ``model`` with every conv and linear weight stored as codebook indices (rounded up to whole
    bytes per layer), all other tensors dense."""
    state = model.state_dict()
    size = 0
    for name, module in prunable_layers(model):
        state.pop(f"{name}.weight")
        size += math.ceil(shared_bits(module.weight.numel(), k, module.weight.element_size() * 8) / 8)
    return size + dense_size_bytes(state)
