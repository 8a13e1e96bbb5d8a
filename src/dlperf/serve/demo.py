"""The served detector's client side: image → request → response → detections → an annotated picture.

What onnx's ``OnnxRuntimeServerSSDModel`` notebook does for ssd-10, for our MobileNetV1-SSD: the image is
preprocessed as pytorch-ssd does (:func:`dlperf.detection.predictor.preprocess`), sent to an ORT-server
endpoint as one ``input`` tensor ``[1, 3, S, S]``, and the ``scores``/``boxes`` it answers go through
pytorch-ssd's per-class threshold and hard NMS (:func:`dlperf.detection.predictor.select_detections`).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

from dlperf.detection.predictor import Prediction, preprocess, select_detections

from .client import OrtServerClient

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b")


def request_detections(client: OrtServerClient, model: str, image: np.ndarray, size: int, *,
                       prob_threshold: float, nms_iou: float, top_k: int, fmt: str = "protobuf",
                       version: int | None = None) -> tuple[Prediction, bytes]:
    """Detections of one HWC uint8 RGB ``image`` by the served ``model``, and the raw response body."""
    batch = preprocess(image, size)[None].numpy()
    raw = client.predict_raw(model, {"input": batch}, version, fmt)
    outputs = client.parse_response(raw, fmt)
    height, width = image.shape[:2]
    prediction = select_detections(torch.from_numpy(outputs["scores"][0]), torch.from_numpy(outputs["boxes"][0]),
                                   width, height, prob_threshold, nms_iou, top_k)
    return prediction, raw


def first_image_of_each_class(labels: Sequence[np.ndarray], class_names: Sequence[str],
                              wanted: Sequence[str]) -> dict[str, int]:
    """``{class name: index of an image showing that class}`` for each ``wanted`` class; ``labels[i]`` are image
    i's box labels, indexes into ``class_names``. Each class gets the first image that shows it alone and no
    other class took, else the first image that shows it at all. A class on no image raises: the demo must
    show every class it was asked for."""
    found: dict[str, int] = {}
    for name in wanted:
        label = list(class_names).index(name)
        showing = [i for i, image_labels in enumerate(labels) if label in image_labels]
        if not showing:
            raise ValueError(f"no image has a box of class {name!r}")
        alone = [i for i in showing if set(labels[i]) == {label} and i not in found.values()]
        found[name] = (alone or showing)[0]
    return found


def draw_detections(image: np.ndarray, prediction: Prediction, class_names: Sequence[str],
                    ground_truth: np.ndarray | None = None) -> Image.Image:
    """``image`` with each detection's box and ``class prob`` label (and the ground truth dashed in white)."""
    picture = Image.fromarray(image).convert("RGB")
    scale = max(1, round(max(picture.size) / 300))
    draw = ImageDraw.Draw(picture)
    for box in [] if ground_truth is None else ground_truth:
        x1, y1, x2, y2 = (float(v) for v in box)
        for start in np.arange(x1, x2, 6 * scale):  # dashed: ground truth is not a detection
            draw.line([(start, y1), (min(start + 3 * scale, x2), y1)], fill="white", width=scale)
            draw.line([(start, y2), (min(start + 3 * scale, x2), y2)], fill="white", width=scale)
        for start in np.arange(y1, y2, 6 * scale):
            draw.line([(x1, start), (x1, min(start + 3 * scale, y2))], fill="white", width=scale)
            draw.line([(x2, start), (x2, min(start + 3 * scale, y2))], fill="white", width=scale)
    for box, label, prob in zip(prediction.boxes.tolist(), prediction.labels.tolist(), prediction.probs.tolist()):
        colour = COLOURS[label % len(COLOURS)]
        draw.rectangle(box, outline=colour, width=2 * scale)
        text = f"{class_names[label]} {prob:.2f}"
        corner = (max(0.0, box[0]), max(0.0, box[1]))  # boxes may reach past the image; their labels may not
        left, top, right, bottom = draw.textbbox(corner, text)
        draw.rectangle((left, top, right + 2, bottom + 1), fill=colour)
        draw.text((corner[0] + 1, corner[1]), text, fill="white")
    return picture


def detections_record(prediction: Prediction, class_names: Sequence[str]) -> list[Mapping]:
    """The detections as JSON-ready rows: class, probability and pixel box."""
    return [{"class": class_names[label], "prob": round(prob, 6), "box": [round(v, 2) for v in box]}
            for box, label, prob in zip(prediction.boxes.tolist(), prediction.labels.tolist(),
                                        prediction.probs.tolist())]
