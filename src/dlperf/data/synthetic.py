"""Deterministic, learnable synthetic image-classification data, written in the real datasets' formats.

The embedded default must run the whole workflow offline on two CPU cores in minutes, yet its models have
to learn something, or every downstream number (loss curves, fits, accuracy after compression) would be
noise. So each class is a texture of a few class-specific oriented gratings and colour blobs, and each
sample is its class texture translated, with jittered brightness and contrast, under white and smooth
pixel noise: a small convnet learns it in an epoch or two, and ``noise`` sets how hard it is.

A class's texture depends only on its global class id, never on the seed: ``seed`` draws the samples,
``class_offset`` picks which classes. A "source" set (classes 0..9) and a "target" set (offset 10)
therefore hold different classes, and train and test splits drawn with different seeds hold the same ones.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from dlperf.atomic import atomic_dir
from dlperf.data.cifar import write_cifar10, write_cifar100

DEFAULT_NOISE = 0.25  # a tiny convnet passes 60% in an epoch or two at this level, without saturating
PROTOTYPE_SALT = 20_240_917  # keeps the per-class texture streams apart from any sample seed
GRATINGS_PER_CLASS = 2
BLOBS_PER_CLASS = 2
MAX_WAVENUMBER = 4  # cycles per image along an axis; integers keep gratings seamless under circular shifts
CONTRAST_JITTER = 0.3  # contrast drawn from [0.7, 1.3]
BRIGHTNESS_JITTER = 0.1  # brightness offset drawn from [-0.1, 0.1]
SMOOTH_GRID = 4  # the smooth noise is interpolated from 4x4 values: blotches about a quarter image across
CHUNK = 1024  # samples rendered at once: three float32 buffers of this many stay near 200 MB at 72 px
CIFAR100_FINE_PER_COARSE = 5
IMAGE_FORMATS = {"png": ".png", "jpeg": ".jpg"}
SPLITS = ("train", "val", "test")


def class_prototype(class_id: int, size: int) -> np.ndarray:
    """The texture of global class ``class_id`` as float32 [size, size, 3] in [0, 1].

    Parameters are drawn in units of the image, so a class looks the same at 32 and at 72 px.
    """
    rng = np.random.default_rng([PROTOTYPE_SALT, class_id])
    rows, cols = np.meshgrid(np.arange(size) / size, np.arange(size) / size, indexing="ij")
    image = np.broadcast_to(rng.uniform(0.2, 0.8, 3), (size, size, 3)).copy()
    for _ in range(GRATINGS_PER_CLASS):
        wave = np.zeros(2)
        while not wave.any():
            wave = rng.integers(-MAX_WAVENUMBER, MAX_WAVENUMBER + 1, 2)
        grating = np.sin(2 * np.pi * (wave[0] * rows + wave[1] * cols) + rng.uniform(0, 2 * np.pi))
        image += 0.5 * grating[..., None] * rng.uniform(-1, 1, 3)
    for _ in range(BLOBS_PER_CLASS):
        centre, radius = rng.uniform(0, 1, 2), rng.uniform(0.08, 0.2)
        d_rows = (rows - centre[0] + 0.5) % 1 - 0.5  # distances on the torus: blobs wrap like the shifts
        d_cols = (cols - centre[1] + 0.5) % 1 - 0.5
        blob = np.exp(-(d_rows**2 + d_cols**2) / (2 * radius**2))
        image += blob[..., None] * rng.uniform(-1, 1, 3)
    image -= image.min()
    return (image / image.max()).astype(np.float32)


def _periodic_interpolation(size: int, grid: int) -> np.ndarray:
    """Weights [size, grid] that linearly interpolate ``grid`` values spread around a circle to ``size``."""
    distance = np.arange(size)[:, None] * grid / size - np.arange(grid)[None, :]
    distance = np.minimum(np.abs(distance), grid - np.abs(distance))
    return np.maximum(0, 1 - distance).astype(np.float32)


def _render(class_ids: np.ndarray, size: int, noise: float, rng: np.random.Generator) -> np.ndarray:
    """One uint8 [size, size, 3] sample of each global class id in ``class_ids``, drawn from ``rng``.

    ``noise`` is the std, on a [0, 1] intensity scale, of two noise fields added to every sample: white
    noise per pixel, and smooth noise interpolated from a coarse grid. A convnet averages white noise away
    at little cost; smooth noise looks like the class blobs and gratings, so it is what makes the task hard.
    """
    classes, index = np.unique(class_ids, return_inverse=True)
    texels = np.stack([class_prototype(int(c), size) for c in classes]).reshape(-1, 3)
    n = len(class_ids)
    max_shift = size // 4
    shifts = rng.integers(-max_shift, max_shift + 1, (n, 2))
    contrast = rng.uniform(1 - CONTRAST_JITTER, 1 + CONTRAST_JITTER, (n, 1, 1, 1)).astype(np.float32)
    brightness = rng.uniform(-BRIGHTNESS_JITTER, BRIGHTNESS_JITTER, (n, 1, 1, 1)).astype(np.float32)
    interpolation = _periodic_interpolation(size, SMOOTH_GRID)
    pixels = np.arange(size)
    images = np.empty((n, size, size, 3), np.uint8)
    for start in range(0, n, CHUNK):  # in-place float32 arithmetic: memory traffic is the cost here
        part = slice(start, min(start + CHUNK, n))
        rows = (pixels - shifts[part, :1]) % size  # a circular shift is a gather with wrapped indices
        cols = (pixels - shifts[part, 1:]) % size
        texel = (index[part, None, None] * size + rows[:, :, None]) * size + cols[:, None, :]
        x = np.take(texels, texel, axis=0)
        x -= 0.5
        x *= contrast[part]
        x += 0.5 + brightness[part]
        grain = rng.standard_normal(x.shape, dtype=np.float32)
        coarse = rng.standard_normal((len(x), SMOOTH_GRID, SMOOTH_GRID, 3), dtype=np.float32)
        grain += np.einsum("ij,njkc,lk->nilc", interpolation, coarse, interpolation, optimize=True)
        grain *= noise
        x += grain
        x *= 255
        x += 0.5  # round, not truncate, in the cast below
        np.clip(x, 0, 255, out=x)
        np.copyto(images[part], x, casting="unsafe")
    return images


def make_images(
    n_classes: int,
    n_per_class: int,
    size: int,
    seed: int | np.random.SeedSequence,
    noise: float = DEFAULT_NOISE,
    class_offset: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """``n_per_class`` shuffled samples of classes ``class_offset .. class_offset + n_classes - 1``.

    Returns images uint8 [N, size, size, 3] and labels int64 in [0, n_classes).
    """
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.repeat(np.arange(n_classes, dtype=np.int64), n_per_class))
    return _render(labels + class_offset, size, noise, rng), labels


def _per_class(n: int, n_classes: int, argument: str) -> int:
    if n % n_classes:
        raise ValueError(f"{argument}={n} must be a multiple of {n_classes}, so that classes are balanced")
    return n // n_classes


def synthesize_cifar10(
    root: str | Path,
    n_train: int,
    n_test: int,
    seed: int,
    noise: float = DEFAULT_NOISE,
    class_offset: int = 0,
) -> Path:
    """Write a 10-class synthetic ``root/cifar-10-batches-py``; ``n_train`` and ``n_test`` multiples of 10.

    Classes are balanced in each split, as in the real set; names are ``synth_class_<global id>``.
    """
    train_seed, test_seed = np.random.SeedSequence(seed).spawn(2)
    train_x, train_y = make_images(10, _per_class(n_train, 10, "n_train"), 32, train_seed, noise, class_offset)
    test_x, test_y = make_images(10, _per_class(n_test, 10, "n_test"), 32, test_seed, noise, class_offset)
    names = [f"synth_class_{class_offset + c:03d}" for c in range(10)]
    return write_cifar10(root, train_x, train_y, test_x, test_y, names)


def synthesize_cifar100(
    root: str | Path,
    n_train: int,
    n_test: int,
    seed: int,
    noise: float = DEFAULT_NOISE,
    class_offset: int = 0,
) -> Path:
    """Write a 100-class synthetic ``root/cifar-100-python``; ``n_train`` and ``n_test`` multiples of 100.

    Coarse label = fine label // 5, giving 20 superclasses as in the real set.
    """
    train_seed, test_seed = np.random.SeedSequence(seed).spawn(2)
    n_train_per_class, n_test_per_class = _per_class(n_train, 100, "n_train"), _per_class(n_test, 100, "n_test")
    train_x, train_fine = make_images(100, n_train_per_class, 32, train_seed, noise, class_offset)
    test_x, test_fine = make_images(100, n_test_per_class, 32, test_seed, noise, class_offset)
    fine_names = [f"synth_class_{class_offset + c:03d}" for c in range(100)]
    coarse_names = [f"synth_superclass_{c:02d}" for c in range(100 // CIFAR100_FINE_PER_COARSE)]
    return write_cifar100(
        root,
        train_x, train_fine, train_fine // CIFAR100_FINE_PER_COARSE,
        test_x, test_fine, test_fine // CIFAR100_FINE_PER_COARSE,
        fine_names, coarse_names,
    )


def synthesize_imagefolder(
    root: str | Path,
    n_classes: int,
    n_train: int,
    n_val: int,
    n_test: int,
    *,
    size: int = 72,
    seed: int,
    noise: float = DEFAULT_NOISE,
    class_offset: int = 0,
    image_format: str = "png",
) -> Path:
    """Write a Visual-Decathlon-like ImageFolder ``root/{train,val,test}/{class}/{index:05d}.png``.

    ``n_train``, ``n_val`` and ``n_test`` are images per class. Folders are named by global class id
    (``class_03``), so sets with different offsets differ by name too. ``root`` appears whole or not at all.
    """
    if image_format not in IMAGE_FORMATS:
        raise ValueError(f"image_format must be one of {sorted(IMAGE_FORMATS)}, got {image_format!r}")
    counts = dict(zip(SPLITS, (n_train, n_val, n_test)))
    if min(counts.values()) < 1:
        raise ValueError(f"every split needs at least one image per class, got {counts}")
    width = max(2, len(str(class_offset + n_classes - 1)))
    names = [f"class_{class_offset + c:0{width}d}" for c in range(n_classes)]
    suffix = IMAGE_FORMATS[image_format]
    with atomic_dir(root) as tmp:
        for (split, n_per_class), split_seed in zip(counts.items(), np.random.SeedSequence(seed).spawn(3)):
            labels = np.repeat(np.arange(n_classes), n_per_class)  # class-major: each class one block
            images = _render(labels + class_offset, size, noise, np.random.default_rng(split_seed))
            for label, name in enumerate(names):
                folder = tmp / split / name
                folder.mkdir(parents=True)
                for i, image in enumerate(images[label * n_per_class:(label + 1) * n_per_class]):
                    Image.fromarray(image).save(folder / f"{i:05d}{suffix}")
    return Path(root)
