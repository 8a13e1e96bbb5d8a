"""CIFAR-10 and CIFAR-100 in the exact on-disk layout of the published python archives.

The embedded default writes synthetic images in this layout and the full config downloads the real
``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz``; both go through the same reader, so the cheap
run exercises the code path of the full one. The reader checks the format (files, keys, shapes, label
ranges), not the archives' md5, so that it accepts synthetic files and explains exactly what is wrong
with a broken download.
"""
from __future__ import annotations

import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from dlperf.atomic import atomic_dir
from dlperf.data.errors import DatasetFormatError

CIFAR10_DIR = "cifar-10-batches-py"
CIFAR100_DIR = "cifar-100-python"
CIFAR10_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
IMAGE_SIZE = 32
ROW_VALUES = 3 * IMAGE_SIZE * IMAGE_SIZE  # one image per row: the R plane, then G, then B, each row-major
README_HTML = (  # the real CIFAR-10 archive ships a readme.html; ours says where the layout comes from
    "<html><body><p>Written by dlperf.data.cifar in the layout of the CIFAR-10 python archive, "
    '<a href="https://www.cs.toronto.edu/~kriz/cifar.html">https://www.cs.toronto.edu/~kriz/cifar.html</a>.'
    "</p></body></html>\n"
)


@dataclass(frozen=True)
class CifarData:
    """A CIFAR dataset in memory: images uint8 [N, 32, 32, 3] (NHWC), labels int64 [N]."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    classes: list[str]


class _Py2Pickler(pickle._Pickler):
    """A protocol-2 pickler that writes what Python 2's cPickle wrote into the published CIFAR files.

    Python 2 had one string type, pickled with the (SHORT_)BINSTRING opcodes, which Python 3 loads as
    ``bytes`` under ``encoding="bytes"`` (the CIFAR web page's snippet) and as ``str`` under
    ``encoding="latin1"`` (torchvision). Emitting those opcodes for every string, keys included, makes
    both readers see our files as they see the real ones. The pure-Python pickler is subclassed because
    only it lets a subclass replace how a type is saved.
    """

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_string(self, obj: str | bytes) -> None:
        data = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]))
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)))
        self.write(data)
        self.memoize(obj)

    def save_ndarray(self, arr: np.ndarray) -> None:
        """Pickle ``arr`` as numpy reduces it at protocol 2, in the form the real files hold.

        Two differences from Python 3 numpy: the raw buffer is a py2 string (Python 3 pickles bytes as a
        ``_codecs.encode`` call, absent from the real files), and the reconstructor goes by its pre-2.0
        path ``numpy.core.multiarray``, which numpy 2 keeps importable, without a warning, for old pickles.
        """
        self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
        self.save((np.ndarray, (0,), "b"))
        self.write(pickle.REDUCE)
        self.memoize(arr)
        self.save((1, arr.shape, arr.dtype, False, arr.tobytes()))  # False: C order, as tobytes() writes
        self.write(pickle.BUILD)

    dispatch[str] = save_py2_string
    dispatch[bytes] = save_py2_string
    dispatch[np.ndarray] = save_ndarray


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles dictionaries of numbers, strings and numpy arrays, and nothing that could run code."""

    ALLOWED = frozenset({
        ("numpy.core.multiarray", "_reconstruct"),  # numpy < 2 and the real files
        ("numpy._core.multiarray", "_reconstruct"),  # numpy >= 2
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # how Python 3 pickles bytes at protocol 2
    })

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load the global {module}.{name}")
        return super().find_class(module, name)


def _dump(path: Path, batch: dict) -> None:
    with path.open("wb") as handle:
        _Py2Pickler(handle, protocol=2).dump(batch)


def _text(value: str | bytes) -> str:
    return value.decode("latin1") if isinstance(value, bytes) else value


def _load(path: Path, required: Sequence[str]) -> dict:
    """Unpickle one CIFAR file into a dict with ``str`` keys, checking that ``required`` keys are there.

    ``encoding="bytes"`` hands numpy the raw image buffer as it is; ``latin1`` would first decode 150 MB
    into a ``str`` that numpy then encodes back.
    """
    if not path.is_file():
        raise DatasetFormatError(f"{path}: missing")
    try:
        with path.open("rb") as handle:
            content = _ArrayUnpickler(handle, encoding="bytes").load()
    except Exception as error:  # a corrupt pickle can fail in any of a dozen ways; all mean "bad file"
        raise DatasetFormatError(f"{path}: not a readable CIFAR pickle ({error})") from error
    if not isinstance(content, dict):
        raise DatasetFormatError(f"{path}: holds a {type(content).__name__}, expected a dict")
    content = {_text(key): value for key, value in content.items()}
    missing = [key for key in required if key not in content]
    if missing:
        raise DatasetFormatError(f"{path}: missing key(s) {', '.join(missing)}")
    return content


def _names(content: dict, key: str, path: Path) -> list[str]:
    names = content[key]
    if not isinstance(names, list) or not names or not all(isinstance(n, (str, bytes)) for n in names):
        raise DatasetFormatError(f"{path}: {key!r} must be a non-empty list of strings")
    return [_text(name) for name in names]


def _rows(content: dict, path: Path) -> np.ndarray:
    data = content["data"]
    if not isinstance(data, np.ndarray):
        raise DatasetFormatError(f"{path}: 'data' must be a numpy array, found {type(data).__name__}")
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != ROW_VALUES:
        raise DatasetFormatError(
            f"{path}: 'data' must be uint8 of shape [n, {ROW_VALUES}], found {data.dtype} {list(data.shape)}"
        )
    return data


def _labels(content: dict, key: str, path: Path, n_rows: int, n_classes: int) -> np.ndarray:
    labels = np.asarray(content[key])
    if labels.ndim != 1 or (labels.size and labels.dtype.kind not in "iu"):
        raise DatasetFormatError(f"{path}: {key!r} must be a list of integers")
    if len(labels) != n_rows:
        raise DatasetFormatError(f"{path}: {len(labels)} {key!r} for {n_rows} rows of 'data'")
    outside = labels[(labels < 0) | (labels >= n_classes)]
    if outside.size:
        raise DatasetFormatError(
            f"{path}: {key!r} must lie in [0, {n_classes}) as the meta file names {n_classes} classes, "
            f"found {int(outside[0])}"
        )
    return labels.astype(np.int64)


def _nhwc(rows: np.ndarray) -> np.ndarray:
    """[n, 3072] planar rows -> contiguous [n, 32, 32, 3], the layout every consumer here indexes."""
    return np.ascontiguousarray(rows.reshape(-1, 3, IMAGE_SIZE, IMAGE_SIZE).transpose(0, 2, 3, 1))


def read_cifar10(root: str | Path) -> CifarData:
    """Read CIFAR-10 from ``root/cifar-10-batches-py`` (``root`` as torchvision's), real or synthetic."""
    directory = Path(root) / CIFAR10_DIR
    meta_path = directory / "batches.meta"
    meta = _load(meta_path, ("label_names", "num_cases_per_batch"))
    classes = _names(meta, "label_names", meta_path)
    train_rows, train_y = [], []
    for name in CIFAR10_TRAIN_BATCHES:
        path = directory / name
        batch = _load(path, ("data", "labels"))
        rows = _rows(batch, path)
        if len(rows) != meta["num_cases_per_batch"]:
            raise DatasetFormatError(
                f"{path}: {len(rows)} rows, but {meta_path} says {meta['num_cases_per_batch']} per batch"
            )
        train_rows.append(rows)
        train_y.append(_labels(batch, "labels", path, len(rows), len(classes)))
    test_path = directory / "test_batch"
    test = _load(test_path, ("data", "labels"))
    test_rows = _rows(test, test_path)
    return CifarData(
        train_x=_nhwc(np.concatenate(train_rows)),
        train_y=np.concatenate(train_y),
        test_x=_nhwc(test_rows),
        test_y=_labels(test, "labels", test_path, len(test_rows), len(classes)),
        classes=classes,
    )


def read_cifar100(root: str | Path, label: str = "fine") -> CifarData:
    """Read CIFAR-100 from ``root/cifar-100-python`` with its ``fine`` (100) or ``coarse`` (20) labels.

    Both label sets are checked whichever is returned: a file with a broken one is a broken file.
    """
    if label not in ("fine", "coarse"):
        raise ValueError(f"label must be 'fine' or 'coarse', got {label!r}")
    directory = Path(root) / CIFAR100_DIR
    meta_path = directory / "meta"
    meta = _load(meta_path, ("fine_label_names", "coarse_label_names"))
    names = {kind: _names(meta, f"{kind}_label_names", meta_path) for kind in ("fine", "coarse")}
    splits = {}
    for split in ("train", "test"):
        path = directory / split
        content = _load(path, ("data", "fine_labels", "coarse_labels"))
        rows = _rows(content, path)
        labels = {
            kind: _labels(content, f"{kind}_labels", path, len(rows), len(names[kind]))
            for kind in ("fine", "coarse")
        }
        splits[split] = (_nhwc(rows), labels[label])
    return CifarData(
        train_x=splits["train"][0],
        train_y=splits["train"][1],
        test_x=splits["test"][0],
        test_y=splits["test"][1],
        classes=names[label],
    )


def _planar_rows(images: np.ndarray, argument: str) -> np.ndarray:
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE, 3):
        raise ValueError(f"{argument} must be uint8 [N, 32, 32, 3], got {images.dtype} {list(images.shape)}")
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2)).reshape(len(images), ROW_VALUES)


