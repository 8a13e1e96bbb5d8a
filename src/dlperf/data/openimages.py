"""Open Images V4 boxes for a few classes, laid out and read as pytorch-ssd's Open Images tools do.

On-disk layout under a dataset ``root`` (pytorch-ssd README, "Retrain on Open Images Dataset")::

    class-descriptions-boxable.csv          no header: LabelName,DisplayName (e.g. /m/..., Handgun)
    {split}-annotations-bbox.csv            the published V4 box files, split in train, validation, test
    sub-{split}-annotations-bbox.csv        the boxes of the chosen classes: the V4 columns + id,ClassName
    {split}/{ImageID}.jpg                   the images those boxes are on

The full config downloads the two published CSVs (``CLASS_DESCRIPTIONS_URL``, ``box_csv_url``), makes
the subsets, then fetches the subsets' images (``download_images`` from ``IMAGES_URL``); the embedded
default synthesizes the CSVs and images (``dlperf.data.synthetic_detection``). Both go through
``write_subset`` (pytorch-ssd's ``open_images_downloader.py`` less the download) and ``OpenImagesDataset``
(pytorch-ssd's ``vision/datasets/open_images.py``). We differ from pytorch-ssd where it is fragile: the
subset keeps the file's row order instead of shuffling it unseeded, box files are read in chunks (train is
over 1 GB), and degenerate boxes and missing images are counted and skipped rather than turning into NaN
losses (pytorch-ssd #139) or a crash mid-epoch. This module does not use the ``openimages`` package: it
reads V5 class ids against V4 boxes and stores images per class, a layout pytorch-ssd cannot read.
"""
from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from dlperf.atomic import write_csv
from dlperf.data.download import DownloadError, fetch
from dlperf.data.errors import DatasetFormatError
from dlperf.data.voc import BACKGROUND

SPLITS = ("train", "validation", "test")
OPENIMAGES_URL = "https://storage.googleapis.com/openimages/2018_04"  # V4, as open_images_downloader.py
IMAGES_URL = "https://open-images-dataset.s3.amazonaws.com"  # the bucket pytorch-ssd reads unsigned, over HTTPS
CLASS_DESCRIPTIONS = "class-descriptions-boxable.csv"
CLASS_DESCRIPTIONS_URL = f"{OPENIMAGES_URL}/{CLASS_DESCRIPTIONS}"
BOX_COLUMNS = (
    "ImageID", "Source", "LabelName", "Confidence", "XMin", "XMax", "YMin", "YMax",
    "IsOccluded", "IsTruncated", "IsGroupOf", "IsDepiction", "IsInside",
)
CSV_CHUNK_ROWS = 1_000_000  # ~100 MB of parsed rows at a time: the 14.6 M-row train file never sits whole
_TEXT_COLUMNS = {"ImageID": str, "Source": str, "LabelName": str, "ClassName": str, "id": str}

_log = logging.getLogger(__name__)

Transform = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]


def box_csv_name(split: str) -> str:
    """``{split}-annotations-bbox.csv``, the published file of one split."""
    return f"{split}-annotations-bbox.csv"


def subset_csv_name(split: str) -> str:
    """``sub-{split}-annotations-bbox.csv``, the chosen classes' boxes that ``OpenImagesDataset`` reads."""
    return f"sub-{split}-annotations-bbox.csv"


def box_csv_url(split: str) -> str:
    """Where the published box file of ``split`` lives (pytorch-ssd's URL, still served in 2024)."""
    return f"{OPENIMAGES_URL}/{split}/{box_csv_name(split)}"


