"""Synthetic datasets: deterministic, balanced, learnable, and written in the real datasets' formats."""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from torch import nn

from dlperf.data.cifar import CIFAR10_DIR, CIFAR100_DIR, read_cifar10, read_cifar100
from dlperf.data.imagefolder import class_counts, load_imagefolder_split, scan_imagefolder
from dlperf.data.synthetic import (
    DEFAULT_NOISE,
    class_prototype,
    make_images,
    synthesize_cifar10,
    synthesize_cifar100,
    synthesize_imagefolder,
)


def rms(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a.astype(np.float64) - b) ** 2)))


def test_make_images_returns_shuffled_balanced_uint8_images_and_int64_labels():
    x, y = make_images(n_classes=4, n_per_class=25, size=20, seed=0)
    assert x.shape == (100, 20, 20, 3) and x.dtype == np.uint8
    assert y.dtype == np.int64
    assert np.bincount(y).tolist() == [25, 25, 25, 25]
    assert not np.all(np.diff(y) >= 0)


def test_make_images_is_a_function_of_its_seed():
    first, first_y = make_images(10, 20, 32, seed=7)
    again, again_y = make_images(10, 20, 32, seed=7)
    other, _ = make_images(10, 20, 32, seed=8)
    assert first.tobytes() == again.tobytes() and first_y.tobytes() == again_y.tobytes()
    assert first.tobytes() != other.tobytes()


def test_class_offset_selects_other_classes_with_the_same_local_labels():
    x, y = make_images(5, 40, 32, seed=0, noise=0.0)
    shifted_x, shifted_y = make_images(5, 40, 32, seed=0, noise=0.0, class_offset=5)
    np.testing.assert_array_equal(y, shifted_y)
    class_means = [x[y == c].mean(axis=(0, 1, 2)) for c in range(5)]
    shifted_means = [shifted_x[shifted_y == c].mean(axis=(0, 1, 2)) for c in range(5)]
    assert all(np.abs(a - b).max() > 1 for a, b in zip(class_means, shifted_means))


def test_class_prototypes_of_100_classes_differ_pairwise():
    prototypes = np.stack([class_prototype(c, 32) for c in range(100)]).reshape(100, -1)
    distances = np.sqrt(((prototypes[:, None] - prototypes[None]) ** 2).mean(axis=-1))
    np.fill_diagonal(distances, np.inf)
    assert distances.min() > 0.1  # on a [0, 1] intensity scale


def test_a_class_prototype_is_the_same_pattern_at_any_size():
    small, large = class_prototype(3, 32), class_prototype(3, 64)
    assert rms(small, large[::2, ::2]) < 0.01  # up to where the finer grid finds the extremes it scales by


def test_make_images_renders_10k_cifar_sized_images_in_seconds():
    start = time.perf_counter()
    make_images(10, 1000, 32, seed=0)
    assert time.perf_counter() - start < 10


