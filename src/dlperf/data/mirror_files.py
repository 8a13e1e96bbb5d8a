"""The files of the rehearsal mirror (:mod:`dlperf.data.mirror`): small contents in each download's real layout.

Every writer is deterministic (fixed seeds, archive members sorted, timestamps zero), so two builds give the same
bytes and the same checksums. Images come from the synthetic generators, so models trained on the mirror still
learn something; the layout, names, types and sizes around them are those of the published files.
"""
from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
import torchvision
from PIL import Image
from scipy.io import savemat

from dlperf.data.cifar import CIFAR10_DIR, CIFAR100_DIR, write_cifar10, write_cifar100
from dlperf.data.openimages import CLASS_DESCRIPTIONS, SPLITS as OPENIMAGES_SPLITS, box_csv_name
from dlperf.data.synthetic import make_images
from dlperf.data.synthetic_detection import synthesize_openimages, synthesize_voc
from dlperf.data.voc import VOC_CLASSES, VOC_DIR, parse_annotation

CIFAR10_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_COUNTS = (500, 100)  # train (5 batches of 100), test
CIFAR100_COUNTS = (1000, 200)  # 10 and 2 per fine class
FLOWERS_LABELS = tuple(int(c) for c in np.linspace(1, 102, 10).round())  # 10 of the 102 labels, first and last in
FLOWERS_PER_CLASS = {"trnid": 2, "valid": 1, "tstid": 1}  # the real splits: 10, 10 and the rest
FLOWERS_SIZES = ((280, 340), (220, 280))  # width, height ranges: the originals are not square
VOC_COUNTS = (24, 12)  # trainval, test
VOC_SIZE = 300
OPENIMAGES_COUNTS = {"train": 30, "validation": 4, "test": 12}
OPENIMAGES_OTHER_CLASSES = ("Person", "Car", "Tree")  # rows the class filter must drop
SSD_KEYS = Path(__file__).with_name("pytorch_ssd_mb1_state_dict.json")
IMAGENET_VAL_CLASSES = 1000
IMAGENET_VAL_SIZES = ((60, 90), (50, 80))  # width, height ranges: ImageNet's photos are neither square nor alike
TORCHVISION_ARCHS = {
    "resnet50": lambda: torchvision.models.resnet50(),
    "mobilenet_v2": lambda: torchvision.models.mobilenet_v2(),
    # the Google file holds the auxiliary classifier; init_weights: torchvision's own initialisation
    "inception_v3": lambda: torchvision.models.inception_v3(aux_logits=True, init_weights=True),
    "alexnet": lambda: torchvision.models.alexnet(),
    "vgg16": lambda: torchvision.models.vgg16(),
}
SEED = 2026


# ---- archives -----------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _tar(path: Path, gzipped: bool) -> Iterator[tarfile.TarFile]:
    """A tar (gzip with mtime 0 when ``gzipped``) that ``add_tree`` fills reproducibly."""
    with open(path, "wb") as raw:
        stream = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) if gzipped else raw
        try:
            with tarfile.open(fileobj=stream, mode="w", format=tarfile.GNU_FORMAT) as tar:
                yield tar
        finally:
            if gzipped:
                stream.close()


