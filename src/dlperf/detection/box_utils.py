"""Box arithmetic for SSD, with pytorch-ssd's conventions so that its checkpoints and numbers carry over.

* Centre form is ``[cx, cy, w, h]``, corner form ``[x1, y1, x2, y2]``; areas are continuous (no VOC "+1").
* IoU adds ``eps = 1e-5`` to the union, as pytorch-ssd's ``iou_of``; VOC evaluation uses the same IoU.
* Locations (what the regression heads predict) are prior-relative offsets scaled by the variances 0.1
  (centre) and 0.2 (size); these are training constants baked into published weights.
* Functions broadcast over leading dimensions, so one call serves a batch ``[N, P, 4]`` with priors
  ``[P, 4]``.
"""
from __future__ import annotations

import torch

CENTER_VARIANCE = 0.1
SIZE_VARIANCE = 0.2
MATCH_IOU = 0.5  # a prior is positive when its best ground truth overlaps it at least this much
NEG_POS_RATIO = 3
NMS_IOU = 0.45
NMS_CANDIDATES = 200


def center_form_to_corner_form(boxes: torch.Tensor) -> torch.Tensor:
    """``[cx, cy, w, h]`` → ``[x1, y1, x2, y2]``."""
    return torch.cat([boxes[..., :2] - boxes[..., 2:] / 2, boxes[..., :2] + boxes[..., 2:] / 2], dim=-1)


def corner_form_to_center_form(boxes: torch.Tensor) -> torch.Tensor:
    """``[x1, y1, x2, y2]`` → ``[cx, cy, w, h]``."""
    return torch.cat([(boxes[..., :2] + boxes[..., 2:]) / 2, boxes[..., 2:] - boxes[..., :2]], dim=-1)


def area_of(left_top: torch.Tensor, right_bottom: torch.Tensor) -> torch.Tensor:
    """Area of corner pairs; an empty intersection (right of left, below top) counts 0, not negative."""
    wh = (right_bottom - left_top).clamp(min=0.0)
    return wh[..., 0] * wh[..., 1]


