"""Device-resident image batches with batched augmentation (the airbench way).

Small datasets (CIFAR, 72-px ImageFolder sets, cached features) fit in device memory as uint8. Each epoch draws
a permutation from a generator seeded by (seed, epoch), so an epoch's batches and augmentations depend only on
the seed and the epoch number: a run resumed at an epoch boundary sees exactly the data an uninterrupted run
would have seen. No per-sample Python, no worker processes.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


@dataclass(frozen=True)
class Augment:
    crop_padding: int = 0   # zero-pad by this many pixels, then crop back at a random offset (0 = off)
    flip: bool = False      # horizontal flip with probability 1/2


def epoch_generator(seed: int, epoch: int, device: torch.device) -> torch.Generator:
    """A generator that depends only on (seed, epoch): the key to exact resume."""
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed) * 1_000_003 + int(epoch))
    return gen


def epoch_order(n: int, batch_size: int, *, shuffle: bool, seed: int, epoch: int, device: torch.device,
                drop_last: bool = False) -> tuple[torch.Generator, list[torch.Tensor]]:
    """The index batches of one epoch over ``n`` items, and the (seed, epoch) generator that drew them, from which
    augmentation draws next. Images and cached features share it, so both see the same batches."""
    gen = epoch_generator(seed, epoch, device)
    order = torch.randperm(n, generator=gen, device=device) if shuffle else torch.arange(n, device=device)
    stop = n - n % batch_size if drop_last else n
    return gen, [order[start:start + batch_size] for start in range(0, stop, batch_size)]


def batch_crop(images: torch.Tensor, padding: int, gen: torch.Generator) -> torch.Tensor:
    """Random crop of every image of a normalised NCHW batch after zero padding (the mean colour), by one gather."""
    n, c, h, w = images.shape
    padded = torch.nn.functional.pad(images, (padding,) * 4)
    dev = images.device
    oy = torch.randint(0, 2 * padding + 1, (n,), generator=gen, device=dev)
    ox = torch.randint(0, 2 * padding + 1, (n,), generator=gen, device=dev)
    rows = (oy[:, None] + torch.arange(h, device=dev))[:, None, :, None].expand(n, c, h, w)
    cols = (ox[:, None] + torch.arange(w, device=dev))[:, None, None, :].expand(n, c, h, w)
    return padded[torch.arange(n, device=dev)[:, None, None, None], torch.arange(c, device=dev)[None, :, None, None],
                  rows, cols]


def batch_flip(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    mask = torch.rand(images.shape[0], generator=gen, device=images.device) < 0.5
    return torch.where(mask[:, None, None, None], images.flip(3), images)


class DeviceImages:
    """uint8 NHWC images and int64 labels resident on ``device``, served as normalised float NCHW batches."""

    def __init__(self, images: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor, device: torch.device,
                 mean=CIFAR10_MEAN, std=CIFAR10_STD):
        images = torch.as_tensor(images)
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"expected uint8 NHWC RGB images, got {images.dtype} {tuple(images.shape)}")
        self.device = torch.device(device)
        self.images = images.permute(0, 3, 1, 2).contiguous().to(self.device)  # NCHW uint8
        self.labels = torch.as_tensor(labels, dtype=torch.int64).to(self.device)
        if len(self.labels) != len(self.images):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")
        self.mean = torch.tensor(mean, device=self.device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(std, device=self.device).view(1, 3, 1, 1) * 255

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device | str) -> DeviceImages:
        """The same images on ``device`` (this object if they are there already)."""
        device = torch.device(device)
        if device == self.device:
            return self
        moved = copy.copy(self)
        moved.device = device
        moved.images, moved.labels = self.images.to(device), self.labels.to(device)
        moved.mean, moved.std = self.mean.to(device), self.std.to(device)
        return moved

    def normalise(self, batch_u8: torch.Tensor) -> torch.Tensor:
        return (batch_u8.float() - self.mean) / self.std

    def batches(self, batch_size: int, *, shuffle: bool, augment: Augment = Augment(), seed: int = 0,
                epoch: int = 0, drop_last: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        gen, index_batches = epoch_order(len(self), batch_size, shuffle=shuffle, seed=seed, epoch=epoch,
                                         device=self.device, drop_last=drop_last)
        for idx in index_batches:
            x = self.normalise(self.images[idx])
            if augment.crop_padding:
                x = batch_crop(x, augment.crop_padding, gen)
            if augment.flip:
                x = batch_flip(x, gen)
            yield x, self.labels[idx]

    def steps_per_epoch(self, batch_size: int, drop_last: bool = False) -> int:
        return len(self) // batch_size if drop_last else -(-len(self) // batch_size)
