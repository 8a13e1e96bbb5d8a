"""ResNets for 32-px CIFAR images, by config name (:func:`cifar_model`).

Two families, as the Optimus study uses them:

* He et al. (2016, §4.2) CIFAR ResNets of depth 6n+2 (20, 32, 44, 56, 110), defined here: a 3x3 stem with 16
  channels, three stages of n basic blocks with 16/32/64 channels, global average pool, linear classifier.
  Shortcuts use **option A** (the paper's CIFAR choice): identity, and where the shape changes, stride-2
  subsampling plus zero-padding of the new channels, so shortcuts add no parameters. This gives the
  paper's parameter counts (ResNet-20 0.27 M, ResNet-56 0.85 M).
* ImageNet-style ResNet-18 / ResNet-50 (:mod:`dlperf.models.imagenet_resnet`, torchvision's blocks).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dlperf.models.archs import IMAGENET_STYLE, arch_depth


class BasicBlockA(nn.Module):
    """Two 3x3 conv-BN layers with an option-A (parameter-free) shortcut."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.stride = stride
        self.pad = planes - in_planes

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1 and self.pad == 0:
            return x
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """He et al.'s 6n+2-layer CIFAR ResNet."""

    def __init__(self, depth: int, num_classes: int = 10, widths: tuple[int, int, int] = (16, 32, 64)):
        super().__init__()
        if (depth - 2) % 6 != 0 or depth < 8:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2 with n >= 1, got {depth}")
        n = (depth - 2) // 6
        self.depth = depth
        self.conv1 = nn.Conv2d(3, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        stages, in_planes = [], widths[0]
        for i, planes in enumerate(widths):
            blocks = []
            for j in range(n):
                blocks.append(BasicBlockA(in_planes, planes, stride=2 if (i > 0 and j == 0) else 1))
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.fc = nn.Linear(widths[-1], num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


def cifar_model(arch: str, num_classes: int = 10, width: int = 64) -> nn.Module:
    """Build a model from its config name: resnet<6n+2> (He et al.), resnet18, resnet50 (ImageNet-style, base
    ``width``)."""
    if arch in IMAGENET_STYLE:
        # torchvision (whose ops import torch._dynamo, seconds at start-up) only for the nets built from its blocks
        from dlperf.models.imagenet_resnet import resnet18_cifar, resnet50_cifar
        return (resnet18_cifar if arch == "resnet18" else resnet50_cifar)(num_classes, width)
    if arch.startswith("resnet") and arch[6:].isdigit():
        return CifarResNet(arch_depth(arch), num_classes)
    raise ValueError(f"unknown CIFAR architecture {arch!r}: expected resnet<6n+2>, resnet18 or resnet50")


def zero_init_residual(model: nn.Module) -> nn.Module:
    """Zero the scale of the last BatchNorm of every residual branch (Goyal et al. 2017, torchvision's
    ``zero_init_residual``): each block then starts as its shortcut, and a deep network trains from its first step
    like a shallow one. Covers the He blocks here and torchvision's BasicBlock and Bottleneck; ``model``."""
    for block in model.modules():
        last = getattr(block, "bn3", None) if hasattr(block, "conv3") else getattr(block, "bn2", None)
        if last is not None and hasattr(block, "conv2"):
            nn.init.zeros_(last.weight)
    return model
