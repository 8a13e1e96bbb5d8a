"""Dataset formats: CIFAR-10/100 python pickles as the published archives hold them, and ImageFolder trees."""
from __future__ import annotations

import pickle
import pickletools

import numpy as np
import pytest
import torchvision
from PIL import Image

from dlperf.data.cifar import (
    CIFAR10_DIR,
    CIFAR100_DIR,
    read_cifar10,
    read_cifar100,
    write_cifar10,
    write_cifar100,
)
from dlperf.data.errors import DatasetFormatError
from dlperf.data.imagefolder import class_counts, load_imagefolder_split, scan_imagefolder

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
# `tar tzf cifar-10-python.tar.gz` and `tar tzf cifar-100-python.tar.gz`, less the directories and
# CIFAR-100's editor backup file `file.txt~`, which no reader opens
REAL_CIFAR10_FILES = [
    "batches.meta", "data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
    "readme.html", "test_batch",
]
REAL_CIFAR100_FILES = ["meta", "test", "train"]


def random_images(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


@pytest.fixture
def cifar10(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        "train_x": random_images(rng, 50),
        "train_y": rng.integers(0, 10, 50),
        "test_x": random_images(rng, 20),
        "test_y": rng.integers(0, 10, 20),
    }
    write_cifar10(tmp_path, **arrays, label_names=CIFAR10_NAMES)
    return tmp_path, arrays


@pytest.fixture
def cifar100(tmp_path):
    rng = np.random.default_rng(1)
    train_fine, test_fine = rng.integers(0, 100, 30), rng.integers(0, 100, 10)
    arrays = {
        "train_x": random_images(rng, 30),
        "train_fine": train_fine,
        "train_coarse": train_fine // 5,
        "test_x": random_images(rng, 10),
        "test_fine": test_fine,
        "test_coarse": test_fine // 5,
    }
    names = {"fine_names": [f"fine_{i}" for i in range(100)], "coarse_names": [f"coarse_{i}" for i in range(20)]}
    write_cifar100(tmp_path, **arrays, **names)
    return tmp_path, arrays, names


def load_py3(path, encoding="latin1"):
    with open(path, "rb") as handle:
        return pickle.load(handle, encoding=encoding)


def rewrite(path, change):
    """Load a CIFAR pickle, let ``change`` edit the dict, write it back as Python 3 pickles it."""
    content = load_py3(path)
    change(content)
    with open(path, "wb") as handle:
        pickle.dump(content, handle, protocol=2)


def bypass_torchvision_md5(monkeypatch):
    """torchvision checks the real archives' md5s; our files have the format, not those bytes."""
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *args, **kwargs: True)
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "_check_integrity", lambda self: True)


def test_cifar10_round_trip_returns_the_written_images_labels_and_names(cifar10):
    root, arrays = cifar10
    data = read_cifar10(root)
    np.testing.assert_array_equal(data.train_x, arrays["train_x"])
    np.testing.assert_array_equal(data.train_y, arrays["train_y"])
    np.testing.assert_array_equal(data.test_x, arrays["test_x"])
    np.testing.assert_array_equal(data.test_y, arrays["test_y"])
    assert data.classes == CIFAR10_NAMES
    assert (data.train_x.dtype, data.train_y.dtype) == (np.uint8, np.int64)
    assert data.train_x.flags.c_contiguous


def test_cifar10_directory_holds_the_files_of_the_real_archive(cifar10):
    root, _ = cifar10
    assert sorted(p.name for p in (root / CIFAR10_DIR).iterdir()) == REAL_CIFAR10_FILES


def test_cifar10_training_set_is_cut_into_five_equal_batches_in_order(cifar10):
    root, arrays = cifar10
    for number in range(1, 6):
        batch = load_py3(root / CIFAR10_DIR / f"data_batch_{number}")
        assert batch["batch_label"] == f"training batch {number} of 5"
        assert batch["labels"] == arrays["train_y"][(number - 1) * 10:number * 10].tolist()
        assert len(batch["filenames"]) == 10
    meta = load_py3(root / CIFAR10_DIR / "batches.meta")
    assert meta == {"num_cases_per_batch": 10, "label_names": CIFAR10_NAMES, "num_vis": 3072}


