"""Deterministic, learnable detection scenes, written as PASCAL VOC2007 and as Open Images V4 files.

The embedded default fine-tunes an SSD from synthetic "VOC" to a synthetic two-class "Open Images" set,
offline on CPU, so both must be learnable and must go through the real readers (``dlperf.data.voc``,
``dlperf.data.openimages``). A scene is a smooth colour field under pixel noise with one to
``max_objects`` objects pasted on it. An object is its class's texture (``class_prototype``, stretched to
the box) cut to its class's shape, at a random position, scale (0.2 to 0.6 of the image side, the range
of mb1-ssd's priors) and aspect ratio (1:2 to 2:1), with jittered contrast and brightness; objects overlap
little (at most 30 % of either box), so every box shows most of its object. A VOC object marked
difficult is drawn at 40 % opacity: it is hard to see, which is what VOC's flag means, and training
without it (pytorch-ssd's default) does not teach the detector to call a visible object background.

The Open Images classes must be a new task for a detector pretrained on the VOC ones, so they have
their own textures (prototype ids far from the VOC ones and from those the classification sets use) and
shapes (triangles and diamonds; VOC objects are rectangles and ellipses).

A small detector trained from scratch in minutes must tell 20 VOC classes apart, so each VOC class also has a
colour of its own: ten hues 36 degrees apart, each at full and at half brightness (``voc_class_colour``; with 20
hues 18 degrees apart, a second training seed scored half the mAP of the first). Its texture then shades that
colour, and the backgrounds are desaturated, so a class is seen at a glance yet is still a texture in a shape, not
a flat patch.
"""
from __future__ import annotations

import colorsys
import csv
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from PIL import Image

from dlperf.atomic import atomic_dir
from dlperf.data.openimages import BOX_COLUMNS, CLASS_DESCRIPTIONS, SPLITS, box_csv_name
from dlperf.data.synthetic import class_prototype
from dlperf.data.voc import VOC_CLASSES, VOC_DIR

VOC_PROTOTYPE_OFFSET = 1000
OPENIMAGES_PROTOTYPE_OFFSET = 2000
VOC_SHAPES = ("rectangle", "ellipse")  # class k gets shape k % 2
OPENIMAGES_SHAPES = ("triangle", "diamond")
PROTOTYPE_SIZE = 64  # textures are drawn once at this size and resized to each box
OBJECT_SCALE = (0.2, 0.6)  # sqrt(box area) as a fraction of the image side
MAX_ASPECT = 2.0
MAX_COVERED = 0.3  # the most of an object's box that another object may cover
PLACEMENT_TRIES = 20  # an object that finds no free place in this many draws is left out
CONTRAST_JITTER = 0.2
BRIGHTNESS_JITTER = 0.1
DIFFICULT_OPACITY = 0.4
BACKGROUND_GRID = 4  # the background is bilinearly interpolated from 4x4 random colours
BACKGROUND_SATURATION = 0.3  # background colours keep this much of their difference from grey
HUE_SATURATION = 0.85
DARK_VALUE = 0.5  # the odd VOC classes' colours: half the brightness of the even ones
TEXTURE_SHADING = 0.6  # a tinted texture's brightness spans (1 - TEXTURE_SHADING) to 1 of its hue's
PIXEL_NOISE = 0.06  # std of the white noise over the whole scene, on a [0, 1] scale
JPEG_QUALITY = 90
DEFAULT_SIZE = 160
MIN_SIZE = 24  # the smallest objects (0.2 of the side) are then still 5 px across


@dataclass(frozen=True)
class _SceneObject:
    """One pasted object: its class index (0-based, into the class list), pixel box and difficulty.

    The object covers pixels ``x0 .. x0 + width - 1`` and ``y0 .. y0 + height - 1``.
    """

    label: int
    x0: int
    y0: int
    width: int
    height: int
    difficult: bool


