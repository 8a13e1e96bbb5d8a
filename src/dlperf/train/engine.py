"""One training engine for every classification study.

The engine does not know which study calls it. It takes a model, device-resident data and a ``TrainConfig``;
it writes ``steps.csv`` (one row per optimizer step), ``epochs.csv`` (one row per epoch), ``checkpoint.pt`` and
``metrics.json`` into ``run_dir``, and keeps its resumable state (``last.pt``, rewritten atomically after every
epoch) in ``state_dir``. Snakemake deletes a job's declared outputs before it starts, so ``state_dir`` must not
be one of them: a killed job rerun by Snakemake then resumes from its last finished epoch and, on CPU, ends with
exactly the metrics of an uninterrupted run (data order and augmentation depend only on seed and epoch, the
schedule is a closed form, and model, optimizer and RNG state are restored).
"""
from __future__ import annotations

import functools
import json
import math
import os
import shutil
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from dlperf.atomic import atomic_write
from dlperf.gpus import CUDA_AS_CPU_ENV, claim_gpu
from dlperf.train.data import Augment, DeviceImages
from dlperf.train.progress import epoch_line, step_bar
from dlperf.train.schedule import Schedule

STEP_COLUMNS = ("step", "epoch", "loss", "lr", "seconds")


@dataclass
class TrainConfig:
    epochs: int
    batch_size: int
    optimizer: dict = field(default_factory=lambda: {"name": "sgd", "lr": 0.1, "momentum": 0.9})
    schedule: dict = field(default_factory=dict)
    augment: dict = field(default_factory=dict)
    seed: int = 0
    amp: str = "auto"               # auto (bf16 on CUDA, off on CPU) | bf16 | off
    channels_last: str = "auto"     # auto (on CUDA) | on | off
    compile: bool = False           # torch.compile the model (CUDA only; pays a compile once per run)
    eval_batch_size: int = 500
    select_best: str | None = None  # name of an eval split: keep the best epoch's weights for the final metrics
    check_every: int = 50           # steps between host syncs that check the loss is finite

    @classmethod
    def from_config(cls, cfg: dict, seed: int) -> "TrainConfig":
        known = {f for f in cls.__dataclass_fields__ if f != "seed"}
        return cls(seed=seed, **{k: v for k, v in cfg.items() if k in known})


class NonFiniteLossError(FloatingPointError):
    pass


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA) before a model is built, so initial weights are a function of the seed."""
    torch.manual_seed(seed)


def select_device(requested: str = "auto", gpu_pack: int = 1) -> torch.device:
    """The device a job runs on. On a CUDA label (or ``auto``) the job first takes a GPU of its own
    (:func:`dlperf.gpus.claim_gpu`; ``gpu_pack`` jobs may share it); ``DLPERF_CUDA_AS_CPU=1`` then runs it on the CPU all the same, which lets a
    CPU machine run a GPU configuration's jobs with their GPU ids assigned for real (the tests do)."""
    if requested != "cpu":
        claim_gpu(gpu_pack)
        if os.environ.get(CUDA_AS_CPU_ENV) == "1":
            return torch.device("cpu")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {requested!r} requested but CUDA is not available on this machine")
    return torch.device(requested)


def build_optimizer(params, cfg: dict) -> torch.optim.Optimizer:
    """SGD or Adam from an optimizer section. ``foreach``: one grouped kernel per update op over all parameters, as
    PyTorch does by default on CUDA only; on a CPU it is the same arithmetic (bit for bit) with fewer calls, 1 ms
    less per step of VGG-38's 80 tensors."""
    name = cfg["name"]
    if name == "sgd":
        return torch.optim.SGD(params, lr=cfg["lr"], momentum=cfg.get("momentum", 0.0),
                               weight_decay=cfg.get("weight_decay", 0.0), nesterov=cfg.get("nesterov", False),
                               foreach=True)
    if name == "adam":
        return torch.optim.Adam(params, lr=cfg["lr"], betas=tuple(cfg.get("betas", (0.9, 0.999))),
                                weight_decay=cfg.get("weight_decay", 0.0), foreach=True)
    raise ValueError(f"unknown optimizer {name!r}: expected sgd or adam")