def _label_list(labels: np.ndarray, argument: str, n_rows: int, n_classes: int) -> list[int]:
    labels = np.asarray(labels)
    if labels.shape != (n_rows,) or (labels.size and labels.dtype.kind not in "iu"):
        raise ValueError(f"{argument} must be {n_rows} integers, got {labels.dtype} {list(labels.shape)}")
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"{argument} must lie in [0, {n_classes})")
    return labels.tolist()  # Python ints: the real files hold a list, not a numpy array


def _filenames(labels: list[int], names: Sequence[str]) -> list[str]:
    """Names in the real files' pattern, e.g. ``bos_taurus_s_000507.png``."""
    return [f"{names[label]}_s_{index:06d}.png" for index, label in enumerate(labels)]


def write_cifar10(
    root: str | Path,
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    label_names: Sequence[str],
) -> Path:
    """Write ``root/cifar-10-batches-py`` as the real archive lays it out; return that directory.

    The training set is cut into five equal batches in order, so its size must be divisible by five.
    The directory appears whole or not at all.
    """
    train_rows = _planar_rows(train_x, "train_x")
    test_rows = _planar_rows(test_x, "test_x")
    if len(train_rows) % len(CIFAR10_TRAIN_BATCHES):
        raise ValueError(f"train_x holds {len(train_rows)} images, not divisible into 5 equal batches")
    train_labels = _label_list(train_y, "train_y", len(train_rows), len(label_names))
    test_labels = _label_list(test_y, "test_y", len(test_rows), len(label_names))
    train_files = _filenames(train_labels, label_names)
    per_batch = len(train_rows) // len(CIFAR10_TRAIN_BATCHES)
    directory = Path(root) / CIFAR10_DIR
    with atomic_dir(directory) as tmp:
        for number, name in enumerate(CIFAR10_TRAIN_BATCHES, start=1):
            part = slice((number - 1) * per_batch, number * per_batch)
            _dump(tmp / name, {
                "batch_label": f"training batch {number} of 5",
                "labels": train_labels[part],
                "data": train_rows[part],
                "filenames": train_files[part],
            })
        _dump(tmp / "test_batch", {
            "batch_label": "testing batch 1 of 1",
            "labels": test_labels,
            "data": test_rows,
            "filenames": _filenames(test_labels, label_names),
        })
        _dump(tmp / "batches.meta", {
            "num_cases_per_batch": per_batch,
            "label_names": list(label_names),
            "num_vis": ROW_VALUES,
        })
        (tmp / "readme.html").write_text(README_HTML)
    return directory


