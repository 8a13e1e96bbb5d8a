"""The fine-tuned detector and real test images, as the export, demo and benchmark rules load them."""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import torch

from dlperf.data.openimages import OpenImagesDataset
from dlperf.data.voc import read_label_file
from dlperf.detection.predictor import preprocess
from dlperf.models.mobilenet_ssd import SSD, mobilenet_v1_ssd


def load_detector(checkpoint: str | os.PathLike, labels: str | os.PathLike, width_mult: float,
                  image_size: int) -> tuple[SSD, list[str]]:
    """The SSD of a plain state_dict checkpoint (loaded strictly, on the CPU) in test mode, and its class names
    (``BACKGROUND`` first) from pytorch-ssd's label file."""
    class_names = read_label_file(labels)
    model = mobilenet_v1_ssd(len(class_names), width_mult=width_mult, image_size=image_size, is_test=True)
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ValueError(f"{checkpoint} does not fit mobilenet_v1_ssd({len(class_names)} classes of {labels}, "
                         f"width_mult={width_mult}, image_size={image_size}): {error}") from error
    return model.eval(), class_names


def preprocessed_images(root: str | os.PathLike, class_names: Sequence[str], count: int, size: int,
                split: str = "test") -> tuple[list[str], np.ndarray]:
    """The ids and preprocessed ``[n, 3, size, size]`` float32 batch of the first ``count`` images of ``split``."""
    dataset = OpenImagesDataset(root, split, list(class_names[1:]))
    n = min(count, len(dataset))
    batch = np.stack([preprocess(dataset.get_image(i), size).numpy() for i in range(n)])
    return dataset.ids[:n], batch