def evaluate(model: nn.Module, data: DeviceImages, batch_size: int, autocast: bool,
             memory_format=torch.contiguous_format) -> tuple[float, float]:
    """Mean cross-entropy and accuracy over ``data`` (eval mode, no augmentation)."""
    model.eval()
    loss_sum = torch.zeros((), device=data.device, dtype=torch.float64)
    correct = torch.zeros((), device=data.device, dtype=torch.int64)
    with torch.inference_mode(), torch.autocast(data.device.type, torch.bfloat16, enabled=autocast):
        for x, y in data.batches(batch_size, shuffle=False):
            logits = model(x.contiguous(memory_format=memory_format)).float()
            loss_sum += nn.functional.cross_entropy(logits, y, reduction="sum")
            correct += (logits.argmax(1) == y).sum()
    return loss_sum.item() / len(data), correct.item() / len(data)


def _save(obj, path: Path) -> None:
    with atomic_write(path, "wb") as fh:
        torch.save(obj, fh)


def _write_csv(path: Path, columns, rows: list[dict]) -> None:
    with atomic_write(path, "w") as fh:
        fh.write(",".join(columns) + "\n")
        for row in rows:
            fh.write(",".join(_fmt(row.get(c, "")) for c in columns) + "\n")


def _fmt(v) -> str:
    return repr(v) if isinstance(v, float) and math.isfinite(v) else str(v)


def load_resume_state(last: Path, fingerprint: str, device: torch.device, run_name: str, log) -> dict | None:
    """The resumable state saved at ``last``, or None when there is none or it was saved for another configuration
    (another ``fingerprint``: then the run starts afresh, and says so in ``log``)."""
    if not last.exists():
        return None
    state = torch.load(last, map_location=device, weights_only=True)
    if state.get("fingerprint") != fingerprint:
        print(f"[{run_name}] ignoring stale resume state {last}: it was saved for another configuration",
              file=log, flush=True)
        return None
    return state


@contextmanager
def subnormals_flushed(enabled: bool = True):
    """Flush subnormal floats to zero inside the block, and put the thread's previous mode back after it.

    Vanishing signals (plain VGG-38's gradients, Adam's averages of their squares) can reach subnormal floats, which
    x86 CPUs process many times slower; flushed to zero they change no result worth having. The mode is global
    processor state of the calling thread (Python's own float arithmetic obeys it too), so it must not outlive the
    training run: code that runs later in the process, a property-based test generating floats among it, expects
    IEEE-754 subnormals.
    """
    already = sys.float_info.min / 2 == 0.0
    if enabled and not already:
        torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if enabled and not already:
            torch.set_flush_denormal(False)


def _flushing_subnormals_on_cpu(fn):
    @functools.wraps(fn)
    def wrapper(model, train_data, *args, **kwargs):
        with subnormals_flushed(train_data.device.type == "cpu"):
            return fn(model, train_data, *args, **kwargs)
    return wrapper


