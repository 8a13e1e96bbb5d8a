"""PASCAL VOC detection AP, computed as pytorch-ssd's ``eval_ssd.py`` does, so our mAP compares with its
published numbers.

Per class, detections are ranked by score (ties keep their input order) and each is matched against the
ground truth of its image:

* the IoU (:func:`~dlperf.detection.box_utils.iou_of`: continuous areas, no VOC "+1") with every ground
  truth of that class in the image, difficult ones included, is taken and the best one kept;
* best IoU > 0.5 (strictly) with a *difficult* box: the detection is ignored, neither TP nor FP;
* best IoU > 0.5 with a box not yet matched: TP; with one already matched: FP (a duplicate);
* best IoU <= 0.5, or no ground truth of the class in the image: FP.

Recall divides by the number of non-difficult ground truths. AP is the VOC2007 11-point metric by
default (the mean over t = 0, 0.1, ..., 1 of the best precision at recall >= t; the thresholds are
``np.arange(0, 1.1, 0.1)``, so 0.3, 0.6 and 0.7 are a hair above their decimal value and a recall of
exactly 0.6 does not reach "0.6", as in pytorch-ssd and py-faster-rcnn), or the area under the
interpolated precision-recall curve (VOC2010+) with ``use_2007_metric=False``.

Edge cases, mirroring pytorch-ssd:

* no detections for a class: AP 0;
* no non-difficult ground truth for a class: recall is 0/0 = nan, so the 11-point AP is 0 (no recall
  reaches any threshold) and the area AP is nan if the class has detections (0 without); the mAP
  averages over all requested classes, so it carries that 0 (or nan) too.

One deliberate difference: ignored (difficult) detections are dropped from the curve instead of adding a
point with unchanged TP/FP counts. Everywhere pytorch-ssd's AP is defined the two agree (the point
repeats its predecessor); when the best-ranked detections are ignored, pytorch-ssd computes precision
0/0 = nan and its AP becomes nan, whereas the VOC devkit (MATLAB's ``max`` skips NaN) and this code
score the remaining detections.

Boxes are corner form in pixels; ground truth should be 0-based (VOC XML minus 1), as pytorch-ssd reads it.
"""
from __future__ import annotations

from typing import Hashable, Mapping, NamedTuple, Sequence

import numpy as np
import torch

from dlperf.detection.box_utils import MATCH_IOU, iou_of

VOC07_RECALL_THRESHOLDS = np.arange(0.0, 1.1, 0.1)


class Detection(NamedTuple):
    """One detected box of some class: the image it is in, its score and ``(x1, y1, x2, y2)``."""

    image_id: Hashable
    score: float
    box: Sequence[float]


class GroundTruth(NamedTuple):
    """The ground truth of one class in one image: ``boxes [G, 4]`` and ``difficult [G]`` flags."""

    boxes: np.ndarray
    difficult: np.ndarray


class VOCResult(NamedTuple):
    """AP per class and their mean over the classes asked for."""

    per_class: dict[Hashable, float]
    mean_ap: float


def group_ground_truth_by_class(
    annotations: Mapping[Hashable, tuple[np.ndarray, np.ndarray, np.ndarray]],
) -> dict[Hashable, dict[Hashable, GroundTruth]]:
    """``{image_id: (boxes [G, 4], labels [G], difficult [G])}`` → ``{label: {image_id: GroundTruth}}``.

    An image appears under a class only if it holds a box of that class, difficult or not.
    """
    grouped: dict[Hashable, dict[Hashable, GroundTruth]] = {}
    for image_id, (boxes, labels, difficult) in annotations.items():
        boxes, labels, difficult = np.asarray(boxes), np.asarray(labels), np.asarray(difficult, dtype=bool)
        for label in np.unique(labels).tolist():
            mask = labels == label
            grouped.setdefault(label, {})[image_id] = GroundTruth(boxes[mask], difficult[mask])
    return grouped