def test_cifar10_rows_hold_the_red_then_green_then_blue_plane_each_row_major(cifar10):
    root, arrays = cifar10
    row = load_py3(root / CIFAR10_DIR / "test_batch")["data"][0]
    image = arrays["test_x"][0]
    expected = np.concatenate([image[:, :, 0].ravel(), image[:, :, 1].ravel(), image[:, :, 2].ravel()])
    np.testing.assert_array_equal(row, expected)


def test_cifar_pickles_load_with_bytes_keys_under_bytes_and_str_keys_under_latin1(cifar10):
    root, arrays = cifar10
    as_bytes = load_py3(root / CIFAR10_DIR / "data_batch_1", encoding="bytes")
    as_str = load_py3(root / CIFAR10_DIR / "data_batch_1", encoding="latin1")
    assert set(as_bytes) == {b"batch_label", b"labels", b"data", b"filenames"}
    assert set(as_str) == {"batch_label", "labels", "data", "filenames"}
    np.testing.assert_array_equal(as_bytes[b"data"], as_str["data"])
    assert as_bytes[b"data"].dtype == np.uint8 and as_bytes[b"data"].shape == (10, 3072)
    assert as_bytes[b"filenames"][0] == as_str["filenames"][0].encode()
    meta = load_py3(root / CIFAR10_DIR / "batches.meta", encoding="bytes")
    assert meta[b"label_names"] == [name.encode() for name in CIFAR10_NAMES]


def test_cifar_pickles_are_written_with_python2_string_opcodes_and_the_old_numpy_path(cifar10):
    root, _ = cifar10
    opcodes = list(pickletools.genops((root / CIFAR10_DIR / "data_batch_1").read_bytes()))
    names = {op.name for op, _, _ in opcodes}
    globals_ = {arg for op, arg, _ in opcodes if op.name == "GLOBAL"}
    assert opcodes[0][0].name == "PROTO" and opcodes[0][1] == 2
    assert {"SHORT_BINSTRING", "BINSTRING"} <= names
    assert not names & {"BINUNICODE", "SHORT_BINUNICODE", "BINBYTES", "SHORT_BINBYTES"}
    assert globals_ == {"numpy.core.multiarray _reconstruct", "numpy ndarray", "numpy dtype"}


def test_torchvision_cifar10_reads_our_files_as_we_do(cifar10, monkeypatch):
    root, arrays = cifar10
    bypass_torchvision_md5(monkeypatch)
    train = torchvision.datasets.CIFAR10(str(root), train=True)
    test = torchvision.datasets.CIFAR10(str(root), train=False)
    np.testing.assert_array_equal(train.data, arrays["train_x"])
    assert train.targets == arrays["train_y"].tolist()
    np.testing.assert_array_equal(test.data, arrays["test_x"])
    assert test.targets == arrays["test_y"].tolist()
    assert train.classes == CIFAR10_NAMES
    assert np.array_equal(np.asarray(train[3][0]), arrays["train_x"][3])


def test_cifar100_round_trip_returns_fine_or_coarse_labels_with_their_names(cifar100):
    root, arrays, names = cifar100
    fine = read_cifar100(root)
    coarse = read_cifar100(root, label="coarse")
    np.testing.assert_array_equal(fine.train_x, arrays["train_x"])
    np.testing.assert_array_equal(fine.test_x, arrays["test_x"])
    np.testing.assert_array_equal(fine.train_y, arrays["train_fine"])
    np.testing.assert_array_equal(fine.test_y, arrays["test_fine"])
    np.testing.assert_array_equal(coarse.train_y, arrays["train_coarse"])
    np.testing.assert_array_equal(coarse.test_y, arrays["test_coarse"])
    assert fine.classes == names["fine_names"]
    assert coarse.classes == names["coarse_names"]


def test_cifar100_directory_holds_the_data_files_of_the_real_archive(cifar100):
    root, _, _ = cifar100
    assert sorted(p.name for p in (root / CIFAR100_DIR).iterdir()) == REAL_CIFAR100_FILES
    assert set(load_py3(root / CIFAR100_DIR / "train", encoding="bytes")) == {
        b"filenames", b"batch_label", b"fine_labels", b"coarse_labels", b"data"
    }
    assert set(load_py3(root / CIFAR100_DIR / "meta", encoding="bytes")) == {
        b"fine_label_names", b"coarse_label_names"
    }


