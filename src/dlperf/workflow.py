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
