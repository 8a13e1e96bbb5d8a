"""Pack a finished run's results into a bundle, check a bundle against its manifest, unpack it, and redraw the
report from it (see :mod:`dlperf.bundle`).

What goes in is what the render rules' DAG of the report reads that no render rule writes, found by a dry run of
Snakemake restricted to :data:`~dlperf.bundle.RENDER_RULES`. A file outside results/ and benchmarks/ among those
(a dataset, downloaded weights) means a render rule reads what a bundle cannot carry: packing fails naming the rule.
"""
from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io
import json
import re
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path, PurePosixPath

from dlperf.atomic import atomic_write
from dlperf.bundle import RENDER_RULES, REPORT
from dlperf.data.download import file_checksum
from dlperf.provenance import git_state

# The bundle's layout: the manifest's keys, the archive's members, the render rules' inputs. A checkout reads only
# bundles of its own layout; change it when a render rule starts reading a file that older bundles lack.
LAYOUT = 1
MANIFEST = "MANIFEST.json"
CARRIED = ("results/", "benchmarks/")       # where a bundle's files may lie, relative to the working directory
CHECKPOINTS = (".pt", ".onnx", ".dlpf")     # --with-checkpoints: every such file under results/
UNPACKED = Path(".bundle")                  # where `figures` keeps the manifest and config files it unpacked


class BundleError(Exception):
    """A bundle that cannot be packed, read or used, with the file at fault named."""


@dataclass(frozen=True)
class Job:
    rule: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


# ---- the render DAG -------------------------------------------------------------------------------------------
def snakemake_command(workdir: Path, configfiles, *args) -> list[str]:
    """Snakemake, run from the workflow's directory (here), restricted to the render rules, on ``configfiles``,
    in the working directory ``workdir`` (snakemake --directory), targeting the report."""
    command = [sys.executable, "-m", "snakemake", "--allowed-rules", *sorted(RENDER_RULES)]
    if Path(workdir).resolve() != Path.cwd().resolve():
        command += ["--directory", str(workdir)]
    if configfiles:
        command += ["--configfile", *map(str, configfiles)]
    return command + list(args) + ["--", REPORT]


