"""SSD training and test transforms, as pytorch-ssd's ``TrainAugmentation`` / ``TestTransform``.

pytorch-ssd (``vision/ssd/data_preprocessing.py``, after ssd.pytorch) trains on::

    ConvertFromInts, PhotometricDistort, Expand(mean), RandomSampleCrop, RandomMirror,
    ToPercentCoords, Resize(size), SubtractMeans(mean), /std, ToTensor

and evaluates with ``ToPercentCoords, Resize, SubtractMeans, /std, ToTensor``. Each step here follows its
ssd.pytorch namesake; the differences are that randomness comes from a ``numpy.random.Generator`` passed in
(so an epoch's augmentation is a function of seed, epoch and image, and a resumed run equals an uninterrupted
one) instead of the global ``np.random``, that HSV conversions use matplotlib's instead of OpenCV's (same
hue/saturation/value definitions, hue in turns instead of degrees), and that the resize is torch's bilinear
(cv2's ``INTER_LINEAR`` geometry) rather than ``cv2.resize``. Boxes are corner form in pixels on input and
relative to the image (0..1) on output, as ``MatchPrior`` expects.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.colors import hsv_to_rgb, rgb_to_hsv

from dlperf.models.mobilenet_ssd import IMAGE_MEAN, IMAGE_STD

BRIGHTNESS_DELTA = 32.0
CONTRAST_RANGE = (0.5, 1.5)
SATURATION_RANGE = (0.5, 1.5)
HUE_DELTA = 18.0 / 360.0  # ssd.pytorch: 18 degrees
EXPAND_MAX_RATIO = 4.0
# RandomSampleCrop's modes: None keeps the whole image, otherwise (min IoU, max IoU) of the crop with some box
CROP_MODES = (None, (0.1, None), (0.3, None), (0.7, None), (0.9, None), (None, None))
CROP_TRIALS = 50
AUGMENT_MODES = ("ssd", "mirror")  # pytorch-ssd's full pipeline | only the random mirror (short CPU runs)
CHANNEL_SWAPS = ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0))


def resize_normalise(image: np.ndarray, size: int, mean: float = IMAGE_MEAN, std: float = IMAGE_STD) -> torch.Tensor:
    """float HWC image (0..255) → float32 ``[3, size, size]`` network input, ``(x - mean) / std``."""
    pixels = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)[None]
    resized = F.interpolate(pixels, size=(size, size), mode="bilinear", align_corners=False, antialias=False)
    return ((resized - mean) / std)[0]


def _photometric_distort(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """ssd.pytorch's PhotometricDistort: brightness, then contrast before or after saturation and hue,
    then a random channel swap, each applied with probability 1/2."""
    image = image.copy()
    if rng.integers(2):
        image += rng.uniform(-BRIGHTNESS_DELTA, BRIGHTNESS_DELTA)
    contrast_first = bool(rng.integers(2))
    if contrast_first and rng.integers(2):
        image *= rng.uniform(*CONTRAST_RANGE)
    saturation = rng.uniform(*SATURATION_RANGE) if rng.integers(2) else None
    hue = rng.uniform(-HUE_DELTA, HUE_DELTA) if rng.integers(2) else None
    if saturation is not None or hue is not None:  # the round trip through HSV only when it changes something
        hsv = rgb_to_hsv(np.clip(image, 0.0, 255.0) / 255.0)
        if saturation is not None:
            hsv[..., 1] = np.clip(hsv[..., 1] * saturation, 0.0, 1.0)
        if hue is not None:
            hsv[..., 0] = (hsv[..., 0] + hue) % 1.0
        image = hsv_to_rgb(hsv).astype(np.float32) * 255.0
    if not contrast_first and rng.integers(2):
        image *= rng.uniform(*CONTRAST_RANGE)
    if rng.integers(2):
        image = image[..., list(CHANNEL_SWAPS[rng.integers(len(CHANNEL_SWAPS))])]
    return image


def _expand(
    image: np.ndarray, boxes: np.ndarray, rng: np.random.Generator, mean: float
) -> tuple[np.ndarray, np.ndarray]:
    """Zoom out with probability 1/2: place the image at a random spot of a canvas up to 4x its side,
    filled with the mean, so that objects also appear small."""
    if rng.integers(2):
        return image, boxes
    height, width, depth = image.shape
    ratio = rng.uniform(1.0, EXPAND_MAX_RATIO)
    left, top = rng.uniform(0, width * ratio - width), rng.uniform(0, height * ratio - height)
    canvas = np.full((int(height * ratio), int(width * ratio), depth), mean, dtype=image.dtype)
    canvas[int(top): int(top) + height, int(left): int(left) + width] = image
    return canvas, boxes + np.array([int(left), int(top), int(left), int(top)], dtype=boxes.dtype)


def _iou_with(boxes: np.ndarray, rect: np.ndarray) -> np.ndarray:
    """IoU of each corner-form box with one rectangle (ssd.pytorch's ``jaccard_numpy``, no eps)."""
    wh = np.clip(np.minimum(boxes[:, 2:], rect[2:]) - np.maximum(boxes[:, :2], rect[:2]), 0, None)
    inter = wh[:, 0] * wh[:, 1]
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / (area + (rect[2] - rect[0]) * (rect[3] - rect[1]) - inter)


def _random_sample_crop(
    image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ssd.pytorch's RandomSampleCrop: pick a mode; crop a patch of 0.3-1 of each side (aspect 1/2..2) whose IoU
    with some box lies in the mode's range and that holds at least one box centre; keep the boxes whose centre
    is inside, clipped to the patch. Images without boxes are left as they are."""
    if len(boxes) == 0:
        return image, boxes, labels
    height, width = image.shape[:2]
    while True:
        mode = CROP_MODES[rng.integers(len(CROP_MODES))]
        if mode is None:
            return image, boxes, labels
        min_iou = -np.inf if mode[0] is None else mode[0]
        max_iou = np.inf if mode[1] is None else mode[1]
        for _ in range(CROP_TRIALS):
            w, h = rng.uniform(0.3 * width, width), rng.uniform(0.3 * height, height)
            if h / w < 0.5 or h / w > 2:
                continue
            left, top = rng.uniform(0, width - w), rng.uniform(0, height - h)
            rect = np.array([int(left), int(top), int(left + w), int(top + h)])
            overlap = _iou_with(boxes, rect)
            if overlap.max() < min_iou or overlap.min() > max_iou:
                continue
            centres = (boxes[:, :2] + boxes[:, 2:]) / 2.0
            inside = (rect[0] < centres[:, 0]) & (rect[1] < centres[:, 1]) & \
                     (rect[2] > centres[:, 0]) & (rect[3] > centres[:, 1])
            if not inside.any():
                continue
            kept = boxes[inside].copy()
            kept[:, :2] = np.maximum(kept[:, :2], rect[:2]) - rect[:2]
            kept[:, 2:] = np.minimum(kept[:, 2:], rect[2:]) - rect[:2]
            return image[rect[1]: rect[3], rect[0]: rect[2]], kept, labels[inside]


def _random_mirror(image: np.ndarray, boxes: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    if rng.integers(2):
        return image, boxes
    width = image.shape[1]
    boxes = boxes.copy()
    boxes[:, 0::2] = width - boxes[:, 2::-2]
    return image[:, ::-1], boxes


class TrainAugmentation:
    """pytorch-ssd's ``TrainAugmentation(size, mean, std)``; called as ``(image, boxes, labels, rng)``.

    ``mode="mirror"`` keeps only the random mirror: for runs of a few epochs, where the full pipeline's
    zoom-outs and crops slow learning more than they regularise.

    Returns ``(image [3, size, size] float32, boxes [n, 4] relative corner form, labels [n])``.
    """

    def __init__(self, size: int, mean: float = IMAGE_MEAN, std: float = IMAGE_STD, mode: str = "ssd"):
        if mode not in AUGMENT_MODES:
            raise ValueError(f"unknown augmentation {mode!r}: expected one of {AUGMENT_MODES}")
        self.size, self.mean, self.std, self.mode = size, mean, std, mode

    def __call__(self, image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, rng: np.random.Generator):
        image = image.astype(np.float32)
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        if self.mode == "ssd":
            image = _photometric_distort(image, rng)
            image, boxes = _expand(image, boxes, rng, self.mean)
            image, boxes, labels = _random_sample_crop(image, boxes, labels, rng)
        image, boxes = _random_mirror(image, boxes, rng)
        height, width = image.shape[:2]
        boxes = boxes / np.array([width, height, width, height], np.float32)
        return resize_normalise(image, self.size, self.mean, self.std), boxes, labels


class TestTransform:
    """pytorch-ssd's ``TestTransform``: resize and normalise only; boxes become relative to the image."""

    def __init__(self, size: int, mean: float = IMAGE_MEAN, std: float = IMAGE_STD):
        self.size, self.mean, self.std = size, mean, std

    def __call__(self, image: np.ndarray, boxes: np.ndarray, labels: np.ndarray,
                 rng: np.random.Generator | None = None):
        height, width = image.shape[:2]
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4) / np.array([width, height, width, height], np.float32)
        return resize_normalise(image.astype(np.float32), self.size, self.mean, self.std), boxes, labels
