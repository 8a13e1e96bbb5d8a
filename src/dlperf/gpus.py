"""One job per GPU on one machine: a job on a CUDA label takes a free GPU under a file lock and sees only that GPU.

Snakemake counts GPUs (``resources: gpu=1`` per job, ``--resources gpu=K`` per run) but does not say which one a job
may use, so without this every job would open ``cuda:0``. A job calls :func:`claim_gpu` before CUDA starts; it
walks the GPUs this machine shows it and takes the first whose lock file it can lock (``fcntl.flock``), then sets
``CUDA_VISIBLE_DEVICES`` to that GPU alone. The lock lasts as long as the process: the kernel drops it when the job
ends, however it ends, so a killed job never leaves a GPU taken.

Which GPUs: ``DLPERF_GPU_IDS`` when set (a comma-separated list: a test's fake devices, or a user's choice), else
the ``CUDA_VISIBLE_DEVICES`` the user or the batch system set (ids or UUIDs, kept as given), else every GPU that
``nvidia-smi`` lists. Lock files are named by host and id, so a lock directory on a shared file system serves every
node of a cluster (SLURM already gives each job its own GPUs; there the lock only ever finds its GPU free).
"""
from __future__ import annotations

import atexit
import fcntl
import os
import socket
import subprocess
import time
from pathlib import Path

GPU_IDS_ENV = "DLPERF_GPU_IDS"
CUDA_AS_CPU_ENV = "DLPERF_CUDA_AS_CPU"   # "1": a job on a CUDA label claims its GPU id, then runs on the CPU
LOCK_DIR_ENV = "DLPERF_GPU_LOCK_DIR"
DEFAULT_LOCK_DIR = ".snakemake/gpu-locks"   # in the workflow's working directory, beside Snakemake's own state
POLL_SECONDS = 1.0
LEDGER = "claims.tsv"   # in the lock directory: host, gpu, slot, pid, event (claimed | released), epoch seconds

_held: dict[str, int] = {}   # id -> the open lock file's descriptor, kept for the life of the process
_pack = 1


def visible_gpu_ids() -> list[str]:
    """The GPUs this job may choose among, in order (see the module docstring); empty without any."""
    for env in (GPU_IDS_ENV, "CUDA_VISIBLE_DEVICES"):
        value = os.environ.get(env)
        if value is not None and value.strip() not in ("", "-1", "NoDevFiles"):
            return [part.strip() for part in value.split(",") if part.strip()]
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def _log(directory: Path, host: str, gpu: str, slot: int, event: str) -> None:
    """One line of the ledger, appended in a single write (lines of concurrent jobs never interleave)."""
    line = f"{host}\t{gpu}\t{slot}\t{os.getpid()}\t{event}\t{time.time():.6f}\n"
    fd = os.open(directory / LEDGER, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def ledger_windows(lock_dir: str | os.PathLike) -> list[tuple[str, str, int, float, float]]:
    """(host, gpu, pid, claimed, released) of every claim in a lock directory's ledger that was released: the time
    each process held its GPU, within the lock's (the lock outlives the ledger's window by the interpreter's exit)."""
    claimed: dict[tuple, float] = {}
    windows = []
    for line in (Path(lock_dir) / LEDGER).read_text().splitlines():
        host, gpu, slot, pid, event, stamp = line.split("\t")
        key = (host, gpu, slot, int(pid))
        if event == "claimed":
            claimed[key] = float(stamp)
        elif key in claimed:
            windows.append((host, f"{gpu}/{slot}", int(pid), claimed.pop(key), float(stamp)))
    return windows


def held_pack() -> int:
    """How many jobs may share the GPU this process holds (1 where it holds none)."""
    return _pack


def held_gpu() -> str | None:
    """The GPU this process claimed, if any: recorded in its provenance and its figures' fidelity lines."""
    return next(iter(_held), None)


def claim_gpu(pack: int = 1, lock_dir: str | os.PathLike | None = None, timeout_s: float = 600.0) -> str | None:
    """Lock a free GPU for this process, show CUDA only that GPU, and return its id (None: no GPU here).

    ``pack``: how many untimed training jobs may share one GPU (``devices.<label>.pack``); each GPU then has that
    many slots, filled one per GPU at a time, so k jobs on k GPUs still get one each. Waits up to ``timeout_s`` for
    a slot to come free: a local run caps its GPU jobs at ``--resources gpu=K``, so one is free at once unless K
    exceeds the slots, which is then an error naming them.
    """
    global _pack
    ids = visible_gpu_ids()
    if not ids:
        return None
    if _held:
        return next(iter(_held))
    directory = Path(lock_dir or os.environ.get(LOCK_DIR_ENV) or DEFAULT_LOCK_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname()
    deadline = time.monotonic() + timeout_s
    slots = [(gpu, slot) for slot in range(pack) for gpu in ids]
    while True:
        for gpu, slot in slots:
            safe = gpu.replace("/", "_")   # MIG ids hold slashes
            name = f"{host}-gpu{safe}.lock" if slot == 0 else f"{host}-gpu{safe}-slot{slot}.lock"
            fd = os.open(directory / name, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            _held[gpu], _pack = fd, pack
            os.environ["CUDA_VISIBLE_DEVICES"] = gpu
            _log(directory, host, gpu, slot, "claimed")
            # written before the interpreter's exit closes the lock: a ledger window ends no later than the lock
            atexit.register(_log, directory, host, gpu, slot, "released")
            return gpu
        if time.monotonic() > deadline:
            raise RuntimeError(f"no free GPU among {ids} ({pack} job(s) each) after {timeout_s:.0f} s (locks in "
                               f"{directory}): is --resources gpu=K larger than the GPUs this machine shows times "
                               "its label's pack?")
        time.sleep(POLL_SECONDS)
