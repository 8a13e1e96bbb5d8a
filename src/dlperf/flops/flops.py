"""Per-layer FLOP counting for any torch model, in the PALEO convention.

Counting runs the model once on the ``meta`` device: parameters and buffers are swapped for meta
tensors of the same shape (``torch.func.functional_call``), so no arithmetic is done, nothing is
allocated, and the caller's model is left exactly as it was. ``FlopCounterMode`` supplies the
formulas (it counts a multiply-accumulate as 2 FLOPs: convolution and matrix products, bias
excluded); forward hooks on every module cut its running total into one row per leaf-module call.

Conventions (PALEO, Qi et al. 2017, ``paleo/profilers/flops_profiler.py``):

* ``macs`` are the multiply-accumulates of convolutions and matrix products; ``flops`` is
  ``flop_per_mac × macs`` (2 in PALEO, 1 for the "FLOPs = MACs" convention of many model zoos).
* Bias, BN, ReLU, pooling and residual additions cost nothing by default ("by no means the
  bottleneck"); ``include_elementwise=True`` adds one FLOP per output element of BN, ReLU,
  pooling and tensor additions (bias stays free, as in PALEO).
* The model is counted as at inference (eval mode: dropout is the identity, BN uses running
  statistics); the mode the caller had is restored afterwards.
* Backward, when asked for, follows PALEO: the gradients with respect to the input and to the
  weights are two more products of the forward's size, so ``backward_flops = 2 × flop_per_mac × macs``.
  A real backward pass skips the input gradient of the first layer (the images need none), so
  this overstates it by that one term; elementwise backward work is not modelled.

Work that a non-leaf module does itself between its children's calls (a residual ``out += identity``,
GoogLeNet's functional ReLU) gets a row of type ``"functional"`` named after that module.
"""
from __future__ import annotations

from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, replace
from math import prod
from typing import Iterator, Sequence

import pandas as pd
import torch
from torch import nn
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode

aten = torch.ops.aten

_COUNTER_FLOPS_PER_MAC = 2  # FlopCounterMode's formulas count multiply and add

# The ops these layers reach in FlopCounterMode (after its decompositions) on the meta device in eval
# mode, where counting runs; other activations (ReLU6, GELU, …) are not counted.
_ELEMENTWISE_SINGLE = (aten.relu, aten.relu_, aten.add, aten.add_, aten.avg_pool2d, aten.avg_pool3d,
                       aten._adaptive_avg_pool2d, aten.mean)  # AdaptiveAvgPool2d(1) runs as a mean
"""Ops returning one tensor that ``include_elementwise`` charges 1 FLOP per output element."""
_ELEMENTWISE_TUPLE = (aten._native_batch_norm_legit_no_training, aten._native_batch_norm_legit,
                      aten.max_pool2d_with_indices, aten.max_pool3d_with_indices, aten.adaptive_max_pool2d)
"""Same, for ops returning (output, statistics or indices): only the first output counts."""
_ELEMENTWISE = frozenset(_ELEMENTWISE_SINGLE + _ELEMENTWISE_TUPLE)

@dataclass(frozen=True)
class LayerCount:
    """One call of a leaf module (or one stretch of a non-leaf module's own ``"functional"`` work).

    ``params`` are the module's own parameters, charged to its first call only so that they sum to
    the model's count; shapes are those of the first tensor in and out (None for functional rows).
    """

    name: str
    type: str
    input_shape: tuple[int, ...] | None
    output_shape: tuple[int, ...] | None
    params: int
    macs: int
    flops: int
    backward_flops: int | None = None
    flops_fwd_bwd: int | None = None


def is_leaf(module: nn.Module) -> bool:
    """A module without children: the unit that gets one row per call."""
    return next(module.children(), None) is None


def module_names(model: nn.Module) -> dict[nn.Module, str]:
    """Qualified name of every module; the model itself is named by its class rather than ``""``."""
    return {module: (name or type(model).__name__) for name, module in model.named_modules()}


class CallNames:
    """Names calls ``name``, ``name#2``, ``name#3``, … so that a module run several times keeps apart.

    Shared by FLOP counting and layer timing, so their rows join on the name.
    """

    def __init__(self) -> None:
        self._calls: Counter[str] = Counter()

    def __call__(self, name: str) -> tuple[str, bool]:
        """The call's name and whether it is the module's first call."""
        self._calls[name] += 1
        k = self._calls[name]
        return (name if k == 1 else f"{name}#{k}"), k == 1


def _first_shape(value) -> tuple[int, ...] | None:
    tensors = [leaf for leaf in tree_leaves(value) if isinstance(leaf, torch.Tensor)]
    return tuple(tensors[0].shape) if tensors else None


def _single_output_elements(*args, out_shape, **kwargs) -> int:
    return prod(out_shape)


def _first_output_elements(*args, out_shape, **kwargs) -> int:
    return prod(out_shape[0])


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        yield
    finally:
        for module, training in modes.items():
            module.train(training)


