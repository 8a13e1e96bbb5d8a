"""Cached bottleneck features: a frozen backbone's pooled output computed once per image, then served like images.

With the backbone frozen, every epoch of feature-extractor training would recompute the same features; the
cache computes them once (one forward pass over each split, no augmentation, so the features are exactly those
the frozen network gives the un-augmented image) and the head then trains on ``DeviceFeatures``, which serves
batches in the same order as ``DeviceImages`` (same seed, same epoch, same permutation). That is why a head
trained on the cache matches one trained through the frozen backbone when augmentation is off.
"""
from __future__ import annotations

from typing import Iterator

import torch
from torch import nn

from dlperf.atomic import atomic_write
from dlperf.train.data import Augment, DeviceImages, epoch_order


class DeviceFeatures:
    """float32 feature vectors [N, D] and int64 labels resident on ``device``; the engine's data interface."""

    def __init__(self, features: torch.Tensor, labels: torch.Tensor, device: torch.device):
        self.device = torch.device(device)
        self.features = torch.as_tensor(features, dtype=torch.float32).to(self.device)
        self.labels = torch.as_tensor(labels, dtype=torch.int64).to(self.device)
        if self.features.ndim != 2 or len(self.features) != len(self.labels):
            raise ValueError(f"expected features [N, D] and N labels, got {tuple(self.features.shape)} and "
                             f"{tuple(self.labels.shape)}")

    def __len__(self) -> int:
        return len(self.labels)

    def batches(self, batch_size: int, *, shuffle: bool, augment: Augment = Augment(), seed: int = 0,
                epoch: int = 0, drop_last: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if augment != Augment():
            raise ValueError("cached features cannot be augmented: the cache holds one view per image")
        _, index_batches = epoch_order(len(self), batch_size, shuffle=shuffle, seed=seed, epoch=epoch,
                                       device=self.device, drop_last=drop_last)
        for idx in index_batches:
            yield self.features[idx], self.labels[idx]

    def steps_per_epoch(self, batch_size: int, drop_last: bool = False) -> int:
        return len(self) // batch_size if drop_last else -(-len(self) // batch_size)


@torch.inference_mode()
def extract_features(features: nn.Module, data: DeviceImages, batch_size: int) -> torch.Tensor:
    """The pooled features of every image of ``data`` in order, float32 [N, D], on the data's device."""
    features.eval()
    out = [features(x).float() for x, _ in data.batches(batch_size, shuffle=False)]
    return torch.cat(out)


def save_cache(path, splits: dict[str, tuple[torch.Tensor, torch.Tensor]], **meta) -> None:
    """One file holding every split's (features, labels) on the CPU, and what produced them."""
    with atomic_write(path, "wb") as fh:
        torch.save({"splits": {name: {"features": f.cpu(), "labels": y.cpu()} for name, (f, y) in splits.items()},
                    "meta": meta}, fh)


def load_cache(path, device: torch.device) -> tuple[dict[str, DeviceFeatures], dict]:
    cache = torch.load(path, map_location="cpu", weights_only=True)
    return ({name: DeviceFeatures(s["features"], s["labels"], device) for name, s in cache["splits"].items()},
            cache["meta"])
