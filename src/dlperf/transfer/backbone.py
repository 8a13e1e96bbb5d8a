"""A transfer backbone from its weights file: torchvision's ImageNet files or a checkpoint of the in-DAG
pretraining, loaded strictly into the configured architecture, with a new head for the target's classes."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from dlperf.models.backbones import head_of, pretrained_backbone


def load_state(path: str | Path) -> dict[str, torch.Tensor]:
    """A weights file: a plain state_dict (torchvision's ImageNet files) or an engine checkpoint's ``model``."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state["model"] if "model" in state and isinstance(state["model"], dict) else state


def backbone_from_file(entry: Mapping, path: str | Path, num_classes: int) -> nn.Module:
    """The configured backbone ``entry`` with the weights of ``path`` and a new head for ``num_classes``."""
    return pretrained_backbone(entry["arch"], load_state(path), str(path), num_classes,
                               width=entry.get("width", 64), width_mult=entry.get("width_mult", 1.0))


def head_features(model: nn.Module, arch: str) -> int:
    return head_of(model, arch).in_features
