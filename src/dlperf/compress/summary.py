"""The study's results side by side: ``summary.csv`` (one row per compressed model and its references), the table
rendered from it, and the two figures (accuracy against sparsity, size against accuracy).

``summary.csv`` columns:

* ``method``: baseline (an uncompressed reference), prune, prune_retrain, quantize_dynamic, quantize_static, share,
  distill, quantization-aware training (qat: INT8 weights and activations; qat_weight_only) beside weight-only PTQ
  (ptq_weight_only), and Deep Compression's stages deep_pruned, deep_shared, deep_huffman;
* ``setting``: the model and the method's setting;
* ``size_bytes``: bytes the weights need in the method's storage format (ONNX rows and Deep Compression's: the file's
  size; PyTorch rows: the state dict's tensors, pruned layers as values + bitmap, shared layers as indices +
  codebook);
* ``nonzero_params``: parameters with a nonzero value (quantized rows: those of the FP32 model quantized);
* ``metric``, ``metric_value``: ``top1`` (fraction of the CIFAR test set) or ``mAP`` (VOC07 11-point, SSD);
* ``latency_ms``: median CPU latency of one forward pass at the first configured batch size (none for Deep
  Compression's files, which are decoded before they run);
* ``speedup``: latency of the uncompressed model in the same runtime over ``latency_ms`` (PyTorch eager FP32 of
  the same architecture for pruning and sharing, of the teacher for distillation; onnxruntime FP32 for INT8 and QAT).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from dlperf.report.style import figure

SUMMARY_COLUMNS = ("method", "setting", "size_bytes", "nonzero_params", "metric", "metric_value", "latency_ms",
                   "speedup")
QUANT_METHODS = {"ort_fp32": "baseline", "ort_int8_dynamic": "quantize_dynamic", "ort_int8_static": "quantize_static"}
QAT_METHODS = ("qat", "ptq_weight_only", "qat_weight_only")   # results/compress/qat/classifier.csv's own rows
QUANT_SETTINGS = {"eager_fp32": "FP32 PyTorch eager", "ort_fp32": "FP32 onnxruntime",
                  "ort_int8_dynamic": "INT8 dynamic onnxruntime", "ort_int8_static": "INT8 static onnxruntime"}
MARKERS = {"baseline": "s", "prune": "x", "prune_retrain": "o", "quantize_dynamic": "v", "quantize_static": "^",
           "share": "D", "distill": "*", "deep_pruned": "P", "deep_shared": "p", "deep_huffman": "h", "qat": "<",
           "ptq_weight_only": "1", "qat_weight_only": "2"}


def _row(method, setting, size_bytes, nonzero_params, metric, value, latency_ms, reference_ms) -> dict:
    speedup = reference_ms / latency_ms if latency_ms and np.isfinite(latency_ms) else float("nan")
    return dict(zip(SUMMARY_COLUMNS, (method, setting, int(size_bytes), int(nonzero_params), metric, float(value),
                                      float(latency_ms), float(speedup))))


def latency_at(latency: pd.DataFrame, model: str, variant: str, batch: int) -> float:
    rows = latency[(latency.model == model) & (latency.variant == variant) & (latency.batch == batch)]
    if len(rows) != 1:
        raise ValueError(f"latency.csv has {len(rows)} rows for {model} {variant} at batch {batch}, expected 1")
    return float(rows.median_ms.iloc[0])


def summary_frame(*, arch: str, pruning: pd.DataFrame, classifier: pd.DataFrame, latency: pd.DataFrame,
                  sharing: pd.DataFrame, distill: pd.DataFrame, ssd: pd.DataFrame | None = None,
                  deep: pd.DataFrame | None = None, qat: pd.DataFrame | None = None,
                  qat_latency: pd.DataFrame | None = None, temperature: float, alpha: float) -> pd.DataFrame:
    """One row per model of the study (see the module docstring for the columns)."""
    batch = int(latency.batch.iloc[0])
    rows = []
    q = classifier.set_index("variant")
    eager_ms = latency_at(latency, "classifier", "eager_fp32", batch)
    ort_ms = latency_at(latency, "classifier", "ort_fp32", batch)
    rows.append(_row("baseline", f"{arch} {QUANT_SETTINGS['eager_fp32']}", q.loc["eager_fp32", "size_bytes"],
                     q.loc["eager_fp32", "nonzero_params"], "top1", q.loc["eager_fp32", "top1"], eager_ms, eager_ms))
    for variant, method in QUANT_METHODS.items():
        rows.append(_row(method, f"{arch} {QUANT_SETTINGS[variant]}", q.loc[variant, "size_bytes"],
                         q.loc[variant, "nonzero_params"], "top1", q.loc[variant, "top1"],
                         latency_at(latency, "classifier", variant, batch), ort_ms))
    for r in pruning.sort_values("sparsity").itertuples():
        for method, value in (("prune", r.pruned_test_acc), ("prune_retrain", r.retrained_test_acc)):
            rows.append(_row(method, f"{arch} sparsity {r.sparsity:g}", r.size_bytes, r.nonzero_params, "top1",
                             value, r.latency_ms, r.dense_latency_ms))
    for r in sharing.sort_values("clusters").itertuples():
        rows.append(_row("share", f"{arch} k={r.clusters}", r.size_bytes, r.nonzero_params, "top1", r.top1,
                         r.latency_ms, r.dense_latency_ms))
    if qat is not None:   # quantization-aware training and weight-only PTQ; FP32 and static INT8 are above already
        qat_ort_ms = latency_at(qat_latency, "classifier", "ort_fp32", batch)
        for r in qat[qat.method.isin(QAT_METHODS)].itertuples():
            activations = "FP32" if r.activation_bits == 32 else f"INT{r.activation_bits}"
            rows.append(_row(r.method, f"{arch} INT{r.weight_bits} weights, {activations} activations onnxruntime",
                             r.size_bytes, r.nonzero_params, "top1", r.top1,
                             latency_at(qat_latency, "classifier", r.variant, batch), qat_ort_ms))
    if deep is not None:   # Deep Compression's files: their bytes on disk, no latency (they are decoded to run)
        for r in deep[deep.stage != "dense"].itertuples():
            nonzero = pruning.loc[np.isclose(pruning.sparsity, r.sparsity), "nonzero_params"].iloc[0]
            bits = "" if r.stage == "pruned" else f", {r.conv_bits}/{r.linear_bits}-bit codebooks"
            rows.append(_row(f"deep_{r.stage}", f"{arch} sparsity {r.sparsity:g}{bits}", r.size_bytes, nonzero, "top1",
                             r.top1, float("nan"), float("nan")))
    teacher = distill[distill.role == "teacher"].iloc[0]
    rows.append(_row("baseline", f"{teacher.arch} teacher FP32 PyTorch eager", teacher.size_bytes,
                     teacher.nonzero_params, "top1", teacher.test_acc, teacher.latency_ms, teacher.latency_ms))
    for r in distill[distill.role == "student"].itertuples():
        setting = "labels only" if r.mode == "labels" else f"soft targets T={temperature:g} alpha={alpha:g}"
        rows.append(_row("distill", f"{r.arch} student {setting}", r.size_bytes, r.nonzero_params, "top1",
                         r.test_acc, r.latency_ms, teacher.latency_ms))
    if ssd is not None:
        s = ssd.set_index("variant")
        ssd_ms = latency_at(latency, "ssd", "ort_fp32", batch)
        for variant, method in QUANT_METHODS.items():
            rows.append(_row(method, f"SSD {QUANT_SETTINGS[variant]}", s.loc[variant, "size_bytes"],
                             s.loc[variant, "nonzero_params"], "mAP", s.loc[variant, "map"],
                             latency_at(latency, "ssd", variant, batch), ssd_ms))
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def summary_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary as the report shows it: size in kB, metric in percent, latency and speedup rounded."""
    return pd.DataFrame({
        "method": summary.method.str.replace("_", " "),
        "setting": summary.setting,
        "size (kB)": (summary.size_bytes / 1e3).map(lambda v: f"{v:.1f}"),
        "nonzero params": summary.nonzero_params.map(lambda v: f"{v:,}"),
        "metric (%)": [f"{m} {100 * v:.1f}" for m, v in zip(summary.metric, summary.metric_value)],
        "latency (ms)": summary.latency_ms.map(lambda v: f"{v:.2f}"),
        "speedup": summary.speedup.map(lambda v: f"{v:.2f}"),
    })


