"""Synchronous parameter-server speed model of Optimus (the homework's Eq. 4) and time to accuracy.

    f(p, w) = 1 / (θ0·M/w + θ1 + θ2·w/p + θ3·w + θ4·p)      steps per second

p parameter servers, w workers, global batch M split evenly over the workers. The terms are one step's
time: forward+backward of M/w samples per worker, a constant per-step cost, the push/pull traffic that
each server carries (w/p), and overheads that grow with the number of workers and of servers. Same
form as ``__sync_speed_fit_func`` in the official code (pengyanghua/optimus, ``scheduler/estimator.py``).
θ is a mapping with keys ``theta0`` … ``theta4`` (extra keys such as ``provenance`` are ignored).
"""
from __future__ import annotations

import math
from numbers import Integral
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

THETA_KEYS = ("theta0", "theta1", "theta2", "theta3", "theta4")


def _theta(theta: Mapping[str, float]) -> tuple[float, float, float, float, float]:
    missing = [key for key in THETA_KEYS if key not in theta]
    if missing:
        raise ValueError(f"theta lacks {missing}")
    return tuple(float(theta[key]) for key in THETA_KEYS)


def sync_speed(p: float, w, theta: Mapping[str, float], M: float):
    """Training steps per second with ``p`` servers and ``w`` workers (scalar or array)."""
    t0, t1, t2, t3, t4 = _theta(theta)
    w = np.asarray(w, dtype=float)
    speed = 1.0 / (t0 * M / w + t1 + t2 * w / p + t3 * w + t4 * p)
    return float(speed) if speed.ndim == 0 else speed


def optimal_workers(p: float, theta: Mapping[str, float], M: float) -> float:
    """Real-valued speed-maximising w* = sqrt(θ0·M / (θ2/p + θ3)).

    Setting d/dw of the step time to zero, -θ0·M/w² + θ2/p + θ3 = 0; θ1 and θ4·p do not depend on w.
    The step time is convex in w > 0, so the best integer w is floor(w*) or ceil(w*). Without any cost
    growing with w (θ2 = θ3 = 0) more workers always help: inf.
    """
    t0, _, t2, t3, _ = _theta(theta)
    growth = t2 / p + t3
    return math.sqrt(t0 * M / growth) if growth > 0 else math.inf


def numeric_optimal_workers(p: float, theta: Mapping[str, float], M: float, w_max: int) -> int:
    """Integer w in 1 … ``w_max`` with the highest :func:`sync_speed` (the smallest such w on ties)."""
    if w_max < 1:
        raise ValueError(f"w_max must be >= 1, got {w_max}")
    workers = np.arange(1, int(w_max) + 1)
    return int(workers[np.argmax(sync_speed(p, workers, theta, M))])


def derive_theta(
    *,
    seconds_per_sample: float,
    model_bytes: float,
    bandwidth_bytes_per_s: float,
    step_overhead_s: float,
    per_worker_overhead_s: float,
    per_ps_overhead_s: float,
) -> dict:
    """θ from measured or configured quantities, for when no (p, w) speed sweep is available to fit.

    - θ0 = ``seconds_per_sample``: forward+backward time of one sample on one worker, so θ0·M/w is a
      worker's compute time for its share M/w of the global batch.
    - θ2 = 2·``model_bytes``/``bandwidth_bytes_per_s``: every step each worker pushes its gradients
      (model_bytes) and pulls the new parameters (model_bytes). The model is sharded over p servers, so
      one server exchanges 2·model_bytes/p with each of the w workers through its link:
      2·model_bytes·w/(p·bandwidth) seconds, which is θ2·w/p.
    - θ1 = ``step_overhead_s`` (per-step cost independent of p and w, e.g. the update and step
      synchronisation), θ3 = ``per_worker_overhead_s`` (cost per worker, e.g. the barrier), θ4 =
      ``per_ps_overhead_s`` (cost per server, e.g. connections each worker keeps to every server).

    ``provenance`` records these formulas and inputs, since θ are not published for the paper's models.
    """
    inputs = {
        "seconds_per_sample": seconds_per_sample,
        "model_bytes": model_bytes,
        "bandwidth_bytes_per_s": bandwidth_bytes_per_s,
        "step_overhead_s": step_overhead_s,
        "per_worker_overhead_s": per_worker_overhead_s,
        "per_ps_overhead_s": per_ps_overhead_s,
    }
    invalid = [name for name, value in inputs.items() if not (math.isfinite(value) and value >= 0)]
    if invalid:
        raise ValueError(f"must be finite and >= 0: {invalid}")
    if not bandwidth_bytes_per_s > 0:
        raise ValueError(f"bandwidth_bytes_per_s must be > 0, got {bandwidth_bytes_per_s}")
    return {
        "theta0": float(seconds_per_sample),
        "theta1": float(step_overhead_s),
        "theta2": 2.0 * float(model_bytes) / float(bandwidth_bytes_per_s),
        "theta3": float(per_worker_overhead_s),
        "theta4": float(per_ps_overhead_s),
        "provenance": (
            "derived: theta0=seconds_per_sample, theta1=step_overhead_s, "
            "theta2=2*model_bytes/bandwidth_bytes_per_s, theta3=per_worker_overhead_s, "
            "theta4=per_ps_overhead_s; inputs "
            + ", ".join(f"{name}={value:g}" for name, value in inputs.items())
        ),
    }


def steps_needed(epochs: float, n_train: int, batch: int) -> float:
    """Training steps for ``epochs`` (fractional, or inf) epochs: epochs × ceil(n_train / batch).

    ceil, because the last, partial batch of an epoch is still a step (CIFAR-10: 50 000 / 128 → 391).
    """
    return epochs * math.ceil(n_train / batch)


def time_to_accuracy(
    p: int | Iterable[int],
    workers: Iterable[int],
    theta: Mapping[str, float],
    M: float,
    steps_needed: float,
) -> pd.DataFrame:
    """Hours to finish ``steps_needed`` steps, one row per (server count, worker count).

    ``p`` is one server count or several (the homework plots p = 2 and 4); columns
    ps, workers, steps_per_s, hours_to_target.
    """
    server_counts = [int(p)] if isinstance(p, Integral) else [int(ps) for ps in p]
    workers = np.asarray(list(workers), dtype=int)
    tables = []
    for ps in server_counts:
        speed = np.atleast_1d(sync_speed(ps, workers, theta, M))
        tables.append(pd.DataFrame({
            "ps": ps,
            "workers": workers,
            "steps_per_s": speed,
            "hours_to_target": steps_needed / speed / 3600.0,
        }))
    return pd.concat(tables, ignore_index=True)
