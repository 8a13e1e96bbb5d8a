"""ImageFolder datasets (``root/<split>/<class>/<image>``), the layout of the Visual Decathlon targets.

Scanning is separate from decoding so that a broken dataset fails before any training starts, with a
message that names the split, class folder or file to fix. Classes are sorted by folder name, as
torchvision's ``ImageFolder`` sorts them, so class indices agree with it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from dlperf.data.errors import DatasetFormatError

SPLITS = ("train", "val", "test")  # the splits of a dataset in this layout, in the order they are read
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"})


@dataclass(frozen=True)
class ImageFolderIndex:
    """The images of an ImageFolder dataset: per split, (path, class index) pairs in a stable order."""

    root: Path
    classes: list[str]
    samples: dict[str, list[tuple[Path, int]]]


def _class_dirs(split_dir: Path) -> dict[str, Path]:
    return {p.name: p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith(".")}


def scan_imagefolder(root: str | Path, splits: Sequence[str] = SPLITS) -> ImageFolderIndex:
    """Index ``root/<split>/<class>/*`` for each split, checking that the splits agree on the classes.

    Only files with a known image extension count; a split without a folder for some class, or a class
    folder without images, raises ``DatasetFormatError`` naming them.
    """
    root = Path(root)
    per_split = {}
    for split in splits:
        split_dir = root / split
        if not split_dir.is_dir():
            raise DatasetFormatError(f"{split_dir}: split {split!r} is missing")
        per_split[split] = _class_dirs(split_dir)
    classes = sorted(set().union(*per_split.values()))
    if not classes:
        raise DatasetFormatError(f"{root}: no class folders in any of the splits {', '.join(splits)}")
    samples = {}
    for split, class_dirs in per_split.items():
        samples[split] = []
        for index, name in enumerate(classes):
            if name not in class_dirs:
                raise DatasetFormatError(f"{root / split}: class {name!r} is missing from split {split!r}")
            images = sorted(
                p for p in class_dirs[name].iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
            )
            if not images:
                raise DatasetFormatError(
                    f"{class_dirs[name]}: class folder {name!r} of split {split!r} holds no images"
                )
            samples[split].extend((path, index) for path in images)
    return ImageFolderIndex(root=root, classes=classes, samples=samples)


def _decode(path: Path, size: int | None) -> np.ndarray:
    try:
        with Image.open(path) as opened:
            image = opened.convert("RGB")  # convert() decodes the whole file, so truncation shows up here
    except (OSError, SyntaxError, ValueError) as error:  # PIL's ways of saying "not a valid image"
        raise DatasetFormatError(f"{path}: unreadable image ({error})") from error
    if size is not None:
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(image)


def load_imagefolder_split(
    index: ImageFolderIndex, split: str, size: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Decode every image of ``split`` into uint8 [N, H, W, 3] and int64 labels [N].

    Without ``size`` all images must share one size; with it each is resized to ``size`` x ``size``.
    """
    samples = index.samples[split]
    first = _decode(samples[0][0], size)
    images = np.empty((len(samples), *first.shape), np.uint8)
    images[0] = first
    for i, (path, _) in enumerate(samples[1:], start=1):
        image = _decode(path, size)
        if image.shape != first.shape:
            raise DatasetFormatError(
                f"{path}: {image.shape[1]}x{image.shape[0]} pixels, unlike the "
                f"{first.shape[1]}x{first.shape[0]} of {samples[0][0]}; pass size= to resize"
            )
        images[i] = image
    return images, np.array([label for _, label in samples], dtype=np.int64)


def class_counts(index: ImageFolderIndex) -> list[dict[str, object]]:
    """One row per class: its name and its number of images in each split (``n_train``, ``n_val``, ...)."""
    rows = [{"class": name} for name in index.classes]
    for split, samples in index.samples.items():
        counts = np.bincount([label for _, label in samples], minlength=len(index.classes))
        for row, count in zip(rows, counts):
            row[f"n_{split}"] = int(count)
    return rows