@_flushing_subnormals_on_cpu
def train(model: nn.Module, train_data: DeviceImages, eval_data: dict[str, DeviceImages], cfg: TrainConfig, *,
          run_dir: Path, state_dir: Path, run_name: str, flops_per_image: float | None = None,
          peak_flops: float | None = None, after_backward: Callable[[int, nn.Module], None] | None = None,
          stateful: dict | None = None, fingerprint: str = "",
          loss_fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
          log=None) -> dict:
    """Train ``model`` and write the run's files; return the final metrics (also in ``metrics.json``).

    ``flops_per_image`` (forward + backward FLOPs of one image) and ``peak_flops`` (the device's peak FLOP/s)
    add achieved TFLOP/s and percent of peak to every epoch. ``after_backward(step, model)`` runs after each
    backward pass, before the optimizer step (gradient recorders use it). ``fingerprint`` identifies what is
    being trained (config, data, model): saved state with another fingerprint is stale and is not resumed.
    ``stateful`` objects (``state_dict``/``load_state_dict``, e.g. a gradient recorder) are saved and restored
    with the run's resumable state. ``loss_fn(logits, labels, images)`` replaces the cross-entropy of the training
    steps (a distillation loss runs its teacher on ``images``); evaluation always reports cross-entropy. On the CPU,
    subnormal floats are flushed to zero while the run lasts (``subnormals_flushed``).
    """
    stateful = stateful or {}
    log = log or sys.stderr   # looked up per call: a script's log redirection replaces sys.stderr after import
    run_dir, state_dir = Path(run_dir), Path(state_dir)
    device = train_data.device
    autocast = cfg.amp == "bf16" or (cfg.amp == "auto" and device.type == "cuda")
    channels_last = cfg.channels_last == "on" or (cfg.channels_last == "auto" and device.type == "cuda")
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(device=device, memory_format=memory_format)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = build_optimizer(trainable, cfg.optimizer)
    schedule = Schedule.from_config(cfg.schedule)
    augment = Augment(**cfg.augment)
    base_lr = cfg.optimizer["lr"]
    steps_per_epoch = train_data.steps_per_epoch(cfg.batch_size)
    forward = torch.compile(model) if (cfg.compile and device.type == "cuda") else model

    start_epoch, step_rows, epoch_rows, elapsed = 0, torch.zeros(0, len(STEP_COLUMNS), dtype=torch.float64), [], 0.0
    best = None
    last = state_dir / "last.pt"
    state = load_resume_state(last, fingerprint, device, run_name, log)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng_cpu"].cpu())   # map_location moved it to the device
        start_epoch, step_rows, epoch_rows, elapsed = (state["epoch"], state["steps"], state["epochs"],
                                                       state["elapsed"])
        best = state.get("best")
        for key, obj in stateful.items():
            obj.load_state_dict(state["extra"][key])
        print(f"[{run_name}] resuming from epoch {start_epoch} ({last})", file=log, flush=True)

    acc_split = cfg.select_best or next(iter(eval_data), "train")   # the accuracy the progress line shows
    recorded, run_t0 = elapsed, time.perf_counter()                 # time before a resume; this process's start
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        losses = torch.zeros(steps_per_epoch, device=device)
        correct = torch.zeros((), device=device, dtype=torch.int64)
        lrs, seconds = [], []
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        batches = train_data.batches(cfg.batch_size, shuffle=True, augment=augment, seed=cfg.seed, epoch=epoch)
        for i, (x, y) in enumerate(step_bar(batches, steps_per_epoch, f"{run_name} epoch {epoch + 1}", log)):
            step = epoch * steps_per_epoch + i
            lr = schedule.lr(base_lr, step, steps_per_epoch)
            for group in optimizer.param_groups:
                group["lr"] = lr
            with torch.autocast(device.type, torch.bfloat16, enabled=autocast):
                logits = forward(x.contiguous(memory_format=memory_format))
                loss = (nn.functional.cross_entropy(logits.float(), y) if loss_fn is None
                        else loss_fn(logits.float(), y, x))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if after_backward is not None:
                after_backward(step, model)
            optimizer.step()
            losses[i] = loss.detach()
            correct += (logits.detach().argmax(1) == y).sum()
            lrs.append(lr)
            seconds.append(elapsed + time.perf_counter() - t0)
            if (i + 1) % cfg.check_every == 0 or i + 1 == steps_per_epoch:
                _check_finite(losses[: i + 1], run_name, epoch, steps_per_epoch)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        train_seconds = time.perf_counter() - t0
        elapsed += train_seconds

        steps = torch.arange(epoch * steps_per_epoch, (epoch + 1) * steps_per_epoch, dtype=torch.float64)
        block = torch.stack([steps + 1, (steps + 1) / steps_per_epoch, losses.double().cpu(),
                             torch.tensor(lrs, dtype=torch.float64), torch.tensor(seconds, dtype=torch.float64)], 1)
        step_rows = torch.cat([step_rows, block])
        row = {"epoch": epoch + 1, "lr": lrs[-1], "train_loss": losses.mean().item(),
               "train_acc": correct.item() / len(train_data)}
        for split, data in eval_data.items():
            row[f"{split}_loss"], row[f"{split}_acc"] = evaluate(model, data, cfg.eval_batch_size, autocast,
                                                                  memory_format)
        images_per_s = len(train_data) / train_seconds
        row.update(images_per_s=images_per_s, epoch_seconds=train_seconds, wall_seconds=elapsed)
        if flops_per_image:
            row["gflop_per_step"] = flops_per_image * cfg.batch_size / 1e9
            row["achieved_tflops"] = flops_per_image * images_per_s / 1e12
            if peak_flops:
                row["ppp"] = flops_per_image * images_per_s / peak_flops
        epoch_rows.append(row)
        if cfg.select_best and (best is None or row[f"{cfg.select_best}_acc"] > best["acc"]):
            best = {"epoch": epoch + 1, "acc": row[f"{cfg.select_best}_acc"],
                    "model": {k: v.detach().clone() for k, v in model.state_dict().items()}}
        wall = time.perf_counter() - run_t0   # this process's epochs, evaluation included
        print(epoch_line(run_name, epoch + 1, cfg.epochs, row["train_loss"], row[f"{acc_split}_acc"], images_per_s,
                         recorded + wall, timed=(wall, epoch + 1 - start_epoch), acc_label=f"{acc_split} acc"),
              file=log, flush=True)
        _save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "rng_cpu": torch.get_rng_state(),
               "epoch": epoch + 1, "steps": step_rows, "epochs": epoch_rows, "elapsed": elapsed, "best": best,
               "fingerprint": fingerprint, "extra": {k: obj.state_dict() for k, obj in stateful.items()}},
              last)

    metrics = dict(epoch_rows[-1]) if epoch_rows else {}
    if best is not None:
        model.load_state_dict(best["model"])
        metrics["best_epoch"] = best["epoch"]
        metrics[f"best_{cfg.select_best}_acc"] = best["acc"]
        for split, data in eval_data.items():
            metrics[f"best_{split}_loss"], metrics[f"best_{split}_acc"] = evaluate(
                model, data, cfg.eval_batch_size, autocast, memory_format)
    run_dir.mkdir(parents=True, exist_ok=True)
    _write_csv(run_dir / "steps.csv", STEP_COLUMNS,
               [dict(zip(STEP_COLUMNS, (int(r[0]), *r[1:]))) for r in step_rows.tolist()])
    columns = list(epoch_rows[0]) if epoch_rows else ["epoch"]
    _write_csv(run_dir / "epochs.csv", columns, epoch_rows)
    _save({"model": model.state_dict(), "epoch": cfg.epochs, "best_epoch": metrics.get("best_epoch")},
          run_dir / "checkpoint.pt")
    with atomic_write(run_dir / "metrics.json") as fh:
        json.dump(metrics, fh, indent=2)
    shutil.rmtree(state_dir, ignore_errors=True)
    return metrics


def _check_finite(losses: torch.Tensor, run_name: str, epoch: int, steps_per_epoch: int) -> None:
    bad = (~torch.isfinite(losses)).nonzero()
    if len(bad):
        i = int(bad[0])
        raise NonFiniteLossError(f"run {run_name}: loss became {losses[i].item()} at step "
                                 f"{epoch * steps_per_epoch + i + 1} (epoch {epoch + 1}); stopping")
