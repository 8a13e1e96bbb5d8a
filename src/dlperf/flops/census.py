"""The census: every network the course trains, at the configuration its publication used, counted once.

The studies train scaled-down versions in the embedded default (VGG_38 with 16 filters, a ResNet-50 of width 8),
so their own tables cannot show the published sizes. The census builds the same model code at the published
settings (one image at the published input size) and counts its parameters and multiply-accumulates, which the
claims ledger (config/claims.yaml) checks against the published numbers at every scale.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import pandas as pd
from torch import nn

from dlperf.flops.flops import count_layers, summarize
from dlperf.models.cifar_resnet import cifar_model
from dlperf.models.mobilenet_ssd import mobilenet_v1_ssd
from dlperf.models.vgg_mlp import vgg_mlp_from_name

COLUMNS = ["model", "published_as", "input", "params", "gmacs"]


class Published(NamedTuple):
    build: Callable[[], nn.Module]
    image_size: int
    published_as: str


def _cifar(arch: str) -> Published:
    return Published(lambda: cifar_model(arch, num_classes=10), 32, "He et al. 2016, CIFAR-10" if arch not in
                     ("resnet18", "resnet50") else "kuangliu/pytorch-cifar, CIFAR-10, width 64")


def _vgg(name: str) -> Published:
    return Published(lambda: vgg_mlp_from_name(name, num_classes=100, num_filters=32), 32,
                     "Edinburgh MLP coursework 2, CIFAR-100, 32 filters")


PUBLISHED: dict[str, Published] = {
    **{arch: _cifar(arch) for arch in ("resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "resnet18",
                                       "resnet50")},
    **{name: _vgg(name) for name in ("vgg08", "vgg38", "vgg38_bn", "vgg38_rc", "vgg38_bn_rc")},
    "mobilenet_v1_ssd": Published(lambda: mobilenet_v1_ssd(21, width_mult=1.0, image_size=300), 300,
                                  "pytorch-ssd mb1-ssd, VOC (21 classes), width 1.0"),
}


def census(names: list[str], flop_per_mac: int) -> pd.DataFrame:
    """Parameters (every trainable and frozen weight) and GMACs at batch 1 of each named published model."""
    rows = []
    for name in names:
        published = PUBLISHED[name]
        model = published.build()
        size = published.image_size
        macs = summarize(count_layers(model, (1, 3, size, size), flop_per_mac=flop_per_mac))["macs"]
        rows.append({"model": name, "published_as": published.published_as, "input": f"3x{size}x{size}",
                     "params": sum(p.numel() for p in model.parameters()), "gmacs": macs / 1e9})
    return pd.DataFrame(rows, columns=COLUMNS)
