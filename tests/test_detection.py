"""Specifications of SSD priors, box coding, matching, multibox loss, NMS and the predictor (pytorch-ssd's)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dlperf.detection.box_utils import (
    MatchPrior,
    assign_priors,
    center_form_to_corner_form,
    corner_form_to_center_form,
    decode_locations,
    encode_boxes,
    hard_negative_mining,
    hard_nms,
    iou_of,
)
from dlperf.detection.loss import MultiboxLoss
from dlperf.detection.predictor import Predictor, preprocess, select_detections
from dlperf.detection.priors import (
    MOBILENET_V1_SPECS,
    generate_ssd_priors,
    mobilenet_v1_feature_map_sizes,
    mobilenet_v1_specs,
)
from dlperf.models.mobilenet_ssd import mobilenet_v1_ssd

EPS = 1e-5  # iou_of's guard in the union


def loop_priors(specs, image_size):
    """pytorch-ssd's prior loop, written out cell by cell as its reference describes it."""
    priors = []
    for spec in specs:
        scale = image_size / spec.shrinkage
        for j in range(spec.feature_map_size):
            for i in range(spec.feature_map_size):
                cx, cy = (i + 0.5) / scale, (j + 0.5) / scale
                small = spec.box_sizes.min / image_size
                large = math.sqrt(spec.box_sizes.min * spec.box_sizes.max) / image_size
                priors += [[cx, cy, small, small], [cx, cy, large, large]]
                for ratio in spec.aspect_ratios:
                    r = math.sqrt(ratio)
                    priors += [[cx, cy, small * r, small / r], [cx, cy, small / r, small * r]]
    return torch.tensor(priors).clamp(0.0, 1.0)


# ---------------------------------------------------------------- priors


def test_published_spec_gives_3000_priors_at_300_px():
    assert generate_ssd_priors(MOBILENET_V1_SPECS, 300).shape == (3000, 4)


def test_first_and_last_priors_match_pytorch_ssds_values():
    priors = generate_ssd_priors(MOBILENET_V1_SPECS, 300)
    s2, s3 = math.sqrt(2), math.sqrt(3)
    expected_first = [
        [8 / 300, 8 / 300, 0.2, 0.2],  # centre 0.5 * 16 / 300; min 60 / 300
        [8 / 300, 8 / 300, math.sqrt(60 * 105) / 300, math.sqrt(60 * 105) / 300],  # 0.2646
        [8 / 300, 8 / 300, 0.2 * s2, 0.2 / s2],
        [8 / 300, 8 / 300, 0.2 / s2, 0.2 * s2],
    ]
    expected_last = [
        [0.5, 0.5, 0.95, 0.95],  # the 1x1 map: centre 0.5, min 285 / 300
        [0.5, 0.5, 1.0, 1.0],  # sqrt(285 * 330) / 300 = 1.022, clamped
        [0.5, 0.5, 1.0, 0.95 / s2],  # 0.6718
        [0.5, 0.5, 0.95 / s2, 1.0],
        [0.5, 0.5, 1.0, 0.95 / s3],  # 0.5485
        [0.5, 0.5, 0.95 / s3, 1.0],
    ]
    assert torch.allclose(priors[:4], torch.tensor(expected_first), atol=1e-7)
    assert torch.allclose(priors[-6:], torch.tensor(expected_last), atol=1e-7)


def test_grid_centres_past_the_image_edge_are_clamped():
    priors = generate_ssd_priors(MOBILENET_V1_SPECS, 300)
    # last cell of the 19x19 map: 18.5 * 16 / 300 = 0.9867 stays; of the 10x10 map: 9.5 * 32 / 300 = 1.013 → 1
    assert torch.allclose(priors[2160], torch.tensor([296 / 300, 296 / 300, 0.2, 0.2]))
    assert torch.allclose(priors[2166 + 600 - 6], torch.tensor([1.0, 1.0, 105 / 300, 105 / 300]))


@pytest.mark.parametrize("image_size", [300, 160, 100])
def test_generator_equals_pytorch_ssds_cell_by_cell_loop(image_size):
    specs = mobilenet_v1_specs(image_size)
    assert torch.equal(generate_ssd_priors(specs, image_size), loop_priors(specs, image_size))


def test_derived_spec_at_300_px_is_the_published_one():
    assert mobilenet_v1_specs(300) == MOBILENET_V1_SPECS