def _shape_mask(shape: str, height: int, width: int) -> np.ndarray:
    """float32 [height, width], 1 inside ``shape`` inscribed in the box (touching all four sides)."""
    dy = (np.arange(height) + 0.5) / height * 2 - 1  # pixel centres in [-1, 1]
    dx = (np.arange(width) + 0.5) / width * 2 - 1
    dy, dx = dy[:, None], dx[None, :]
    if shape == "rectangle":
        inside = np.ones((height, width), bool)
    elif shape == "ellipse":
        inside = dx**2 + dy**2 <= 1
    elif shape == "diamond":
        inside = np.abs(dx) + np.abs(dy) <= 1
    elif shape == "triangle":  # apex at the top centre, base along the bottom edge
        inside = np.abs(dx) <= (dy + 1) / 2
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return inside.astype(np.float32)


def _tinted(texture: np.ndarray, hue: float, value: float = 1.0) -> np.ndarray:
    """``texture`` (float [H, W, 3] in [0, 1]) as shades of one colour: its luminance sets the brightness."""
    colour = np.array(colorsys.hsv_to_rgb(hue, HUE_SATURATION, value), np.float32)
    luminance = texture @ np.array([0.299, 0.587, 0.114], np.float32)
    return colour * (1 - TEXTURE_SHADING + TEXTURE_SHADING * luminance)[..., None]


def _covered(a: _SceneObject, b: _SceneObject) -> float:
    """The fraction of the smaller of the two boxes that the other covers.

    Not IoU: a small box inside a large one has a small IoU, yet the object pasted later hides it.
    """
    w = min(a.x0 + a.width, b.x0 + b.width) - max(a.x0, b.x0)
    h = min(a.y0 + a.height, b.y0 + b.height) - max(a.y0, b.y0)
    return max(w, 0) * max(h, 0) / min(a.width * a.height, b.width * b.height)


class _SceneRenderer:
    """Draws scenes of a fixed class list; textures are made once, in the global prototype id space."""

    def __init__(self, prototype_ids: Sequence[int], shapes: Sequence[str], size: int,
                 colours: Sequence[tuple[float, float]] | None = None):
        if size < MIN_SIZE:
            raise ValueError(f"size must be at least {MIN_SIZE} px, got {size}")
        textures = [class_prototype(pid, PROTOTYPE_SIZE) for pid in prototype_ids]
        if colours is not None:
            textures = [_tinted(texture, *colour) for texture, colour in zip(textures, colours)]
        self.textures = [Image.fromarray((texture * 255 + 0.5).astype(np.uint8)) for texture in textures]
        self.shapes = list(shapes)
        self.size = size

    def _place(self, rng: np.random.Generator, placed: list[_SceneObject], difficult: bool) -> _SceneObject | None:
        for _ in range(PLACEMENT_TRIES):
            side = rng.uniform(*OBJECT_SCALE) * self.size
            aspect = np.exp(rng.uniform(-np.log(MAX_ASPECT), np.log(MAX_ASPECT)))
            width = int(np.clip(round(side * np.sqrt(aspect)), 4, self.size))
            height = int(np.clip(round(side / np.sqrt(aspect)), 4, self.size))
            candidate = _SceneObject(
                label=int(rng.integers(len(self.textures))),
                x0=int(rng.integers(0, self.size - width + 1)),
                y0=int(rng.integers(0, self.size - height + 1)),
                width=width,
                height=height,
                difficult=difficult,
            )
            if all(_covered(candidate, other) <= MAX_COVERED for other in placed):
                return candidate
        return None

    def render(
        self, rng: np.random.Generator, max_objects: int, difficult_rate: float
    ) -> tuple[np.ndarray, list[_SceneObject]]:
        """One scene: uint8 [size, size, 3] and its objects (at least one: the first always fits)."""
        coarse = Image.fromarray(rng.integers(64, 192, (BACKGROUND_GRID, BACKGROUND_GRID, 3), dtype=np.uint8))
        image = np.asarray(coarse.resize((self.size, self.size), Image.Resampling.BILINEAR), np.float32) / 255
        grey = image.mean(axis=2, keepdims=True)
        image = grey + BACKGROUND_SATURATION * (image - grey)
        objects: list[_SceneObject] = []
        for _ in range(int(rng.integers(1, max_objects + 1))):
            obj = self._place(rng, objects, difficult=bool(rng.random() < difficult_rate))
            if obj is None:
                continue
            objects.append(obj)
            texture = self.textures[obj.label].resize((obj.width, obj.height), Image.Resampling.BILINEAR)
            texture = np.asarray(texture, np.float32) / 255
            contrast = rng.uniform(1 - CONTRAST_JITTER, 1 + CONTRAST_JITTER)
            texture = (texture - 0.5) * contrast + 0.5 + rng.uniform(-BRIGHTNESS_JITTER, BRIGHTNESS_JITTER)
            alpha = _shape_mask(self.shapes[obj.label], obj.height, obj.width)[..., None]
            alpha *= DIFFICULT_OPACITY if obj.difficult else 1.0
            patch = image[obj.y0:obj.y0 + obj.height, obj.x0:obj.x0 + obj.width]
            patch += alpha * (texture - patch)
        image += rng.normal(0, PIXEL_NOISE, image.shape).astype(np.float32)
        return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8), objects


