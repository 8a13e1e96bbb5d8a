"""The transfer-learning study's pieces that are not a model or a training loop: the target data on the device,
a backbone from its weights file with a new head, a seeded head, epoch timing, and the summary's winner.

Modes: ``finetune`` trains every layer of the pretrained network; ``feature_extractor`` trains only a new linear
head on the frozen backbone, either on cached features (the default: one forward pass per image, no augmentation)
or through the frozen backbone every epoch (only timed, to measure what the cache saves).
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import pandas as pd
import torch
from torch import nn

from dlperf.data.imagefolder import ImageFolderIndex, load_imagefolder_split, scan_imagefolder
from dlperf.models.backbones import head_of, pretrained_backbone
from dlperf.train.data import DeviceImages

SPLITS = ("train", "val", "test")


def target_images(root: str | Path, size: int, device: torch.device, normalize: Mapping
                  ) -> tuple[ImageFolderIndex, dict[str, DeviceImages]]:
    """Every split of an ImageFolder, resized to ``size`` and resident on ``device``.

    The scan fails first, naming the folder, for a class missing from a split or a class without images; a file
    that does not decode fails naming the file.
    """
    index = scan_imagefolder(root, SPLITS)
    data = {}
    for split in SPLITS:
        images, labels = load_imagefolder_split(index, split, size)
        data[split] = DeviceImages(images, labels, device, mean=normalize["mean"], std=normalize["std"])
    return index, data


def load_state(path: str | Path) -> dict[str, torch.Tensor]:
    """A weights file: a plain state_dict (torchvision's ImageNet files) or an engine checkpoint's ``model``."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state["model"] if "model" in state and isinstance(state["model"], dict) else state


def backbone_from_file(entry: Mapping, path: str | Path, num_classes: int) -> nn.Module:
    """The configured backbone ``entry`` with the weights of ``path`` and a new head for ``num_classes``."""
    return pretrained_backbone(entry["arch"], load_state(path), str(path), num_classes,
                               width=entry.get("width", 64), width_mult=entry.get("width_mult", 1.0))


def new_head(in_features: int, num_classes: int, seed: int) -> nn.Linear:
    """A linear head initialised from ``seed`` alone, so two training paths start from the same head."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Linear(in_features, num_classes)


def head_features(model: nn.Module, arch: str) -> int:
    return head_of(model, arch).in_features


def epoch_seconds(epochs: pd.DataFrame, skip_first: bool = True) -> float:
    """Median training seconds per epoch; the first epoch pays one-time costs (allocator, kernel selection)."""
    timed = epochs.iloc[1:] if skip_first and len(epochs) > 1 else epochs
    return float(timed.epoch_seconds.median())


def mark_winners(summary: pd.DataFrame, by: str = "mode", metric: str = "best_val_acc") -> pd.Series:
    """True on the row of each ``by`` group with the highest ``metric`` (the first on ties)."""
    best = summary.groupby(by, sort=False)[metric].idxmax()
    return summary.index.isin(best.to_numpy())
