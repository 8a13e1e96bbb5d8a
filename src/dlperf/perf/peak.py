"""Attainable peak FLOP/s of a device, measured, and the device's name for provenance.

A large square matmul is the most efficient kernel a framework has, so its rate is the practical
ceiling that percent-of-peak (PALEO's PPP) divides by; datasheet peaks are recorded separately in the
config. The measurement uses the current matmul precision settings (e.g. TF32 off by default), so it
is the peak of the dtype and mode the models actually run in.
"""
from __future__ import annotations

import platform
from pathlib import Path

import torch

from dlperf.perf.timing import time_callable


def measure_peak_flops(device: torch.device | str, dtype: torch.dtype = torch.float32, n: int | None = None,
                       *, repeats: int = 10, warmup: int = 3) -> float:
    """FLOP/s of an ``n``×``n`` matmul (2n³ FLOPs), from the median of ``repeats`` timed runs.

    ``n`` defaults to 4096 on GPU (large enough to saturate it) and 1024 on CPU (a fraction of a
    second per product on a few cores).
    """
    device = torch.device(device)
    if n is None:
        n = 1024 if device.type == "cpu" else 4096
    generator = torch.Generator(device=device).manual_seed(0)  # leave the global RNG (training seeds) alone
    a = torch.randn(n, n, device=device, dtype=dtype, generator=generator)
    b = torch.randn(n, n, device=device, dtype=dtype, generator=generator)
    out = torch.empty(n, n, device=device, dtype=dtype)
    timing = time_callable(lambda: torch.mm(a, b, out=out), warmup=warmup, repeats=repeats, device=device)
    return 2 * n**3 / timing.median_s


def device_name(device: torch.device | str) -> str:
    """The GPU's marketing name, or the CPU's model name (``/proc/cpuinfo``, else ``platform``)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()
