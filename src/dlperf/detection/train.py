"""Training an SSD as pytorch-ssd's ``train_ssd.py`` does, with the training engine's resumable bookkeeping.

* Three parameter groups with their own learning rates: the base net (``base_net_lr``), the extras
  (``extra_layers_lr``) and the heads (``lr``); SGD with momentum and weight decay.
* Per-epoch schedule: ``cosine`` (``CosineAnnealingLR(T_max)``, eta_min 0) or ``multistep`` (milestones,
  gamma), evaluated in closed form for epoch e = 0, 1, ... (pytorch-ssd calls ``scheduler.step()`` before the
  epoch's first optimizer step, the pre-PyTorch-1.1 order, which shifts its schedule one epoch earlier; we use
  the documented order, so epoch 0 trains at the configured rates).
* Data: each image goes through :class:`~dlperf.detection.transforms.TrainAugmentation` and
  :class:`~dlperf.detection.box_utils.MatchPrior`; the order of an epoch and every random draw of the
  augmentation depend only on (seed, epoch, image index).
* Files, as :mod:`dlperf.train.engine`: ``steps.csv`` (step, epoch, loss, lr, seconds; lr is the heads'),
  ``epochs.csv`` (one row per epoch), ``checkpoint.pt`` (a plain state_dict, as pytorch-ssd saves, so it
  loads with ``mobilenet_v1_ssd(...).load_state_dict``) and ``metrics.json`` in ``run_dir``; resumable state
  (``last.pt``, rewritten atomically after every epoch) in ``state_dir``, which must not be a rule output. A
  killed run resumes from its last finished epoch and, on the CPU, ends with the same weights as an
  uninterrupted one.
"""
from __future__ import annotations

import math
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from dlperf.atomic import atomic_write, write_json
from dlperf.detection.box_utils import MatchPrior
from dlperf.detection.loss import MultiboxLoss
from dlperf.detection.transforms import TrainAugmentation
from dlperf.models.mobilenet_ssd import SSD
from dlperf.train.engine import STEP_COLUMNS, NonFiniteLossError, load_resume_state
from dlperf.train.progress import epoch_line, step_bar

EPOCH_COLUMNS = ("epoch", "lr", "train_loss", "regression_loss", "classification_loss", "images_per_s",
                 "epoch_seconds", "wall_seconds")


@dataclass
class SSDTrainConfig:
    """pytorch-ssd's train_ssd.py flags that matter for the result (``--lr``, ``--base_net_lr``, ...)."""

    epochs: int
    batch_size: int
    lr: float
    base_net_lr: float | None = None       # None: lr, as in train_ssd.py
    extra_layers_lr: float | None = None   # None: lr
    optimizer: str = "sgd"                 # "sgd" (train_ssd.py) or "adam" (faster from scratch in short CPU runs)
    momentum: float = 0.9
    weight_decay: float = 5e-4
    scheduler: dict = field(default_factory=lambda: {"name": "cosine", "t_max": 120})
    augment: str = "ssd"                   # "ssd": TrainAugmentation; "mirror": the random mirror only
    seed: int = 0

    @classmethod
    def from_config(cls, cfg: dict, seed: int) -> "SSDTrainConfig":
        known = {f for f in cls.__dataclass_fields__ if f != "seed"}
        unknown = set(cfg) - known
        if unknown:
            raise ValueError(f"unknown SSD training keys {sorted(unknown)}; expected some of {sorted(known)}")
        return cls(seed=seed, **cfg)


def schedule_factor(scheduler: dict, epoch: int) -> float:
    """Learning-rate multiplier of 0-based ``epoch``."""
    name = scheduler["name"]
    if name == "cosine":
        return (1 + math.cos(math.pi * epoch / scheduler["t_max"])) / 2
    if name == "multistep":
        return scheduler.get("gamma", 0.1) ** sum(epoch >= m for m in scheduler["milestones"])
    if name == "constant":
        return 1.0
    raise ValueError(f"unknown SSD scheduler {name!r}: expected cosine, multistep or constant")


def build_optimizer(groups: list[dict], cfg: SSDTrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                               foreach=True)  # grouped updates, as dlperf.train.engine.build_optimizer
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)
    raise ValueError(f"unknown SSD optimizer {cfg.optimizer!r}: expected sgd or adam")


def param_groups(model: SSD, cfg: SSDTrainConfig) -> list[dict]:
    """train_ssd.py's three groups: base net, extras, heads (classification and regression)."""
    heads = [*model.classification_headers.parameters(), *model.regression_headers.parameters()]
    return [
        {"params": list(model.base_net.parameters()), "lr": cfg.lr if cfg.base_net_lr is None else cfg.base_net_lr},
        {"params": list(model.extras.parameters()),
         "lr": cfg.lr if cfg.extra_layers_lr is None else cfg.extra_layers_lr},
        {"params": heads, "lr": cfg.lr},
    ]