def render_jobs(workdir: Path, configfiles) -> list[Job]:
    """Every job of the render rules' DAG of the report, from a forced dry run in ``workdir``."""
    out = subprocess.run(snakemake_command(workdir, configfiles, "--dry-run", "--forceall", "--cores", "1"),
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise BundleError(f"{workdir}: Snakemake cannot plan the report from the results here (is the run finished, "
                          f"and are these its config files?):\n{_tail(out.stdout + out.stderr)}")
    return parse_dry_run(out.stdout)


def parse_dry_run(text: str) -> list[Job]:
    """The jobs a Snakemake dry run prints: each ``rule NAME:`` (or ``localrule``) block's input and output."""
    jobs, rule, fields = [], None, {}
    for line in text.splitlines() + [""]:
        head = re.fullmatch(r"(?:local)?rule (\w+):", line.strip()) if not line.startswith(" ") else None
        if head or (rule and not line.startswith("    ")):
            if rule:
                jobs.append(Job(rule, _files(fields.get("input")), _files(fields.get("output"))))
            rule, fields = (head.group(1), {}) if head else (None, {})
            continue
        if rule:
            key, _, value = line.strip().partition(": ")
            fields[key] = value
    return jobs


def _files(value: str | None) -> tuple[str, ...]:
    return tuple(f for f in (value or "").split(", ") if f)


def bundle_files(workdir: Path, configfiles, with_checkpoints: bool = False) -> list[str]:
    """The files a bundle of the run in ``workdir`` carries, relative to it, sorted."""
    jobs = render_jobs(workdir, configfiles)
    written = {f for job in jobs for f in job.outputs}
    files = set()
    for job in jobs:
        for name in job.inputs:
            if name in written or Path(name).is_absolute():   # another render rule's, or code (render_code)
                continue
            if not name.startswith(CARRIED):
                raise BundleError(f"rule {job.rule} is a render rule but reads {name}, which a bundle cannot carry "
                                  f"(only {' and '.join(CARRIED)}): make it read a record under results/")
            path = workdir / name
            files |= {str(p.relative_to(workdir)) for p in path.rglob("*") if p.is_file()} if path.is_dir() \
                else {name}
    if with_checkpoints:
        files |= {str(p.relative_to(workdir)) for p in (workdir / "results").rglob("*")
                  if p.suffix in CHECKPOINTS and p.is_file() and "/resume/" not in str(p)}
    return sorted(files)


# ---- packing ----------------------------------------------------------------------------------------------------
def sha256(path: Path) -> str:
    return file_checksum(path, "sha256")


def pack(workdir: Path, output: Path, configfiles=(), with_checkpoints: bool = False) -> dict:
    """Write the bundle of the finished run in ``workdir`` to ``output``; the manifest. Run from the workflow's
    directory; ``configfiles`` are the run's, as Snakemake was given them (default: the embedded default)."""
    workdir = Path(workdir)
    configfiles = [Path(c) for c in configfiles] or [Path("config/config.yaml")]
    for c in configfiles:
        if not c.is_file():
            raise BundleError(f"{c}: no such config file")
    files = bundle_files(workdir, configfiles, with_checkpoints)
    configs = [(f"config/{i:02d}-{c.name}", c) for i, c in enumerate(configfiles)]
    manifest = {
        "layout": LAYOUT,
        "made": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "dlperf": metadata.version("dlperf"),
        "git": git_state(workdir),                       # the checkout packing (none outside a git checkout)
        "commits": recorded_commits(workdir, files),     # the commits that made the results, from their records
        "configfiles": [str(c) for c in configfiles],
        "config": {name: {"sha256": sha256(path), "bytes": path.stat().st_size} for name, path in configs},
        "checkpoints": with_checkpoints,
        "files": {name: {"sha256": sha256(workdir / name), "bytes": (workdir / name).stat().st_size}
                  for name in files},
    }
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(output, "wb") as raw:
        # mtime 0 in the gzip header and sorted members: the same results give the same bytes
        with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
            data = json.dumps(manifest, indent=2).encode() + b"\n"
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
            tar.addfile(info, io.BytesIO(data))
            for name, path in configs:
                tar.add(path, arcname=name, recursive=False, filter=_plain)
            for name in files:
                tar.add(workdir / name, arcname=f"files/{name}", recursive=False, filter=_plain)
    return manifest


def recorded_commits(workdir: Path, files) -> list[str]:
    """The commits the provenance records among ``files`` name (``+dirty`` where the tree was), each once."""
    commits = []
    for name in files:
        if name.endswith("provenance.json"):
            try:
                git = json.loads((workdir / name).read_text()).get("git") or {}
            except (json.JSONDecodeError, AttributeError):
                continue
            if git.get("commit"):
                commits.append(git["commit"] + ("+dirty" if git.get("dirty") else ""))
    return list(dict.fromkeys(commits))


def _plain(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


# ---- reading ----------------------------------------------------------------------------------------------------
def read_manifest(bundle: Path) -> dict:
    """The manifest of ``bundle``, its layout checked; an error naming the bundle otherwise."""
    try:
        with tarfile.open(bundle, "r:gz") as tar:
            member = tar.getmember(MANIFEST)
            manifest = json.loads(tar.extractfile(member).read())
    except FileNotFoundError:
        raise BundleError(f"{bundle}: no such bundle") from None
    except (tarfile.TarError, KeyError, OSError, EOFError, json.JSONDecodeError) as error:
        raise BundleError(f"{bundle}: not a dlperf bundle ({error})") from None
    layout = manifest.get("layout")
    if layout != LAYOUT:
        raise BundleError(f"{bundle}: {MANIFEST} has layout {layout!r}, and this checkout reads layout {LAYOUT}; "
                          f"redraw it with the dlperf version that made it ({manifest.get('dlperf', 'unknown')}, "
                          f"commit {', '.join(manifest.get('commits') or []) or 'unknown'})")
    return manifest


def verify(bundle: Path) -> dict:
    """Every member of ``bundle`` checked against its manifest (names, sizes, SHA-256), before anything is
    written; the manifest. Names the first member at fault."""
    bundle = Path(bundle)
    manifest = read_manifest(bundle)
    expected = {f"files/{name}": entry for name, entry in manifest["files"].items()}
    expected |= manifest["config"]
    seen = set()
    try:
        with tarfile.open(bundle, "r:gz") as tar:
            for member in tar:
                if member.name == MANIFEST:
                    continue
                entry = expected.get(member.name)
                if entry is None or not member.isfile() or not _safe(member.name):
                    raise BundleError(f"{bundle}: {member.name} is not in its {MANIFEST}")
                digest = hashlib.file_digest(tar.extractfile(member), "sha256").hexdigest()
                if digest != entry["sha256"] or member.size != entry["bytes"]:
                    raise BundleError(f"{bundle}: {member.name} does not match its {MANIFEST} "
                                      f"(sha256 {digest[:12]}…, expected {entry['sha256'][:12]}…)")
                seen.add(member.name)
    except (tarfile.TarError, OSError, EOFError) as error:
        raise BundleError(f"{bundle}: damaged archive ({error})") from None
    missing = sorted(set(expected) - seen)
    if missing:
        raise BundleError(f"{bundle}: {missing[0]} is in its {MANIFEST} but not in the archive"
                          + (f" ({len(missing) - 1} more)" if len(missing) > 1 else ""))
    return manifest


def _safe(name: str) -> bool:
    path = PurePosixPath(name)
    return not path.is_absolute() and ".." not in path.parts


def unpack(bundle: Path, workdir: Path, force: bool = False) -> tuple[dict, list[Path]]:
    """``bundle`` verified, then its files written into ``workdir`` (its config files and manifest under
    ``.bundle/``); the manifest and the config files' paths. A file that is there already with the same bytes is
    left alone (so a second unpack redraws nothing); one with other bytes is another run's and stops the unpack,
    unless ``force``. A new file gets the present time, so everything drawn from it is redrawn."""
    bundle, workdir = Path(bundle), Path(workdir)
    manifest = verify(bundle)
    entries = {f"files/{name}": (workdir / name, entry) for name, entry in manifest["files"].items()}
    entries |= {name: (workdir / UNPACKED / name, entry) for name, entry in manifest["config"].items()}
    present = {name for name, (target, entry) in entries.items()
               if target.is_file() and sha256(target) == entry["sha256"]}
    if not force:
        for name, (target, _) in entries.items():
            if target.is_file() and name not in present:
                raise BundleError(f"{target}: differs from {bundle}'s (another run's results are here); move them "
                                  f"away, unpack into an empty checkout, or pass --force to overwrite")
    with tarfile.open(bundle, "r:gz") as tar:
        for member in tar:
            if member.name not in entries or member.name in present:
                continue
            target = entries[member.name][0]
            target.parent.mkdir(parents=True, exist_ok=True)
            with atomic_write(target, "wb") as fh:
                shutil.copyfileobj(tar.extractfile(member), fh)
    with atomic_write(workdir / UNPACKED / MANIFEST) as fh:
        json.dump({**manifest, "bundle": str(bundle)}, fh, indent=2)
    configs = [workdir / UNPACKED / name for name in sorted(manifest["config"])]
    return manifest, configs


def figures(bundle: Path, workdir: Path, cores: str = "all", dry_run: bool = False, force: bool = False,
            snakemake_args=()) -> int:
    """Unpack ``bundle`` into ``workdir`` and build the report from it with the render rules only; Snakemake's
    exit code."""
    manifest, configs = unpack(bundle, workdir, force)
    commits = ", ".join(c[:12] + ("+dirty" if c.endswith("+dirty") else "") for c in manifest["commits"])
    print(f"figures: {len(manifest['files'])} files of a run at commit {commits or 'unknown'} unpacked from "
          f"{bundle}", flush=True)
    command = snakemake_command(workdir, [c.resolve() for c in configs], "--cores", str(cores),
                                *(["--dry-run"] if dry_run else []), *snakemake_args)
    return subprocess.run(command).returncode


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
