"""Gradient flow: the mean absolute gradient of every weight layer, recorded during training.

The MLP coursework diagnoses VGG_38's failure by plotting mean |grad| per layer from input to output: when
gradients vanish, the first layers' values sit orders of magnitude below the last ones'. A
``GradFlowRecorder`` is passed to the training engine as its ``after_backward(step, model)`` hook, which runs
after ``loss.backward()`` and before ``optimizer.step()``, so it sees the gradients the step applies.

A *weight layer* is a parameter whose name ends in ``.weight`` and that has more than one dimension: conv and
linear weights. Biases and BatchNorm scales (1-d) are left out; they are not the layers whose depth the
diagnosis is about, and including them would make the x-axis depend on the variant. A layer's name is its
parameter name without ``.weight``, in ``named_parameters`` order (forward order for the models here).
"""
from __future__ import annotations

import os

import pandas as pd
import torch
from torch import nn

from dlperf.atomic import write_csv

COLUMNS = ("step", "layer", "mean_abs_grad")


def _weight_layers(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    return [(name.removesuffix(".weight"), p) for name, p in model.named_parameters()
            if name.endswith(".weight") and p.ndim > 1]


def layer_names(model: nn.Module) -> list[str]:
    """The weight layers of ``model`` as the recorder names them, input to output."""
    return [name for name, _ in _weight_layers(model)]


class GradFlowRecorder:
    """Records mean |grad| of every weight layer at steps 0, ``every``, 2 ``every``, ... as rows
    ``{"step", "layer", "mean_abs_grad"}``.

    Each record costs one ``abs().mean()`` per layer and a single device-to-host copy, so recording often does
    not serialise a GPU run layer by layer. A layer without a gradient (unused in the step) records NaN.
    """

    def __init__(self, model: nn.Module, every: int):
        if every < 1:
            raise ValueError(f"every must be a positive number of steps, got {every}")
        self.every = every
        self.layers = layer_names(model)
        self.rows: list[dict] = []

    def __call__(self, step: int, model: nn.Module) -> None:
        if step % self.every:
            return
        weights = _weight_layers(model)
        if [name for name, _ in weights] != self.layers:
            raise ValueError("the model passed to the recorder has other weight layers than the one it was built for")
        means = torch.stack([p.grad.detach().abs().mean().float() if p.grad is not None
                             else torch.full((), float("nan"), device=p.device) for _, p in weights]).tolist()
        self.rows.extend({"step": step, "layer": name, "mean_abs_grad": value}
                         for name, value in zip(self.layers, means))

    def state_dict(self) -> dict:
        """The rows so far, saved with the engine's resumable state so a resumed run keeps its history."""
        return {"rows": list(self.rows)}

    def load_state_dict(self, state: dict) -> None:
        self.rows = list(state["rows"])

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=list(COLUMNS))

    def write_csv(self, path: str | os.PathLike) -> None:
        write_csv(path, self.to_frame())
