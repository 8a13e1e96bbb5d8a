"""Wall-clock timing of callables, forward passes and single layers, on CPU or CUDA.

Every sample is bracketed by a device synchronisation and ``time.perf_counter``: CUDA kernels run
asynchronously, so without the barrier a sample would measure the launch, not the work. Warm-up calls
(allocator growth, cuDNN autotuning, lazy initialisation) are run and thrown away; what is reported is
the spread of the samples actually measured.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from statistics import median
from typing import Callable

import numpy as np
import torch
from torch import nn

from dlperf.flops.flops import CallNames, is_leaf, module_names


@dataclass(frozen=True)
class TimingResult:
    """Median and 10th/90th percentiles of ``samples`` (seconds, warm-up excluded)."""

    median_s: float
    p10_s: float
    p90_s: float
    samples: tuple[float, ...]

    @classmethod
    def of(cls, samples: list[float]) -> TimingResult:
        p10, p50, p90 = np.percentile(samples, [10, 50, 90])
        return cls(median_s=float(p50), p10_s=float(p10), p90_s=float(p90), samples=tuple(samples))


def synchronize(device: torch.device | str) -> None:
    """Wait for the device's queued work; a no-op on CPU, where every op returns when it is done."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_callable(fn: Callable[[], object], *, warmup: int = 3, repeats: int = 20,
                  device: torch.device | str) -> TimingResult:
    """Time ``repeats`` calls of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        samples.append(time.perf_counter() - start)
    return TimingResult.of(samples)


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
