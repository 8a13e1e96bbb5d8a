"""Quantization-aware training (QAT): a model fine-tuned under fake quantization, exported as a QDQ ONNX model.

Post-training quantization (:mod:`dlperf.compress.quantize`) rounds weights the network never saw rounded; QAT
trains through the rounding, so the weights settle where their rounded values work. :func:`prepare_qat` turns a
float model into its fake-quantized twin, which the ordinary training engine fine-tunes:

* BatchNorm is folded into the convolution before it (eval statistics), as onnxruntime's pre-processing does
  before PTQ, so the weights that are rounded are the ones that run. With per-channel scales this changes
  nothing about the rounding itself: a BatchNorm scales each output channel, and so does the channel's scale.
* **Weights** are rounded in every forward pass to ``bits``-bit integers, symmetric, per output channel, with the
  scale from the channel's largest magnitude (onnxruntime's rule for int8 weights: ``amax / 127``, or ``amax /
  64`` with ``reduce_range``; ``amax / 7`` at 4 bits). Gradients pass the rounding unchanged (the
  straight-through estimator of ``torch.fake_quantize_per_channel_affine``; no weight is ever clipped).
* **Activations** (optional) are rounded to uint8 with an affine per-tensor scale, where onnxruntime's QDQ
  quantizer puts its QuantizeLinear/DequantizeLinear pairs: the model input, every Conv/Linear/Add output (after
  the ReLU that follows it, which the unsigned range then contains) and any other tensor entering a Conv, Linear
  or Add. Slicing, zero padding and flattening keep a tensor on its grid and share its scale. Ranges are moving
  averages of each batch's min and max while training (torch.ao's ``MovingAverageMinMaxObserver``, 0.01), fixed
  in eval mode, so ``model.train()``/``model.eval()`` from the engine start and stop observing.

Fake quantization is float arithmetic: train it in float32 (``amp: off``), since bfloat16 cannot hold every
multiple of a scale. :func:`export_qdq` replaces each fake quantizer by its exportable form (integer weights behind
DequantizeLinear, activations through QuantizeLinear/DequantizeLinear at the learnt scales, biases as int32 at
input scale x weight scale, which onnxruntime needs to fuse a Conv into ``QLinearConv``) and writes the file with
the workflow's exporter at opset 21, the first with 4-bit integers: weights of 4 bits or fewer are then stored
as INT4, two to a byte (:func:`pack_int4`).
"""
from __future__ import annotations

import copy
import dataclasses
import operator
import os

import numpy as np
import onnx
import torch
import torch.ao.quantization.fx._decomposed  # noqa: F401  (registers the quantized_decomposed ops the exporter maps)
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.experimental.optimization import fuse
from torch.nn.utils import parametrize

from dlperf.atomic import atomic_write
from dlperf.export.onnx_export import Exported, export_onnx

QDQ_OPSET = 21             # DequantizeLinear of int4 (and the opset every QDQ model here is written at)
OBSERVER_AVERAGING = 0.01  # torch.ao's MovingAverageMinMaxObserver
INT4_RANGE = (-8, 7)
WEIGHT_LAYERS = (nn.Conv2d, nn.Linear)
ON_GRID_FUNCTIONS = (operator.getitem, F.pad, torch.flatten, F.max_pool2d)  # a quantized input stays on its grid
ON_GRID_METHODS = ("flatten", "view", "reshape")
ON_GRID_MODULES = (nn.Flatten, nn.MaxPool2d)
quantized_decomposed = torch.ops.quantized_decomposed


def weight_qmax(bits: int, reduce_range: bool = False) -> int:
    """The largest integer of a symmetric ``bits``-bit weight (onnxruntime's: 127 at 8 bits, 64 with
    ``reduce_range``)."""
    return 2 ** (bits - 2) if reduce_range else 2 ** (bits - 1) - 1


class WeightFakeQuant(nn.Module):
    """A parametrization rounding a conv or linear weight to symmetric integers of ``qmax`` at most, per output
    channel (or one scale for the tensor)."""

    def __init__(self, qmax: int, per_channel: bool = True):
        super().__init__()
        self.qmax, self.per_channel = qmax, per_channel

    def scale(self, weight: torch.Tensor) -> torch.Tensor:
        """``amax / qmax`` per output channel; 1 for a channel of zeros (a pruned one), as onnxruntime sets it."""
        amax = weight.detach().abs().flatten(1).amax(1).float()
        amax = amax if self.per_channel else amax.max().expand_as(amax)
        return torch.where(amax > 0, amax / self.qmax, torch.ones_like(amax))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        zero = torch.zeros(weight.shape[0], dtype=torch.int32, device=weight.device)
        return torch.fake_quantize_per_channel_affine(weight, self.scale(weight), zero, 0, -self.qmax, self.qmax)