def _save_jpeg(image: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, quality=JPEG_QUALITY)


def _voc_xml(image_id: str, size: int, objects: list[_SceneObject]) -> ET.ElementTree:
    """The annotation VOC2007 would hold for this scene, with 1-based inclusive pixel coordinates."""
    annotation = ET.Element("annotation")
    ET.SubElement(annotation, "folder").text = "VOC2007"
    ET.SubElement(annotation, "filename").text = f"{image_id}.jpg"
    source = ET.SubElement(annotation, "source")
    ET.SubElement(source, "database").text = "dlperf synthetic VOC2007"
    ET.SubElement(source, "annotation").text = "dlperf.data.synthetic_detection"
    ET.SubElement(source, "image").text = "synthetic"
    dims = ET.SubElement(annotation, "size")
    for tag, value in (("width", size), ("height", size), ("depth", 3)):
        ET.SubElement(dims, tag).text = str(value)
    ET.SubElement(annotation, "segmented").text = "0"
    for obj in objects:
        element = ET.SubElement(annotation, "object")
        ET.SubElement(element, "name").text = VOC_CLASSES[obj.label]
        ET.SubElement(element, "pose").text = "Unspecified"
        ET.SubElement(element, "truncated").text = "0"
        ET.SubElement(element, "difficult").text = str(int(obj.difficult))
        bndbox = ET.SubElement(element, "bndbox")
        corners = (obj.x0 + 1, obj.y0 + 1, obj.x0 + obj.width, obj.y0 + obj.height)
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), corners):
            ET.SubElement(bndbox, tag).text = str(value)
    tree = ET.ElementTree(annotation)
    ET.indent(tree)
    return tree


