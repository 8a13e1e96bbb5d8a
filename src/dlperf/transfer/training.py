"""What the transfer study's jobs train on: every split of the target ImageFolder resident on the device, and a
linear head that two training paths can start from alike."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from dlperf.data.imagefolder import SPLITS, ImageFolderIndex, load_imagefolder_split, scan_imagefolder
from dlperf.train.data import DeviceImages


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


def new_head(in_features: int, num_classes: int, seed: int) -> nn.Linear:
    """A linear head initialised from ``seed`` alone, so two training paths start from the same head."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Linear(in_features, num_classes)
