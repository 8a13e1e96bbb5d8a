"""Post-training INT8 quantization with onnxruntime, and the CPU measurements that judge it.

Pipeline: a PyTorch model is exported to ONNX (:func:`dlperf.export.onnx_export.export_onnx`: dynamo exporter,
dynamic batch, checked against PyTorch on a sample), pre-processed by onnxruntime (:func:`preprocess`: shape
inference and graph optimisation, which folds BatchNorm into the convolutions before any scale is chosen), then
quantized two ways:

* **dynamic** (:func:`quantize_dynamic_model`): weights are stored as 8-bit integers ahead of time, activation
  ranges are computed on every call at run time (``DynamicQuantizeLinear``, ``ConvInteger``/``MatMulInteger``);
  no calibration data.
* **static** (:func:`quantize_static_model`): activation ranges are fixed ahead of time from a calibration set
  (a :class:`ArrayCalibrationReader` over real training images), so the whole graph runs on integers.

Static models use the **QDQ** format: ``QuantizeLinear``/``DequantizeLinear`` pairs around the float operators,
which onnxruntime's CPU provider fuses into integer kernels (``QLinearConv`` …) at session creation. On this
code's CPUs it runs as fast as the QOperator format (integer operators written into the file), and it is the
format other runtimes read (TensorRT, the QNN and OpenVINO providers), while the graph keeps the float model's
structure. The default data types are U8S8 (uint8 activations, int8 weights, per output channel) with
``reduce_range`` (7-bit weights): on x86 CPUs without VNNI onnxruntime's U8S8 kernels use ``VPMADDUBSW``, whose
16-bit intermediate sums saturate on full-range weights (onnxruntime's quantization guide); the 7-bit range
avoids that at a small cost in resolution. All of these are config settings.

Latency (:func:`time_session`, and :func:`dlperf.compress.evaluation.time_eager` for PyTorch) is the median of
``repeats`` calls after ``warmup`` untimed ones (:mod:`dlperf.timing`), onnxruntime and PyTorch each limited to the
same number of threads.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import torch
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from dlperf.atomic import write_csv
from dlperf.data.voc import BACKGROUND
from dlperf.detection.predictor import preprocess as preprocess_image
from dlperf.detection.predictor import select_detections
from dlperf.detection.voc_eval import VOCResult, group_detections_by_class, group_ground_truth_by_class
from dlperf.detection.voc_eval import evaluate as evaluate_detections
from dlperf.timing import TimingResult, time_callable

QUANT_TYPES = {"qint8": QuantType.QInt8, "quint8": QuantType.QUInt8}
CALIBRATION_METHODS = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                       "percentile": CalibrationMethod.Percentile}
FORMATS = {"qdq": QuantFormat.QDQ, "qoperator": QuantFormat.QOperator}
WEIGHT_OPS = ("Conv", "Gemm", "MatMul", "BatchNormalization")
ORT_VARIANTS = ("ort_fp32", "ort_int8_dynamic", "ort_int8_static")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary file path beside ``path`` for a writer that wants a file name; renamed onto ``path`` on
    success, removed on failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def preprocess(model_path: str | os.PathLike, output_path: str | os.PathLike) -> Path:
    """onnxruntime's quantization pre-processing (symbolic shape inference, graph optimisation, shape inference)."""
    with atomic_path(output_path) as tmp:
        quant_pre_process(str(model_path), str(tmp))
    return Path(output_path)


class ArrayCalibrationReader(CalibrationDataReader):
    """Feeds calibration batches (float32 arrays, already preprocessed as for inference) to the calibrator."""

    def __init__(self, input_name: str, batches: Iterable[np.ndarray]):
        self.input_name = input_name
        self._batches = [np.ascontiguousarray(b, dtype=np.float32) for b in batches]
        if not self._batches:
            raise ValueError("calibration needs at least one batch of images")
        self._iter = iter(self._batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._iter, None)
        return None if batch is None else {self.input_name: batch}

    def rewind(self) -> None:
        self._iter = iter(self._batches)

    @property
    def images(self) -> int:
        return sum(len(b) for b in self._batches)


def input_name(model_path: str | os.PathLike) -> str:
    graph = onnx.load(str(model_path), load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}
    return next(i.name for i in graph.input if i.name not in initializers)


def input_shape(model_path: str | os.PathLike) -> list[int | str]:
    """The first graph input's shape: an int per static dimension, the symbol's name per dynamic one."""
    graph = onnx.load(str(model_path), load_external_data=False).graph
    name = input_name(model_path)
    dims = next(i for i in graph.input if i.name == name).type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in dims]