def voc_class_colour(k: int) -> tuple[float, float]:
    """The (hue, value) of VOC class ``k``: ten hues 36 degrees apart, each bright (even k) or dark (odd k)."""
    return (k // 2) / (len(VOC_CLASSES) // 2), (1.0, DARK_VALUE)[k % 2]


def synthesize_voc(
    root: str | os.PathLike,
    n_trainval: int,
    n_test: int,
    *,
    size: int = DEFAULT_SIZE,
    seed: int,
    max_objects: int = 3,
    difficult_rate: float = 0.1,
) -> Path:
    """Write a synthetic ``root/VOCdevkit/VOC2007`` with the 20 VOC classes and return that directory.

    Image ids run ``000001 ..``, trainval first; only ``ImageSets/Main/{trainval,test}.txt`` are written
    (the per-class lists are not read by pytorch-ssd). The directory appears whole or not at all.
    """
    if n_trainval < 1 or n_test < 1:
        raise ValueError(f"each split needs an image, got n_trainval={n_trainval}, n_test={n_test}")
    renderer = _SceneRenderer(
        [VOC_PROTOTYPE_OFFSET + k for k in range(len(VOC_CLASSES))],
        [VOC_SHAPES[k % len(VOC_SHAPES)] for k in range(len(VOC_CLASSES))],
        size,
        colours=[voc_class_colour(k) for k in range(len(VOC_CLASSES))],
    )
    directory = Path(root) / VOC_DIR
    with atomic_dir(directory) as tmp:
        (tmp / "Annotations").mkdir()
        (tmp / "ImageSets" / "Main").mkdir(parents=True)
        first = 1
        for split, count, split_seed in zip(
            ("trainval", "test"), (n_trainval, n_test), np.random.SeedSequence(seed).spawn(2)
        ):
            rng = np.random.default_rng(split_seed)
            ids = [f"{i:06d}" for i in range(first, first + count)]
            first += count
            for image_id in ids:
                image, objects = renderer.render(rng, max_objects, difficult_rate)
                _save_jpeg(image, tmp / "JPEGImages" / f"{image_id}.jpg")
                _voc_xml(image_id, size, objects).write(tmp / "Annotations" / f"{image_id}.xml")
            (tmp / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    return directory


def synthetic_label_id(index: int) -> str:
    """A made-up label id in Open Images' ``/m/...`` form; the real ids are not in our references."""
    return f"/m/synth_{index:03d}"


def synthesize_openimages(
    root: str | os.PathLike,
    class_names: Sequence[str] = ("Handgun", "Shotgun"),
    *,
    n_train: int,
    n_validation: int,
    n_test: int,
    size: int = DEFAULT_SIZE,
    seed: int,
    max_objects: int = 3,
) -> Path:
    """Write a synthetic Open Images root: class descriptions, the three V4 box files and JPEG images.

    Class ``k`` of ``class_names`` gets label id ``synthetic_label_id(k)``. Image ids are 16 hex digits,
    as in Open Images; box files list their rows sorted by ``ImageID``, with
    ``Source`` ``synthetic``, ``Confidence`` 1 and every ``Is*`` flag 0. The ``sub-*`` files are not
    written: ``dlperf.data.openimages.write_subset`` makes them, as for the real data. ``root`` appears
    whole or not at all.
    """
    if len(set(class_names)) != len(class_names) or not class_names:
        raise ValueError(f"class_names must be distinct and non-empty, got {list(class_names)}")
    counts = dict(zip(SPLITS, (n_train, n_validation, n_test)))
    if min(counts.values()) < 1:
        raise ValueError(f"each split needs an image, got {counts}")
    renderer = _SceneRenderer(
        [OPENIMAGES_PROTOTYPE_OFFSET + k for k in range(len(class_names))],
        [OPENIMAGES_SHAPES[k % len(OPENIMAGES_SHAPES)] for k in range(len(class_names))],
        size,
    )
    label_ids = [synthetic_label_id(k) for k in range(len(class_names))]
    root = Path(root)
    with atomic_dir(root) as tmp:
        with open(tmp / CLASS_DESCRIPTIONS, "w", newline="") as handle:
            csv.writer(handle, lineterminator="\n").writerows(zip(label_ids, class_names))
        id_seed, *split_seeds = np.random.SeedSequence(seed).spawn(1 + len(SPLITS))
        image_ids = iter(_distinct_hex_ids(np.random.default_rng(id_seed), sum(counts.values())))
        for (split, count), split_seed in zip(counts.items(), split_seeds):
            rng = np.random.default_rng(split_seed)
            rows = []
            for image_id in sorted(next(image_ids) for _ in range(count)):
                image, objects = renderer.render(rng, max_objects, difficult_rate=0.0)
                _save_jpeg(image, tmp / split / f"{image_id}.jpg")
                rows += [
                    (image_id, "synthetic", label_ids[obj.label], 1,
                     obj.x0 / size, (obj.x0 + obj.width) / size, obj.y0 / size, (obj.y0 + obj.height) / size,
                     0, 0, 0, 0, 0)
                    for obj in objects
                ]
            pd.DataFrame(rows, columns=list(BOX_COLUMNS)).to_csv(
                tmp / box_csv_name(split), index=False, float_format="%.6f"
            )
    return root


def _distinct_hex_ids(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` distinct random 64-bit numbers as 16 hex digits, Open Images' ImageID form, in draw order."""
    drawn: dict[str, None] = {}
    while len(drawn) < n:
        drawn.setdefault(f"{int(rng.integers(2**64, dtype=np.uint64)):016x}", None)
    return list(drawn)
