"""ImageNet-zoo backbones for transfer learning: build, load weights strictly, swap the classifier, freeze.

Every backbone keeps torchvision's module names, so torchvision's ImageNet weight files load strictly into the
published widths; narrower ones (``width`` of a ResNet, ``width_mult`` of a MobileNetV2) are the same code at CPU
size, pretrained in the workflow on a synthetic source dataset when there is no ImageNet.

The classifier of each family sits in one place (:data:`HEADS`): ``fc`` for ResNet and Inception-v3, the last
module of ``classifier`` for MobileNetV2. :func:`feature_extractor` replaces it by an identity, so the backbone's
forward returns the pooled features the new head reads.
"""
from __future__ import annotations

from typing import Mapping

import torch
import torchvision
from torch import nn
from torchvision.models.resnet import Bottleneck

from dlperf.models.archs import BACKBONES
from dlperf.models.imagenet_resnet import ImageNetStyleResNet


def build_backbone(arch: str, num_classes: int, *, width: int = 64, width_mult: float = 1.0) -> nn.Module:
    """A randomly initialised ``arch`` with ``num_classes`` outputs (ImageNet's 1000 to load its weights)."""
    if arch == "resnet50":
        return ImageNetStyleResNet(Bottleneck, [3, 4, 6, 3], num_classes, width, stem="imagenet")
    if arch == "mobilenet_v2":
        return torchvision.models.mobilenet_v2(num_classes=num_classes, width_mult=width_mult)
    if arch == "inception_v3":
        # The ImageNet file holds the auxiliary classifier too: build it so the file loads strictly, drop it after.
        # transform_input: the Google weights expect inputs in [-1, 1]; this maps ImageNet-normalised ones there.
        return torchvision.models.inception_v3(num_classes=num_classes, aux_logits=True, init_weights=True,
                                               transform_input=True)
    raise ValueError(f"unknown backbone {arch!r}: expected one of {', '.join(BACKBONES)}")


def _head_parent(model: nn.Module, arch: str) -> tuple[nn.Module, str]:
    if arch in ("resnet50", "inception_v3"):
        return model, "fc"
    if arch == "mobilenet_v2":
        return model.classifier, str(len(model.classifier) - 1)
    raise ValueError(f"unknown backbone {arch!r}")


def head_of(model: nn.Module, arch: str) -> nn.Linear:
    parent, name = _head_parent(model, arch)
    return getattr(parent, name)


def replace_head(model: nn.Module, arch: str, num_classes: int) -> nn.Linear:
    """Put a new, freshly initialised linear classifier for ``num_classes`` on ``model``; return it."""
    parent, name = _head_parent(model, arch)
    old = getattr(parent, name)
    head = nn.Linear(old.in_features, num_classes)
    setattr(parent, name, head)
    if arch == "inception_v3":
        model.aux_logits, model.AuxLogits = False, None  # the auxiliary head classifies ImageNet: not transferred
    return head


def load_weights(model: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Load a state_dict strictly, naming the file and the keys that disagree: missing, unexpected, or of another
    shape (another architecture's file under the right name: a ResNet-18's ``fc.weight`` is [1000, 512]). BatchNorm's
    ``num_batches_tracked`` may be missing: PyTorch fills it in for files saved before 0.4.1."""
    expected = model.state_dict()
    # BatchNorm fills in a num_batches_tracked that files saved before PyTorch 0.4.1 lack
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    reshaped = [f"{k} {list(state[k].shape)} (backbone: {list(v.shape)})" for k, v in expected.items()
                if k in state and state[k].shape != v.shape]
    if missing or unexpected or reshaped:
        raise ValueError(f"{source}: weights do not fit the backbone: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}, other shapes {reshaped[:3]}")
    model.load_state_dict(state, strict=True)


def pretrained_backbone(arch: str, state: Mapping[str, torch.Tensor], source: str, num_classes: int, *,
                        width: int = 64, width_mult: float = 1.0) -> nn.Module:
    """``arch`` with the weights ``state`` (its own classifier included) and a new head for ``num_classes``."""
    source_classes = state[next(k for k in state if k.endswith("weight") and _is_head_key(k, arch))].shape[0]
    model = build_backbone(arch, source_classes, width=width, width_mult=width_mult)
    load_weights(model, state, source)
    replace_head(model, arch, num_classes)
    return model


def _is_head_key(key: str, arch: str) -> bool:
    return key == "fc.weight" if arch in ("resnet50", "inception_v3") else key.startswith("classifier.")


class FrozenFeatures(nn.Module):
    """A frozen backbone that returns pooled features: no gradients, and always in eval mode, so neither its
    weights nor its BatchNorm statistics change while the head on top of it trains."""

    def __init__(self, model: nn.Module, arch: str):
        super().__init__()
        parent, name = _head_parent(model, arch)
        setattr(parent, name, nn.Identity())
        if arch == "inception_v3":
            model.aux_logits, model.AuxLogits = False, None
        if arch == "mobilenet_v2":
            model.classifier = nn.Identity()  # the dropout before the old classifier belongs to the head's side
        self.backbone = model.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> "FrozenFeatures":
        self.training = mode
        self.backbone.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.backbone(x)


class FeatureClassifier(nn.Module):
    """A new linear head on a frozen backbone: the feature-extractor mode trained end to end (no cache)."""

    def __init__(self, features: FrozenFeatures, head: nn.Linear):
        super().__init__()
        self.features, self.head = features, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
