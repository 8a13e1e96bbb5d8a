"""MobileNetV1-SSD with pytorch-ssd's exact state_dict names, so its published checkpoints load strictly.

The module tree mirrors ``create_mobilenetv1_ssd`` of github.com/qfgaohao/pytorch-ssd:

* ``base_net``: MobileNetV1's feature ``Sequential`` of 14 blocks. Block 0 is ``conv_bn`` (conv, BN, ReLU),
  blocks 1-13 are ``conv_dw`` (depthwise conv, BN, ReLU, pointwise conv, BN, ReLU), so state_dict keys
  read ``base_net.{k}.{0,1,3,4}.*``. Plain ReLU, not ReLU6, as in the published weights.
* heads read the base net at ``source_layer_indexes = (12, 14)``: after block 11 (stride 16) and after
  block 13 (stride 32);
* ``extras``: four ``Sequential(1x1 conv, ReLU, 3x3 stride-2 conv, ReLU)`` blocks, each feeding one head;
* ``classification_headers`` / ``regression_headers``: one 3x3 conv per map with
  ``priors_per_location * num_classes`` / ``priors_per_location * 4`` outputs.

``width_mult`` scales every channel count (rounded, at least 1), for small CPU models; at 1.0 the
state_dict equals pytorch-ssd's. The input size only changes the feature-map sizes; the priors are built
for the ``image_size`` given at construction (see :mod:`dlperf.detection.priors` for how), and the model
must then be fed images of that size.

The priors are a non-persistent buffer: they follow ``.to(device)`` (pytorch-ssd pins them to the device
chosen at construction) and stay out of the state_dict (so checkpoints match pytorch-ssd's keys).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from dlperf.detection.box_utils import (
    CENTER_VARIANCE,
    SIZE_VARIANCE,
    center_form_to_corner_form,
    decode_locations,
)
from dlperf.detection.priors import (
    PUBLISHED_IMAGE_SIZE,
    generate_ssd_priors,
    mobilenet_v1_specs,
    priors_per_location,
)

IMAGE_MEAN = 127.0  # pytorch-ssd's mobilenet preprocessing: (rgb - 127) / 128
IMAGE_STD = 128.0

STEM_CHANNELS = 32  # base_net block 0, a stride-2 conv_bn
# (output channels, stride) of the conv_dw base_net blocks 1..13
DEPTHWISE_BLOCKS = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1),
    (1024, 2), (1024, 1),
)  # fmt: skip
SOURCE_LAYER_INDEXES = (12, 14)  # heads read base_net[:12] (stride 16) and base_net[12:14] (stride 32)
# (1x1 bottleneck channels, 3x3 stride-2 output channels) of each extra block.
EXTRA_BLOCKS = ((256, 512), (128, 256), (128, 256), (128, 256))
HEADER_PREFIXES = ("classification_headers.", "regression_headers.")


def conv_bn(inp: int, oup: int, stride: int) -> nn.Sequential:
    """Full 3x3 conv + BN + ReLU (MobileNetV1's stem)."""
    return nn.Sequential(nn.Conv2d(inp, oup, 3, stride, 1, bias=False), nn.BatchNorm2d(oup), nn.ReLU(inplace=True))


def conv_dw(inp: int, oup: int, stride: int) -> nn.Sequential:
    """Depthwise-separable block: 3x3 depthwise conv + BN + ReLU, then 1x1 pointwise conv + BN + ReLU."""
    return nn.Sequential(
        nn.Conv2d(inp, inp, 3, stride, 1, groups=inp, bias=False),
        nn.BatchNorm2d(inp),
        nn.ReLU(inplace=True),
        nn.Conv2d(inp, oup, 1, 1, 0, bias=False),
        nn.BatchNorm2d(oup),
        nn.ReLU(inplace=True),
    )


def extra_block(inp: int, bottleneck: int, oup: int) -> nn.Sequential:
    """1x1 reduction then 3x3 stride-2 conv, both with bias: halves the map for the next head."""
    return nn.Sequential(
        nn.Conv2d(inp, bottleneck, 1),
        nn.ReLU(),
        nn.Conv2d(bottleneck, oup, 3, stride=2, padding=1),
        nn.ReLU(),
    )


def xavier_init_(module: nn.Module) -> None:
    """Xavier-uniform on every conv weight below ``module`` (biases keep their defaults), as pytorch-ssd
    initialises layers that get no pretrained weights."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.xavier_uniform_(m.weight)


class SSD(nn.Module):
    """Single-shot detector over a base net, pytorch-ssd's ``SSD`` without its unused hooks.

    ``forward`` returns raw head outputs ``(confidences [N, P, C], locations [N, P, 4])`` for training;
    with ``is_test`` set it returns ``(scores, boxes)``: softmax probabilities and corner-form boxes
    relative to the image (not clipped), which is what the predictor and the ONNX export consume.
    """

    def __init__(
        self,
        num_classes: int,
        base_net: nn.Sequential,
        source_layer_indexes: Sequence[int],
        extras: nn.ModuleList,
        classification_headers: nn.ModuleList,
        regression_headers: nn.ModuleList,
        priors: torch.Tensor,
        image_size: int,
        center_variance: float = CENTER_VARIANCE,
        size_variance: float = SIZE_VARIANCE,
        is_test: bool = False,
    ):
        super().__init__()
        self.num_classes = num_classes
        self.base_net = base_net
        self.source_layer_indexes = tuple(source_layer_indexes)
        self.extras = extras
        self.classification_headers = classification_headers
        self.regression_headers = regression_headers
        self.register_buffer("priors", priors, persistent=False)
        self.image_size = image_size
        self.center_variance = center_variance
        self.size_variance = size_variance
        self.is_test = is_test

    def heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw head outputs, concatenated map by map, each map row-major with the cell's priors innermost."""
        sources = []
        start = 0
        for end in self.source_layer_indexes:
            for layer in self.base_net[start:end]:
                x = layer(x)
            sources.append(x)
            start = end
        for layer in self.base_net[start:]:
            x = layer(x)
        for layer in self.extras:
            x = layer(x)
            sources.append(x)
        confidences, locations = [], []
        for source, classify, regress in zip(sources, self.classification_headers, self.regression_headers):
            n = source.shape[0]
            confidences.append(classify(source).permute(0, 2, 3, 1).reshape(n, -1, self.num_classes))
            locations.append(regress(source).permute(0, 2, 3, 1).reshape(n, -1, 4))
        return torch.cat(confidences, dim=1), torch.cat(locations, dim=1)

    def detect(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(scores [N, P, C], boxes [N, P, 4])``: class probabilities and corner-form boxes in 0..1."""
        confidences, locations = self.heads(x)
        boxes = decode_locations(locations, self.priors, self.center_variance, self.size_variance)
        return F.softmax(confidences, dim=2), center_form_to_corner_form(boxes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.detect(x) if self.is_test else self.heads(x)

    def init_from_base_net(self, base_net_state: Mapping[str, torch.Tensor]) -> None:
        """Start training from an ImageNet base net (keys ``0.0.weight`` ...): load it strictly and
        Xavier-initialise extras and heads, as pytorch-ssd's ``--base_net``."""
        self.base_net.load_state_dict(base_net_state, strict=True)
        for part in (self.extras, self.classification_headers, self.regression_headers):
            xavier_init_(part)

    def init_from_pretrained_ssd(self, ssd_state: Mapping[str, torch.Tensor]) -> None:
        """Fine-tune from another SSD, possibly with a different class count (pytorch-ssd's
        ``--pretrained_ssd``): load everything but the heads, then Xavier-initialise both heads.

        Keys other than the heads must match exactly; anything else means a different architecture.
        """
        body = {k: v for k, v in ssd_state.items() if not k.startswith(HEADER_PREFIXES)}
        missing, unexpected = self.load_state_dict(body, strict=False)
        stray = [k for k in missing if not k.startswith(HEADER_PREFIXES)] + list(unexpected)
        if stray:
            raise KeyError(f"pretrained SSD does not match this model's body: {stray[:5]}")
        xavier_init_(self.classification_headers)
        xavier_init_(self.regression_headers)


def scaled_channels(channels: int, width_mult: float) -> int:
    """Channel count under a width multiplier: rounded to nearest, at least 1."""
    return max(1, int(channels * width_mult + 0.5))


def mobilenet_v1_ssd(
    num_classes: int,
    width_mult: float = 1.0,
    image_size: int = PUBLISHED_IMAGE_SIZE,
    is_test: bool = False,
) -> SSD:
    """MobileNetV1-SSD for ``num_classes`` (background included) and square ``image_size`` inputs.

    At ``width_mult=1.0`` the state_dict equals pytorch-ssd's ``create_mobilenetv1_ssd(num_classes)``;
    at 300 px the priors equal its 3000.
    """
    if width_mult <= 0:
        raise ValueError(f"width_mult must be positive, got {width_mult}")

    def ch(c: int) -> int:
        return scaled_channels(c, width_mult)

    blocks, block_channels = [conv_bn(3, ch(STEM_CHANNELS), 2)], [ch(STEM_CHANNELS)]
    for out, stride in DEPTHWISE_BLOCKS:
        blocks.append(conv_dw(block_channels[-1], ch(out), stride))
        block_channels.append(ch(out))
    # a head at source index i reads the output of base_net block i - 1
    source_channels = [block_channels[i - 1] for i in SOURCE_LAYER_INDEXES]
    channels, extras = block_channels[-1], []
    for bottleneck, out in EXTRA_BLOCKS:
        extras.append(extra_block(channels, ch(bottleneck), ch(out)))
        channels = ch(out)
        source_channels.append(channels)

    specs = mobilenet_v1_specs(image_size)
    per_cell = [priors_per_location(spec) for spec in specs]
    return SSD(
        num_classes=num_classes,
        base_net=nn.Sequential(*blocks),
        source_layer_indexes=SOURCE_LAYER_INDEXES,
        extras=nn.ModuleList(extras),
        classification_headers=nn.ModuleList(
            nn.Conv2d(c, k * num_classes, 3, padding=1) for c, k in zip(source_channels, per_cell)
        ),
        regression_headers=nn.ModuleList(nn.Conv2d(c, k * 4, 3, padding=1) for c, k in zip(source_channels, per_cell)),
        priors=generate_ssd_priors(specs, image_size),
        image_size=image_size,
        is_test=is_test,
    )