def write_cifar100(
    root: str | Path,
    train_x: np.ndarray,
    train_fine: np.ndarray,
    train_coarse: np.ndarray,
    test_x: np.ndarray,
    test_fine: np.ndarray,
    test_coarse: np.ndarray,
    fine_names: Sequence[str],
    coarse_names: Sequence[str],
) -> Path:
    """Write ``root/cifar-100-python`` (``train``, ``test``, ``meta``) as the real archive lays it out.

    The real archive also holds ``file.txt~``, an editor's backup file that no reader opens; it is left
    out. Returns the directory, which appears whole or not at all.
    """
    splits = {}
    for split, batch_label, images, fine, coarse in (
        ("train", "training batch 1 of 1", train_x, train_fine, train_coarse),
        ("test", "testing batch 1 of 1", test_x, test_fine, test_coarse),
    ):
        rows = _planar_rows(images, f"{split}_x")
        fine_labels = _label_list(fine, f"{split}_fine", len(rows), len(fine_names))
        splits[split] = {
            "filenames": _filenames(fine_labels, fine_names),
            "batch_label": batch_label,
            "fine_labels": fine_labels,
            "coarse_labels": _label_list(coarse, f"{split}_coarse", len(rows), len(coarse_names)),
            "data": rows,
        }
    directory = Path(root) / CIFAR100_DIR
    with atomic_dir(directory) as tmp:
        for split, content in splits.items():
            _dump(tmp / split, content)
        _dump(tmp / "meta", {"fine_label_names": list(fine_names), "coarse_label_names": list(coarse_names)})
    return directory
