"""Glue shared by the workflow's scripts: logging to the rule's log file, thread limits, run fingerprints."""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import traceback
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def script_logging(log_path: str | os.PathLike | None) -> Iterator[None]:
    """Send stdout, stderr and ``logging`` of a ``script:`` job to its ``log:`` file; log the traceback on failure."""
    if not log_path:
        yield
        return
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", buffering=1) as fh, contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
        handler = logging.StreamHandler(fh)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.getLogger().addHandler(handler)
        logging.getLogger().setLevel(logging.INFO)
        try:
            yield
        except BaseException:
            traceback.print_exc(file=fh)
            raise
        finally:
            logging.getLogger().removeHandler(handler)


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, where the OS has one, else every core): what a job that
    must have the machine to itself (a serving benchmark) asks for, and what a server spreads over."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# Rules whose outputs are times or rates. Each holds every core (``threads: MACHINE_CORES`` in rules/), so that
# Snakemake starts nothing beside it, and computes at ``params.measure_threads``, a training job's threads;
# TimedAlone records the cores that were busy while it measured. profiles/slurm gives each a node of its own.
TIMING_RULES = ("devices_peak", "flops_measure", "transfer_timing", "serve_bench", "compress_prune", "compress_share",
                "compress_quantize", "compress_quantize_ssd", "compress_distillation")
ALONE_SLACK_CORES = 0.5  # busy cores beyond a timing job's own threads that still count as alone (system daemons)


def job_threads(snakemake) -> int:
    """The threads a job computes with: a timing job's ``params.measure_threads`` (it holds every core, so that nothing
    runs beside it, yet measures at a training job's threads), else the rule's ``threads``."""
    return int(snakemake.params.get("measure_threads", snakemake.threads))


def _busy_cpu_seconds() -> tuple[float, float] | None:
    """(busy, total) CPU seconds of every core since boot, from /proc/stat; None where there is none."""
    try:
        fields = [float(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return None
    hz = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)   # idle + iowait
    return (sum(fields[:8]) - idle) / hz, sum(fields[:8]) / hz


class TimedAlone:
    """A timing job (peak, per-layer timing, transfer timing, serving, compression latencies): its threads, and the
    machine's load while it measured, for its provenance.

    The rule holds every core (``threads: MACHINE_CORES``; Snakemake caps it at ``--cores``), so Snakemake starts no
    other job beside it; the job computes at ``params.measure_threads``. :meth:`record` reports how many cores were
    busy, on average, since the job began: about its own threads when it ran alone, more when something else ran.
    """

    def __init__(self, snakemake):
        self.threads = job_threads(snakemake)
        self.cores_held = int(snakemake.threads)
        limit_threads(self.threads)
        self._start = _busy_cpu_seconds()

    def record(self) -> dict:
        """``{"alone", "threads", "cores_held", "machine_cores", "busy_cores", "loadavg_1min"}``. ``alone`` is what
        the machine saw, not what was asked: at most half a core busy beyond the job's own threads."""
        now, busy = _busy_cpu_seconds(), None
        if self._start and now and now[1] > self._start[1]:
            busy = (now[0] - self._start[0]) / (now[1] - self._start[1]) * available_cores()
        return {"alone": busy is not None and busy <= self.threads + ALONE_SLACK_CORES,
                "threads": self.threads, "cores_held": self.cores_held, "machine_cores": available_cores(),
                "busy_cores": None if busy is None else round(busy, 3),
                "loadavg_1min": round(os.getloadavg()[0], 3) if hasattr(os, "getloadavg") else None}


def limit_threads(threads: int) -> None:
    """Use the job's ``threads`` for torch's intra-op pool (Snakemake sets OMP_NUM_THREADS for shell jobs only)."""
    import torch
    torch.set_num_threads(max(1, int(threads)))


def fingerprint(*parts) -> str:
    """A stable hash of JSON-serialisable parts: identifies what a resumable job is computing."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]



def lr_label(lr: float) -> str:
    """A learning rate as it appears in run names: 0.001 -> '1e-3', 0.01 -> '1e-2', 0.005 -> '5e-3'."""
    mantissa, exponent = f"{float(lr):.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"
