"""ImageNet-style ResNet-18 / ResNet-50: torchvision's blocks and module names, so torchvision's weights load strictly.

Adapted to 32 px as is customary for CIFAR (kuangliu/pytorch-cifar): a 3x3 stride-1 stem and no max-pool, so the
last stage sees 4x4 maps. Their base width (64 published) is a parameter: the embedded default uses a narrower net
of the same depth. The transfer study's ResNet-50 backbone is the same net with torchvision's ImageNet stem.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck


class ImageNetStyleResNet(nn.Module):
    """torchvision's ResNet topology (same block classes and module names, so torchvision's weights load strictly)
    with a configurable base width (64 is the published one; a narrower net keeps the CPU default fast).

    ``stem="cifar"``: a 3x3 stride-1 stem and no max-pool, for 32-px inputs; ``stem="imagenet"``: torchvision's
    7x7 stride-2 convolution and 3x3 stride-2 max-pool.
    """

    def __init__(self, block, layers: list[int], num_classes: int = 10, width: int = 64, stem: str = "cifar"):
        super().__init__()
        if stem not in ("cifar", "imagenet"):
            raise ValueError(f"unknown stem {stem!r}: expected cifar or imagenet")
        self.inplanes = width
        self.conv1 = (nn.Conv2d(3, width, 3, stride=1, padding=1, bias=False) if stem == "cifar"
                      else nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False))
        self.maxpool = nn.Identity() if stem == "cifar" else nn.MaxPool2d(3, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(width)
        self.layer1 = self._make_layer(block, width, layers[0], 1)
        self.layer2 = self._make_layer(block, 2 * width, layers[1], 2)
        self.layer3 = self._make_layer(block, 4 * width, layers[2], 2)
        self.layer4 = self._make_layer(block, 8 * width, layers[3], 2)
        self.fc = nn.Linear(8 * width * block.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _make_layer(self, block, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride=stride, bias=False),
                                       nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def resnet18_cifar(num_classes: int = 10, width: int = 64) -> nn.Module:
    return ImageNetStyleResNet(BasicBlock, [2, 2, 2, 2], num_classes, width)


def resnet50_cifar(num_classes: int = 10, width: int = 64) -> nn.Module:
    return ImageNetStyleResNet(Bottleneck, [3, 4, 6, 3], num_classes, width)
