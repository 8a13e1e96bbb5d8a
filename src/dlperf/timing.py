"""Every time and rate the workflow reports is measured here: one stopwatch, one loop, and the record that says the
measuring job had its machine to itself.

A sample is bracketed by a device synchronisation and ``time.perf_counter``: CUDA kernels run asynchronously, so
without the barrier a sample would measure the launch, not the work. Warm-up calls (allocator growth, cuDNN
autotuning, lazy initialisation) are run and thrown away; what is reported is the spread of the samples actually
measured, and the CPU time this process spent on them (``cpu_s``: over the wall time, the cores it kept busy).

A timing job (``TIMING_RULES``) holds every core, so that Snakemake starts nothing beside it, and computes at a
training job's threads; :class:`TimedAlone` records the cores that were busy on the machine while it measured, and how
many of them something other than the job kept busy.

Importing this module imports no torch (the workflow's rules read ``TIMING_RULES`` while Snakemake parses them).
"""
from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from dlperf.workflow import available_cores, limit_threads

# Rules whose outputs are times or rates. Each holds every core (``threads: MACHINE_CORES`` in rules/), so that
# Snakemake starts nothing beside it, and computes at ``params.measure_threads``; profiles/slurm gives each a node
# of its own (--exclusive).
TIMING_RULES = ("devices_peak", "flops_measure", "transfer_timing", "serve_bench", "compress_pruning",
                "compress_share", "compress_quantize", "compress_quantize_ssd", "compress_distillation",
                "compress_qat_compare")
ALONE_SLACK_CORES = 0.5  # cores kept busy beside a timing job that still count as alone (system daemons, Snakemake)


@dataclass(frozen=True)
class TimingResult:
    """Median and 10th/90th percentiles of ``samples`` (seconds, warm-up excluded), and the CPU seconds this process
    spent over them."""

    median_s: float
    p10_s: float
    p90_s: float
    samples: tuple[float, ...]
    cpu_s: float = field(default=float("nan"), compare=False)

    @classmethod
    def of(cls, samples: list[float], cpu_s: float = float("nan")) -> TimingResult:
        p10, p50, p90 = np.percentile(samples, [10, 50, 90])
        return cls(median_s=float(p50), p10_s=float(p10), p90_s=float(p90), samples=tuple(samples), cpu_s=cpu_s)

    def percentile_s(self, q: float) -> float:
        return float(np.percentile(self.samples, q))


def synchronize(device) -> None:
    """Wait for the device's queued work; a no-op on a CPU, where every op returns when it is done."""
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.synchronize(device)


class Stopwatch:
    """``with Stopwatch(device) as watch: ...`` then ``watch.seconds``: one synchronised measurement."""

    def __init__(self, device="cpu"):
        self.device, self.seconds = device, float("nan")

    def __enter__(self) -> Stopwatch:
        synchronize(self.device)
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        synchronize(self.device)
        self.seconds = time.perf_counter() - self._start


def time_callable(fn: Callable[[], object], *, warmup: int = 3, repeats: int = 20, device="cpu") -> TimingResult:
    """Time ``repeats`` calls of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    samples = []
    cpu_before = time.process_time()
    for _ in range(repeats):
        with Stopwatch(device) as watch:
            fn()
        samples.append(watch.seconds)
    return TimingResult.of(samples, cpu_s=time.process_time() - cpu_before)


def time_in_turns(fns: dict[str, Callable[[], object]], *, warmup: int, repeats: int, device="cpu"
                  ) -> dict[str, TimingResult]:
    """Time several callables in turns (A B A B …, after each one's warm-up), so that what the machine does
    meanwhile (a clock change, a daemon) weighs on each alike: their ratio is then a property of the callables."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            with Stopwatch(device) as watch:
                fn()
            samples[name].append(watch.seconds)
    return {name: TimingResult.of(times) for name, times in samples.items()}


# ---- timing jobs: alone on their machine ----------------------------------------------------------------------
def _busy_cpu_seconds() -> tuple[float, float] | None:
    """(busy, total) CPU seconds of every core since boot, from /proc/stat; None where there is none."""
    try:
        fields = [float(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return None
    hz = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)   # idle + iowait
    return (sum(fields[:8]) - idle) / hz, sum(fields[:8]) / hz


def job_threads(snakemake) -> int:
    """The threads a job computes with: a timing job's ``params.measure_threads`` (it holds every core, so that nothing
    runs beside it, yet measures at a training job's threads), else the rule's ``threads``."""
    return int(snakemake.params.get("measure_threads", snakemake.threads))


def _own_cpu_seconds() -> float:
    """CPU seconds of this process, every thread of it, and of its children that have ended (a benchmark's servers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class TimedAlone:
    """A timing job (``TIMING_RULES``): its threads, and the machine's load while it measured, for its provenance.

    The rule holds every core (Snakemake caps it at ``--cores``), so Snakemake starts no other job beside it; the job
    computes at ``params.measure_threads``. :meth:`record` reports how many cores were busy, on average, since the job
    began, and how many of them the job itself did not keep busy: what else ran. A job that holds every core can never
    see more cores busy than it holds, so only the second figure can tell that something ran beside it.
    """

    def __init__(self, snakemake):
        self.threads = job_threads(snakemake)
        self.cores_held = int(snakemake.threads)
        limit_threads(self.threads)
        self._start, self._own = _busy_cpu_seconds(), _own_cpu_seconds()

    def record(self) -> dict:
        """``{"alone", "threads", "cores_held", "machine_cores", "busy_cores", "other_cores", "loadavg_1min"}``, over
        the time since the job began; call it once the job's child processes have ended (until then their time counts
        as another's). ``alone`` is what the machine saw, not what was asked: at most
        :data:`ALONE_SLACK_CORES` busy beyond this process and its children."""
        now, own = _busy_cpu_seconds(), _own_cpu_seconds()
        busy = other = None
        if self._start and now and now[1] > self._start[1]:
            wall = (now[1] - self._start[1]) / (os.cpu_count() or 1)   # /proc/stat counts every core's seconds
            busy = (now[0] - self._start[0]) / wall
            other = max(0.0, busy - (own - self._own) / wall)
        return {"alone": other is not None and other <= ALONE_SLACK_CORES,
                "threads": self.threads, "cores_held": self.cores_held, "machine_cores": available_cores(),
                "busy_cores": None if busy is None else round(busy, 3),
                "other_cores": None if other is None else round(other, 3),
                "loadavg_1min": round(os.getloadavg()[0], 3) if hasattr(os, "getloadavg") else None}
