"""SSD's multibox loss as pytorch-ssd computes it (``vision/nn/multibox_loss.py``)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dlperf.detection.box_utils import NEG_POS_RATIO, hard_negative_mining


class MultiboxLoss(nn.Module):
    """Returns ``(regression_loss, classification_loss)``; training minimises their sum.

    * Regression: smooth L1 summed over the positive priors' four location targets.
    * Classification: cross-entropy summed over the positives and the hard negatives, mined per image by
      their background loss at ``neg_pos_ratio`` negatives per positive.
    * Both are divided by the number of positives in the batch, so the loss scale does not depend on how
      many objects the images hold. A batch without positives (pytorch-ssd divides 0 by 0 and returns
      nan) divides by 1 instead: it has no mined negatives either, so both terms are 0.

    pytorch-ssd's constructor also takes priors, IoU threshold and variances but never uses them;
    matching and encoding happen in the dataset transform (:class:`~dlperf.detection.box_utils.MatchPrior`).
    """

    def __init__(self, neg_pos_ratio: int = NEG_POS_RATIO):
        super().__init__()
        self.neg_pos_ratio = neg_pos_ratio

    def forward(
        self,
        confidence: torch.Tensor,
        predicted_locations: torch.Tensor,
        labels: torch.Tensor,
        gt_locations: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``confidence [N, P, C]`` logits, ``predicted_locations``/``gt_locations [N, P, 4]``, ``labels [N, P]``."""
        num_classes = confidence.shape[2]
        with torch.no_grad():
            background_loss = -F.log_softmax(confidence, dim=2)[:, :, 0]
            mask = hard_negative_mining(background_loss, labels, self.neg_pos_ratio)
        classification_loss = F.cross_entropy(
            confidence[mask].reshape(-1, num_classes), labels[mask], reduction="sum"
        )
        pos_mask = labels > 0
        regression_loss = F.smooth_l1_loss(
            predicted_locations[pos_mask].reshape(-1, 4), gt_locations[pos_mask].reshape(-1, 4), reduction="sum"
        )
        num_pos = max(int(pos_mask.sum()), 1)
        return regression_loss / num_pos, classification_loss / num_pos