class _Recorder:
    """Forward hooks that turn FlopCounterMode's running total into rows, in execution order.

    Between two hook events exactly one module is innermost (the top of ``stack``); whatever the
    counter gained since the last event was that module's own work.
    """

    def __init__(self, model: nn.Module, counter: FlopCounterMode, flop_per_mac: int) -> None:
        self.names = module_names(model)
        self.counter = counter
        self.flop_per_mac = flop_per_mac
        self.call_names = CallNames()
        self.stack: list[tuple[nn.Module, tuple[int, ...] | None]] = []
        self.rows: list[LayerCount] = []
        self.mark = (0, 0)

    def _tally(self) -> tuple[int, int]:
        counts = self.counter.get_flop_counts().get("Global", {})
        elementwise = sum(flops for op, flops in counts.items() if op in _ELEMENTWISE)
        return sum(counts.values()) - elementwise, elementwise

    def _take(self) -> tuple[int, int]:
        """MACs and elementwise FLOPs counted since the previous event."""
        now = self._tally()
        mac_flops, elementwise = now[0] - self.mark[0], now[1] - self.mark[1]
        self.mark = now
        return mac_flops // _COUNTER_FLOPS_PER_MAC, elementwise

    def _add_row(self, module: nn.Module, kind: str, input_shape, output_shape, params: int) -> None:
        name, first = self.call_names(self.names[module])
        macs, elementwise = self._take()
        self.rows.append(LayerCount(name=name, type=kind, input_shape=input_shape, output_shape=output_shape,
                                    params=params if first else 0, macs=macs,
                                    flops=self.flop_per_mac * macs + elementwise))

    def _flush_functional(self) -> None:
        """Work since the last event happened outside any leaf: it belongs to the innermost open module."""
        if self._tally() != self.mark:
            self._add_row(self.stack[-1][0], "functional", None, None, 0)

    def pre_hook(self, module: nn.Module, args) -> None:
        self._flush_functional()
        self.stack.append((module, _first_shape(args)))

    def post_hook(self, module: nn.Module, args, output) -> None:
        if is_leaf(module):
            params = sum(p.numel() for p in module.parameters(recurse=False))
            self._add_row(module, type(module).__name__, self.stack[-1][1], _first_shape(output), params)
        else:
            self._flush_functional()
        self.stack.pop()


def count_layers(model: nn.Module, input_shape: Sequence[int], *, flop_per_mac: int = 2,
                 backward: bool = False, include_elementwise: bool = False) -> list[LayerCount]:
    """Rows for every leaf-module call of ``model`` on an input of ``input_shape`` (batch included).

    Counted on the meta device (see the module docstring), so a 224 px VGG costs milliseconds; models
    whose control flow reads tensor values cannot be counted this way.
    """
    custom = {}
    if include_elementwise:
        custom = {**{op: _single_output_elements for op in _ELEMENTWISE_SINGLE},
                  **{op: _first_output_elements for op in _ELEMENTWISE_TUPLE}}
    counter = FlopCounterMode(display=False, custom_mapping=custom)
    recorder = _Recorder(model, counter, flop_per_mac)
    meta_state = {name: torch.empty_like(tensor, device="meta")
                  for name, tensor in [*model.named_parameters(), *model.named_buffers()]}
    handles = []
    for module in model.modules():
        handles.append(module.register_forward_pre_hook(recorder.pre_hook))
        handles.append(module.register_forward_hook(recorder.post_hook))
    try:
        with _eval_mode(model), torch.no_grad(), counter:
            torch.func.functional_call(model, meta_state, (torch.empty(*input_shape, device="meta"),))
    finally:
        for handle in handles:
            handle.remove()
    if not backward:
        return recorder.rows
    return [replace(row, backward_flops=2 * flop_per_mac * row.macs,
                    flops_fwd_bwd=row.flops + 2 * flop_per_mac * row.macs) for row in recorder.rows]


def _is_conv(layer: LayerCount) -> bool:
    return layer.type.startswith("Conv")  # Conv1d/2d/3d and ConvTranspose*d


def summarize(layers: Sequence[LayerCount]) -> dict[str, float]:
    """Model totals and the share of MACs in convolutions (Lu et al.'s "conv ≈ 99 % of VGG16")."""
    macs = sum(layer.macs for layer in layers)
    return {
        "params": sum(layer.params for layer in layers),
        "macs": macs,
        "flops": sum(layer.flops for layer in layers),
        "conv_share": sum(layer.macs for layer in layers if _is_conv(layer)) / macs if macs else 0.0,
    }


def _shape_text(shape: tuple[int, ...] | None) -> str:
    return "" if shape is None else "x".join(map(str, shape))


def layers_table(layers: Sequence[LayerCount]) -> pd.DataFrame:
    """One row per layer call, shapes as ``1x3x224x224`` text so the CSV reads plainly.

    ``share`` is the layer's fraction of all forward FLOPs; the backward columns appear when the
    layers were counted with ``backward=True``. ``DataFrame.attrs`` carries ``summarize(layers)``.
    """
    total = sum(layer.flops for layer in layers)
    table = pd.DataFrame({
        "layer": [layer.name for layer in layers],
        "type": [layer.type for layer in layers],
        "input_shape": [_shape_text(layer.input_shape) for layer in layers],
        "output_shape": [_shape_text(layer.output_shape) for layer in layers],
        "params": [layer.params for layer in layers],
        "macs": [layer.macs for layer in layers],
        "flops": [layer.flops for layer in layers],
        "share": [layer.flops / total if total else 0.0 for layer in layers],
    })
    if layers and layers[0].backward_flops is not None:
        table["backward_flops"] = [layer.backward_flops for layer in layers]
        table["flops_fwd_bwd"] = [layer.flops_fwd_bwd for layer in layers]
    table.attrs.update(summarize(layers))
    return table


def model_flops_per_step(model: nn.Module, input_shape: Sequence[int], batch: int) -> float:
    """Forward + backward FLOPs (2 per MAC, PALEO backward) of one training step on ``batch`` samples.

    ``input_shape`` is one sample's shape, without the batch dimension (e.g. ``(3, 32, 32)``). The
    numerator of percent-of-peak: it counts the work the model needs, not what the kernels execute.
    """
    layers = count_layers(model, (batch, *input_shape), backward=True)
    return float(sum(layer.flops_fwd_bwd for layer in layers))
