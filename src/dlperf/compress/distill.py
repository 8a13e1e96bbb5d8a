"""Knowledge distillation with soft targets (Hinton, Vinyals and Dean, 2015).

The student's training loss mixes the teacher's softened output distribution with the labels:

    L = α · T² · KL(softmax(t / T) ‖ softmax(s / T)) + (1 − α) · CE(s, y)

for student logits ``s``, teacher logits ``t``, labels ``y``, temperature ``T`` and weight ``α`` of the soft term.
KL(p ‖ q) = Σ_c p_c (log p_c − log q_c) is taken per example and averaged over the batch, as is the
cross-entropy. The soft term is multiplied by T² because its gradient with respect to the logits scales as 1/T²
(Hinton et al., §2): so α keeps the same meaning at every temperature. α = 0 is training on labels alone.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def check_distillation(temperature: float, alpha: float) -> None:
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor, *,
                      temperature: float, alpha: float) -> torch.Tensor:
    """α·T²·KL(softmax(t/T) ‖ softmax(s/T)) + (1−α)·CE(s, y), both batch means."""
    check_distillation(temperature, alpha)
    soft = F.kl_div(F.log_softmax(student_logits / temperature, dim=1),
                    F.log_softmax(teacher_logits / temperature, dim=1), reduction="batchmean", log_target=True)
    return alpha * temperature**2 * soft + (1 - alpha) * F.cross_entropy(student_logits, labels)


class DistillationLoss:
    """The training engine's ``loss_fn``: runs the frozen ``teacher`` (eval mode, no gradients) on the step's
    images and returns :func:`distillation_loss` of the student's logits."""

    def __init__(self, teacher: nn.Module, temperature: float, alpha: float):
        check_distillation(temperature, alpha)
        self.teacher = teacher.eval().requires_grad_(False)
        self.temperature = temperature
        self.alpha = alpha

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            teacher_logits = self.teacher(images).float()
        return distillation_loss(logits, teacher_logits, labels, temperature=self.temperature, alpha=self.alpha)