def image_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of one image's augmentation in one epoch."""
    return np.random.default_rng([seed, epoch, index])


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The shuffled image order of one epoch."""
    return np.random.default_rng([seed, epoch, n]).permutation(n).tolist()


class TrainingSet:
    """Turns a detection dataset (``(image, boxes pixels, labels)`` items) into batches of network inputs and
    matched targets: ``(images [B, 3, S, S], locations [B, P, 4], labels [B, P])``."""

    def __init__(self, dataset, model: SSD, seed: int, augment: str = "ssd"):
        self.dataset = dataset
        self.augment = TrainAugmentation(model.image_size, mode=augment)
        self.match = MatchPrior(model.priors.detach().cpu())
        self.seed = seed

    def __len__(self) -> int:
        return len(self.dataset)

    def item(self, index: int, epoch: int):
        image, boxes, labels = self.dataset[index]
        x, boxes, labels = self.augment(image, boxes, labels, image_rng(self.seed, epoch, index))
        locations, targets = self.match(torch.from_numpy(np.asarray(boxes, np.float32)), torch.as_tensor(labels))
        return x, locations, targets

    def steps_per_epoch(self, batch_size: int) -> int:
        return math.ceil(len(self) / batch_size)

    def batches(self, batch_size: int, epoch: int):
        order = epoch_order(len(self), self.seed, epoch)
        for start in range(0, len(order), batch_size):
            items = [self.item(i, epoch) for i in order[start: start + batch_size]]
            yield tuple(torch.stack(parts) for parts in zip(*items))


def _save(obj, path: Path) -> None:
    with atomic_write(path, "wb") as fh:
        torch.save(obj, fh)


def _write_csv(path: Path, columns: Sequence[str], rows: list[dict]) -> None:
    with atomic_write(path, "w") as fh:
        fh.write(",".join(columns) + "\n")
        for row in rows:
            fh.write(",".join(repr(v) if isinstance(v, float) else str(v) for v in (row[c] for c in columns)) + "\n")


def train_ssd(model: SSD, dataset, cfg: SSDTrainConfig, *, device: torch.device, run_dir: Path, state_dir: Path,
              run_name: str, fingerprint: str = "", log=None) -> dict:
    """Train ``model`` on ``dataset`` and write the run's files (module docstring); return the last epoch's row."""
    log = log or sys.stderr
    run_dir, state_dir = Path(run_dir), Path(state_dir)
    model = model.to(device)
    data = TrainingSet(dataset, model, cfg.seed, cfg.augment)
    groups = param_groups(model, cfg)
    base_lrs = [g["lr"] for g in groups]
    optimizer = build_optimizer(groups, cfg)
    criterion = MultiboxLoss()
    steps_per_epoch = data.steps_per_epoch(cfg.batch_size)

    start_epoch, step_rows, epoch_rows, elapsed = 0, [], [], 0.0
    last = state_dir / "last.pt"
    state = load_resume_state(last, fingerprint, device, run_name, log)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng_cpu"].cpu())
        start_epoch, step_rows, epoch_rows, elapsed = state["epoch"], state["steps"], state["epochs"], state["elapsed"]
        print(f"[{run_name}] resuming from epoch {start_epoch} ({last})", file=log, flush=True)

    recorded, run_t0 = elapsed, time.perf_counter()   # time before a resume; this process's start
    for epoch in range(start_epoch, cfg.epochs):
        factor = schedule_factor(cfg.scheduler, epoch)
        for group, base in zip(optimizer.param_groups, base_lrs):
            group["lr"] = base * factor
        model.train()
        sums = np.zeros(3)
        t0 = time.perf_counter()
        batches = data.batches(cfg.batch_size, epoch)
        for i, (images, locations, labels) in enumerate(step_bar(batches, steps_per_epoch,
                                                                 f"{run_name} epoch {epoch + 1}", log)):
            images, locations, labels = images.to(device), locations.to(device), labels.to(device)
            confidence, predicted = model(images)
            regression_loss, classification_loss = criterion(confidence, predicted, labels, locations)
            loss = regression_loss + classification_loss
            if not torch.isfinite(loss):
                raise NonFiniteLossError(f"run {run_name}: loss became {loss.item()} at step "
                                         f"{epoch * steps_per_epoch + i + 1} (epoch {epoch + 1}); stopping")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            values = (loss.item(), regression_loss.item(), classification_loss.item())
            sums += values
            step_rows.append({"step": epoch * steps_per_epoch + i + 1, "epoch": epoch + (i + 1) / steps_per_epoch,
                              "loss": values[0], "lr": cfg.lr * factor,
                              "seconds": elapsed + time.perf_counter() - t0})
        seconds = time.perf_counter() - t0
        elapsed += seconds
        means = (sums / steps_per_epoch).tolist()
        row = {"epoch": epoch + 1, "lr": cfg.lr * factor, "train_loss": means[0], "regression_loss": means[1],
               "classification_loss": means[2], "images_per_s": len(data) / seconds, "epoch_seconds": seconds,
               "wall_seconds": elapsed}
        epoch_rows.append(row)
        wall = time.perf_counter() - run_t0
        print(epoch_line(run_name, epoch + 1, cfg.epochs, row["train_loss"], None, row["images_per_s"],
                         recorded + wall, timed=(wall, epoch + 1 - start_epoch)), file=log, flush=True)
        _save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "rng_cpu": torch.get_rng_state(),
               "epoch": epoch + 1, "steps": step_rows, "epochs": epoch_rows, "elapsed": elapsed,
               "fingerprint": fingerprint}, last)

    metrics = dict(epoch_rows[-1]) if epoch_rows else {}
    run_dir.mkdir(parents=True, exist_ok=True)
    _write_csv(run_dir / "steps.csv", STEP_COLUMNS, step_rows)
    _write_csv(run_dir / "epochs.csv", EPOCH_COLUMNS, epoch_rows)
    _save(model.state_dict(), run_dir / "checkpoint.pt")
    write_json(run_dir / "metrics.json", metrics)
    shutil.rmtree(state_dir, ignore_errors=True)
    return metrics
