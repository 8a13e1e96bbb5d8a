"""PASCAL VOC2007 in its published on-disk layout, read with pytorch-ssd's ``VOCDataset`` semantics.

The layout (what ``VOCtrainval_06-Nov-2007.tar`` and ``VOCtest_06-Nov-2007.tar`` unpack to, and what
the embedded default synthesizes)::

    VOCdevkit/VOC2007/Annotations/<image_id>.xml
    VOCdevkit/VOC2007/JPEGImages/<image_id>.jpg
    VOCdevkit/VOC2007/ImageSets/Main/{trainval,test}.txt     one image id per line

``VOCdevkit/VOC2007`` is the ``root`` every function here takes, as pytorch-ssd's ``--datasets`` does.

Coordinates: VOC XML boxes are 1-based pixel indices (MATLAB convention). Like pytorch-ssd we subtract 1
from all four, so boxes are 0-based ``xmin, ymin, xmax, ymax`` in pixels, with ``xmax``/``ymax`` the index
of the last pixel inside; ``eval_ssd.py`` compares detections against exactly these boxes.

Where pytorch-ssd trusts its input, we check it, because its users' NaN losses came from bad boxes
(pytorch-ssd #91, #139): a box that is empty (``xmin >= xmax`` or ``ymin >= ymax``) or reaches outside the
image (in the file's coordinates, anything but ``0 <= xmin`` and ``xmax <= width``, likewise in y; 0 is
let pass since hand-made files use it) is dropped, counted and logged with the file named. An unknown
class name or a missing image is not a box one can drop but a broken or mismatched dataset, so it raises
:class:`DatasetFormatError` before training starts (pytorch-ssd skips unknown names silently, which
trains on a dataset with holes in it).
"""
from __future__ import annotations

import logging
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from dlperf.atomic import atomic_write
from dlperf.data.errors import DatasetFormatError