def iou_of(boxes0: torch.Tensor, boxes1: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Intersection over union of corner-form boxes, broadcast over leading dimensions.

    The ``eps`` keeps degenerate (zero-area) boxes finite; it makes a perfect match 1 - eps/area, not 1.
    """
    overlap = area_of(torch.max(boxes0[..., :2], boxes1[..., :2]), torch.min(boxes0[..., 2:], boxes1[..., 2:]))
    area0 = area_of(boxes0[..., :2], boxes0[..., 2:])
    area1 = area_of(boxes1[..., :2], boxes1[..., 2:])
    return overlap / (area0 + area1 - overlap + eps)


def encode_boxes(
    center_form_boxes: torch.Tensor,
    center_form_priors: torch.Tensor,
    center_variance: float = CENTER_VARIANCE,
    size_variance: float = SIZE_VARIANCE,
) -> torch.Tensor:
    """Boxes → regression targets relative to priors (pytorch-ssd's ``convert_boxes_to_locations``)."""
    prior_xy, prior_wh = center_form_priors[..., :2], center_form_priors[..., 2:]
    return torch.cat(
        [
            (center_form_boxes[..., :2] - prior_xy) / prior_wh / center_variance,
            torch.log(center_form_boxes[..., 2:] / prior_wh) / size_variance,
        ],
        dim=-1,
    )


def decode_locations(
    locations: torch.Tensor,
    center_form_priors: torch.Tensor,
    center_variance: float = CENTER_VARIANCE,
    size_variance: float = SIZE_VARIANCE,
) -> torch.Tensor:
    """Regression outputs → centre-form boxes (pytorch-ssd's ``convert_locations_to_boxes``)."""
    prior_xy, prior_wh = center_form_priors[..., :2], center_form_priors[..., 2:]
    return torch.cat(
        [
            locations[..., :2] * center_variance * prior_wh + prior_xy,
            torch.exp(locations[..., 2:] * size_variance) * prior_wh,
        ],
        dim=-1,
    )


def assign_priors(
    gt_boxes: torch.Tensor,
    gt_labels: torch.Tensor,
    corner_form_priors: torch.Tensor,
    iou_threshold: float = MATCH_IOU,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Give every prior a ground-truth box and label (0 = background), as pytorch-ssd's ``assign_priors``.

    Each prior takes the ground truth it overlaps most; it stays positive only if that IoU is at least
    ``iou_threshold``. Each ground truth is then forced onto its own best prior, whatever the IoU, so
    that small or oddly shaped objects still get trained; when two ground truths share a best prior the
    later one wins, as in pytorch-ssd's loop. An image without ground truth (pytorch-ssd would fail)
    makes every prior background, with the priors themselves as boxes so that their targets are 0.

    Returns corner-form boxes ``[P, 4]`` and labels ``[P]``.
    """
    num_priors = corner_form_priors.shape[0]
    if gt_boxes.shape[0] == 0:
        background = torch.zeros(num_priors, dtype=gt_labels.dtype, device=corner_form_priors.device)
        return corner_form_priors.clone(), background
    ious = iou_of(gt_boxes[None, :, :], corner_form_priors[:, None, :])  # [P, T]
    best_target_iou, best_target = ious.max(dim=1)
    best_prior = ious.argmax(dim=0)
    for target, prior in enumerate(best_prior.tolist()):
        best_target[prior] = target
    best_target_iou[best_prior] = 2.0  # above any IoU: forced matches stay positive
    labels = gt_labels[best_target]
    labels[best_target_iou < iou_threshold] = 0
    return gt_boxes[best_target], labels


class MatchPrior:
    """Dataset target transform: ground truth of one image → (locations ``[P, 4]``, labels ``[P]``).

    pytorch-ssd's ``MatchPrior``: assign priors, then encode the assigned boxes against them.
    """

    def __init__(
        self,
        center_form_priors: torch.Tensor,
        center_variance: float = CENTER_VARIANCE,
        size_variance: float = SIZE_VARIANCE,
        iou_threshold: float = MATCH_IOU,
    ):
        self.center_form_priors = center_form_priors
        self.corner_form_priors = center_form_to_corner_form(center_form_priors)
        self.center_variance = center_variance
        self.size_variance = size_variance
        self.iou_threshold = iou_threshold

    def __call__(self, gt_boxes: torch.Tensor, gt_labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        boxes, labels = assign_priors(
            torch.as_tensor(gt_boxes, dtype=torch.float32),
            torch.as_tensor(gt_labels, dtype=torch.int64),
            self.corner_form_priors,
            self.iou_threshold,
        )
        locations = encode_boxes(
            corner_form_to_center_form(boxes), self.center_form_priors, self.center_variance, self.size_variance
        )
        return locations, labels


def hard_negative_mining(loss: torch.Tensor, labels: torch.Tensor, neg_pos_ratio: int = NEG_POS_RATIO) -> torch.Tensor:
    """Mask ``[N, P]`` of the priors that enter the classification loss: all positives, plus per image the
    ``neg_pos_ratio`` x (its positives) background priors with the highest background loss ``loss``.

    Without mining the ~3000 easy background priors would swamp the few positives.
    """
    pos_mask = labels > 0
    num_neg = pos_mask.sum(dim=1, keepdim=True) * neg_pos_ratio
    loss = loss.masked_fill(pos_mask, -torch.inf)
    rank = loss.argsort(dim=1, descending=True).argsort(dim=1)
    return pos_mask | (rank < num_neg)


def hard_nms(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    iou_threshold: float = NMS_IOU,
    top_k: int = -1,
    candidate_size: int = NMS_CANDIDATES,
) -> torch.Tensor:
    """Greedy non-maximum suppression over the ``candidate_size`` best-scoring boxes; indexes of the kept
    boxes into ``boxes``, best first.

    pytorch-ssd's ``hard_nms``: take the best remaining box, drop the others whose IoU with it exceeds
    ``iou_threshold``, repeat; stop after ``top_k`` picks when ``top_k > 0``. Ties in score keep their
    input order (a stable sort), so results do not depend on the sort implementation.
    """
    order = scores.argsort(descending=True, stable=True)[:candidate_size]
    candidates = boxes[order]
    overlaps = iou_of(candidates[:, None, :], candidates[None, :, :]) > iou_threshold
    suppressed = torch.zeros(len(order), dtype=torch.bool, device=boxes.device)
    picked = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        picked.append(i)
        if 0 < top_k == len(picked):
            break
        suppressed |= overlaps[i]
    return order[picked]
