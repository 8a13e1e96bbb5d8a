"""PALEO's measured side: the wall-clock time of a whole forward pass and of each layer in it, on CPU or CUDA,
through :mod:`dlperf.timing`'s loop (a synchronised ``perf_counter`` around each sample, warm-up thrown away)."""
from __future__ import annotations

import time
from statistics import median

import torch
from torch import nn

from dlperf.flops.flops import CallNames, is_leaf, module_names
from dlperf.timing import TimingResult, synchronize, time_callable


def time_forward(model: nn.Module, x: torch.Tensor, **kw) -> TimingResult:
    """Time the whole forward pass ``model(x)`` on ``x``'s device, without autograd bookkeeping."""
    with torch.inference_mode():
        return time_callable(lambda: model(x), device=x.device, **kw)


def time_layers(model: nn.Module, x: torch.Tensor, *, warmup: int = 3,
                repeats: int = 20) -> list[tuple[str, float]]:
    """Median time of every leaf-module call in a forward pass, in execution order.

    Names match ``flops.count_layers`` (``relu#2`` for a module's second call), so the two join.
    Each layer is bracketed by synchronisations, which charge its kernels to it but also serialise
    the pass and add a barrier per layer, so on a GPU the sum of these medians exceeds
    ``time_forward``'s median: that gap is the measurement's overhead, not the model's. Work done
    outside leaf modules (residual additions, functional activations) is in no layer's time.
    """
    names = {module: name for module, name in module_names(model).items() if is_leaf(module)}
    passes: list[list[tuple[nn.Module, float]]] = []
    starts: list[float] = []

    def before(module: nn.Module, args) -> None:
        synchronize(x.device)
        starts.append(time.perf_counter())

    def after(module: nn.Module, args, output) -> None:
        synchronize(x.device)
        passes[-1].append((module, time.perf_counter() - starts.pop()))

    handles = [hook for module in names for hook in (module.register_forward_pre_hook(before),
                                                     module.register_forward_hook(after))]
    try:
        with torch.inference_mode():
            for _ in range(warmup + repeats):
                passes.append([])
                model(x)
    finally:
        for handle in handles:
            handle.remove()
    timed = passes[warmup:]
    call_names = CallNames()
    return [(call_names(names[module])[0], median(run[i][1] for run in timed))
            for i, (module, _) in enumerate(timed[0])]
