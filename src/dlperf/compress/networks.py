"""The networks Deep Compression's pipeline runs on, and their data: an Optimus CIFAR ResNet, or a torchvision ImageNet
classifier (AlexNet, VGG-16: the networks of Han et al.'s Tables 3 and 4).

A network is a plain dict, as the workflow passes it in a rule's params (:func:`dlperf.compress.plan.deep_network`):

* ``{"name", "kind": "cifar", "arch", "width"}``: the trained Optimus model (a training-engine checkpoint) and
  CIFAR-10 (``resources/data/cifar10``): it re-trains on the first ``n_train`` training images and is scored on the
  test split;
* ``{"name", "kind": "imagenet", "arch", "resize", "crop", "images", "retrain_images", "seed"}``: torchvision's
  ImageNet weights (its ``.pth`` file, a bare state dict) and the ImageNet validation set in torchvision's
  ImageFolder layout, ``<root>/val/<wnid>/*.JPEG`` with the 1,000 class folders, whose sorted order is the
  weights' class order. ImageNet's training set is not needed: a seeded sample of ``retrain_images`` validation
  images re-trains the pruned weights and the centroids, and a disjoint sample of ``images`` (all the others when
  null) is scored. Images are read as torchvision's weights were evaluated: the shorter side resized to
  ``resize`` pixels (bilinear), the centre ``crop`` × ``crop`` cut out, normalised by ImageNet's mean and std.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import numpy as np
import torch
import torchvision
from PIL import Image
from torch import nn

from dlperf.compress.evaluation import load_classifier
from dlperf.data.cifar import read_cifar10
from dlperf.data.errors import DatasetFormatError
from dlperf.data.imagefolder import scan_imagefolder
from dlperf.train.data import DeviceImages

IMAGENET_ARCHS = {"alexnet": torchvision.models.alexnet, "vgg16": torchvision.models.vgg16}
IMAGENET_CLASSES = 1000
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def load(network: Mapping, checkpoint: str | os.PathLike) -> nn.Module:
    """The network with the weights of ``checkpoint``, on the CPU, in eval mode: a training-engine checkpoint
    (``{"model": state_dict, ...}``) or, for an ImageNet network, torchvision's bare state dict."""
    if network["kind"] == "cifar":
        return load_classifier(network["arch"], checkpoint, width=network["width"])
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if isinstance(state.get("model"), dict):
        state = state["model"]
    model = IMAGENET_ARCHS[network["arch"]]()
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise ValueError(f"{checkpoint}: not torchvision's {network['arch']} ({str(error).splitlines()[0]})") from None
    return model.eval()


def input_shape(network: Mapping) -> tuple[int, int, int]:
    return (3, 32, 32) if network["kind"] == "cifar" else (3, network["crop"], network["crop"])


def datasets(network: Mapping, data: str | os.PathLike, device: torch.device | str = "cpu", *,
             n_train: int | None = None, train: bool = True) -> tuple[DeviceImages | None, DeviceImages]:
    """``(re-training images, scored images)`` of ``network`` (None for the first unless ``train``); ``data`` is the
    CIFAR-10 directory or the ImageNet root. ``n_train`` caps a CIFAR network's training images."""
    if network["kind"] == "cifar":
        cifar = read_cifar10(data)
        n = n_train or len(cifar.train_y)
        return (DeviceImages(cifar.train_x[:n], cifar.train_y[:n], device) if train else None,
                DeviceImages(cifar.test_x, cifar.test_y, device))
    retrain, scored = validation_split(data, network["retrain_images"], network["images"], network["seed"])
    decode = {"resize": network["resize"], "crop": network["crop"], "device": device}
    return (imagenet_images(retrain, **decode) if train else None), imagenet_images(scored, **decode)


def validation_split(root: str | os.PathLike, retrain: int, scored: int | None,
                     seed: int) -> tuple[list[tuple[Path, int]], list[tuple[Path, int]]]:
    """A seeded shuffle of the validation images of ``root``: the first ``retrain`` (path, class) pairs, and the
    ``scored`` after them (every other one if None). Raises ``DatasetFormatError`` unless ``root/val`` has the
    1,000 class folders, or if it holds too few images."""
    index = scan_imagefolder(root, ("val",))
    if len(index.classes) != IMAGENET_CLASSES:
        raise DatasetFormatError(f"{Path(root) / 'val'}: {len(index.classes)} class folders; ImageNet's validation "
                                 f"set has {IMAGENET_CLASSES} (one per wnid, as torchvision's ImageFolder reads it)")
    samples = index.samples["val"]
    wanted = retrain + (scored if scored is not None else 1)
    if len(samples) < wanted:
        raise DatasetFormatError(f"{Path(root) / 'val'}: {len(samples)} images, fewer than the {retrain} to re-train "
                                 f"on and {scored if scored is not None else 'at least 1'} to score")
    order = np.random.default_rng(seed).permutation(len(samples))
    chosen = [samples[i] for i in order]
    stop = None if scored is None else retrain + scored
    return chosen[:retrain], chosen[retrain:stop]


def decode(path: Path, resize: int, crop: int) -> np.ndarray:
    """One image as torchvision's ImageNet weights were evaluated: shorter side to ``resize`` (bilinear), the centre
    ``crop`` square; uint8 HWC RGB."""
    try:
        with Image.open(path) as opened:
            image = opened.convert("RGB")
    except (OSError, SyntaxError, ValueError) as error:
        raise DatasetFormatError(f"{path}: unreadable image ({error})") from error
    width, height = image.size
    scale = resize / min(width, height)
    size = (max(crop, round(width * scale)), max(crop, round(height * scale)))
    image = image.resize(size, Image.Resampling.BILINEAR)
    left, top = (size[0] - crop) // 2, (size[1] - crop) // 2
    return np.asarray(image.crop((left, top, left + crop, top + crop)))


def imagenet_images(samples: list[tuple[Path, int]], *, resize: int, crop: int,
                    device: torch.device | str = "cpu") -> DeviceImages:
    """``samples`` decoded (:func:`decode`), served normalised by ImageNet's mean and std."""
    images = np.empty((len(samples), crop, crop, 3), np.uint8)
    for i, (path, _) in enumerate(samples):
        images[i] = decode(path, resize, crop)
    labels = np.array([label for _, label in samples], dtype=np.int64)
    return DeviceImages(images, labels, device, mean=IMAGENET_MEAN, std=IMAGENET_STD)
