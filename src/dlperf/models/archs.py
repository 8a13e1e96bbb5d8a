"""What a plan or a summary reads off a model's config name without building the model. No torch here: the
workflow plans with these before any job runs, and summaries of finished runs need no model."""
from __future__ import annotations

IMAGENET_STYLE = ("resnet18", "resnet50")  # the CIFAR ResNets with a configurable base width (torchvision's blocks)

BACKBONES = ("resnet50", "mobilenet_v2", "inception_v3")  # the transfer study's ImageNet architectures
MIN_IMAGE_SIZE = {"resnet50": 32, "mobilenet_v2": 32, "inception_v3": 75}  # the smallest input each one takes


def arch_depth(arch: str) -> int:
    """Depth (weight layers) named by an architecture string: resnet20 -> 20, resnet50 -> 50."""
    return int(arch.removeprefix("resnet"))
