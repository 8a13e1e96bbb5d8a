"""The FLOPs/PALEO section's numbers as report macros: model totals, the datasheet-peak lower bound and the
measured percent of peak (see report/sections/flops.tex).
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import pandas as pd

from dlperf.report.latex import macro_name
from dlperf.report.values import count, fixed, model_label, percent, significant, words, yes_no


def flops_values(*, summary: pd.DataFrame, layers: Mapping[str, pd.DataFrame], peak_time: pd.DataFrame,
                 timing: pd.DataFrame, ppp: pd.DataFrame, training_ppp: pd.DataFrame, peak: Mapping,
                 measure: Mapping, image_size: int, flop_per_mac: int) -> dict[str, object]:
    """Macros of the FLOPs/PALEO section.

    ``layers`` maps each ``results/flops/<model>_layers.csv`` path to its frame; ``peak`` is the measuring
    device's peak record, ``measure`` the provenance of the timing results.
    """
    values = {
        "Models": words(map(model_label, summary.model)),
        "ImageSize": image_size,
        "FlopPerMac": flop_per_mac,
    }
    for row in summary.itertuples():
        values |= {
            macro_name("Gmacs", row.model): significant(row.gmacs),
            macro_name("Gflops", row.model): significant(row.gflops),
            macro_name("ParamsMillions", row.model): significant(row.params / 1e6),
            macro_name("ConvShare", row.model): fixed(100 * row.conv_share, 2),
        }
    for path, df in layers.items():
        model = Path(path).name.removesuffix("_layers.csv")
        conv_params = df.loc[df.type.str.startswith("Conv"), "params"].sum()
        values[macro_name("ConvParamShare", model)] = percent(conv_params / df.params.sum())
    values |= _peak_model_values(peak_time)
    values |= _measured_values(timing, ppp, peak, measure["config"]["flops"]["measure"])
    values |= {
        "TrainingRuns": len(training_ppp),
        "TrainingPppMedian": percent(training_ppp.ppp.median()),
        "TrainingPppMin": percent(training_ppp.ppp.min()),
        "TrainingPppMax": percent(training_ppp.ppp.max()),
        "TrainingPppMaxRun": training_ppp.loc[training_ppp.ppp.idxmax(), "run"],
        "TrainingPppAboveFull": yes_no(bool((training_ppp.ppp > 1).any())),
    }
    return {macro_name("flops", key): value for key, value in values.items()}


def _peak_model_values(peak_time: pd.DataFrame) -> dict:
    """PALEO's lower bound t = FLOPs / peak on the fastest and the slowest datasheet peak."""
    peaks = peak_time.drop_duplicates("device").set_index("device").peak_tflops
    fastest, slowest = peaks.idxmax(), peaks.idxmin()
    values = {
        "PeakModelDevices": len(peaks),
        "FastestDevice": fastest,
        "FastestPeakTflops": significant(peaks[fastest]),
        "SlowestDevice": slowest,
        "SlowestPeakTflops": significant(peaks[slowest]),
    }
    for model, df in peak_time.groupby("model", sort=False):
        on = df.set_index("device")
        values |= {
            macro_name("PeakTimeFastestMs", model): significant(on.loc[fastest, "time_ms"]),
            macro_name("PeakTimeSlowestMs", model): significant(on.loc[slowest, "time_ms"]),
            macro_name("PeakImagesPerSecondFastest", model): count(round(on.loc[fastest, "images_per_s"])),
        }
    return values


def _measured_values(timing: pd.DataFrame, ppp: pd.DataFrame, peak: Mapping, measure: Mapping) -> dict:
    top, bottom = ppp.loc[ppp.ppp.idxmax()], ppp.loc[ppp.ppp.idxmin()]
    layer_share = timing.layer_sum_ms / timing.forward_ms
    values = {
        "DeviceLabel": peak["device_label"],
        "DeviceName": peak["device_name"],
        "DeviceThreads": peak["threads"],
        "PeakTflops": significant(peak["peak_tflops"]),
        "PeakGflops": significant(peak["peak_flops"] / 1e9),
        "PeakSource": peak["source"],
        "MeasureImageSize": measure["image_size"],
        "MeasureBatches": words(measure["batch_sizes"]),
        "MeasureWarmup": measure["warmup"],
        "MeasureRepeats": measure["repeats"],
        "PppMax": percent(top.ppp),
        "PppMaxModel": model_label(top.model),
        "PppMaxBatch": int(top.batch),
        "PppMin": percent(bottom.ppp),
        "PppMinModel": model_label(bottom.model),
        "PppMinBatch": int(bottom.batch),
        "LayerSumShareMin": percent(layer_share.min(), 0),
        "LayerSumShareMax": percent(layer_share.max(), 0),
    }
    for row in ppp.itertuples():
        values[macro_name("Ppp", row.model, "batch", row.batch)] = percent(row.ppp)
    return values