def accuracy_sparsity_figure(pruning: pd.DataFrame):
    """Test accuracy against sparsity: right after pruning and after re-training with fixed masks; the dense
    model's accuracy as a horizontal line."""
    df = pruning.sort_values("sparsity")
    fig, ax = figure("single", aspect=0.7)
    ax.axhline(100 * df.dense_test_acc.iloc[0], color="0.4", ls=":", label="dense")
    ax.plot(100 * df.sparsity, 100 * df.pruned_test_acc, "-x", color="C3", label="pruned")
    ax.plot(100 * df.sparsity, 100 * df.retrained_test_acc, "-o", color="C0", label="pruned + re-trained")
    ax.set(xlabel="sparsity of conv and linear weights (%)", ylabel="test accuracy (%)")
    ax.legend()
    return fig


def size_accuracy_figure(summary: pd.DataFrame):
    """Size against metric, one marker per method; a panel per metric (top-1 of the classifier, mAP of the SSD)."""
    metrics = list(dict.fromkeys(summary.metric))
    fig, axes = figure("double" if len(metrics) > 1 else "single", aspect=0.35 if len(metrics) > 1 else 0.75,
                       ncols=len(metrics), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        df = summary[summary.metric == metric]
        for i, (method, rows) in enumerate(df.groupby("method", sort=False)):
            ax.plot(rows.size_bytes / 1e3, 100 * rows.metric_value, MARKERS.get(method, "o"), color=f"C{i}",
                    label=method.replace("_", " "), ls="none")
        ax.set_xscale("log")
        ax.set(xlabel="size (kB)", ylabel=f"{'top-1 accuracy' if metric == 'top1' else metric} (%)")
        ax.legend(fontsize=6, loc="best")
    return fig
