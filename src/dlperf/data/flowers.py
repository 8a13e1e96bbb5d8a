"""Oxford 102 Flowers (a Visual Decathlon domain) from its original files into the ImageFolder layout.

The originals (https://www.robots.ox.ac.uk/~vgg/data/flowers/102/, as torchvision's ``Flowers102`` fetches them):
``102flowers.tgz`` (``jpg/image_00001.jpg`` ... ``image_08189.jpg``), ``imagelabels.mat`` (``labels``: the class,
1..102, of image i at index i-1) and ``setid.mat`` (``trnid``, ``valid``, ``tstid``: 1-based image numbers of the
official train, validation and test splits, 10 + 10 images per class and the rest for test). The ImageFolder is
``root/{train,val,test}/class_<label:03d>/image_<n:05d>.jpg``; files are hard-linked from the extracted archive
where the file system allows, else copied.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
from scipy.io import loadmat

from dlperf.atomic import atomic_dir
from dlperf.data.errors import DatasetFormatError

SPLIT_KEYS = {"train": "trnid", "val": "valid", "test": "tstid"}


def _mat_vector(path: Path, key: str) -> np.ndarray:
    try:
        mat = loadmat(path)
    except (OSError, ValueError) as error:
        raise DatasetFormatError(f"{path}: not a readable .mat file ({error})") from error
    if key not in mat:
        raise DatasetFormatError(f"{path}: no variable {key!r} (has {sorted(k for k in mat if not k.startswith('_'))})")
    return np.asarray(mat[key]).ravel().astype(np.int64)


def flowers102_to_imagefolder(images_dir: str | os.PathLike, labels_mat: str | os.PathLike,
                              setid_mat: str | os.PathLike, root: str | os.PathLike) -> Path:
    """Write the ImageFolder of the official splits from the extracted ``jpg/`` folder and the two .mat files."""
    images_dir, root = Path(images_dir), Path(root)
    labels = _mat_vector(Path(labels_mat), "labels")
    with atomic_dir(root) as tmp:
        for split, key in SPLIT_KEYS.items():
            for number in _mat_vector(Path(setid_mat), key):
                if not 1 <= number <= len(labels):
                    raise DatasetFormatError(f"{setid_mat}: {key} names image {number}, but {labels_mat} labels "
                                             f"{len(labels)} images")
                source = images_dir / f"image_{number:05d}.jpg"
                if not source.is_file():
                    raise DatasetFormatError(f"{source}: listed in {setid_mat} ({key}) but missing from the archive")
                folder = tmp / split / f"class_{labels[number - 1]:03d}"
                folder.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(source, folder / source.name)
                except OSError:
                    shutil.copyfile(source, folder / source.name)
    return root