def group_detections_by_class(
    predictions: Mapping[Hashable, tuple[Sequence, Sequence, Sequence]],
) -> dict[Hashable, list[Detection]]:
    """``{image_id: (boxes [K, 4], labels [K], probs [K])}`` (e.g. :class:`Prediction`) →
    ``{label: [Detection, ...]}``, the per-class files ``eval_ssd.py`` writes."""
    grouped: dict[Hashable, list[Detection]] = {}
    for image_id, (boxes, labels, probs) in predictions.items():
        rows = zip(np.asarray(boxes).tolist(), np.asarray(labels).tolist(), np.asarray(probs).tolist())
        for box, label, prob in rows:
            grouped.setdefault(label, []).append(Detection(image_id, prob, box))
    return grouped


def precision_recall(
    detections: Sequence[Detection],
    ground_truth: Mapping[Hashable, GroundTruth],
    iou_threshold: float = MATCH_IOU,
) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall after each ranked, non-ignored detection of one class (see module docstring)."""
    num_positives = sum(int((~np.asarray(gt.difficult, dtype=bool)).sum()) for gt in ground_truth.values())
    order = np.argsort([-d.score for d in detections], kind="stable")
    matched: set[tuple[Hashable, int]] = set()
    is_tp = []
    for index in order:
        detection = detections[index]
        gt = ground_truth.get(detection.image_id)
        if gt is None or len(gt.boxes) == 0:
            is_tp.append(False)
            continue
        box = torch.tensor(detection.box, dtype=torch.float32)
        ious = iou_of(box[None, :], torch.as_tensor(np.asarray(gt.boxes), dtype=torch.float32))
        best = int(ious.argmax())
        if float(ious[best]) <= iou_threshold:
            is_tp.append(False)
        elif gt.difficult[best]:
            continue
        elif (detection.image_id, best) in matched:
            is_tp.append(False)
        else:
            matched.add((detection.image_id, best))
            is_tp.append(True)
    outcomes = np.asarray(is_tp, dtype=bool)
    true_positives = np.cumsum(outcomes)
    false_positives = np.cumsum(~outcomes)
    precision = true_positives / (true_positives + false_positives)
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = true_positives / num_positives
    return precision, recall


def voc07_average_precision(precision: np.ndarray, recall: np.ndarray) -> float:
    """VOC2007 11-point AP: the best precision at recall >= t, averaged over the 11 thresholds."""
    ap = 0.0
    for threshold in VOC07_RECALL_THRESHOLDS:
        reached = recall >= threshold
        ap += (float(precision[reached].max()) if reached.any() else 0.0) / 11.0
    return ap


def area_average_precision(precision: np.ndarray, recall: np.ndarray) -> float:
    """Area under the precision-recall curve after making precision non-increasing in recall (VOC2010+)."""
    precision = np.concatenate([[0.0], precision, [0.0]])
    recall = np.concatenate([[0.0], recall, [1.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.flatnonzero(recall[1:] != recall[:-1])
    return float(((recall[steps + 1] - recall[steps]) * precision[steps + 1]).sum())


def average_precision(
    detections: Sequence[Detection],
    ground_truth: Mapping[Hashable, GroundTruth],
    iou_threshold: float = MATCH_IOU,
    use_2007_metric: bool = True,
) -> float:
    """AP of one class from its detections and its ground truth per image."""
    precision, recall = precision_recall(detections, ground_truth, iou_threshold)
    return voc07_average_precision(precision, recall) if use_2007_metric else area_average_precision(precision, recall)


def evaluate(
    detections: Mapping[Hashable, Sequence[Detection]],
    ground_truth: Mapping[Hashable, Mapping[Hashable, GroundTruth]],
    classes: Sequence[Hashable],
    iou_threshold: float = MATCH_IOU,
    use_2007_metric: bool = True,
) -> VOCResult:
    """AP for every class in ``classes`` (background excluded) and their mean.

    ``detections`` and ``ground_truth`` are keyed by class; a class missing from either has no detections
    or no ground truth.
    """
    per_class = {
        label: average_precision(detections.get(label, ()), ground_truth.get(label, {}), iou_threshold, use_2007_metric)
        for label in classes
    }
    return VOCResult(per_class, sum(per_class.values()) / len(per_class))
