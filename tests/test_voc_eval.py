"""Specifications of VOC AP as pytorch-ssd's eval_ssd.py computes it, on hand-made detections.

Boxes are 10x10 squares; a detection on the same square has IoU 100 / (100 + 1e-5) > 0.5, one on an empty
spot IoU 0. Each test's comment lists the ranked outcomes, precision P and recall R after each, and the
11-point AP: the sum over t = 0, 0.1, ..., 1 of max(P where R >= t) (0 when no R reaches t), over 11.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from dlperf.detection.voc_eval import (
    Detection,
    GroundTruth,
    area_average_precision,
    average_precision,
    evaluate,
    group_detections_by_class,
    group_ground_truth_by_class,
    precision_recall,
    voc07_average_precision,
)


def square(x: float, y: float = 0.0) -> list[float]:
    return [x, y, x + 10.0, y + 10.0]


def ground_truth(*boxes: list[float], difficult: tuple[bool, ...] = ()) -> GroundTruth:
    return GroundTruth(np.array(boxes, dtype=np.float32), np.array(difficult or (False,) * len(boxes)))


# image "a" holds two objects of the class, image "b" one: three positives.
THREE_OBJECTS = {"a": ground_truth(square(0), square(50)), "b": ground_truth(square(0))}


def test_ranked_hits_and_misses_give_the_hand_computed_11_point_and_area_ap():
    detections = [
        Detection("b", 0.7, square(0)),  # rank 3: TP
        Detection("a", 0.9, square(0)),  # rank 1: TP
        Detection("a", 0.8, square(20)),  # rank 2: FP, no overlap
        Detection("b", 0.6, square(30)),  # rank 4: FP
    ]
    # ranks: TP FP TP FP → P = 1, 1/2, 2/3, 1/2; R = 1/3, 1/3, 2/3, 2/3
    precision, recall = precision_recall(detections, THREE_OBJECTS)
    assert precision == pytest.approx([1, 1 / 2, 2 / 3, 1 / 2])
    assert recall == pytest.approx([1 / 3, 1 / 3, 2 / 3, 2 / 3])
    # t = 0, .1, .2, .3: max P = 1 (4 points); t = .4, .5, .6: R = 2/3 reaches, max P = 2/3 (3 points);
    # t = .7 .. 1: unreached (4 points) → (4 * 1 + 3 * 2/3) / 11 = 6/11
    assert average_precision(detections, THREE_OBJECTS) == pytest.approx(6 / 11)
    # area: interpolated P is 1 on R in (0, 1/3], 2/3 on (1/3, 2/3], 0 beyond → 1/3 + 2/9 = 5/9
    assert average_precision(detections, THREE_OBJECTS, use_2007_metric=False) == pytest.approx(5 / 9)


def test_a_second_detection_of_the_same_object_is_a_false_positive():
    two_objects = {"a": ground_truth(square(0), square(50))}
    detections = [
        Detection("a", 0.9, square(0)),  # TP
        Detection("a", 0.8, square(0.5)),  # same object again (IoU 0.9): FP
        Detection("a", 0.7, square(50)),  # TP
    ]
    # P = 1, 1/2, 2/3; R = 1/2, 1/2, 1 → t = 0 .. .5 (6 points): 1; t = .6 .. 1 (5 points): 2/3
    # → (6 + 5 * 2/3) / 11 = 28/33; had the duplicate counted as a hit the AP would be 1
    assert average_precision(detections, two_objects) == pytest.approx(28 / 33)


def test_difficult_objects_are_not_positives_and_detections_of_them_are_ignored():
    gt = {"a": ground_truth(square(0), square(50), difficult=(False, True))}
    detections = [
        Detection("a", 0.9, square(50)),  # on the difficult object: ignored, neither TP nor FP
        Detection("a", 0.8, square(20)),  # FP
        Detection("a", 0.7, square(0)),  # TP
    ]
    # one positive (the difficult one does not count); ranks FP TP → P = 0, 1/2; R = 0, 1
    precision, recall = precision_recall(detections, gt)
    assert precision == pytest.approx([0, 1 / 2])
    assert recall == pytest.approx([0, 1])
    # every t reaches R = 1, where P = 1/2 → AP 1/2 (pytorch-ssd's 0/0 at the ignored first rank would be nan)
    assert average_precision(detections, gt) == pytest.approx(1 / 2)


def test_an_ignored_detection_between_ranks_changes_nothing():
    gt = {"a": ground_truth(square(0), square(50), difficult=(False, True))}
    hit = Detection("a", 0.9, square(0))
    on_difficult = Detection("a", 0.8, square(50))
    miss = Detection("a", 0.7, square(20))
    assert average_precision([hit, on_difficult, miss], gt) == average_precision([hit, miss], gt) == pytest.approx(1.0)


def test_iou_must_exceed_one_half():
    gt = {"a": ground_truth([0.0, 0.0, 10.0, 20.0])}
    # overlap 100, union 200 (+ 1e-5): IoU just under 0.5 → FP; overlap 110 / union 200 → TP
    assert average_precision([Detection("a", 0.9, [0.0, 0.0, 10.0, 10.0])], gt) == 0.0
    assert average_precision([Detection("a", 0.9, [0.0, 0.0, 10.0, 11.0])], gt) == pytest.approx(1.0)


def test_detections_in_images_without_that_class_are_false_positives():
    detections = [Detection("elsewhere", 0.95, square(0)), Detection("b", 0.9, square(0))]
    # FP TP → P = 0, 1/2; R = 0, 1/3 → t = 0 .. .3: 1/2 (4 points) → 2/11
    assert average_precision(detections, THREE_OBJECTS) == pytest.approx(2 / 11)


def test_recall_of_exactly_0_6_misses_the_0_6_threshold_as_in_pytorch_ssd():
    five = {"a": ground_truth(*(square(20 * k) for k in range(5)))}
    detections = [Detection("a", 0.9 - 0.1 * k, square(20 * k)) for k in range(3)]
    # P = 1, 1, 1; R = 0.2, 0.4, 0.6. The thresholds are np.arange(0, 1.1, 0.1): its "0.6" is
    # 0.6000000000000001 > 0.6, so only t = 0 .. .5 count → 6/11 (7/11 with decimal thresholds)
    assert average_precision(detections, five) == pytest.approx(6 / 11)


def test_a_class_without_detections_has_ap_zero_in_both_metrics():
    assert average_precision([], THREE_OBJECTS) == 0.0
    assert average_precision([], THREE_OBJECTS, use_2007_metric=False) == 0.0


def test_a_class_without_ground_truth_scores_0_in_11_points_and_nan_by_area_as_pytorch_ssd():
    detections = [Detection("a", 0.9, square(0))]
    # recall = 0 / 0 = nan: no threshold is reached → 0; the area sums nan-wide steps → nan
    assert average_precision(detections, {}) == 0.0
    assert math.isnan(average_precision(detections, {}, use_2007_metric=False))
    assert average_precision([], {}, use_2007_metric=False) == 0.0


def test_ap_helpers_on_a_given_curve():
    precision, recall = np.array([1.0, 0.5, 2 / 3]), np.array([0.5, 0.5, 1.0])
    assert voc07_average_precision(precision, recall) == pytest.approx(28 / 33)
    # area: interpolated P is 1 up to R 0.5, then 2/3 → 0.5 + 1/3
    assert area_average_precision(precision, recall) == pytest.approx(5 / 6)


def test_evaluate_groups_by_class_and_averages_over_every_requested_class():
    annotations = {
        "a": (np.array([square(0), square(50)]), np.array([1, 2]), np.array([False, False])),
        "b": (np.array([square(0)]), np.array([1]), np.array([True])),
    }
    predictions = {
        "a": (np.array([square(0), square(50), square(80)]), np.array([1, 2, 2]), np.array([0.9, 0.8, 0.95])),
        "b": (np.array([square(0)]), np.array([1]), np.array([0.7])),
    }
    gt = group_ground_truth_by_class(annotations)
    assert sorted(gt) == [1, 2]
    assert gt[1]["b"].difficult.tolist() == [True]
    detections = group_detections_by_class(predictions)
    assert [d.image_id for d in detections[1]] == ["a", "b"]

    result = evaluate(detections, gt, classes=[1, 2, 3])
    # class 1: TP on a, then the detection of b's difficult object is ignored → AP 1
    # class 2: FP (0.95), TP (0.8) → P = 0, 1/2; R = 0, 1 → 1/2
    # class 3: no ground truth and no detections → 0
    assert result.per_class == pytest.approx({1: 1.0, 2: 0.5, 3: 0.0})
    assert result.mean_ap == pytest.approx(1.5 / 3)
