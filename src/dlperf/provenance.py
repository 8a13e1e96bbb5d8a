"""The record written next to every result: what produced it, where, with what, and when.

``provenance.json`` holds the config slice that the result depends on, the git commit (and whether the tree was
dirty), the versions of the packages that shape the numbers, the device and host, the peak FLOP/s used for
percent-of-peak, and start/end/wall time.
"""
from __future__ import annotations

import datetime as dt
import os
import platform
import socket
import subprocess
import time
from importlib import metadata
from pathlib import Path

from dlperf.atomic import write_json

PACKAGES = ("dlperf", "torch", "torchvision", "numpy", "scipy", "pandas", "matplotlib", "onnx", "onnxruntime",
            "snakemake")


def git_state(cwd: str | os.PathLike | None = None) -> dict:
    """Commit and dirtiness of the repository ``cwd`` lies in; ``None`` fields outside a git checkout."""
    def git(*args):
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() if out.returncode == 0 else None
    try:
        commit = git("rev-parse", "HEAD")
        status = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        commit, status = None, None
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def package_versions(names=PACKAGES) -> dict:
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def device_description(device: str | None = None) -> dict:
    """The compute device in words: GPU model via torch, else the CPU model and core count."""
    info = {"device": device or "cpu", "cpu": _cpu_model(), "cpu_count": os.cpu_count()}
    from dlperf.gpus import held_gpu, held_pack

    if held_gpu() is not None:   # the GPU this job took (dlperf.gpus), as nvidia-smi or CUDA_VISIBLE_DEVICES names it
        info["gpu_id"] = held_gpu()
        info["gpu_pack"] = held_pack()   # > 1: shared with other training jobs, its times are not a GPU's alone
    if device and device.startswith("cuda"):
        import torch
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
        info["cuda"] = torch.version.cuda
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class Provenance:
    """Collects a run's record; ``write(path)`` finishes the timing and writes it atomically."""

    def __init__(self, config_slice: dict, *, device: str | None = None, peak_flops: float | None = None,
                 **extra):
        self.start = time.time()
        self.record = {
            "config": config_slice,
            "git": git_state(Path(__file__).parent),
            "packages": package_versions(),
            "host": socket.gethostname(),
            "platform": platform.platform(),
            **device_description(device),
            "peak_flops": peak_flops,
            **extra,
        }

    def write(self, path: str | os.PathLike, **results) -> dict:
        end = time.time()
        self.record.update(results)
        self.record.update(start=_iso(self.start), end=_iso(end), wall_seconds=round(end - self.start, 3))
        write_json(path, self.record)
        return self.record


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat(timespec="seconds")
