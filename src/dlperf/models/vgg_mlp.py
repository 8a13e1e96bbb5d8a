"""The VGG family of the Edinburgh MLP coursework 2.

Source: VICO-UoE/mlpractical, ``pytorch_mlp_framework/model_architectures.py``.

The coursework shows that VGG_38 does not train on CIFAR-100 (its gradients vanish) while VGG_08 does, and
asks students to fix VGG_38 with batch normalisation (BN) and residual connections (RC). This module
reproduces the coursework's network exactly and adds the two fixes as flags.

Structure (F filters, 3 stages, ``b`` processing blocks per stage), as in the original ``ConvolutionalNetwork``:

* ``input_conv``: conv3x3(3 -> F, bias=False) -> BatchNorm2d -> leaky ReLU. The original has this BN in every
  variant, including the "no-BN" VGGs.
* for each stage ``i`` in 0, 1, 2: processing blocks ``block_{i}_{j}`` (``j`` < b), each
  conv3x3(bias=False) -> leaky ReLU -> conv3x3(bias=False) -> leaky ReLU; then one ``reduction_block_{i}``:
  conv3x3(bias=True) -> leaky ReLU -> avg_pool2d(2) -> conv3x3(bias=True) -> leaky ReLU.
  The reduction block follows **every** stage, the last one included, so 32 px maps end at 4x4.
* global average pool -> ``logit_linear_layer``: Linear(F -> classes, bias=True).

Depth counts weight layers: ``1 + 3 * 2 * b + 3 * 2 + 1 = 8 + 6 b`` (VGG_08: b = 0, VGG_38: b = 5). With F = 32
and 100 classes this gives the coursework's parameter counts, which pin the structure down (a reduction block
fewer, or biases in the processing convs, would change them): VGG_08 59,716; VGG_38 336,196; VGG_38 BN
338,500 (36 extra BatchNorm2d of 2F parameters each); RC adds no parameters.

Variants:

* ``batch_norm``: BatchNorm2d after every conv of the processing and reduction blocks, before its leaky ReLU
  (the reduction convs keep their biases, as the 338,500 count requires).
* ``residual``: in processing blocks only, the block input is added before the block's final activation,
  ``leaky_relu(conv_1(leaky_relu(conv_0(x))) + x)`` (He et al. 2016, Fig. 2); reduction blocks change the
  spatial size and get none, as the coursework specifies.

Module names are the original's, nested ``layer_dict`` included (e.g. ``layer_dict.block_0_0.layer_dict.conv_0``,
``layer_dict.reduction_block_2.layer_dict.conv_1``, ``logit_linear_layer``), so state_dicts of coursework
models load strictly; the added BatchNorms are ``bn_0``/``bn_1`` beside ``conv_0``/``conv_1``, like the entry
block's ``bn_0``. Parameters are registered in forward order, which gradient-flow plots rely on. Weights keep
PyTorch's default initialisation, as in the original: the vanishing gradients of VGG_38 depend on it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

VARIANTS: dict[str, tuple[bool, bool]] = {
    "plain": (False, False),
    "bn": (True, False),
    "rc": (False, True),
    "bn_rc": (True, True),
}
"""Variant name -> (batch_norm, residual)."""


def _conv3x3(in_channels: int, out_channels: int, bias: bool) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=bias)


def _conv_layers(num_filters: int, bias: bool, batch_norm: bool) -> nn.ModuleDict:
    """Two F -> F 3x3 convs named ``conv_0``, ``conv_1``, each followed by ``bn_k`` when ``batch_norm``."""
    layers = nn.ModuleDict()
    for k in range(2):
        layers[f"conv_{k}"] = _conv3x3(num_filters, num_filters, bias)
        if batch_norm:
            layers[f"bn_{k}"] = nn.BatchNorm2d(num_filters)
    return layers


def _conv_bn(layers: nn.ModuleDict, k: int, x: torch.Tensor) -> torch.Tensor:
    x = layers[f"conv_{k}"](x)
    return layers[f"bn_{k}"](x) if f"bn_{k}" in layers else x


class EntryConvolutionalBlock(nn.Module):
    """conv3x3 (no bias) -> BatchNorm2d -> leaky ReLU: the stem, identical in every variant."""

    def __init__(self, in_channels: int, num_filters: int):
        super().__init__()
        self.layer_dict = nn.ModuleDict({"conv_0": _conv3x3(in_channels, num_filters, bias=False),
                                         "bn_0": nn.BatchNorm2d(num_filters)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.layer_dict["bn_0"](self.layer_dict["conv_0"](x)))


class ConvolutionalProcessingBlock(nn.Module):
    """Two bias-free 3x3 convs at constant shape, optionally with BN after each and a residual connection."""

    def __init__(self, num_filters: int, batch_norm: bool = False, residual: bool = False):
        super().__init__()
        self.layer_dict = _conv_layers(num_filters, bias=False, batch_norm=batch_norm)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.leaky_relu(_conv_bn(self.layer_dict, 0, x))
        out = _conv_bn(self.layer_dict, 1, out)
        return F.leaky_relu(out + x if self.residual else out)


class ConvolutionalDimensionalityReductionBlock(nn.Module):
    """conv3x3 -> leaky ReLU -> avg-pool by ``reduction_factor`` -> conv3x3 -> leaky ReLU (convs with bias)."""

    def __init__(self, num_filters: int, batch_norm: bool = False, reduction_factor: int = 2):
        super().__init__()
        self.layer_dict = _conv_layers(num_filters, bias=True, batch_norm=batch_norm)
        self.reduction_factor = reduction_factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.leaky_relu(_conv_bn(self.layer_dict, 0, x))
        out = F.avg_pool2d(out, self.reduction_factor)
        return F.leaky_relu(_conv_bn(self.layer_dict, 1, out))


class VGGMLP(nn.Module):
    """The coursework's ``ConvolutionalNetwork`` for 3-channel images, with optional BN and residual fixes."""

    def __init__(self, *, num_blocks_per_stage: int, num_stages: int = 3, num_filters: int = 32,
                 num_classes: int = 100, batch_norm: bool = False, residual: bool = False):
        super().__init__()
        self.layer_dict = nn.ModuleDict({"input_conv": EntryConvolutionalBlock(3, num_filters)})
        for i in range(num_stages):
            for j in range(num_blocks_per_stage):
                self.layer_dict[f"block_{i}_{j}"] = ConvolutionalProcessingBlock(num_filters, batch_norm, residual)
            self.layer_dict[f"reduction_block_{i}"] = ConvolutionalDimensionalityReductionBlock(num_filters,
                                                                                               batch_norm)
        self.logit_linear_layer = nn.Linear(num_filters, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.layer_dict.values():
            x = block(x)
        return self.logit_linear_layer(F.adaptive_avg_pool2d(x, 1).flatten(1))


def vgg_mlp(depth: int, variant: str = "plain", num_classes: int = 100, num_filters: int = 32) -> VGGMLP:
    """Build VGG_<depth> (depth 8 + 6 b weight layers, e.g. 8 or 38) in one of ``VARIANTS``."""
    if depth < 8 or (depth - 8) % 6:
        raise ValueError(f"VGG depth must be 8 + 6b with b >= 0 (e.g. 8, 38), got {depth}")
    if variant not in VARIANTS:
        raise ValueError(f"unknown VGG variant {variant!r}: expected one of {sorted(VARIANTS)}")
    batch_norm, residual = VARIANTS[variant]
    return VGGMLP(num_blocks_per_stage=(depth - 8) // 6, num_filters=num_filters, num_classes=num_classes,
                  batch_norm=batch_norm, residual=residual)


def vgg_mlp_from_name(name: str, num_classes: int = 100, num_filters: int = 32) -> VGGMLP:
    """A config name to a model: vgg08, vgg38, vgg38_bn, vgg38_rc, vgg38_bn_rc (depth, then the fixes)."""
    depth, *fixes = name.removeprefix("vgg").split("_", 1)
    variant = fixes[0] if fixes else "plain"
    return vgg_mlp(int(depth), variant, num_classes=num_classes, num_filters=num_filters)