def held_out_accuracy(noise: float) -> float:
    """Train a three-conv net for two epochs on 3000 images of 10 classes; return accuracy on 1000 others."""
    torch.manual_seed(0)
    train_x, train_y = make_images(10, 300, 32, seed=0, noise=noise)
    test_x, test_y = make_images(10, 100, 32, seed=1, noise=noise)

    def as_tensor(images):
        return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255).sub(0.5)

    x, y, test_x = as_tensor(train_x), torch.from_numpy(train_y), as_tensor(test_x)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, stride=2), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
    )
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    for _ in range(2):
        for batch in torch.randperm(len(x)).split(64):
            loss = nn.functional.cross_entropy(net(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    net.eval()
    with torch.no_grad():
        return (net(test_x).argmax(dim=1).numpy() == test_y).mean()


@pytest.fixture(scope="module")
def one_torch_thread():
    """Train on one thread: where other jobs share the two cores, two threads that wait on each other at
    every operation run several times slower than one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def default_noise_accuracy(one_torch_thread):
    return held_out_accuracy(DEFAULT_NOISE)


def test_a_tiny_convnet_learns_the_default_data_well_above_chance(default_noise_accuracy):
    assert default_noise_accuracy > 0.6  # chance is 0.1


def test_more_noise_makes_the_data_harder_to_learn(one_torch_thread, default_noise_accuracy):
    assert held_out_accuracy(2 * DEFAULT_NOISE) < default_noise_accuracy - 0.2


def test_synthesize_cifar10_writes_balanced_named_splits_that_read_cifar10_reads(tmp_path):
    directory = synthesize_cifar10(tmp_path, n_train=100, n_test=50, seed=0)
    assert directory == tmp_path / CIFAR10_DIR
    data = read_cifar10(tmp_path)
    assert data.train_x.shape == (100, 32, 32, 3) and data.test_x.shape == (50, 32, 32, 3)
    assert np.bincount(data.train_y).tolist() == [10] * 10
    assert np.bincount(data.test_y).tolist() == [5] * 10
    assert data.classes == [f"synth_class_{c:03d}" for c in range(10)]


def test_synthesize_cifar10_writes_identical_bytes_for_the_same_seed(tmp_path):
    synthesize_cifar10(tmp_path / "a", n_train=50, n_test=10, seed=3)
    synthesize_cifar10(tmp_path / "b", n_train=50, n_test=10, seed=3)
    synthesize_cifar10(tmp_path / "c", n_train=50, n_test=10, seed=4)
    files = sorted(p.name for p in (tmp_path / "a" / CIFAR10_DIR).iterdir())
    for name in files:
        assert (tmp_path / "a" / CIFAR10_DIR / name).read_bytes() == (tmp_path / "b" / CIFAR10_DIR / name).read_bytes()
    assert (tmp_path / "a" / CIFAR10_DIR / "test_batch").read_bytes() != (
        tmp_path / "c" / CIFAR10_DIR / "test_batch"
    ).read_bytes()


def test_synthesize_cifar10_needs_class_balanced_split_sizes(tmp_path):
    with pytest.raises(ValueError, match="n_train=55 must be a multiple of 10"):
        synthesize_cifar10(tmp_path, n_train=55, n_test=10, seed=0)


def test_synthesize_cifar100_groups_five_fine_classes_into_each_of_20_superclasses(tmp_path):
    directory = synthesize_cifar100(tmp_path, n_train=200, n_test=100, seed=0)
    assert directory == tmp_path / CIFAR100_DIR
    fine, coarse = read_cifar100(tmp_path), read_cifar100(tmp_path, label="coarse")
    np.testing.assert_array_equal(coarse.train_y, fine.train_y // 5)
    np.testing.assert_array_equal(coarse.test_y, fine.test_y // 5)
    assert np.bincount(fine.train_y).tolist() == [2] * 100
    assert fine.classes[17] == "synth_class_017"
    assert coarse.classes == [f"synth_superclass_{c:02d}" for c in range(20)]


def test_synthesize_imagefolder_writes_a_decathlon_like_tree_of_72px_pngs(tmp_path):
    root = synthesize_imagefolder(tmp_path / "target", 3, n_train=4, n_val=2, n_test=1, seed=0, class_offset=10)
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*.png"))[:5] == [
        "test/class_10/00000.png", "test/class_11/00000.png", "test/class_12/00000.png",
        "train/class_10/00000.png", "train/class_10/00001.png",
    ]
    index = scan_imagefolder(root)
    assert class_counts(index) == [
        {"class": f"class_{c}", "n_train": 4, "n_val": 2, "n_test": 1} for c in (10, 11, 12)
    ]
    x, y = load_imagefolder_split(index, "train")
    assert x.shape == (12, 72, 72, 3) and y.tolist() == [0] * 4 + [1] * 4 + [2] * 4


def test_synthesize_imagefolder_is_deterministic_and_can_write_jpeg(tmp_path):
    first = synthesize_imagefolder(tmp_path / "a", 2, 2, 1, 1, size=16, seed=5)
    again = synthesize_imagefolder(tmp_path / "b", 2, 2, 1, 1, size=16, seed=5)
    jpeg = synthesize_imagefolder(tmp_path / "c", 2, 2, 1, 1, size=16, seed=5, image_format="jpeg")
    files = sorted(p.relative_to(first) for p in first.rglob("*.png"))
    assert len(files) == 8
    assert all((first / f).read_bytes() == (again / f).read_bytes() for f in files)
    assert sorted(p.relative_to(jpeg) for p in jpeg.rglob("*.jpg")) == [f.with_suffix(".jpg") for f in files]