def test_torchvision_cifar100_reads_our_files_as_we_do(cifar100, monkeypatch):
    root, arrays, names = cifar100
    bypass_torchvision_md5(monkeypatch)
    train = torchvision.datasets.CIFAR100(str(root), train=True)
    np.testing.assert_array_equal(train.data, arrays["train_x"])
    assert train.targets == arrays["train_fine"].tolist()
    assert train.classes == names["fine_names"]


def test_read_cifar100_rejects_an_unknown_label_kind(cifar100):
    root, _, _ = cifar100
    with pytest.raises(ValueError, match="'fine' or 'coarse'"):
        read_cifar100(root, label="superclass")


def test_write_cifar10_needs_a_training_set_divisible_into_five_batches(tmp_path):
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="5 equal batches"):
        write_cifar10(tmp_path, random_images(rng, 12), np.zeros(12, int), random_images(rng, 2),
                      np.zeros(2, int), CIFAR10_NAMES)
    assert not (tmp_path / CIFAR10_DIR).exists()


def drop_labels_key(batch):
    del batch["labels"]


def truncate_labels(batch):
    batch["labels"] = batch["labels"][:-1]


def label_out_of_range(batch):
    batch["labels"][0] = 10


def wrong_column_count(batch):
    batch["data"] = batch["data"][:, :3000]


def float_data(batch):
    batch["data"] = batch["data"].astype(np.float32)


@pytest.mark.parametrize(
    ("file", "change", "message"),
    [
        ("data_batch_2", wrong_column_count, r"data_batch_2: 'data' must be uint8 .*3072.*found uint8 \[10, 3000\]"),
        ("data_batch_2", float_data, r"data_batch_2: 'data' must be uint8 .*3072.*found float32"),
        ("test_batch", label_out_of_range, r"test_batch: 'labels' must lie in \[0, 10\).* found 10"),
        ("data_batch_4", truncate_labels, r"data_batch_4: 9 'labels' for 10 rows of 'data'"),
        ("data_batch_5", drop_labels_key, r"data_batch_5: missing key\(s\) labels"),
    ],
    ids=["wrong-column-count", "float-data", "label-out-of-range", "label-data-length-mismatch", "missing-key"],
)
def test_read_cifar10_names_the_file_and_the_problem(cifar10, file, change, message):
    root, _ = cifar10
    rewrite(root / CIFAR10_DIR / file, change)
    with pytest.raises(DatasetFormatError, match=message):
        read_cifar10(root)


def test_read_cifar10_accepts_a_batch_rewritten_by_python3_pickle(cifar10):
    root, arrays = cifar10
    rewrite(root / CIFAR10_DIR / "data_batch_1", lambda batch: None)
    np.testing.assert_array_equal(read_cifar10(root).train_x, arrays["train_x"])


def test_read_cifar10_names_a_missing_batch_file(cifar10):
    root, _ = cifar10
    (root / CIFAR10_DIR / "data_batch_3").unlink()
    with pytest.raises(DatasetFormatError, match=r"data_batch_3: missing"):
        read_cifar10(root)


def test_read_cifar10_names_a_truncated_batch_file(cifar10):
    root, _ = cifar10
    path = root / CIFAR10_DIR / "test_batch"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DatasetFormatError, match=r"test_batch: not a readable CIFAR pickle"):
        read_cifar10(root)


def test_read_cifar10_refuses_a_pickle_that_would_run_code(cifar10):
    root, _ = cifar10
    with open(root / CIFAR10_DIR / "batches.meta", "wb") as handle:
        pickle.dump({"label_names": print}, handle, protocol=2)
    with pytest.raises(DatasetFormatError, match=r"batches.meta: .*refusing to load the global .*print"):
        read_cifar10(root)


def test_read_cifar10_checks_batch_sizes_against_the_meta_file(cifar10):
    root, _ = cifar10
    rewrite(root / CIFAR10_DIR / "batches.meta", lambda meta: meta.update(num_cases_per_batch=10000))
    with pytest.raises(DatasetFormatError, match=r"data_batch_1: 10 rows, but .*batches.meta says 10000 per batch"):
        read_cifar10(root)