def quantize_static_model(model_path: str | os.PathLike, output_path: str | os.PathLike,
                          reader: ArrayCalibrationReader, *, quant_format: str = "qdq",
                          activation_type: str = "quint8", weight_type: str = "qint8", per_channel: bool = True,
                          reduce_range: bool = True, calibrate_method: str = "minmax",
                          op_types: Sequence[str] | None = None) -> Path:
    """Static INT8 quantization calibrated on ``reader``'s batches (see the module docstring for the choices)."""
    with atomic_path(output_path) as tmp:
        quantize_static(str(model_path), str(tmp), reader, quant_format=FORMATS[quant_format],
                        activation_type=QUANT_TYPES[activation_type], weight_type=QUANT_TYPES[weight_type],
                        per_channel=per_channel, reduce_range=reduce_range,
                        calibrate_method=CALIBRATION_METHODS[calibrate_method],
                        op_types_to_quantize=list(op_types) if op_types else None)
    return Path(output_path)


def quantize_dynamic_model(model_path: str | os.PathLike, output_path: str | os.PathLike, *,
                           weight_type: str = "quint8", per_channel: bool = False, reduce_range: bool = False,
                           op_types: Sequence[str] | None = None) -> Path:
    """Dynamic INT8 quantization: 8-bit weights, activation ranges computed at run time.

    onnxruntime's CPU provider implements ``ConvInteger`` for uint8 weights only, so a CNN needs
    ``weight_type="quint8"``.
    """
    with atomic_path(output_path) as tmp:
        quantize_dynamic(str(model_path), str(tmp), weight_type=QUANT_TYPES[weight_type], per_channel=per_channel,
                         reduce_range=reduce_range, op_types_to_quantize=list(op_types) if op_types else None)
    return Path(output_path)


def session(model_path: str | os.PathLike, threads: int, *, dequantize_at_load: bool = False) -> ort.InferenceSession:
    """A CPU session with ``threads`` intra-op threads, one inter-op thread and every graph optimisation.

    ``dequantize_at_load`` is for weight-only models (integer weights behind DequantizeLinear, float arithmetic):
    with onnxruntime's QDQ handling off, constant folding turns each weight's DequantizeLinear into a float weight
    once, at load, and the model runs as fast as its FP32 twin from a file with 4-bit weights. Left on, the
    DequantizeLinear nodes stay in the graph, run on every call and keep the convolutions from their pre-packed
    (NCHWc) kernels: twice the FP32 latency for ResNet-20 here."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if dequantize_at_load:
        options.add_session_config_entry("session.disable_quant_qdq", "1")
    return ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])


def session_outputs(sess: ort.InferenceSession, images: np.ndarray, batch_size: int) -> np.ndarray:
    """The first output of ``sess`` over ``images`` (float32 NCHW), ``batch_size`` at a time, concatenated."""
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: images[i:i + batch_size]})[0]
                           for i in range(0, len(images), batch_size)])


def time_session(sess: ort.InferenceSession, images: np.ndarray, *, warmup: int, repeats: int) -> TimingResult:
    feed = {sess.get_inputs()[0].name: np.ascontiguousarray(images)}
    return time_callable(lambda: sess.run(None, feed), warmup=warmup, repeats=repeats, device="cpu")


def agreement(logits: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """How closely ``logits`` track the ``reference`` (FP32) logits: top-1 agreement, largest and mean absolute
    difference, and the largest difference relative to the reference's largest magnitude."""
    diff = np.abs(logits - reference)
    return {"top1_agreement": float((logits.argmax(1) == reference.argmax(1)).mean()),
            "max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
            "max_rel_diff": float(diff.max() / np.abs(reference).max())}


def onnx_nonzero_params(model_path: str | os.PathLike) -> int:
    """Nonzero values among the initializers that feed weight-holding operators (conv, linear, BatchNorm) of a
    float ONNX graph: its parameter count, without constants such as an SSD's priors."""
    graph = onnx.load(str(model_path)).graph
    used = {name for node in graph.node if node.op_type in WEIGHT_OPS for name in node.input[1:]}
    return sum(int(np.count_nonzero(onnx.numpy_helper.to_array(t))) for t in graph.initializer if t.name in used)


def initializer_bytes(model_path: str | os.PathLike) -> int:
    """Bytes of the tensors stored in an ONNX file (weights at their stored width, biases, scales, zero points):
    the file's size less its graph, shapes and the exporter's per-node metadata (stack traces), which differ
    between exporters and between a traced and a quantized graph of one model."""
    return sum(t.ByteSize() for t in onnx.load(str(model_path)).graph.initializer)