def test_derived_spec_at_160_px_keeps_nominal_strides_then_tiles_and_scales_box_sizes():
    specs = mobilenet_v1_specs(160)
    assert mobilenet_v1_feature_map_sizes(160) == (10, 5, 3, 2, 1, 1)
    assert [s.feature_map_size for s in specs] == [10, 5, 3, 2, 1, 1]
    assert [s.shrinkage for s in specs] == [16, 32, 64, 80.0, 160.0, 160.0]
    assert specs[0].box_sizes == pytest.approx((32.0, 56.0))  # 60 and 105, times 160 / 300
    assert specs[-1].box_sizes == pytest.approx((152.0, 176.0))  # 285 and 330, times 160 / 300


def test_feature_map_sizes_round_up_at_every_stride_two_layer():
    assert mobilenet_v1_feature_map_sizes(300) == (19, 10, 5, 3, 2, 1)
    assert mobilenet_v1_feature_map_sizes(512) == (32, 16, 8, 4, 2, 1)
    assert mobilenet_v1_feature_map_sizes(100) == (7, 4, 2, 1, 1, 1)


# ---------------------------------------------------------------- box coding


def test_centre_and_corner_forms_convert_both_ways():
    corner = torch.tensor([[1.0, 2.0, 5.0, 8.0]])
    center = torch.tensor([[3.0, 5.0, 4.0, 6.0]])
    assert torch.equal(corner_form_to_center_form(corner), center)
    assert torch.equal(center_form_to_corner_form(center), corner)


def test_iou_hand_cases():
    a = torch.tensor([0.0, 0.0, 2.0, 2.0])
    others = torch.tensor(
        [
            [0.0, 0.0, 2.0, 2.0],  # identical: 4 / 4
            [1.0, 0.0, 3.0, 2.0],  # half shifted: overlap 2, union 6
            [0.0, 0.0, 1.0, 1.0],  # contained: 1 / 4
            [3.0, 3.0, 4.0, 4.0],  # disjoint
            [2.0, 0.0, 4.0, 2.0],  # touching edge
        ]
    )
    expected = torch.tensor([4 / (4 + EPS), 2 / (6 + EPS), 1 / (4 + EPS), 0.0, 0.0])
    assert torch.allclose(iou_of(a[None], others), expected)
    assert iou_of(others[:, None], others[None]).shape == (5, 5)


def test_encoding_uses_centre_variance_0_1_and_size_variance_0_2():
    prior = torch.tensor([0.5, 0.5, 0.2, 0.4])
    box = torch.tensor([0.52, 0.46, 0.4, 0.4])
    # x: 0.02 / 0.2 / 0.1 = 1; y: -0.04 / 0.4 / 0.1 = -1; w: log(0.4 / 0.2) / 0.2; h: log(1) / 0.2
    expected = torch.tensor([1.0, -1.0, math.log(2) / 0.2, 0.0])
    assert torch.allclose(encode_boxes(box, prior), expected, atol=1e-6)
    assert torch.allclose(decode_locations(expected, prior), box, atol=1e-6)


def test_encode_then_decode_round_trips_a_batch_against_shared_priors():
    generator = torch.Generator().manual_seed(0)
    priors = generate_ssd_priors(mobilenet_v1_specs(100), 100)
    boxes = torch.cat(
        [torch.rand(2, len(priors), 2, generator=generator), 0.05 + torch.rand(2, len(priors), 2, generator=generator)],
        dim=2,
    )
    assert torch.allclose(decode_locations(encode_boxes(boxes, priors), priors), boxes, atol=1e-5)


# ---------------------------------------------------------------- matching


def test_assign_priors_thresholds_at_0_5_and_forces_each_ground_truth_onto_its_best_prior():
    priors = torch.tensor(
        [
            [0.0, 0.0, 0.4, 0.4],  # = gt 0
            [0.5, 0.5, 0.9, 0.9],  # gt 1's best prior, IoU 0.0625 / 0.1875 = 1/3 only
            [0.1, 0.0, 0.5, 0.4],  # IoU 0.12 / 0.20 = 0.6 with gt 0
            [0.6, 0.0, 1.0, 0.2],  # overlaps nothing
        ]
    )
    gt_boxes = torch.tensor([[0.0, 0.0, 0.4, 0.4], [0.45, 0.45, 0.75, 0.75]])
    boxes, labels = assign_priors(gt_boxes, torch.tensor([3, 7]), priors, 0.5)
    assert labels.tolist() == [3, 7, 3, 0]
    assert torch.equal(boxes[:3], gt_boxes[[0, 1, 0]])


def test_two_ground_truths_sharing_a_best_prior_give_it_to_the_later_one():
    priors = torch.tensor([[0.0, 0.0, 0.4, 0.4], [0.6, 0.6, 1.0, 1.0]])
    gt_boxes = torch.tensor([[0.0, 0.0, 0.4, 0.4], [0.0, 0.0, 0.4, 0.4]])
    _, labels = assign_priors(gt_boxes, torch.tensor([3, 5]), priors, 0.5)
    assert labels.tolist() == [5, 0]


