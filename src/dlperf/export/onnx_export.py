"""Export a PyTorch model to one ONNX file with the dynamo exporter, and check the file against PyTorch.

:func:`export_onnx` is the workflow's one exporter: the served SSD, the compress study's classifiers and their
quantization-aware INT8/INT4 forms all go through it. The file is one self-contained file (the weights are stored
inside it, never as external data, so copying the file copies the model) with a named input whose batch axis is
a symbol, and :func:`parity_check` runs it in onnxruntime against PyTorch. For the SSD it is what pytorch-ssd's
``convert_to_caffe2_models.py`` writes, made for serving: input ``input [N, 3, H, W]``, outputs ``scores [N, P, C]``
(softmaxed) and ``boxes [N, P, 4]`` (corner form, 0..1), no NMS in the graph.

The dynamo exporter leaves ``NodeProto.doc_string`` empty and records where each node came from in its
``metadata_props`` instead (``pkg.torch.onnx.stack_trace``, with the module path under ``namespace``). Tools
written for the legacy exporter's ``verbose=True`` output (onnx's net_drawer ``--embed_docstring``) read the
doc string, so :func:`copy_stack_traces` copies the trace there.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx
import torch

from dlperf.atomic import atomic_write

STACK_TRACE_KEY = "pkg.torch.onnx.stack_trace"
NAMESPACE_KEY = "namespace"  # the module path of the node; the doc string of nodes without a stack trace
INPUT_NAME = "input"
SSD_OUTPUT_NAMES = ("scores", "boxes")  # what pytorch-ssd's export names them, and what servers and clients read


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


@dataclass(frozen=True)
class Exported:
    """What :func:`export_onnx` wrote: the file, its model, where its doc strings came from (all ``none`` unless
    asked for) and the parity record on the export sample (None unless a tolerance was given)."""

    path: Path
    proto: onnx.ModelProto
    doc_strings: dict[str, int]
    parity: dict | None


def export_onnx(model: torch.nn.Module, sample: torch.Tensor, path: str | os.PathLike, *,
                input_name: str = INPUT_NAME, output_names: Sequence[str] = ("logits",), opset: int | None = None,
                dynamic_batch: bool = True, doc_strings: bool = False, tolerance: float | None = None) -> Exported:
    """Export ``model`` (in eval mode, traced on ``sample``) to ``path``, one self-contained file.

    With ``dynamic_batch`` the batch axis is exported as a symbol; ``sample`` then needs a batch of 2 or more, since
    torch.export specialises sizes 0 and 1. ``doc_strings`` copies each node's stack trace into its doc string
    (:func:`copy_stack_traces`, for net_drawer; it adds text to the file). With a ``tolerance`` the model is run on
    ``sample`` in onnxruntime and PyTorch before anything is written (:func:`parity_check`), so a file that differs
    from its model is never written.
    """
    if dynamic_batch and sample.shape[0] < 2:
        raise ValueError("a dynamic batch needs an export sample of at least 2 (batch 1 would be specialised away)")
    model = model.eval()
    dynamic_shapes = ({0: torch.export.Dim("batch")},) if dynamic_batch else None
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's notes on its own internals
        program = torch.onnx.export(
            model, (sample,), dynamo=True, input_names=[input_name], output_names=list(output_names),
            dynamic_shapes=dynamic_shapes, opset_version=opset, external_data=False, verbose=False,
        )
    proto = program.model_proto
    counts = (copy_stack_traces(proto) if doc_strings
              else {"stack_trace": 0, "namespace": 0, "none": len(proto.graph.node)})
    onnx.checker.check_model(proto)
    blob = proto.SerializeToString()
    parity = None if tolerance is None else parity_check(model, blob, [sample.numpy()], tolerance)
    with atomic_write(path, "wb") as handle:
        handle.write(blob)
    return Exported(Path(path), proto, counts, parity)


def parity_check(model: torch.nn.Module, onnx_model: str | os.PathLike | bytes, batches: Sequence[np.ndarray],
                 tolerance: float, threads: int = 1) -> dict:
    """Run each batch through PyTorch and through onnxruntime on ``onnx_model`` (a path or a serialized model);
    compare each output, in order, with PyTorch's (a tensor or a tuple of them).

    Returns the largest absolute difference per output name (over all batches) and the batch sizes run. Raises
    :class:`ParityError` naming the output when a difference exceeds ``tolerance`` (or is NaN).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(onnx_model if isinstance(onnx_model, bytes) else str(onnx_model), options,
                                   providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    worst = dict.fromkeys(names, 0.0)
    model = model.eval()
    for batch in batches:
        with torch.no_grad():
            out = model(torch.from_numpy(batch))
        expected = [t.numpy() for t in (out if isinstance(out, (tuple, list)) else (out,))]
        actual = session.run(names, {session.get_inputs()[0].name: batch})
        for name, want, got in zip(names, expected, actual):
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