VOC_DIR = Path("VOCdevkit", "VOC2007")
BACKGROUND = "BACKGROUND"  # label 0 in every pytorch-ssd label file; the SSD head predicts it as a class
VOC_CLASSES = (  # pytorch-ssd's order (vision/datasets/voc_dataset.py): labels 1..20, as in voc-model-labels.txt
    "aeroplane", "bicycle", "bird", "boat", "bottle",
    "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person",
    "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)
SPLITS = ("trainval", "test")
_LABEL_OF = {name: label for label, name in enumerate(VOC_CLASSES, start=1)}

_log = logging.getLogger(__name__)

Transform = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Annotation:
    """One VOC XML file: every kept object, difficult ones included (the dataset decides whether to use them).

    ``boxes`` float32 [n, 4] 0-based ``xmin, ymin, xmax, ymax`` pixels; ``labels`` int64 [n] in 1..20;
    ``difficult`` bool [n]; ``dropped_boxes`` counts the objects left out as degenerate or outside the image.
    """

    image_id: str
    width: int
    height: int
    boxes: np.ndarray
    labels: np.ndarray
    difficult: np.ndarray
    dropped_boxes: int


def _text(element: ET.Element, tag: str, xml_path: Path) -> str:
    """The stripped text of ``element``'s child ``tag``; its absence is a malformed file."""
    child = element.find(tag)
    if child is None or child.text is None or not child.text.strip():
        raise DatasetFormatError(f"{xml_path}: <{element.tag}> has no <{tag}>")
    return child.text.strip()


def _number(element: ET.Element, tag: str, xml_path: Path) -> float:
    text = _text(element, tag, xml_path)
    try:
        return float(text)
    except ValueError:
        raise DatasetFormatError(f"{xml_path}: <{tag}> is {text!r}, not a number") from None


def parse_annotation(xml_path: str | os.PathLike) -> Annotation:
    """Read one ``Annotations/<image_id>.xml`` (see the module docstring for coordinates and checks).

    Class names are lower-cased and stripped, as pytorch-ssd does; a missing ``<difficult>`` means 0.
    """
    xml_path = Path(xml_path)
    try:
        root = ET.parse(xml_path).getroot()
    except (OSError, ET.ParseError) as error:
        raise DatasetFormatError(f"{xml_path}: unreadable annotation ({error})") from error
    size = root.find("size")
    if size is None:
        raise DatasetFormatError(f"{xml_path}: <annotation> has no <size>")
    width, height = int(_number(size, "width", xml_path)), int(_number(size, "height", xml_path))
    boxes, labels, difficult, dropped = [], [], [], []
    for obj in root.iter("object"):
        name = _text(obj, "name", xml_path).lower()
        if name not in _LABEL_OF:
            raise DatasetFormatError(f"{xml_path}: unknown class {name!r}; VOC2007 has {', '.join(VOC_CLASSES)}")
        bndbox = obj.find("bndbox")
        if bndbox is None:
            raise DatasetFormatError(f"{xml_path}: object {name!r} has no <bndbox>")
        x1, y1, x2, y2 = (_number(bndbox, tag, xml_path) for tag in ("xmin", "ymin", "xmax", "ymax"))
        if not (0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height):
            dropped.append(f"{name} ({x1:g}, {y1:g}, {x2:g}, {y2:g})")
            continue
        flag = obj.find("difficult")
        boxes.append((x1 - 1, y1 - 1, x2 - 1, y2 - 1))
        labels.append(_LABEL_OF[name])
        difficult.append(flag is not None and (flag.text or "0").strip() not in ("", "0"))
    if dropped:
        _log.warning(
            "%s: dropped %d degenerate or out-of-image box(es) in a %dx%d image: %s",
            xml_path, len(dropped), width, height, "; ".join(dropped),
        )
    return Annotation(
        image_id=xml_path.stem,
        width=width,
        height=height,
        boxes=np.array(boxes, np.float32).reshape(-1, 4),
        labels=np.array(labels, np.int64),
        difficult=np.array(difficult, bool),
        dropped_boxes=len(dropped),
    )


def read_split(root: str | os.PathLike, split: str) -> list[str]:
    """The image ids listed in ``root/ImageSets/Main/<split>.txt``, in file order, blank lines skipped."""
    path = Path(root) / "ImageSets" / "Main" / f"{split}.txt"
    if not path.is_file():
        raise DatasetFormatError(f"{path}: split file for {split!r} is missing")
    ids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not ids:
        raise DatasetFormatError(f"{path}: split {split!r} lists no images")
    return ids


class VOCDataset:
    """``(image uint8 [H, W, 3] RGB, boxes float32 [n, 4], labels int64 [n])`` per image of a VOC split.

    pytorch-ssd's ``VOCDataset(root, is_test=split == "test", keep_difficult=...)``: difficult objects are
    left out unless ``keep_difficult``; ``transform(image, boxes, labels)`` is applied last;
    ``get_annotation`` returns every object with its difficult flag, for evaluation. Unlike pytorch-ssd,
    all annotations are parsed and all images checked for existence here, so a broken dataset fails at
    construction, and ``dropped_boxes`` is the total dropped from the split.
    """

    class_names = (BACKGROUND, *VOC_CLASSES)

    def __init__(
        self,
        root: str | os.PathLike,
        split: str,
        keep_difficult: bool = False,
        transform: Transform | None = None,
    ):
        self.root = Path(root)
        self.keep_difficult = keep_difficult
        self.transform = transform
        self.ids = read_split(self.root, split)
        self.annotations = [parse_annotation(self.root / "Annotations" / f"{i}.xml") for i in self.ids]
        for image_id in self.ids:
            if not (path := self._image_path(image_id)).is_file():
                raise DatasetFormatError(f"{path}: image {image_id!r} of split {split!r} is missing")
        self.dropped_boxes = sum(a.dropped_boxes for a in self.annotations)

    def _image_path(self, image_id: str) -> Path:
        return self.root / "JPEGImages" / f"{image_id}.jpg"

    def __len__(self) -> int:
        return len(self.ids)

    def get_image(self, index: int) -> np.ndarray:
        """The RGB image, checked against the size its annotation states (the boxes assume it)."""
        annotation = self.annotations[index]
        path = self._image_path(annotation.image_id)
        try:
            with Image.open(path) as opened:
                image = np.asarray(opened.convert("RGB"))
        except (OSError, SyntaxError, ValueError) as error:
            raise DatasetFormatError(f"{path}: unreadable image ({error})") from error
        if image.shape[:2] != (annotation.height, annotation.width):
            raise DatasetFormatError(
                f"{path}: image is {image.shape[1]}x{image.shape[0]}, its annotation says "
                f"{annotation.width}x{annotation.height}"
            )
        return image

    def get_annotation(self, index: int) -> tuple[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """``(image_id, (boxes, labels, is_difficult uint8))`` with difficult objects, as eval_ssd.py reads it."""
        a = self.annotations[index]
        return a.image_id, (a.boxes.copy(), a.labels.copy(), a.difficult.astype(np.uint8))

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        annotation = self.annotations[index]
        keep = np.ones_like(annotation.difficult) if self.keep_difficult else ~annotation.difficult
        boxes, labels = annotation.boxes[keep], annotation.labels[keep]  # masks copy: transforms may edit them
        image = self.get_image(index)
        if self.transform is not None:
            image, boxes, labels = self.transform(image, boxes, labels)
        return image, boxes, labels


def write_label_file(path: str | os.PathLike, class_names: Sequence[str]) -> Path:
    """Write pytorch-ssd's ``*-model-labels.txt``: one name per line, ``BACKGROUND`` first.

    ``class_names`` is the full list a model predicts (e.g. ``VOCDataset.class_names``), so it must
    start with ``BACKGROUND``: a file without it loads as one class short (pytorch-ssd #93).
    """
    names = list(class_names)
    if not names or names[0] != BACKGROUND:
        raise ValueError(f"class_names must start with {BACKGROUND!r}, got {names[:1]}")
    with atomic_write(path) as handle:
        handle.write("".join(f"{name}\n" for name in names))
    return Path(path)


def read_label_file(path: str | os.PathLike) -> list[str]:
    """The class names of a label file, ``BACKGROUND`` first; blank lines are ignored, not counted.

    pytorch-ssd counts a blank line as a class, the other common cause of a head-size mismatch (#93).
    """
    path = Path(path)
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not names or names[0] != BACKGROUND:
        raise DatasetFormatError(
            f"{path}: first class is {names[0] if names else None!r}, not {BACKGROUND!r}; "
            "pytorch-ssd label files list the background class first"
        )
    return names


def check_label_count(labels: Sequence[str], num_classes_in_checkpoint: int) -> None:
    """Refuse a label list that does not match a checkpoint's classification heads, saying by how much.

    Loading would fail anyway with torch's "size mismatch for classification_headers", which names
    neither the label file nor the cause.
    """
    if len(labels) != num_classes_in_checkpoint:
        raise DatasetFormatError(
            f"the label file lists {len(labels)} classes (BACKGROUND included) but the checkpoint's "
            f"classification heads predict {num_classes_in_checkpoint}; use the label file the "
            "checkpoint was trained with"
        )