class ActivationFakeQuant(nn.Module):
    """Affine uint8 fake quantization of a tensor, its range observed while training."""

    qmax = 255

    def __init__(self):
        super().__init__()
        self.register_buffer("low", torch.tensor(0.0))
        self.register_buffer("high", torch.tensor(0.0))
        self.register_buffer("observed", torch.tensor(False))

    def qparams(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Scale and zero point of the range so far, widened to hold 0 (onnxruntime's rule; a zero scale is 1)."""
        low, high = self.low.clamp(max=0), self.high.clamp(min=0)
        scale = (high - low) / self.qmax
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        zero_point = torch.round(-low / scale).clamp(0, self.qmax).to(torch.int32)
        return scale.reshape(1), zero_point.reshape(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            with torch.no_grad():
                low, high = x.detach().min().float(), x.detach().max().float()
                weight = torch.where(self.observed, OBSERVER_AVERAGING, 1.0)
                self.low.lerp_(low, weight)
                self.high.lerp_(high, weight)
                self.observed.fill_(True)
        scale, zero_point = self.qparams()
        return torch.fake_quantize_per_tensor_affine(x, scale, zero_point, 0, self.qmax)


def _module(node: fx.Node, modules: dict[str, nn.Module]) -> nn.Module | None:
    return modules.get(node.target) if node.op == "call_module" else None


def _is_layer(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    return isinstance(_module(node, modules), WEIGHT_LAYERS)


def _is_add(node: fx.Node) -> bool:
    return node.op == "call_function" and node.target in (operator.add, operator.iadd, torch.add)


def _is_relu(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    return ((node.op == "call_function" and node.target in (F.relu, torch.relu))
            or (node.op == "call_method" and node.target == "relu") or isinstance(_module(node, modules), nn.ReLU))


def _keeps_grid(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    return ((node.op == "call_function" and node.target in ON_GRID_FUNCTIONS)
            or (node.op == "call_method" and node.target in ON_GRID_METHODS)
            or isinstance(_module(node, modules), ON_GRID_MODULES))


def quantization_points(model: fx.GraphModule) -> list[fx.Node]:
    """The nodes whose outputs onnxruntime's QDQ quantizer would quantize (see the module docstring), in order."""
    modules = dict(model.named_modules())
    points: list[fx.Node] = []
    on_grid: set[fx.Node] = set()

    def quantize(node: fx.Node) -> None:
        points.append(node)
        on_grid.add(node)

    for node in model.graph.nodes:
        if node.op == "placeholder":
            quantize(node)
        elif _keeps_grid(node, modules) and node.args and node.args[0] in on_grid:
            on_grid.add(node)
        elif _is_layer(node, modules) or _is_add(node):
            for source in node.all_input_nodes:
                if source not in on_grid:
                    quantize(source)
            users = list(node.users)
            quantize(users[0] if len(users) == 1 and _is_relu(users[0], modules) else node)
    return points


def prepare_qat(model: nn.Module, weight_bits: int = 8, activation_bits: int | None = 8, *,
                per_channel: bool = True, reduce_range: bool = False) -> fx.GraphModule:
    """The fake-quantized twin of ``model`` (a copy; BatchNorm folded, see the module docstring), in train mode,
    ready for the training engine: weights rounded to ``weight_bits``, activations to uint8 (``activation_bits=8``,
    onnxruntime's activation type) or kept in float (None: a weight-only model)."""
    if activation_bits not in (8, None):
        raise ValueError(f"activations are quantized to 8 bits or not at all, not {activation_bits}")
    if not 2 <= weight_bits <= 8:
        raise ValueError(f"weights are quantized to 2 to 8 bits (stored as int8 or int4), not {weight_bits}")
    folded = fuse(copy.deepcopy(model).eval())
    for layer in folded.modules():
        if isinstance(layer, WEIGHT_LAYERS):
            parametrize.register_parametrization(layer, "weight",
                                                 WeightFakeQuant(weight_qmax(weight_bits, reduce_range), per_channel))
    if activation_bits is not None:
        for node in quantization_points(folded):
            name = f"{node.name}_quant"
            folded.add_submodule(name, ActivationFakeQuant())
            with folded.graph.inserting_after(node):
                quantized = folded.graph.call_module(name, (node,))
            node.replace_all_uses_with(quantized, delete_user_cb=lambda user, q=quantized: user is not q)
        folded.recompile()
    return folded.train()


def weight_only_ptq(model: nn.Module, bits: int = 4, *, per_channel: bool = True) -> fx.GraphModule:
    """Post-training weight-only quantization: ``model``'s weights rounded to ``bits`` bits as :func:`prepare_qat`
    rounds them, activations in float, nothing trained (the baseline weight-only QAT is judged against)."""
    return prepare_qat(model, bits, None, per_channel=per_channel).eval()


# ---- export: the fake quantizers' integer forms, written by the workflow's exporter ---------------------------
class QuantizeDequantize(nn.Module):
    """An activation quantizer's exportable form: QuantizeLinear then DequantizeLinear at its learnt uint8 scale."""

    def __init__(self, scale: float, zero_point: int):
        super().__init__()
        self.scale, self.zero_point = scale, zero_point

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = quantized_decomposed.quantize_per_tensor(x, self.scale, self.zero_point, 0, 255, torch.uint8)
        return quantized_decomposed.dequantize_per_tensor(q, self.scale, self.zero_point, 0, 255, torch.uint8)


class IntegerWeightLayer(nn.Module):
    """A fake-quantized conv or linear layer's exportable form: its integer weights as int8, dequantized per output
    channel; its bias as int32 at ``input_scale`` x weight scale when the input is quantized (else in float)."""

    def __init__(self, layer: nn.Conv2d | nn.Linear, input_scale: float | None):
        super().__init__()
        original = layer.parametrizations.weight.original.detach()
        scale = layer.parametrizations.weight[0].scale(original)
        weight = layer.weight.detach()
        self.register_buffer("codes", torch.round(weight / scale.view(-1, *[1] * (weight.dim() - 1))).to(torch.int8))
        self.register_buffer("scale", scale)
        self.register_buffer("zero_point", torch.zeros_like(scale, dtype=torch.int32))
        bias = None if layer.bias is None else layer.bias.detach()
        self.quantized_bias = input_scale is not None and bias is not None
        if self.quantized_bias:
            bias_scale = (input_scale * scale).float()
            self.register_buffer("bias_scale", bias_scale)
            self.register_buffer("bias", torch.round(bias / bias_scale).to(torch.int32))
        else:
            self.register_buffer("bias", bias)
        if isinstance(layer, nn.Conv2d) and layer.padding_mode != "zeros":
            raise ValueError(f"only zero-padded convolutions are exported, not {layer.padding_mode!r} padding")
        is_conv = isinstance(layer, nn.Conv2d)
        self.conv = (layer.stride, layer.padding, layer.dilation, layer.groups) if is_conv else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = quantized_decomposed.dequantize_per_channel(self.codes, self.scale, self.zero_point, 0, -128, 127,
                                                             torch.int8)
        bias = self.bias
        if self.quantized_bias:
            info = torch.iinfo(torch.int32)
            bias = quantized_decomposed.dequantize_per_channel(bias, self.bias_scale, self.zero_point, 0, info.min,
                                                               info.max, torch.int32)
        return F.linear(x, weight, bias) if self.conv is None else F.conv2d(x, weight, bias, *self.conv)


def _source_quantizer(node: fx.Node, modules: dict[str, nn.Module]) -> ActivationFakeQuant | None:
    """The activation quantizer whose grid ``node`` is on (its output, or that output sliced, padded, flattened)."""
    while _keeps_grid(node, modules):
        node = node.args[0]
    quantizer = _module(node, modules)
    return quantizer if isinstance(quantizer, ActivationFakeQuant) else None


def _exportable(quantizer: ActivationFakeQuant, name: str) -> QuantizeDequantize:
    if not quantizer.observed:
        raise ValueError(f"{name} has seen no data: train (or run) the model in train mode first")
    scale, zero_point = quantizer.qparams()
    return QuantizeDequantize(float(scale), int(zero_point))


def convert_for_export(model: fx.GraphModule) -> fx.GraphModule:
    """A copy of a :func:`prepare_qat` model, on the CPU in eval mode, with each fake quantizer in its exportable
    form; its outputs are the fake-quantized model's, up to the int32 rounding of the biases.

    onnxruntime fuses a Conv, Gemm or Add into its integer kernel only when each input comes straight from a
    DequantizeLinear, so an input that reaches one through slicing or padding is quantized again, at its own
    scale (which leaves its values as they are)."""
    model = copy.deepcopy(model).cpu().eval()
    modules = dict(model.named_modules())
    requantized: dict[fx.Node, fx.Node] = {}
    for node in list(model.graph.nodes):
        module = _module(node, modules)
        if isinstance(module, ActivationFakeQuant):
            model.set_submodule(node.target, _exportable(module, node.target))
        elif isinstance(module, WEIGHT_LAYERS) and parametrize.is_parametrized(module, "weight"):
            quantizer = _source_quantizer(node.args[0], modules)
            input_scale = None if quantizer is None else float(quantizer.qparams()[0])
            model.set_submodule(node.target, IntegerWeightLayer(module, input_scale))
        if not (_is_layer(node, modules) or _is_add(node)):
            continue
        for source in node.all_input_nodes:
            quantizer = _source_quantizer(source, modules)
            if quantizer is None or _module(source, modules) is quantizer:
                continue
            if source not in requantized:
                name = f"{source.name}_requant"
                model.add_submodule(name, _exportable(quantizer, name))
                with model.graph.inserting_after(source):
                    requantized[source] = model.graph.call_module(name, (source,))
            node.replace_input_with(source, requantized[source])
    model.recompile()
    return model


def export_qdq(model: fx.GraphModule, sample: torch.Tensor, path: str | os.PathLike, *,
               tolerance: float | None = None) -> Exported:
    """Write a :func:`prepare_qat` model to ``path`` as a QDQ ONNX model (opset 21, dynamic batch, input ``input``,
    output ``logits``), checked against its exportable form on ``sample`` within ``tolerance`` when one is given;
    4-bit weights are stored packed (:func:`pack_int4`)."""
    exported = export_onnx(convert_for_export(model), sample, path, opset=QDQ_OPSET, tolerance=tolerance)
    return dataclasses.replace(exported, proto=onnx.load(str(path))) if pack_int4(path) else exported


def int4_bytes(values: np.ndarray) -> bytes:
    """``values`` (integers in [-8, 7]) as ONNX stores INT4: two to a byte, the first in the low nibble."""
    nibbles = (values.astype(np.int8).ravel() & 0x0F).astype(np.uint8)
    nibbles = np.append(nibbles, np.uint8(0)) if len(nibbles) % 2 else nibbles
    return (nibbles[0::2] | (nibbles[1::2] << 4)).tobytes()


def pack_int4(path: str | os.PathLike) -> int:
    """Store each int8 weight initializer behind a DequantizeLinear whose values fit in 4 bits as INT4, two to a
    byte, in place (its zero point, all zeros, is dropped: zero is the default, and DequantizeLinear wants it in
    the weight's type); returns how many were packed. A symmetric 8-bit weight always holds its ``qmax``, so only
    weights quantized to 4 bits or fewer are packed."""
    model = onnx.load(str(path))
    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    packed = 0
    for node in graph.node:
        tensor = initializers.get(node.input[0]) if node.op_type == "DequantizeLinear" else None
        if tensor is None or tensor.data_type != onnx.TensorProto.INT8:
            continue
        values = onnx.numpy_helper.to_array(tensor)
        zero_point = node.input[2] if len(node.input) > 2 else ""
        if zero_point and (zero_point not in initializers
                           or onnx.numpy_helper.to_array(initializers[zero_point]).any()):
            continue
        if INT4_RANGE[0] <= values.min() and values.max() <= INT4_RANGE[1]:
            tensor.CopyFrom(onnx.helper.make_tensor(tensor.name, onnx.TensorProto.INT4, values.shape,
                                                    int4_bytes(values), raw=True))
            del node.input[2:]
            packed += 1
    if packed:
        used = {name for node in graph.node for name in node.input}
        kept = [t for t in graph.initializer if t.name in used]
        del graph.initializer[:]
        graph.initializer.extend(kept)
        onnx.checker.check_model(model)
        with atomic_write(path, "wb") as fh:
            fh.write(model.SerializeToString())
    return packed
