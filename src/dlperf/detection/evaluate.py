"""A detector over a whole dataset → per-class AP, as pytorch-ssd's ``eval_ssd.py``; loading checkpoints safely.

``eval_ssd.py`` runs ``Predictor.predict`` on every image of the split (threshold 0.01, per-class hard NMS at
0.45 over the best 200, no top-k), collects the detections per class and scores them against every object
of the split, difficult ones included (:mod:`dlperf.detection.voc_eval`). Here the forward passes are
batched (the same preprocessing per image, so the same detections) and the datasets are any with
``get_image``/``get_annotation`` (:class:`~dlperf.data.voc.VOCDataset`,
:class:`~dlperf.data.openimages.OpenImagesDataset`).
"""
from __future__ import annotations

import os
from typing import Sequence

import torch

from dlperf.data.voc import check_label_count
from dlperf.detection.box_utils import MATCH_IOU, NMS_CANDIDATES, NMS_IOU
from dlperf.detection.predictor import PROB_THRESHOLD, preprocess, select_detections
from dlperf.detection.priors import mobilenet_v1_specs, priors_per_location
from dlperf.detection.voc_eval import VOCResult, evaluate, group_detections_by_class, group_ground_truth_by_class
from dlperf.models.mobilenet_ssd import SSD, mobilenet_v1_ssd


def checkpoint_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state_dict in a checkpoint file: a plain one (pytorch-ssd, our SSD runs) or under ``"model"``."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state["model"] if "model" in state and isinstance(state["model"], dict) else state


def checkpoint_num_classes(state: dict[str, torch.Tensor]) -> int:
    """Classes (background included) the classification heads of a MobileNetV1-SSD state_dict predict."""
    per_cell = priors_per_location(mobilenet_v1_specs()[0])
    return int(state["classification_headers.0.bias"].shape[0]) // per_cell


def load_ssd(path: str | os.PathLike, labels: Sequence[str], width_mult: float, image_size: int,
             is_test: bool = True) -> SSD:
    """Build ``mobilenet_v1_ssd(len(labels), width_mult, image_size)`` and load ``path`` into it strictly.

    A label list whose length differs from the checkpoint's class count raises naming both counts
    (pytorch-ssd users see only torch's "size mismatch for classification_headers", pytorch-ssd #93).
    """
    state = checkpoint_state(path)
    check_label_count(labels, checkpoint_num_classes(state))
    model = mobilenet_v1_ssd(len(labels), width_mult=width_mult, image_size=image_size, is_test=is_test)
    model.load_state_dict(state, strict=True)
    return model


@torch.inference_mode()
def predict_dataset(model: SSD, dataset, device: torch.device, batch_size: int = 32,
                    prob_threshold: float = PROB_THRESHOLD, nms_iou: float = NMS_IOU,
                    candidate_size: int = NMS_CANDIDATES) -> dict:
    """``{image_id: Prediction}`` for every image of ``dataset`` (pixels of the original image)."""
    model = model.to(device).eval()
    predictions = {}
    for start in range(0, len(dataset), batch_size):
        indexes = range(start, min(start + batch_size, len(dataset)))
        images = [dataset.get_image(i) for i in indexes]
        inputs = torch.stack([preprocess(image, model.image_size) for image in images]).to(device)
        scores, boxes = model.detect(inputs)
        for k, index in enumerate(indexes):
            image_id = dataset.get_annotation(index)[0]
            height, width = images[k].shape[:2]
            predictions[image_id] = select_detections(scores[k], boxes[k], width, height, prob_threshold, nms_iou,
                                                      -1, candidate_size)
    return predictions


def evaluate_dataset(model: SSD, dataset, class_names: Sequence[str], device: torch.device, *,
                     batch_size: int = 32, use_2007_metric: bool = True, iou_threshold: float = MATCH_IOU,
                     prob_threshold: float = PROB_THRESHOLD, nms_iou: float = NMS_IOU,
                     candidate_size: int = NMS_CANDIDATES) -> VOCResult:
    """AP of every foreground class of ``class_names`` (``BACKGROUND`` first), keyed by name, and their mean."""
    predictions = predict_dataset(model, dataset, device, batch_size, prob_threshold, nms_iou, candidate_size)
    ground_truth = group_ground_truth_by_class(dict(dataset.get_annotation(i) for i in range(len(dataset))))
    result = evaluate(group_detections_by_class(predictions), ground_truth, range(1, len(class_names)),
                      iou_threshold, use_2007_metric)
    return VOCResult({class_names[k]: ap for k, ap in result.per_class.items()}, result.mean_ap)
