"""Attainable peak FLOP/s of a device, measured, and the device's name for provenance.

A large dense product is the most efficient kernel a framework has, so its rate is the practical ceiling that
percent-of-peak (PALEO's PPP) divides by; datasheet peaks are recorded separately in the config. The peak is the
fastest of the product kernels that the workflow's models can run on, so that no model's rate exceeds it:

* on a CPU, MKL's sgemm (``torch.mm``) and oneDNN's product, which runs the convolutions. MKL uses no AVX-512 on
  AMD processors and was measured at half oneDNN's rate on one AVX-512 AMD core.
* on a GPU, ``torch.mm`` in FP32 (under the current matmul precision), the same product as a 1x1 cuDNN
  convolution, which PyTorch lets use TF32 tensor cores by default (``torch.backends.cudnn.allow_tf32``), and
  ``torch.mm`` in bf16, the precision the training engine's autocast runs in on CUDA. On an H200 the FP32 product
  ran at 50 TFLOP/s while VGG-16's FP32 forward pass, its convolutions on TF32 tensor cores, reached 137: an FP32
  peak put that pass at 270 % of peak.
"""
from __future__ import annotations

import platform
from pathlib import Path

import torch

from dlperf.timing import time_callable


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
    """FLOP/s of an ``n``×``n`` product by each dense-product kernel the models can run on ``device`` (see the
    module docstring): ``torch.mm`` everywhere; oneDNN's on a CPU where torch has it; on CUDA, the product as a
    cuDNN convolution and in bf16 (with ``dtype`` FP32)."""
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
    if device.type == "cuda" and dtype == torch.float32:
        # n output channels x n input channels over n pixels: 2n^3 FLOPs, as the product
        image, weight = a.reshape(1, n, n, 1), b.reshape(n, n, 1, 1)
        conv = "cudnn conv (tf32)" if torch.backends.cudnn.allow_tf32 else "cudnn conv"
        kernels[conv] = lambda: torch.nn.functional.conv2d(image, weight)
        a16, b16 = a.to(torch.bfloat16), b.to(torch.bfloat16)
        out16 = torch.empty(n, n, device=device, dtype=torch.bfloat16)
        kernels["torch.mm bf16"] = lambda: torch.mm(a16, b16, out=out16)
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
