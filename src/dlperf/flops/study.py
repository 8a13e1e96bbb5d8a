"""The FLOP / roofline (PALEO) study: per-layer tables, the peak-throughput model, measured percent of peak.

Conventions: FLOPs = ``flop_per_mac`` × multiply-accumulates of conv and linear layers (PALEO: 2, bias and
element-wise work excluded); "peak" is a device's FP32 peak FLOP/s; percent of peak (PPP) is achieved FLOP/s
divided by peak.
"""
from __future__ import annotations

import pandas as pd
import torch

from dlperf.flops.flops import count_layers, layers_table, summarize, torchvision_model
from dlperf.flops.timing import time_forward, time_layers

SUMMARY_COLUMNS = ["model", "params", "gmacs", "gflops", "conv_share"]


def model_layers(name: str, image_size: int, flop_per_mac: int) -> tuple[pd.DataFrame, dict]:
    """Per-layer table of a torchvision model at batch 1 and its summary row (summary.csv's columns)."""
    layers = count_layers(torchvision_model(name), (1, 3, image_size, image_size), flop_per_mac=flop_per_mac)
    table = layers_table(layers)
    s = summarize(layers)
    return table, {"model": name, "params": int(s["params"]), "gmacs": s["macs"] / 1e9, "gflops": s["flops"] / 1e9,
                   "conv_share": s["conv_share"]}


def peak_time(summary: pd.DataFrame, peaks_tflops: dict[str, float], models: list[str]) -> pd.DataFrame:
    """PALEO's lower bound on inference time at batch 1: t = FLOPs / peak, and the images/s it allows."""
    rows = []
    for model in models:
        gflops = float(summary.loc[summary.model == model, "gflops"].iloc[0])
        for device, tflops in peaks_tflops.items():
            seconds = gflops / (tflops * 1e3)
            rows.append({"model": model, "device": device, "peak_tflops": tflops, "gflops": gflops,
                         "time_ms": 1e3 * seconds, "images_per_s": 1 / seconds})
    return pd.DataFrame(rows)


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


def summary_from_layers(name: str, layers: pd.DataFrame) -> dict:
    """summary.csv's row from a per-layer table (conv share: conv MACs over all counted MACs)."""
    macs = layers.macs.sum()
    conv = layers.loc[layers.type.str.startswith("Conv"), "macs"].sum()
    return {"model": name, "params": int(layers.params.sum()), "gmacs": macs / 1e9,
            "gflops": layers.flops.sum() / 1e9, "conv_share": conv / macs}
