"""What every training script does around the engine: threads, device, the device's peak, the run's directories,
its provenance, and the fingerprint that decides whether saved state may be resumed.

A training rule's ``params`` are exactly the config keys its script reads, plus ``accelerator`` and ``state_dir``;
its ``input`` holds the data, the starting weights and the device's ``peak``. The fingerprint
hashes all of that: the params, the wildcards, the device, and the identity of every input but the peak (a dataset
directory by its provenance.json, a file by its SHA-256). State saved under another fingerprint is stale: a changed
config or changed data starts the run afresh instead of resuming someone else's training.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from dlperf.provenance import Provenance
from dlperf.train.engine import select_device
from dlperf.timing import job_threads
from dlperf.workflow import fingerprint, limit_threads

UNHASHED_PARAMS = ("state_dir", "measure_threads", "gpu_pack")   # where the state lives, not what it is
UNHASHED_INPUTS = ("peak",)        # a re-measured peak changes the percent of peak, not the training


def input_identity(path: str | Path) -> str:
    """A dataset directory by the SHA-256 of its provenance.json (written last, naming what it holds), or of its
    file names and sizes where it has none; a file by the SHA-256 of its bytes."""
    path = Path(path)
    digest = hashlib.sha256()
    if path.is_dir() and not (path / "provenance.json").is_file():
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(f"{file.relative_to(path).as_posix()}\t{file.stat().st_size}\n".encode())
        return digest.hexdigest()
    with open(path / "provenance.json" if path.is_dir() else path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class TrainingJob:
    """One training rule's job, set up from its ``snakemake`` object (threads, device, peak, paths, fingerprint)."""

    def __init__(self, snakemake, study: str, run: str):
        limit_threads(job_threads(snakemake))
        self.study, self.run = study, run
        self.params = {k: v for k, v in snakemake.params.items() if k not in UNHASHED_PARAMS}
        self.device = select_device(snakemake.params.accelerator, int(snakemake.params.get("gpu_pack", 1)))
        peak = snakemake.input.get("peak")   # none for a head trained on cached features
        self.peak_flops = json.loads(Path(peak).read_text())["peak_flops"] if peak else None
        self.run_dir = Path(snakemake.output.epochs).parent
        self.state_dir = Path(snakemake.params.state_dir)
        inputs = {name: ([input_identity(f) for f in files] if isinstance(files, list) else input_identity(files))
                  for name, files in snakemake.input.items() if name not in UNHASHED_INPUTS}
        self.fingerprint = fingerprint(study, run, dict(snakemake.wildcards.items()), self.params, inputs,
                                       str(self.device))

    def provenance(self, config: dict, **extra) -> Provenance:
        """The run's provenance record: ``config`` (the settings it ran with), device, peak, study and run name
        (``extra`` may name the run otherwise)."""
        return Provenance(config, device=str(self.device), peak_flops=self.peak_flops,
                          **{"study": self.study, "run": self.run, **extra})

    def engine_args(self) -> dict:
        """The keyword arguments of :func:`dlperf.train.engine.train` that every run passes alike."""
        return {"run_dir": self.run_dir, "state_dir": self.state_dir, "run_name": self.run,
                "peak_flops": self.peak_flops, "fingerprint": self.fingerprint}
