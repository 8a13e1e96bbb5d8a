"""ONNX export of the detector with a parity check, node doc strings, graph drawing and a Triton-layout repository.

* :mod:`.onnx_export`: ``torch.onnx.export(dynamo=True)`` to one self-contained file with a dynamic batch axis,
  each node's PyTorch stack trace copied into its ``doc_string``, and the parity check against PyTorch;
* :mod:`.net_drawer`: onnx's ``net_drawer`` (removed in onnx 1.23) with the same output conventions;
* :mod:`.triton`: ``config.pbtxt`` in Triton's ModelConfig text format and the repository layout.
"""
from .net_drawer import docstrings_markdown, graph_dot, render_svg
from .onnx_export import ParityError, copy_stack_traces, export_onnx, parity_check
from .triton import model_config, parse_model_config, write_model_repository

__all__ = [
    "ParityError",
    "copy_stack_traces",
    "docstrings_markdown",
    "export_onnx",
    "graph_dot",
    "model_config",
    "parity_check",
    "parse_model_config",
    "render_svg",
    "write_model_repository",
]