def test_an_image_without_ground_truth_makes_every_prior_background_with_zero_targets():
    center_priors = torch.tensor([[0.2, 0.2, 0.4, 0.4], [0.7, 0.7, 0.4, 0.4]])
    locations, labels = MatchPrior(center_priors)(torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64))
    assert labels.tolist() == [0, 0]
    assert torch.allclose(locations, torch.zeros(2, 4), atol=1e-6)


def test_match_prior_encodes_a_box_equal_to_its_prior_as_zero_offsets():
    center_priors = torch.tensor([[0.2, 0.2, 0.4, 0.4], [0.7, 0.7, 0.4, 0.4]])
    locations, labels = MatchPrior(center_priors)(np.array([[0.0, 0.0, 0.4, 0.4]], dtype=np.float32), np.array([1]))
    assert labels.tolist() == [1, 0]
    assert torch.allclose(locations[0], torch.zeros(4), atol=1e-6)


def test_hard_negative_mining_keeps_positives_and_three_hardest_negatives_per_image():
    loss = torch.tensor(
        [
            [0.1, 0.9, 0.5, 0.3, 0.8, 0.2, 0.7, 0.05, 0.6, 0.4],
            [0.1, 0.9, 0.5, 0.3, 0.8, 0.2, 0.7, 0.05, 0.6, 0.4],
        ]
    )
    labels = torch.zeros(2, 10, dtype=torch.int64)
    labels[0, 1] = 2  # one positive → three negatives: losses 0.8, 0.7, 0.6; image 1 has none → none
    mask = hard_negative_mining(loss, labels, 3)
    assert mask[0].nonzero().flatten().tolist() == [1, 4, 6, 8]
    assert not mask[1].any()


# ---------------------------------------------------------------- NMS


def test_hard_nms_drops_boxes_overlapping_a_better_one_above_0_45():
    boxes = torch.tensor(
        [
            [25.0, 20.0, 35.0, 30.0],  # D: IoU 50 / 150 = 1/3 with C → kept
            [0.0, 0.0, 10.0, 10.0],  # A: best
            [20.0, 20.0, 30.0, 30.0],  # C
            [1.0, 0.0, 11.0, 10.0],  # B: IoU 90 / 110 = 0.82 with A → dropped
        ]
    )
    scores = torch.tensor([0.6, 0.9, 0.7, 0.8])
    assert hard_nms(boxes, scores, 0.45).tolist() == [1, 2, 0]
    assert hard_nms(boxes, scores, 0.45, top_k=2).tolist() == [1, 2]
    assert hard_nms(boxes, scores, 0.45, candidate_size=2).tolist() == [1]  # only A and B are candidates
    assert hard_nms(boxes, scores, 0.9).tolist() == [1, 3, 2, 0]


# ---------------------------------------------------------------- loss


def test_multibox_loss_by_hand_on_one_positive_and_its_three_hardest_negatives():
    # 6 priors, 3 classes. Prior 0 is positive (class 2) with logits [0, 0, 0]; negatives have logits
    # [b, 0, 0], background loss log(e^b + 2) - b, hardest for the smallest b: priors 4 (b=-2), 2 (-1), 5 (1).
    background_logits = torch.tensor([0.0, 3.0, -1.0, 2.0, -2.0, 1.0])
    confidence = torch.zeros(2, 6, 3)
    confidence[0, :, 0] = background_logits
    labels = torch.zeros(2, 6, dtype=torch.int64)
    labels[0, 0] = 2  # image 1 has no object: it adds neither positives nor negatives
    gt_locations = torch.full((2, 6, 4), 100.0)  # only the positive's targets count
    gt_locations[0, 0] = torch.tensor([0.5, -2.0, 0.0, 1.0])
    predicted = torch.zeros(2, 6, 4, requires_grad=True)

    regression, classification = MultiboxLoss()(confidence, predicted, labels, gt_locations)

    def background_ce(b: float) -> float:
        return math.log(math.exp(b) + 2) - b

    # smooth L1 (beta 1): 0.5 * 0.5^2 + (2 - 0.5) + 0 + (1 - 0.5) = 2.125; one positive
    assert regression.item() == pytest.approx(2.125)
    expected = math.log(3) + background_ce(-2) + background_ce(-1) + background_ce(1)
    assert classification.item() == pytest.approx(expected)
    (regression + classification).backward()
    assert torch.isfinite(predicted.grad).all()


