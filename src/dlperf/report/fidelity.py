"""A figure's fidelity: the scale of the run (embedded, rehearsal or full), the device that computed what it plots,
and the code version, written into the figure's PDF metadata and printed under its caption in the report.

The device and commit are those of the results plotted, read from their provenance records (a ``provenance.json``
or ``<name>.provenance.json`` among a job's inputs, beside an input file, or inside an input directory), so that a
figure drawn on a cluster's login node from GPU runs says GPU. A figure whose job measured what it plots passes its
own record. Without any record, the job's own machine and checkout are the answer.

The PDF's metadata are deterministic (no creation date): the same inputs give a byte-identical figure.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Iterable, Mapping

from dlperf.provenance import device_description, git_state
from dlperf.report.values import unique, words

KEYWORDS = re.compile(rb"/Keywords \((dlperf fidelity: (?:[^()\\]|\\.)*)\)")


@dataclass(frozen=True)
class Fidelity:
    scale: str
    device: str
    commit: str
    timing: str = ""   # "measured alone" or "measured beside other work" for times and rates; "" for the rest

    def text(self) -> str:
        """One line: ``scale embedded; AMD EPYC 7B13 64-Core Processor; commit 1584e01a2b3c; measured alone``."""
        return "; ".join(filter(None, (f"scale {self.scale}", self.device, f"commit {self.commit}", self.timing)))

    def pdf_metadata(self, title: str) -> dict:
        """matplotlib's PDF metadata: the fidelity as Subject and Keywords, and no creation date."""
        return {"Title": title, "Subject": self.text(), "Keywords": f"dlperf fidelity: {self.text()}",
                "Creator": f"dlperf {metadata.version('dlperf')}", "CreationDate": None}

    def png_metadata(self, title: str) -> dict:
        return {"Title": title, "Description": self.text(), "Software": f"dlperf {metadata.version('dlperf')}"}

    def png_info(self, title: str):
        """:meth:`png_metadata` as PIL's text chunks, for images PIL draws."""
        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        for key, value in self.png_metadata(title).items():
            info.add_text(key, value)
        return info


def from_records(scale: str, records: Iterable[Mapping]) -> Fidelity:
    """The fidelity of results with these provenance records; none: this process's machine and checkout.

    A record marked ``derived`` (a fit a render rule computed from other results, dlperf.bundle) says where the
    computing was done, not the measuring: it counts only when no measurement's record is there."""
    records = list(records)
    records = [r for r in records if not r.get("derived")] or records
    if not records:
        records = [{**device_description(), "git": git_state(Path(__file__).parent)}]
    devices = unique(_device(r) for r in records)
    commits = unique(_commit(r.get("git") or {}) for r in records)
    timed = [r["timing"] for r in records if isinstance(r.get("timing"), Mapping)]
    timing = "" if not timed else ("measured alone" if all(t.get("alone") for t in timed)
                                   else "measured beside other work")
    return Fidelity(scale, words(devices) if devices else "unknown device", ", ".join(commits) or "unknown", timing)


def _device(record: Mapping) -> str | None:
    """``NVIDIA H100 (GPU 2)``: the device, and the GPU id the job held (dlperf.gpus) where it held one."""
    name = record.get("gpu") or record.get("cpu")
    if not name or record.get("gpu_id") is None:
        return name
    pack = record.get("gpu_pack") or 1
    return f"{name} (GPU {record['gpu_id']}" + (f", shared by {pack} jobs)" if pack > 1 else ")")


def _commit(git: Mapping) -> str | None:
    commit = git.get("commit")
    return commit and commit[:12] + ("+dirty" if git.get("dirty") else "")


def provenance_files(inputs: Iterable[str]) -> list[Path]:
    """The provenance records of a job's input files, each once (see the module docstring)."""
    found = []
    for name in inputs:
        path = Path(name)
        if path.name.endswith("provenance.json"):
            found.append(path)
        elif path.is_dir():
            found.append(path / "provenance.json")
        else:
            found += [path.parent / "provenance.json", path.with_name(f"{path.stem}.provenance.json")]
    return [p for p in dict.fromkeys(found) if p.is_file()]


def of_job(snakemake, *records: Mapping) -> Fidelity:
    """The fidelity of a figure a ``script:`` job draws: ``params.scale``, and the device and commit of
    ``records`` (the job's own, when it measured what it plots) or else of its inputs' provenance."""
    if not records:
        records = tuple(json.loads(p.read_text()) for p in provenance_files(snakemake.input))
    return from_records(snakemake.params.scale, records)


def read(path: str | Path) -> str:
    """The fidelity line a figure carries: a PDF's Keywords, a PNG's Description."""
    if Path(path).suffix == ".png":
        from PIL import Image

        with Image.open(path) as image:
            text = image.text.get("Description")
        if text is None:
            raise ValueError(f"{path}: no fidelity (Description) in its PNG metadata")
        return text
    return read_pdf(path)


def read_pdf(path: str | Path) -> str:
    """The fidelity line written into a figure PDF by :func:`dlperf.report.style.save_figure`; an error naming
    the file when it has none."""
    match = KEYWORDS.search(Path(path).read_bytes())
    if not match:
        raise ValueError(f"{path}: no dlperf fidelity in its metadata (drawn without save_figure's fidelity?)")
    text = re.sub(rb"\\(.)", rb"\1", match.group(1)).decode("latin-1")
    return text.removeprefix("dlperf fidelity: ")
