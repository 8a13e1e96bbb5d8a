"""Readable training progress: one plain line per epoch, and a step bar only on a terminal.

A training job's log is usually a file under ``logs/`` (Snakemake redirects the job's stderr there). A tqdm bar
written to a file is a stream of carriage returns that reads badly, so the training loops write their progress
through this module:

* :func:`step_bar` wraps an epoch's batches in a tqdm bar when the log is a terminal, and returns them unchanged
  otherwise;
* :func:`epoch_line` is the one line a loop prints after each epoch, terminal or not::

    [resnet20] epoch 3/10  loss 1.234  test acc 45.6%  1,234 img/s  elapsed 0:01:02  ETA 0:02:25

The ETA is the mean wall time of the epochs timed so far times the epochs left. A loop that resumed from saved
state times only the epochs it ran itself (``timed``), while ``elapsed`` can still include the time recorded
before the resume.
"""
from __future__ import annotations

import math
from typing import Iterable

from tqdm import tqdm

__all__ = ["duration", "epoch_line", "eta_seconds", "is_terminal", "step_bar"]


def duration(seconds: float | None) -> str:
    """``seconds`` as H:MM:SS (hours are not wrapped at 24: ``27:03:04``), rounded to the nearest second;
    ``-`` when unknown (None, NaN, infinite or negative)."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "-"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def eta_seconds(seconds_timed: float, epochs_timed: int, epochs_left: int) -> float | None:
    """Seconds still to go: the mean seconds per epoch over ``epochs_timed`` epochs that took ``seconds_timed``,
    times ``epochs_left``. None when no epoch has been timed yet (except that nothing left means 0)."""
    if epochs_left <= 0:
        return 0.0
    if epochs_timed <= 0:
        return None
    return seconds_timed / epochs_timed * epochs_left


def epoch_line(run_name: str, epoch: int, epochs: int, loss: float, acc: float | None, images_per_s: float,
               elapsed_s: float, *, timed: tuple[float, int] | None = None, acc_label: str = "acc") -> str:
    """The progress line for a finished epoch (no trailing newline).

    ``epoch`` counts from 1 (the epoch just finished) out of ``epochs``; ``loss`` is the epoch's mean training
    loss; ``acc`` a fraction in [0, 1] shown as a percentage after ``acc_label`` (e.g. ``"test acc"``), or None to
    leave it out (a detector reports no accuracy); ``images_per_s`` the epoch's training throughput;
    ``elapsed_s`` the run's time so far. ``timed = (seconds, epochs)`` is the measurement the ETA is based on
    (``seconds`` of wall time over ``epochs`` epochs, e.g. those run in this process); by default it is
    ``(elapsed_s, epoch)``, i.e. every epoch so far took the same share of ``elapsed_s``.

    >>> epoch_line("resnet20", 3, 10, 1.2341, 0.456, 1234.4, 62.0)
    '[resnet20] epoch 3/10  loss 1.234  acc 45.6%  1,234 img/s  elapsed 0:01:02  ETA 0:02:25'
    """
    seconds, n = timed if timed is not None else (elapsed_s, epoch)
    parts = [f"[{run_name}] epoch {epoch}/{epochs}", f"loss {loss:#.4g}"]
    if acc is not None:
        parts.append(f"{acc_label} {acc:.1%}")
    parts += [f"{images_per_s:,.0f} img/s", f"elapsed {duration(elapsed_s)}",
              f"ETA {duration(eta_seconds(seconds, n, epochs - epoch))}"]
    return "  ".join(parts)


def is_terminal(log) -> bool:
    """Whether ``log`` is an open terminal. False for objects without ``isatty`` and for closed files."""
    isatty = getattr(log, "isatty", None)
    if not callable(isatty):
        return False
    try:
        return bool(isatty())
    except (ValueError, OSError):   # a closed file raises ValueError
        return False


def step_bar(iterable: Iterable, total: int | None, desc: str, log) -> Iterable:
    """``iterable`` in a tqdm bar written to ``log`` when ``log`` is a terminal (:func:`is_terminal`), else
    ``iterable`` itself, so that a log file gets no carriage-return bars (the epoch line says it all). The bar is
    cleared when the epoch ends (``leave=False``) and leaves the epoch line alone on the screen."""
    if not is_terminal(log):
        return iterable
    return tqdm(iterable, total=total, desc=desc, file=log, mininterval=1, ascii=True, leave=False)