def test_multibox_loss_without_positives_is_zero_not_nan():
    regression, classification = MultiboxLoss()(
        torch.randn(1, 5, 3), torch.randn(1, 5, 4), torch.zeros(1, 5, dtype=torch.int64), torch.randn(1, 5, 4)
    )
    assert (regression.item(), classification.item()) == (0.0, 0.0)


# ---------------------------------------------------------------- predictor


def test_preprocess_resizes_bilinearly_and_normalises_with_127_and_128():
    image = np.zeros((1, 2, 3), dtype=np.uint8)
    image[0, 1] = 100
    # 2 → 4 columns, half-pixel centres: sources x = -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to 1)
    expected_row = (torch.tensor([0.0, 25.0, 75.0, 100.0]) - 127) / 128
    tensor = preprocess(image, 4)
    assert tensor.shape == (3, 4, 4)
    assert torch.allclose(tensor, expected_row.expand(3, 4, 4))
    assert torch.equal(preprocess(np.full((5, 7, 3), 127, dtype=np.uint8), 3), torch.zeros(3, 3, 3))


def hand_scores_and_boxes():
    scores = torch.tensor(
        [
            [0.1, 0.8, 0.1],
            [0.2, 0.7, 0.1],
            [0.5, 0.005, 0.495],
            [0.9, 0.05, 0.05],
        ]
    )
    boxes = torch.tensor(
        [
            [0.0, 0.0, 0.5, 0.5],
            [0.0, 0.0, 0.5, 0.55],  # IoU 0.25 / 0.275 = 0.91 with prior 0
            [0.5, 0.5, 1.0, 1.0],
            [0.6, 0.6, 0.9, 0.9],  # inside prior 2: IoU 0.09 / 0.25 = 0.36
        ]
    )
    return scores, boxes


def test_select_detections_filters_suppresses_per_class_and_scales_to_pixels():
    scores, boxes = hand_scores_and_boxes()
    prediction = select_detections(scores, boxes, width=200, height=100)
    # class 1: 0.8 (p0) keeps, 0.7 (p1) suppressed by p0, 0.05 (p3) keeps, 0.005 (p2) under 0.01
    # class 2: 0.495 (p2), 0.1 (p0; tie with p1, earlier first), p1 suppressed by p0, 0.05 (p3)
    assert prediction.labels.tolist() == [1, 1, 2, 2, 2]
    assert torch.allclose(prediction.probs, torch.tensor([0.8, 0.05, 0.495, 0.1, 0.05]))
    p0, p2, p3 = [0.0, 0.0, 100.0, 50.0], [100.0, 50.0, 200.0, 100.0], [120.0, 60.0, 180.0, 90.0]
    assert torch.allclose(prediction.boxes, torch.tensor([p0, p3, p2, p0, p3]))


def test_select_detections_top_k_and_threshold_apply_per_class():
    scores, boxes = hand_scores_and_boxes()
    assert select_detections(scores, boxes, 200, 100, top_k=1).probs.tolist() == pytest.approx([0.8, 0.495])
    assert select_detections(scores, boxes, 200, 100, prob_threshold=0.2).labels.tolist() == [1, 2]
    empty = select_detections(scores, boxes, 200, 100, prob_threshold=0.99)
    assert (empty.boxes.shape, empty.labels.shape, empty.probs.shape) == ((0, 4), (0,), (0,))


def test_predictor_returns_the_best_prior_in_pixels_of_the_original_image():
    # 64-px model with silent heads: anchor 0 of every cell says class 1 (logit 10), other anchors say background.
    model = mobilenet_v1_ssd(3, width_mult=0.25, image_size=64).train()
    for header in [*model.classification_headers, *model.regression_headers]:
        torch.nn.init.zeros_(header.weight)
        torch.nn.init.zeros_(header.bias)
    for header in model.classification_headers:
        header.bias.data[0::3] = 10.0  # channel = anchor * 3 + class
        header.bias.data[0] = 0.0
        header.bias.data[1] = 10.0
    predictor = Predictor(model)
    assert not model.training
    image = np.zeros((240, 320, 3), dtype=np.uint8)
    boxes, labels, probs = predictor.predict(image, top_k=1)
    # prior 0 at 64 px: centre 0.5 * 16 / 64 = 0.125, side 60 / 300 = 0.2 → corners 0.025 .. 0.225
    assert torch.allclose(boxes, torch.tensor([[0.025 * 320, 0.025 * 240, 0.225 * 320, 0.225 * 240]]), atol=1e-4)
    assert labels.tolist() == [1]
    assert probs.tolist() == pytest.approx([math.exp(10) / (math.exp(10) + 2)])