def read_class_descriptions(path: str | os.PathLike) -> dict[str, str]:
    """``{DisplayName: LabelName}`` from ``class-descriptions-boxable.csv`` (no header row).

    A display name given to two label ids raises: a class chosen by name would be ambiguous.
    """
    path = Path(path)
    try:
        frame = pd.read_csv(path, header=None, names=["id", "ClassName"], dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise DatasetFormatError(f"{path}: unreadable class descriptions ({error})") from error
    repeated = sorted(set(frame.loc[frame["ClassName"].duplicated(), "ClassName"]))
    if repeated:
        raise DatasetFormatError(f"{path}: display names given to more than one label id: {repeated}")
    return dict(zip(frame["ClassName"], frame["id"]))


def _check_columns(frame: pd.DataFrame, required: Iterable[str], path: Path) -> None:
    missing = [column for column in required if column not in frame.columns]
    if missing:
        raise DatasetFormatError(f"{path}: missing columns {missing}; it has {list(frame.columns)}")


def filter_annotations(
    bbox_csv: str | os.PathLike, class_names: Sequence[str], descriptions: Mapping[str, str]
) -> pd.DataFrame:
    """The rows of a V4 box file whose class is one of ``class_names``, in file order.

    Columns are the V4 ones plus ``id`` (the label id) and ``ClassName`` (the display name), the frame
    pytorch-ssd's downloader gets from its inner join on ``LabelName == id`` and writes out.
    """
    bbox_csv = Path(bbox_csv)
    unknown = [name for name in class_names if name not in descriptions]
    if unknown:
        raise DatasetFormatError(
            f"classes {unknown} are not in the class descriptions ({len(descriptions)} boxable classes)"
        )
    name_of = {descriptions[name]: name for name in class_names}
    try:
        reader = pd.read_csv(bbox_csv, dtype=_TEXT_COLUMNS, chunksize=CSV_CHUNK_ROWS)
        parts = []
        for chunk in reader:
            _check_columns(chunk, BOX_COLUMNS, bbox_csv)
            parts.append(chunk.loc[chunk["LabelName"].isin(name_of.keys()), list(BOX_COLUMNS)])
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise DatasetFormatError(f"{bbox_csv}: unreadable box annotations ({error})") from error
    frame = pd.concat(parts, ignore_index=True)
    return frame.assign(id=frame["LabelName"], ClassName=frame["LabelName"].map(name_of))


def write_subset(root: str | os.PathLike, split: str, class_names: Sequence[str]) -> pd.DataFrame:
    """Filter ``root``'s ``{split}-annotations-bbox.csv`` to ``class_names``; write and return the subset.

    The subset goes to ``root/sub-{split}-annotations-bbox.csv``; boxes and images per class are logged,
    as pytorch-ssd's downloader logs them.
    """
    root = Path(root)
    descriptions = read_class_descriptions(root / CLASS_DESCRIPTIONS)
    subset = filter_annotations(root / box_csv_name(split), class_names, descriptions)
    write_csv(root / subset_csv_name(split), subset)
    for name in class_names:
        rows = subset[subset["ClassName"] == name]
        _log.info("%s %s: %d boxes on %d images", split, name, len(rows), rows["ImageID"].nunique())
    return subset


def download_images(
    image_ids: Iterable[str],
    split: str,
    base_url: str,
    dest_dir: str | os.PathLike,
    *,
    retries: int = 3,
    workers: int = 8,
    timeout: float = 60,
    progress: bool = True,
) -> tuple[list[str], list[str]]:
    """Fetch ``base_url/{split}/{id}.jpg`` to ``dest_dir/{split}/{id}.jpg``; return ``(ok_ids, failed_ids)``.

    Open Images publishes no per-image checksum, so images are fetched unverified
    (``allow_unverified=True``); ``fetch`` still renames a file into place only once its whole announced
    body has arrived, so a present file is a complete one and a rerun skips it. A failed image (a 404, or
    a transfer that gave up after ``retries``) is logged and counted, never fatal, as pytorch-ssd's
    downloader logs a 404 and goes on: an image gone upstream should cost one training image, not the
    dataset. Both lists keep the order of ``image_ids`` (duplicates fetched once). Threads, not
    processes: the work is waiting on the network.
    """
    ids = list(dict.fromkeys(image_ids))
    base = base_url.rstrip("/")

    def fetch_one(image_id: str) -> bool:
        try:
            fetch(
                f"{base}/{split}/{image_id}.jpg", Path(dest_dir, split, f"{image_id}.jpg"),
                retries=retries, timeout=timeout, progress=False, allow_unverified=True,
            )
        except DownloadError as error:
            _log.warning("image %s of %s not downloaded: %s", image_id, split, error)
            return False
        return True

    with ThreadPoolExecutor(max_workers=workers) as pool:
        done = tqdm(pool.map(fetch_one, ids), total=len(ids), desc=f"{split} images", disable=not progress)
        fetched = list(done)
    ok = [image_id for image_id, done in zip(ids, fetched) if done]
    failed = [image_id for image_id, done in zip(ids, fetched) if not done]
    if failed:
        _log.warning("%d of %d %s images failed to download", len(failed), len(ids), split)
    return ok, failed


class OpenImagesDataset:
    """``(image uint8 [H, W, 3] RGB, boxes float32 [n, 4] pixels, labels int64 [n])`` per image of a split.

    pytorch-ssd's ``OpenImagesDataset(root, dataset_type=split)``: reads ``sub-{split}-annotations-bbox.csv``,
    one item per ``ImageID`` in sorted order, boxes ``XMin, YMin, XMax, YMax`` scaled by the image's width
    and height at load time. Labels are 1..K in the order of ``class_names``, 0 is ``BACKGROUND``;
    pytorch-ssd sorts the names it finds instead, so pass them sorted (``Handgun, Shotgun`` are) for the
    same label ids. A row of a class not in ``class_names`` raises, since the subset was made for another
    class list. Boxes outside ``[0, 1]`` or empty are dropped (``dropped_boxes``), and images whose file is
    missing are skipped (``missing_images``), both with a warning: some images fail to download. A split
    left with no image raises, since then the download failed, not a few images.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str,
        class_names: Sequence[str],
        transform: Transform | None = None,
    ):
        self.root = Path(root)
        self.split = split
        self.transform = transform
        self.class_names = (BACKGROUND, *class_names)
        path = self.root / subset_csv_name(split)
        try:
            frame = pd.read_csv(path, dtype=_TEXT_COLUMNS)
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
            raise DatasetFormatError(f"{path}: unreadable subset annotations ({error})") from error
        _check_columns(frame, ("ImageID", "ClassName", "XMin", "YMin", "XMax", "YMax"), path)
        label_of = {name: label for label, name in enumerate(self.class_names) if label}
        unknown = sorted(set(frame["ClassName"]) - label_of.keys())
        if unknown:
            raise DatasetFormatError(f"{path}: classes {unknown} are not among {list(class_names)}")
        try:
            coordinates = frame[["XMin", "YMin", "XMax", "YMax"]].to_numpy(np.float32)
        except ValueError as error:
            raise DatasetFormatError(f"{path}: box coordinates are not all numbers ({error})") from error
        x1, y1, x2, y2 = coordinates.T
        valid = (0 <= x1) & (x1 < x2) & (x2 <= 1) & (0 <= y1) & (y1 < y2) & (y2 <= 1)
        self.dropped_boxes = int((~valid).sum())
        if self.dropped_boxes:
            _log.warning(
                "%s: dropped %d empty or out-of-image boxes, on images %s",
                path, self.dropped_boxes, sorted(set(frame.loc[~valid, "ImageID"])),
            )
        self.ids, self._boxes, self._labels = [], [], []
        missing = []
        for image_id, rows in frame.loc[valid].groupby("ImageID", sort=True):
            if not self._image_path(image_id).is_file():
                missing.append(image_id)
                continue
            self.ids.append(image_id)
            self._boxes.append(rows[["XMin", "YMin", "XMax", "YMax"]].to_numpy(np.float32))
            self._labels.append(rows["ClassName"].map(label_of).to_numpy(np.int64))
        self.missing_images = len(missing)
        if missing:
            _log.warning("%s: skipped %d images missing from %s: %s", path, len(missing), self.root / split, missing)
        if not self.ids:
            raise DatasetFormatError(
                f"{path}: no image of split {split!r} has both a box and a file ({len(missing)} missing)"
            )

    def _image_path(self, image_id: str) -> Path:
        return self.root / self.split / f"{image_id}.jpg"

    def __len__(self) -> int:
        return len(self.ids)

    def get_image(self, index: int) -> np.ndarray:
        path = self._image_path(self.ids[index])
        try:
            with Image.open(path) as opened:
                return np.asarray(opened.convert("RGB"))
        except (OSError, SyntaxError, ValueError) as error:
            raise DatasetFormatError(f"{path}: unreadable image ({error})") from error

    def _pixel_boxes(self, index: int, width: int, height: int) -> np.ndarray:
        return self._boxes[index] * np.array([width, height, width, height], np.float32)

    def get_annotation(self, index: int) -> tuple[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """``(image_id, (boxes pixels, labels, is_difficult))``; Open Images has no difficult flag, so all 0.

        Reads only the image header for its size, so evaluating ground truth does not decode every image.
        """
        with Image.open(self._image_path(self.ids[index])) as opened:
            width, height = opened.size
        boxes = self._pixel_boxes(index, width, height)
        return self.ids[index], (boxes, self._labels[index].copy(), np.zeros(len(boxes), np.uint8))

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        image = self.get_image(index)
        boxes = self._pixel_boxes(index, image.shape[1], image.shape[0])
        labels = self._labels[index].copy()
        if self.transform is not None:
            image, boxes, labels = self.transform(image, boxes, labels)
        return image, boxes, labels
