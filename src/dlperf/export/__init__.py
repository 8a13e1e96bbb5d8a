"""ONNX export of the detector with a parity check, node doc strings, graph drawing and a Triton-layout repository.

* :mod:`.onnx_export`: ``torch.onnx.export(dynamo=True)`` to one self-contained file with a dynamic batch axis,
  each node's PyTorch stack trace copied into its ``doc_string``, and the parity check against PyTorch;
* :mod:`.net_drawer`: onnx's ``net_drawer`` (removed in onnx 1.23) with the same output conventions;
* :mod:`.triton`: ``config.pbtxt`` in Triton's ModelConfig text format and the repository layout;
* :mod:`.detector`: the trained detector and the images it is exported and checked on.

Only :mod:`.onnx_export` and :mod:`.detector` import torch: a job that draws a graph or lays out a repository
imports the module it uses, not this package's whole.
"""
