"""Image → detections, as pytorch-ssd's ``Predictor`` with its defaults for MobileNetV1-SSD.

Split in two pure steps so that other runtimes (an ONNX session in the server) reuse them around their
own forward pass:

* :func:`preprocess`: pytorch-ssd's ``PredictionTransform``: resize the RGB image to ``size x size``
  (bilinear, aspect ratio not kept), back to uint8 as ``cv2.resize`` returns it, then ``(x - mean) / std``
  and HWC → CHW. The resize is torch's bilinear with half-pixel centres, cv2's ``INTER_LINEAR`` geometry;
  cv2's fixed-point arithmetic can differ by one grey level on some pixels.
* :func:`select_detections`: per foreground class, keep probabilities above the threshold, hard NMS
  over the best ``candidate_size``, scale boxes from 0..1 to the original pixels.

Defaults are the ones pytorch-ssd's ``eval_ssd.py`` uses (and that the published mAP was measured with):
threshold 0.01, NMS IoU 0.45, 200 candidates, no top-k (``-1``; with 200 candidates, any top_k >= 200
gives the same result).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from dlperf.detection.box_utils import NMS_CANDIDATES, NMS_IOU, hard_nms
from dlperf.models.mobilenet_ssd import IMAGE_MEAN, IMAGE_STD, SSD

PROB_THRESHOLD = 0.01


class Prediction(NamedTuple):
    """Detections of one image: ``boxes [K, 4]`` corner form in pixels, ``labels [K]`` int64 (class index,
    never 0 = background), ``probs [K]``; grouped by class in class order, best first within a class."""

    boxes: torch.Tensor
    labels: torch.Tensor
    probs: torch.Tensor


def preprocess(image: np.ndarray, size: int, mean: float = IMAGE_MEAN, std: float = IMAGE_STD) -> torch.Tensor:
    """HWC uint8 RGB image → float32 ``[3, size, size]`` network input."""
    pixels = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].to(torch.float32)
    resized = F.interpolate(pixels, size=(size, size), mode="bilinear", align_corners=False, antialias=False)
    resized = resized.round().clamp(0, 255)
    return ((resized - mean) / std)[0]


def select_detections(
    scores: torch.Tensor,
    boxes: torch.Tensor,
    width: int,
    height: int,
    prob_threshold: float = PROB_THRESHOLD,
    nms_iou: float = NMS_IOU,
    top_k: int = -1,
    candidate_size: int = NMS_CANDIDATES,
) -> Prediction:
    """One image's ``scores [P, C]`` and corner-form ``boxes [P, 4]`` (0..1) → its :class:`Prediction`.

    ``top_k`` caps the boxes kept per class (pytorch-ssd applies it inside each class's NMS).
    """
    scores, boxes = scores.cpu(), boxes.cpu()
    kept_boxes, kept_labels, kept_probs = [], [], []
    for class_index in range(1, scores.shape[1]):
        probs = scores[:, class_index]
        mask = probs > prob_threshold
        if not mask.any():
            continue
        class_boxes, class_probs = boxes[mask], probs[mask]
        keep = hard_nms(class_boxes, class_probs, nms_iou, top_k, candidate_size)
        kept_boxes.append(class_boxes[keep])
        kept_probs.append(class_probs[keep])
        kept_labels.append(torch.full((len(keep),), class_index, dtype=torch.int64))
    if not kept_boxes:
        return Prediction(torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64), torch.zeros(0))
    pixel_scale = torch.tensor([width, height, width, height], dtype=boxes.dtype)
    return Prediction(torch.cat(kept_boxes) * pixel_scale, torch.cat(kept_labels), torch.cat(kept_probs))


class Predictor:
    """Runs an :class:`~dlperf.models.mobilenet_ssd.SSD` on single images.

    The model is put in eval mode (BN uses its running statistics) on the device it already lives on;
    ``size`` defaults to the size its priors were built for. Empty results have shapes ``[0, 4]``/``[0]``
    (pytorch-ssd returns three shapeless empty tensors).
    """

    def __init__(
        self,
        model: SSD,
        size: int | None = None,
        mean: float = IMAGE_MEAN,
        std: float = IMAGE_STD,
        prob_threshold: float = PROB_THRESHOLD,
        nms_iou: float = NMS_IOU,
        top_k: int = -1,
        candidate_size: int = NMS_CANDIDATES,
    ):
        self.model = model.eval()
        self.size = model.image_size if size is None else size
        self.mean = mean
        self.std = std
        self.prob_threshold = prob_threshold
        self.nms_iou = nms_iou
        self.top_k = top_k
        self.candidate_size = candidate_size

    @torch.inference_mode()
    def predict(self, image: np.ndarray, top_k: int | None = None, prob_threshold: float | None = None) -> Prediction:
        """Detections for an HWC uint8 RGB ``image``; ``top_k``/``prob_threshold`` override the defaults
        for this call (pytorch-ssd's ``run_ssd_example`` uses 10 and 0.4 for display)."""
        height, width = image.shape[:2]
        device = self.model.priors.device
        inputs = preprocess(image, self.size, self.mean, self.std)[None].to(device)
        scores, boxes = self.model.detect(inputs)
        return select_detections(
            scores[0],
            boxes[0],
            width,
            height,
            self.prob_threshold if prob_threshold is None else prob_threshold,
            self.nms_iou,
            self.top_k if top_k is None else top_k,
            self.candidate_size,
        )