def _normalised(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
    info.mode = 0o755 if info.isdir() else 0o644
    return info


def add_tree(tar: tarfile.TarFile, root: Path, top: str | Path, keep=lambda path: True) -> None:
    """Add ``root/top`` and everything under it that ``keep`` accepts, directories first, names sorted."""
    for path in [root / top, *sorted((root / top).rglob("*"))]:
        if path.is_dir() or keep(path):
            tar.add(path, arcname=str(path.relative_to(root)), recursive=False, filter=_normalised)


def cifar10_archive(directory: Path) -> Path:
    """``cifar-10-python.tar.gz``: ``cifar-10-batches-py/`` with five batches, the test batch and the meta."""
    n_train, n_test = CIFAR10_COUNTS
    train_seed, test_seed = np.random.SeedSequence([SEED, 10]).spawn(2)
    train_x, train_y = make_images(10, n_train // 10, 32, train_seed, noise=0.4)
    test_x, test_y = make_images(10, n_test // 10, 32, test_seed, noise=0.4)
    with tempfile.TemporaryDirectory() as tmp:
        write_cifar10(tmp, train_x, train_y, test_x, test_y, CIFAR10_NAMES)
        path = directory / "cifar-10-python.tar.gz"
        with _tar(path, gzipped=True) as tar:
            add_tree(tar, Path(tmp), CIFAR10_DIR)
    return path


def cifar100_archive(directory: Path) -> Path:
    """``cifar-100-python.tar.gz``: ``cifar-100-python/`` with ``train``, ``test`` and ``meta`` (fine, coarse)."""
    n_train, n_test = CIFAR100_COUNTS
    train_seed, test_seed = np.random.SeedSequence([SEED, 100]).spawn(2)
    train_x, train_fine = make_images(100, n_train // 100, 32, train_seed, noise=0.05)
    test_x, test_fine = make_images(100, n_test // 100, 32, test_seed, noise=0.05)
    fine = [f"fine_class_{c:03d}" for c in range(100)]
    coarse = [f"superclass_{c:02d}" for c in range(20)]
    with tempfile.TemporaryDirectory() as tmp:
        write_cifar100(tmp, train_x, train_fine, train_fine // 5, test_x, test_fine, test_fine // 5, fine, coarse)
        path = directory / "cifar-100-python.tar.gz"
        with _tar(path, gzipped=True) as tar:
            add_tree(tar, Path(tmp), CIFAR100_DIR)
    return path


# ---- Oxford 102 Flowers --------------------------------------------------------------------------------------
def flowers_layout() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``(labels, splits)``: the class (in 1..102) of image number i at index i - 1, and each split's image numbers,
    handed out in a shuffled order as in the real set (a class's images are not contiguous). The mirror holds 10
    of the 102 classes: every image costs a ResNet-50 pass at 224 px in the rehearsal."""
    slots = [(c, split) for c in FLOWERS_LABELS for split, n in FLOWERS_PER_CLASS.items() for _ in range(n)]
    order = np.random.default_rng([SEED, 102]).permutation(len(slots))
    labels = np.zeros(len(slots), np.uint8)
    splits = {split: [] for split in FLOWERS_PER_CLASS}
    for number, slot in enumerate(order, start=1):
        label, split = slots[slot]
        labels[number - 1] = label
        splits[split].append(number)
    return labels, {split: np.array(sorted(numbers), np.uint16) for split, numbers in splits.items()}


def flowers_images(directory: Path) -> Path:
    """``102flowers.tgz``: ``jpg/image_00001.jpg`` ... at assorted sizes, each showing its class's texture."""
    labels, _ = flowers_layout()
    rng = np.random.default_rng([SEED, 1020])
    images, drawn = make_images(len(FLOWERS_LABELS), len(labels) // len(FLOWERS_LABELS), 96, rng, noise=0.3,
                                class_offset=600)
    by_class = {label: list(np.flatnonzero(drawn == k)) for k, label in enumerate(FLOWERS_LABELS)}
    path = directory / "102flowers.tgz"
    with tempfile.TemporaryDirectory() as tmp, _tar(path, gzipped=True) as tar:
        folder = Path(tmp, "jpg")
        folder.mkdir()
        for number, label in enumerate(labels, start=1):
            size = (int(rng.integers(*FLOWERS_SIZES[0])), int(rng.integers(*FLOWERS_SIZES[1])))
            image = Image.fromarray(images[by_class[label].pop()]).resize(size, Image.Resampling.BILINEAR)
            image.save(folder / f"image_{number:05d}.jpg", quality=90)
        add_tree(tar, Path(tmp), "jpg")
    return path


MAT_HEADER = b"MATLAB 5.0 MAT-file, Platform: posix, Created on: Thu Jan  1 00:00:00 1970"
MAT_HEADER_TEXT = 116  # bytes of descriptive text at the start of a MATLAB v5 file


def _savemat(path: Path, variables: dict) -> Path:
    """``scipy.io.savemat`` (MATLAB v5, as the originals), with a fixed creation date in the header's text, which
    would otherwise change the file's bytes, and so its checksum, at every build."""
    buffer = io.BytesIO()
    savemat(buffer, variables)
    path.write_bytes(MAT_HEADER.ljust(MAT_HEADER_TEXT) + buffer.getvalue()[MAT_HEADER_TEXT:])
    return path


def flowers_labels(directory: Path) -> Path:
    """``imagelabels.mat``: ``labels`` [1, N] uint8."""
    labels, _ = flowers_layout()
    return _savemat(directory / "imagelabels.mat", {"labels": labels[None, :]})


def flowers_splits(directory: Path) -> Path:
    """``setid.mat``: ``trnid``, ``valid``, ``tstid`` [1, n] uint16 image numbers."""
    _, splits = flowers_layout()
    return _savemat(directory / "setid.mat", {split: numbers[None, :] for split, numbers in splits.items()})


# ---- PASCAL VOC2007 ------------------------------------------------------------------------------------------
def _voc_archive(directory: Path, name: str, splits: Sequence[str]) -> Path:
    """One of the two VOC2007 tars: the images, annotations and image lists of ``splits`` (``ImageSets/Main``
    also holds the per-class lists ``<class>_<split>.txt``, 1 / -1 / 0 for present / absent / only difficult)."""
    n_trainval, n_test = VOC_COUNTS
    with tempfile.TemporaryDirectory() as tmp:
        root = synthesize_voc(tmp, n_trainval, n_test, size=VOC_SIZE, seed=SEED, max_objects=3, difficult_rate=0.1)
        main = root / "ImageSets" / "Main"
        ids = (main / "trainval.txt").read_text().split()
        lists = {"trainval": ids, "train": ids[::2], "val": ids[1::2], "test": (main / "test.txt").read_text().split()}
        keep = {i for split in splits for i in lists[split]}
        for split in splits:
            (main / f"{split}.txt").write_text("".join(f"{i}\n" for i in lists[split]))
            annotations = {i: parse_annotation(root / "Annotations" / f"{i}.xml") for i in lists[split]}
            for label, cls in enumerate(VOC_CLASSES, start=1):
                rows = []
                for i, a in annotations.items():
                    mine = a.labels == label
                    flag = 1 if (mine & ~a.difficult).any() else 0 if mine.any() else -1
                    rows.append(f"{i} {flag:2d}\n")
                (main / f"{cls}_{split}.txt").write_text("".join(rows))
        if "test" not in splits:
            (main / "test.txt").unlink()
        path = directory / name
        with _tar(path, gzipped=False) as tar:
            add_tree(tar, Path(tmp), VOC_DIR.parts[0],
                     keep=lambda p: p.parent.name == "Main" and p.stem.split("_")[-1] in splits or p.stem in keep)
    return path


def voc_trainval(directory: Path) -> Path:
    return _voc_archive(directory, "VOCtrainval_06-Nov-2007.tar", ("trainval", "train", "val"))


def voc_test(directory: Path) -> Path:
    return _voc_archive(directory, "VOCtest_06-Nov-2007.tar", ("test",))


ARCHIVES = {
    "cifar-10-python.tar.gz": cifar10_archive,
    "cifar-100-python.tar.gz": cifar100_archive,
    "102flowers.tgz": flowers_images,
    "imagelabels.mat": flowers_labels,
    "setid.mat": flowers_splits,
    "VOCtrainval_06-Nov-2007.tar": voc_trainval,
    "VOCtest_06-Nov-2007.tar": voc_test,
}


# ---- Open Images V4 ------------------------------------------------------------------------------------------
def openimages(csv_dir: Path, images_dir: Path, classes: Sequence[str]) -> dict:
    """The V4 CSVs at the bucket's layout (``class-descriptions-boxable.csv``, ``{split}/{split}-annotations-bbox.csv``)
    and the images (``images_dir/{split}/{ImageID}.jpg``); returns the images written per split."""
    names = [*classes, *OPENIMAGES_OTHER_CLASSES]
    with tempfile.TemporaryDirectory() as tmp:
        root = synthesize_openimages(Path(tmp, "oi"), names, n_train=OPENIMAGES_COUNTS["train"],
                                     n_validation=OPENIMAGES_COUNTS["validation"], n_test=OPENIMAGES_COUNTS["test"],
                                     size=VOC_SIZE, seed=SEED, max_objects=3)
        csv_dir.mkdir(parents=True, exist_ok=True)
        shutil.move(root / CLASS_DESCRIPTIONS, csv_dir / CLASS_DESCRIPTIONS)
        for split in OPENIMAGES_SPLITS:
            (csv_dir / split).mkdir(exist_ok=True)
            shutil.move(root / box_csv_name(split), csv_dir / split / box_csv_name(split))
            (images_dir / split).parent.mkdir(parents=True, exist_ok=True)
            shutil.move(root / split, images_dir / split)
    return {"images": {split: len(list((images_dir / split).glob("*.jpg"))) for split in OPENIMAGES_SPLITS}}


# ---- weights -------------------------------------------------------------------------------------------------
def _named_by_digest(path: Path, stem: str) -> Path:
    """Rename ``path`` to ``<stem>-<first 8 hex digits of its SHA-256>.pth``, torchvision's naming."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return path.rename(path.with_name(f"{stem}-{digest[:8]}.pth"))


def torchvision_weights(directory: Path, arch: str, stem: str) -> Path:
    """torchvision's ``arch`` as torchvision builds it (random init), saved as its ImageNet file is: a state_dict."""
    torch.manual_seed(SEED)
    state = TORCHVISION_ARCHS[arch]().state_dict()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    path = directory / f"{stem}.pth"
    path.write_bytes(buffer.getvalue())
    return _named_by_digest(path, stem)


def ssd_checkpoint(path: Path) -> Path:
    """pytorch-ssd's ``mobilenet-v1-ssd-mp-0_675.pth`` layout: its 202 keys and shapes, He-initialised convolutions,
    identity BatchNorm, zero biases; built from the key list alone, not from our model."""
    shapes = json.loads(SSD_KEYS.read_text())
    generator = torch.Generator().manual_seed(SEED)
    state = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(0)
        elif key.endswith(("running_var",)) or (key.endswith(".weight") and len(shape) == 1):
            state[key] = torch.ones(shape)
        elif len(shape) == 4:
            fan_in = shape[1] * shape[2] * shape[3]
            state[key] = torch.randn(shape, generator=generator) * (2 / fan_in) ** 0.5
        else:
            state[key] = torch.zeros(shape)
    torch.save(state, path)
    return path


def imagenet_val(root: Path, per_class: int = 1) -> Path:
    """``root/val/<wnid>/ILSVRC2012_val_<n>.JPEG``: torchvision's ImageFolder layout of ImageNet's validation set, its
    1,000 class folders named like wnids (``n00000000`` ...: sorted, they are the class indices), ``per_class``
    small JPEGs of assorted sizes in each, drawn from the synthetic generator's textures. ImageNet's own images
    cannot be had; the layout, the names and the class count are its."""
    rng = np.random.default_rng(SEED)
    side = max(high for _, high in IMAGENET_VAL_SIZES)
    images, labels = make_images(IMAGENET_VAL_CLASSES, per_class, size=side, seed=SEED)
    for number, (pixels, label) in enumerate(zip(images, labels), start=1):
        folder = root / "val" / f"n{label:08d}"
        folder.mkdir(parents=True, exist_ok=True)
        width, height = (int(rng.integers(low, high + 1)) for low, high in IMAGENET_VAL_SIZES)
        Image.fromarray(pixels[:height, :width]).save(folder / f"ILSVRC2012_val_{number:08d}.JPEG", quality=90)
    return root
