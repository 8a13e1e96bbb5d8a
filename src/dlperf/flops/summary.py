"""The FLOPs study's tables made from counted layers, without a model: a model's summary row and PALEO's lower
bound on inference time at a device's peak."""
from __future__ import annotations

import pandas as pd

SUMMARY_COLUMNS = ["model", "params", "gmacs", "gflops", "conv_share"]


def summary_from_layers(name: str, layers: pd.DataFrame) -> dict:
    """summary.csv's row from a per-layer table (conv share: conv MACs over all counted MACs)."""
    macs = layers.macs.sum()
    conv = layers.loc[layers.type.str.startswith("Conv"), "macs"].sum()
    return {"model": name, "params": int(layers.params.sum()), "gmacs": macs / 1e9,
            "gflops": layers.flops.sum() / 1e9, "conv_share": conv / macs}


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
