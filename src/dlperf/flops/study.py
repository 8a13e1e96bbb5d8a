"""The FLOP / roofline (PALEO) study's torchvision models: per-layer tables and measured percent of peak.

Conventions: FLOPs = ``flop_per_mac`` × multiply-accumulates of conv and linear layers (PALEO: 2, bias and
element-wise work excluded); "peak" is a device's FP32 peak FLOP/s; percent of peak (PPP) is achieved FLOP/s
divided by peak. The tables made from these, without a model, are :mod:`dlperf.flops.summary`'s.
"""
from __future__ import annotations

import pandas as pd
import torch
import torchvision
from torch import nn

from dlperf.flops.flops import count_layers, layers_table, summarize
from dlperf.flops.timing import time_forward, time_layers

TORCHVISION_MODELS = ("vgg16", "vgg19", "googlenet", "resnet50")


def torchvision_model(name: str) -> nn.Module:
    """An untrained torchvision model as Lu et al. profile it: GoogLeNet without auxiliary heads.

    Built on the current default device, so ``with torch.device("meta"):`` gives a free one to count.
    """
    if name not in TORCHVISION_MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of {TORCHVISION_MODELS}")
    if name == "googlenet":
        return torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False)
    return getattr(torchvision.models, name)(weights=None)


def model_layers(name: str, image_size: int, flop_per_mac: int) -> tuple[pd.DataFrame, dict]:
    """Per-layer table of a torchvision model at batch 1 and its summary row (summary.csv's columns)."""
    layers = count_layers(torchvision_model(name), (1, 3, image_size, image_size), flop_per_mac=flop_per_mac)
    table = layers_table(layers)
    s = summarize(layers)
    return table, {"model": name, "params": int(s["params"]), "gmacs": s["macs"] / 1e9, "gflops": s["flops"] / 1e9,
                   "conv_share": s["conv_share"]}


def measure(name: str, batch: int, image_size: int, device: torch.device, flop_per_mac: int, peak_flops: float,
            warmup: int, repeats: int) -> dict:
    """Whole-forward and per-layer-sum time of a torchvision model (random weights, eval mode) and its PPP."""
    torch.manual_seed(0)
    model = torchvision_model(name).to(device).eval()
    x = torch.randn(batch, 3, image_size, image_size, device=device)
    flops = summarize(count_layers(model, tuple(x.shape), flop_per_mac=flop_per_mac))["flops"]
    forward = time_forward(model, x, warmup=warmup, repeats=repeats)
    with torch.inference_mode():
        layers = time_layers(model, x, warmup=warmup, repeats=repeats)
    achieved = flops / forward.median_s
    return {"model": name, "batch": batch, "image_size": image_size, "gflops": flops / 1e9,
            "forward_ms": 1e3 * forward.median_s, "forward_p10_ms": 1e3 * forward.p10_s,
            "forward_p90_ms": 1e3 * forward.p90_s, "layer_sum_ms": 1e3 * sum(t for _, t in layers),
            "n_layers": len(layers), "achieved_tflops": achieved / 1e12, "peak_tflops": peak_flops / 1e12,
            "ppp": achieved / peak_flops}