# ---- the study: both INT8 models and their measurements ----------------------------------------------------
def quantize_both(fp32: str | os.PathLike, static: str | os.PathLike, dynamic: str | os.PathLike,
                  reader: ArrayCalibrationReader, q: Mapping[str, Any],
                  op_types: Sequence[str] | None = None) -> tuple[Path, Path]:
    """The static (calibrated on ``reader``) and the dynamic INT8 model of the pre-processed ``fp32`` graph, with
    the ``compress.quantize`` settings ``q`` (``format``, ``activation_type``, ``weight_type``, ``per_channel``,
    ``reduce_range``, ``calibrate_method``, ``dynamic_weight_type``); ``op_types`` limits both to those
    operator types. Returns ``(static, dynamic)``."""
    static = quantize_static_model(fp32, static, reader, quant_format=q["format"],
                                   activation_type=q["activation_type"], weight_type=q["weight_type"],
                                   per_channel=q["per_channel"], reduce_range=q["reduce_range"],
                                   calibrate_method=q["calibrate_method"], op_types=op_types)
    dynamic = quantize_dynamic_model(fp32, dynamic, weight_type=q["dynamic_weight_type"], op_types=op_types)
    return static, dynamic


def ort_variants(fp32: str | os.PathLike, dynamic: str | os.PathLike,
                 static: str | os.PathLike) -> list[tuple[str, Path]]:
    """``(variant, file)`` of the three onnxruntime models, in the order the tables list them."""
    return list(zip(ORT_VARIANTS, (Path(fp32), Path(dynamic), Path(static))))


def file_columns(path: str | os.PathLike) -> dict[str, Any]:
    """The ``file`` (name) and ``size_bytes`` columns of a model file's row."""
    return {"file": Path(path).name, "size_bytes": os.path.getsize(path)}


def latency_rows(model: str, variant: str, timer: Callable[..., TimingResult], inputs: Callable[[int], Any],
                 lat: Mapping[str, Any], batch_sizes: Iterable[int] | None = None) -> list[dict[str, Any]]:
    """The latency table's rows of one variant: ``timer(inputs(batch), warmup=lat["warmup"],
    repeats=lat["repeats"])`` at each batch size (``lat["batch_sizes"]`` unless ``batch_sizes`` is given), as
    median, 10th and 90th percentile in milliseconds."""
    rows = []
    for batch in lat["batch_sizes"] if batch_sizes is None else batch_sizes:
        t = timer(inputs(batch), warmup=lat["warmup"], repeats=lat["repeats"])
        rows.append({"model": model, "variant": variant, "batch": batch, "median_ms": 1e3 * t.median_s,
                     "p10_ms": 1e3 * t.p10_s, "p90_ms": 1e3 * t.p90_s})
    return rows


def write_results(rows: list[dict], timings: list[dict], csv: str | os.PathLike,
                  latency_csv: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The variants' table at ``csv`` and their latency table at ``latency_csv``; returns both frames."""
    table, latency = pd.DataFrame(rows), pd.DataFrame(timings)
    write_csv(csv, table)
    write_csv(latency_csv, latency)
    return table, latency


# ---- the SSD -------------------------------------------------------------------------------------------------
def read_labels(path: str | os.PathLike) -> list[str]:
    """Class names of a pytorch-ssd ``labels.txt`` (one per line, ``BACKGROUND`` first), background dropped."""
    names = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    if not names or names[0] != BACKGROUND:
        raise ValueError(f"{path}: expected {BACKGROUND!r} on the first line of a pytorch-ssd labels file")
    return names[1:]


def image_size(model_path: str | os.PathLike) -> int:
    """The square input side an SSD graph was exported for (its priors are built for it)."""
    shape = input_shape(model_path)
    if len(shape) != 4 or not isinstance(shape[2], int) or shape[2] != shape[3]:
        raise ValueError(f"{model_path}: expected an input [N, 3, S, S] with a fixed side S, got {shape}")
    return shape[2]


def ssd_outputs(sess: ort.InferenceSession, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(scores [N, P, C], boxes [N, P, 4])`` of an SSD session, by output name (``scores``, ``boxes``)."""
    results = dict(zip((o.name for o in sess.get_outputs()), sess.run(None, {sess.get_inputs()[0].name: batch})))
    missing = {"scores", "boxes"} - results.keys()
    if missing:
        raise ValueError(f"SSD graph lacks output(s) {sorted(missing)}; it has {sorted(results)}")
    return results["scores"], results["boxes"]


def ssd_mean_ap(sess: ort.InferenceSession, dataset, size: int) -> VOCResult:
    """VOC07 11-point AP per class and mAP of an SSD session over an ``OpenImagesDataset``, one image at a time
    through pytorch-ssd's preprocessing and selection (threshold 0.01, NMS 0.45, 200 candidates)."""
    predictions, annotations = {}, {}
    for i in range(len(dataset)):
        image = dataset.get_image(i)
        scores, boxes = ssd_outputs(sess, preprocess_image(image, size)[None].numpy())
        found = select_detections(torch.from_numpy(scores[0]), torch.from_numpy(boxes[0]), image.shape[1],
                                  image.shape[0])
        image_id, annotation = dataset.get_annotation(i)
        predictions[image_id] = (found.boxes, found.labels, found.probs)
        annotations[image_id] = annotation
    return evaluate_detections(group_detections_by_class(predictions), group_ground_truth_by_class(annotations),
                               classes=range(1, len(dataset.class_names)))
