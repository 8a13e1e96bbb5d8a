"""Models, repositories and live servers for the ``dlperf.serve`` tests.

The models are tiny but shaped like what the workflow serves: ``tiny_ssd`` is a conv net with the signature
of the workflow's exported MobileNetV1-SSD (input ``input`` [N,3,H,W], softmaxed ``scores``
[N,anchors,classes] and ``boxes`` [N,anchors,4], dynamic batch axis), exported by the legacy exporter, which
takes a fraction of a second where the dynamo exporter takes seconds; ``ssd10_like`` has the signature of
the ONNX model zoo's ssd-10 that the onnx tutorial client was written for, so that client can run
unchanged.
"""
from __future__ import annotations

import contextlib
import io
import socket
import warnings
from pathlib import Path
from typing import Iterator

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from dlperf.data.mirror_server import serving_in_thread
from dlperf.serve import InferenceServer, ModelRepository, ServingOptions
from dlperf.serve.process import server_process  # noqa: F401  (re-exported for the tests)
from dlperf.serve.server import Limits, ServerLimits

class TinySSD(torch.nn.Module):
    """A feature conv, then per-cell class and box heads, flattened to anchors like SSD's heads."""

    def __init__(self, classes: int = 3):
        super().__init__()
        self.classes = classes
        self.features = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.classification = torch.nn.Conv2d(8, classes, 1)
        self.regression = torch.nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = torch.relu(self.features(x))
        scores = self.classification(features).permute(0, 2, 3, 1).reshape(x.shape[0], -1, self.classes)
        boxes = self.regression(features).permute(0, 2, 3, 1).reshape(x.shape[0], -1, 4)
        return torch.softmax(scores, dim=2), boxes


def tiny_ssd(seed: int, size: int = 8) -> bytes:
    """An exported TinySSD; different seeds give different weights, hence different outputs."""
    torch.manual_seed(seed)
    model = TinySSD().eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter announces its own deprecation
        torch.onnx.export(model, torch.randn(1, 3, size, size), buffer, dynamo=False,
                          input_names=["input"], output_names=["scores", "boxes"],
                          dynamic_axes={name: {0: "batch"} for name in ("input", "scores", "boxes")})
    return buffer.getvalue()


def ssd10_like(detections: int = 200, classes: int = 80) -> bytes:
    """ssd-10's signature: ``image`` [1,3,1200,1200] → ``bboxes`` [1,N,4] float, ``labels`` [1,N] int64
    (1-based COCO ids), ``scores`` [1,N] float; the values are a fixed function of the image."""
    rng = np.random.default_rng(10)

    def weight(name: str, columns: int) -> onnx.TensorProto:
        return numpy_helper.from_array(rng.standard_normal((3, columns)).astype(np.float32), name)

    def ints(name: str, values) -> onnx.TensorProto:
        return numpy_helper.from_array(np.array(values, dtype=np.int64), name)

    nodes = [
        helper.make_node("GlobalAveragePool", ["image"], ["pooled4d"]),
        helper.make_node("Flatten", ["pooled4d"], ["pooled"]),
        helper.make_node("MatMul", ["pooled", "w_boxes"], ["box_logits"]),
        helper.make_node("Sigmoid", ["box_logits"], ["box_flat"]),
        helper.make_node("Reshape", ["box_flat", "box_shape"], ["bboxes"]),
        helper.make_node("MatMul", ["pooled", "w_scores"], ["score_logits"]),
        helper.make_node("Sigmoid", ["score_logits"], ["scores"]),
        helper.make_node("MatMul", ["pooled", "w_labels"], ["label_flat"]),
        helper.make_node("Reshape", ["label_flat", "label_shape"], ["label_logits"]),
        helper.make_node("ArgMax", ["label_logits"], ["label_index"], axis=2, keepdims=0),
        helper.make_node("Add", ["label_index", "one"], ["labels"]),
    ]
    graph = helper.make_graph(
        nodes, "ssd10_like",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 1200, 1200])],
        [helper.make_tensor_value_info("bboxes", TensorProto.FLOAT, [1, detections, 4]),
         helper.make_tensor_value_info("labels", TensorProto.INT64, [1, detections]),
         helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, detections])],
        [weight("w_boxes", 4 * detections), weight("w_scores", detections), weight("w_labels", classes * detections),
         ints("box_shape", [1, detections, 4]), ints("label_shape", [1, detections, classes]), ints("one", 1)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    return model.SerializeToString()


def write_repository(root: Path, models: dict[str, dict[int, bytes]], configs: dict[str, str] = {}) -> Path:
    """A Triton-layout repository: ``root/<name>/<version>/model.onnx`` (+ ``config.pbtxt`` texts)."""
    for name, versions in models.items():
        for version, data in versions.items():
            (root / name / str(version)).mkdir(parents=True)
            (root / name / str(version) / "model.onnx").write_bytes(data)
        if name in configs:
            (root / name / "config.pbtxt").write_text(configs[name])
    return root


@contextlib.contextmanager
def running_server(root: Path, default_model: str | None = None, exit_on_error: bool = True,
                   limits: Limits = Limits(), server_limits: ServerLimits = ServerLimits(),
                   strict_readiness: bool = True, **options) -> Iterator[InferenceServer]:
    """An in-process server on 127.0.0.1 at an ephemeral port, serving from a thread."""
    repository = ModelRepository(root, ServingOptions(**options), default_model, exit_on_error=exit_on_error)
    try:
        with serving_in_thread(InferenceServer(repository, limits=limits, server_limits=server_limits,
                                               strict_readiness=strict_readiness)) as server:
            yield server
    finally:
        repository.close()


def read_responses(conn: socket.socket, count: int) -> list[tuple[int, bytes, bytes]]:
    """``count`` responses off a kept-alive connection, each its status, head and body (bodies here are
    Content-Length framed); ConnectionError if it closes first."""
    data, responses = b"", []

    def more() -> bytes:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        return chunk

    while len(responses) < count:
        while b"\r\n\r\n" not in data:
            data += more()
        head, data = data.split(b"\r\n\r\n", 1)
        length = next(int(line.split(b":")[1]) for line in head.lower().split(b"\r\n")
                      if line.startswith(b"content-length"))
        while len(data) < length:
            data += more()
        responses.append((int(head.split()[1]), head, data[:length]))
        data = data[length:]
    return responses
