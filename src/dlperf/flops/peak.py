"""Attainable peak FLOP/s of a device, measured, and the device's name for provenance.

A large square matrix product is the most efficient kernel a framework has, so its rate is the practical
ceiling that percent-of-peak (PALEO's PPP) divides by; datasheet peaks are recorded separately in the
config. On a CPU the framework has two such kernels, and either can be far behind the core: MKL's sgemm
(``torch.mm``) uses no AVX-512 on AMD processors, while oneDNN (which runs the convolutions) does, and was
measured at twice MKL's rate on one AVX-512 AMD core. The peak is the faster of the two, so the direct
convolutions the models run stay below it. The measurement uses the current matmul precision settings (e.g. TF32 off by
default), so it is the peak of the dtype and mode the models actually run in.
"""
from __future__ import annotations

import platform
from pathlib import Path

import torch

from dlperf.flops.timing import time_callable


def measure_peak_flops(device: torch.device | str, dtype: torch.dtype = torch.float32, n: int | None = None,
                       *, repeats: int = 10, warmup: int = 3) -> float:
    """FLOP/s of an ``n``×``n`` matrix product (2n³ FLOPs), from the median of ``repeats`` timed runs of the
    fastest product kernel (``peak_kernels``).

    ``n`` defaults to 4096 on GPU (large enough to saturate it) and 1024 on CPU (a fraction of a
    second per product on a few cores).
    """
    return max(peak_kernels(device, dtype, n, repeats=repeats, warmup=warmup).values())


def peak_kernels(device: torch.device | str, dtype: torch.dtype = torch.float32, n: int | None = None,
                 *, repeats: int = 10, warmup: int = 3) -> dict[str, float]:
    """FLOP/s of an ``n``×``n`` product by each dense-product kernel the framework has on ``device``:
    ``torch.mm`` (cuBLAS, or the CPU BLAS) everywhere, and oneDNN's on a CPU where torch has it (FP32 only)."""
    device = torch.device(device)
    if n is None:
        n = 1024 if device.type == "cpu" else 4096
    generator = torch.Generator(device=device).manual_seed(0)  # leave the global RNG (training seeds) alone
    a = torch.randn(n, n, device=device, dtype=dtype, generator=generator)
    b = torch.randn(n, n, device=device, dtype=dtype, generator=generator)
    out = torch.empty(n, n, device=device, dtype=dtype)
    kernels = {"torch.mm": lambda: torch.mm(a, b, out=out)}
    if device.type == "cpu" and dtype == torch.float32 and torch.backends.mkldnn.is_available():
        a_onednn, b_onednn = a.to_mkldnn(), b.to_mkldnn()
        kernels["onednn"] = lambda: torch._C._nn.mkldnn_linear(a_onednn, b_onednn)
    flops = 2 * n**3
    return {name: flops / time_callable(fn, warmup=warmup, repeats=repeats, device=device).median_s
            for name, fn in kernels.items()}


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
