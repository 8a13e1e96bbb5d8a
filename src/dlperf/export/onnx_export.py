"""Export an SSD to ONNX with the dynamo exporter, and check the file against PyTorch.

The file is what pytorch-ssd's ``convert_to_caffe2_models.py`` writes, made for serving: input ``input``
``[N, 3, H, W]`` with a dynamic batch axis, outputs ``scores [N, P, C]`` (softmaxed) and ``boxes [N, P, 4]``
(corner form, 0..1), no NMS in the graph. It is one file: the weights are stored inside it, never as external
data, so copying the file copies the model.

The dynamo exporter leaves ``NodeProto.doc_string`` empty and records where each node came from in its
``metadata_props`` instead (``pkg.torch.onnx.stack_trace``, with the module path under ``namespace``). Tools
written for the legacy exporter's ``verbose=True`` output (onnx's net_drawer ``--embed_docstring``) read the
doc string, so :func:`copy_stack_traces` copies the trace there.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx
import torch

from dlperf.atomic import atomic_write

STACK_TRACE_KEY = "pkg.torch.onnx.stack_trace"
NAMESPACE_KEY = "namespace"  # the module path of the node; the doc string of nodes without a stack trace
INPUT_NAME = "input"
OUTPUT_NAMES = ("scores", "boxes")


class ParityError(AssertionError):
    """The ONNX model's outputs differ from PyTorch's by more than the tolerance."""


def copy_stack_traces(model: onnx.ModelProto) -> dict[str, int]:
    """Set each node's ``doc_string`` to its PyTorch stack trace (else its module path); count what was found.

    Subgraphs of control-flow nodes are visited too. Returns ``{"stack_trace": n, "namespace": n, "none": n}``.
    """
    counts = {"stack_trace": 0, "namespace": 0, "none": 0}

    def visit(graph: onnx.GraphProto) -> None:
        for node in graph.node:
            props = {p.key: p.value for p in node.metadata_props}
            if props.get(STACK_TRACE_KEY):
                node.doc_string, found = props[STACK_TRACE_KEY], "stack_trace"
            elif props.get(NAMESPACE_KEY):
                node.doc_string, found = props[NAMESPACE_KEY], "namespace"
            else:
                found = "none"
            counts[found] += 1
            for attribute in node.attribute:
                for sub in [attribute.g, *attribute.graphs] if attribute.HasField("g") else attribute.graphs:
                    visit(sub)

    visit(model.graph)
    return counts


def export_onnx(model: torch.nn.Module, path: str | os.PathLike, image_size: int, opset: int | None = None,
                example_batch: int = 2) -> tuple[onnx.ModelProto, dict[str, int]]:
    """Export ``model`` (in eval mode, forward ``x -> (scores, boxes)``) to ``path``, one self-contained file.

    The batch axis is exported as a symbol: the example batch is 2, not 1, since torch.export specialises sizes
    0 and 1. Returns the written model and :func:`copy_stack_traces`' counts.
    """
    model = model.eval()
    example = torch.zeros(example_batch, 3, image_size, image_size)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's notes on its own internals
        program = torch.onnx.export(
            model, (example,), dynamo=True, input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
            dynamic_shapes=({0: torch.export.Dim("batch")},), opset_version=opset, external_data=False,
            verbose=False,
        )
    proto = program.model_proto
    counts = copy_stack_traces(proto)
    onnx.checker.check_model(proto)
    with atomic_write(path, "wb") as handle:
        handle.write(proto.SerializeToString())
    return proto, counts


def parity_check(model: torch.nn.Module, onnx_path: str | os.PathLike, batches: Sequence[np.ndarray],
                 tolerance: float, threads: int = 1) -> dict:
    """Run each batch ``[N, 3, H, W]`` through PyTorch and through onnxruntime on ``onnx_path``; compare.

    Returns the largest absolute difference per output (over all batches) and the batch sizes run. Raises
    :class:`ParityError` naming the output when a difference exceeds ``tolerance`` (or is NaN).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    worst = dict.fromkeys(OUTPUT_NAMES, 0.0)
    model = model.eval()
    for batch in batches:
        with torch.no_grad():
            expected = [t.numpy() for t in model(torch.from_numpy(batch))]
        actual = session.run(list(OUTPUT_NAMES), {INPUT_NAME: batch})
        for name, want, got in zip(OUTPUT_NAMES, expected, actual):
            if want.shape != got.shape:
                raise ParityError(f"{name}: ONNX shape {list(got.shape)} != PyTorch shape {list(want.shape)}")
            diff = float(np.max(np.abs(want.astype(np.float64) - got)))
            worst[name] = diff if np.isnan(diff) else max(worst[name], diff)
    result = {
        "tolerance": tolerance,
        "batch_sizes": [int(b.shape[0]) for b in batches],
        "max_abs_diff": worst,
        "passed": all(d <= tolerance for d in worst.values()),  # False for NaN
    }
    if not result["passed"]:
        bad = {name: d for name, d in worst.items() if not d <= tolerance}
        raise ParityError(f"ONNX outputs differ from PyTorch by more than {tolerance:g}: {bad}")
    return result


def onnx_op_types(model: onnx.ModelProto) -> dict[str, int]:
    """Nodes per op type of the main graph, most frequent first."""
    counts: dict[str, int] = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def external_data_files(path: str | os.PathLike) -> list[str]:
    """Locations of external-data tensors the model at ``path`` refers to (empty for a self-contained file)."""
    model = onnx.load(str(path), load_external_data=False)
    tensors = [*model.graph.initializer,
               *(a.t for node in model.graph.node for a in node.attribute if a.HasField("t"))]
    return sorted({entry.value for tensor in tensors for entry in tensor.external_data if entry.key == "location"})