def test_read_cifar100_checks_coarse_labels_against_the_meta_file(cifar100):
    root, _, _ = cifar100
    rewrite(root / CIFAR100_DIR / "train", lambda batch: batch["coarse_labels"].__setitem__(0, 20))
    with pytest.raises(DatasetFormatError, match=r"train: 'coarse_labels' must lie in \[0, 20\)"):
        read_cifar100(root, label="fine")


def write_image(path, size=(8, 8), colour=(10, 20, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


@pytest.fixture
def folder(tmp_path):
    """train: 3 cat + 2 dog, val: 1 + 1, test: 1 + 2 images, plus files that are not images."""
    counts = {"train": {"dog": 2, "cat": 3}, "val": {"dog": 1, "cat": 1}, "test": {"dog": 2, "cat": 1}}
    for split, per_class in counts.items():
        for name, n in per_class.items():
            for i in range(n):
                write_image(tmp_path / split / name / f"{i:05d}.png", colour=(i, len(name), 0))
    (tmp_path / "train" / "cat" / "notes.txt").write_text("not an image")
    (tmp_path / "train" / ".DS_Store").write_bytes(b"\0")
    return tmp_path


def test_scan_imagefolder_counts_the_image_files_on_disk_per_sorted_class(folder):
    index = scan_imagefolder(folder)
    assert index.classes == ["cat", "dog"]
    assert class_counts(index) == [
        {"class": "cat", "n_train": 3, "n_val": 1, "n_test": 1},
        {"class": "dog", "n_train": 2, "n_val": 1, "n_test": 2},
    ]
    assert index.samples["train"][0] == (folder / "train" / "cat" / "00000.png", 0)


def test_load_imagefolder_split_decodes_rgb_images_with_their_labels(folder):
    index = scan_imagefolder(folder)
    x, y = load_imagefolder_split(index, "test")
    assert x.shape == (3, 8, 8, 3) and x.dtype == np.uint8
    assert y.tolist() == [0, 1, 1] and y.dtype == np.int64
    assert x[2, 0, 0].tolist() == [1, 3, 0]


def test_load_imagefolder_split_resizes_to_a_square_and_converts_to_rgb(folder):
    write_image(folder / "val" / "dog" / "00001.png", size=(12, 6))
    Image.new("L", (5, 5), 7).save(folder / "val" / "dog" / "00002.png")
    x, _ = load_imagefolder_split(scan_imagefolder(folder), "val", size=4)
    assert x.shape == (4, 4, 4, 3)  # cat/00000, dog/00000, dog/00001, dog/00002
    assert x[3, 0, 0].tolist() == [7, 7, 7]


def test_load_imagefolder_split_without_size_names_an_image_of_another_size(folder):
    write_image(folder / "val" / "dog" / "00001.png", size=(12, 6))
    with pytest.raises(DatasetFormatError, match=r"dog/00001.png: 12x6 pixels, unlike the 8x8"):
        load_imagefolder_split(scan_imagefolder(folder), "val")


def test_scan_imagefolder_names_a_class_missing_from_a_split(folder):
    for path in (folder / "val" / "dog").iterdir():
        path.unlink()
    (folder / "val" / "dog").rmdir()
    with pytest.raises(DatasetFormatError, match=r"class 'dog' is missing from split 'val'"):
        scan_imagefolder(folder)


def test_scan_imagefolder_names_an_empty_class_folder(folder):
    for split in ("train", "val"):
        write_image(folder / split / "bird" / "00000.png")
    (folder / "test" / "bird").mkdir()
    (folder / "test" / "bird" / "readme.txt").write_text("no images here")
    with pytest.raises(DatasetFormatError, match=r"test/bird: class folder 'bird' of split 'test' holds no images"):
        scan_imagefolder(folder)


def test_scan_imagefolder_names_a_missing_split(folder):
    with pytest.raises(DatasetFormatError, match=r"split 'extra' is missing"):
        scan_imagefolder(folder, splits=("train", "extra"))


def test_load_imagefolder_split_names_a_corrupt_image(folder):
    path = folder / "train" / "dog" / "00001.png"
    path.write_bytes(path.read_bytes()[:40])
    index = scan_imagefolder(folder)
    with pytest.raises(DatasetFormatError, match=r"dog/00001.png: unreadable image"):
        load_imagefolder_split(index, "train")
