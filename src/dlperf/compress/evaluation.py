"""What every compression method measures on a CIFAR classifier: the trained model, its accuracy, its latency."""
from __future__ import annotations

import copy
import os
from typing import Mapping

import torch
from torch import nn

from dlperf.models.cifar_resnet import cifar_model
from dlperf.timing import TimingResult, time_callable, time_in_turns
from dlperf.train.data import DeviceImages
from dlperf.train.engine import evaluate

IMAGE_SHAPE = (3, 32, 32)


def load_classifier(arch: str, checkpoint: str | os.PathLike, *, width: int,
                    device: torch.device | str = "cpu") -> nn.Module:
    """A trained CIFAR model from a training-engine checkpoint (``{"model": state_dict, ...}``), in eval mode; the
    class count is that of the checkpoint's classifier (``fc``)."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["model"]
    model = cifar_model(arch, num_classes=state["fc.weight"].shape[0], width=width)
    model.load_state_dict(state)
    return model.to(device).eval()


def accuracy(model: nn.Module, data: DeviceImages, batch_size: int) -> float:
    """Top-1 accuracy in FP32 (no autocast), eval mode."""
    return evaluate(model, data, batch_size, autocast=False)[1]


def latency_images(batch_size: int, seed: int = 0) -> torch.Tensor:
    """A fixed batch of normalised-image-shaped inputs for timing (values do not change dense FP32 kernels' time)."""
    return torch.randn((batch_size, *IMAGE_SHAPE), generator=torch.Generator().manual_seed(seed))


def time_eager(model: nn.Module, images: torch.Tensor, *, warmup: int, repeats: int) -> TimingResult:
    """PyTorch eager forward of ``model`` on ``images``, no autograd bookkeeping."""
    model = model.eval()
    with torch.inference_mode():
        return time_callable(lambda: model(images), warmup=warmup, repeats=repeats, device=images.device)


def paired_eager_latency(models: Mapping[str, nn.Module], batch_size: int, *, warmup: int,
                         repeats: int) -> dict[str, TimingResult]:
    """Eager CPU latency of several models, measured in turns (A B A B …, after each one's warm-up), so that what
    the machine does meanwhile (another job, a clock change) weighs on each alike: their ratio is then a property
    of the models, not of when each was timed."""
    cpu_models = {name: copy.deepcopy(model).cpu().eval() for name, model in models.items()}
    images = latency_images(batch_size)
    with torch.inference_mode():
        return time_in_turns({name: (lambda m=model: m(images)) for name, model in cpu_models.items()},
                             warmup=warmup, repeats=repeats)


def eager_latency(model: nn.Module, batch_size: int, *, warmup: int, repeats: int) -> TimingResult:
    """Latency of PyTorch eager inference on the CPU (a CPU copy of ``model``, so a model on a GPU is untouched)."""
    cpu_model = copy.deepcopy(model).cpu().eval()
    return time_eager(cpu_model, latency_images(batch_size), warmup=warmup, repeats=repeats)
