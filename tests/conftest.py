"""The test harness the test files share: the repository, Snakemake as a subprocess, scratch copies of the workflow,
config files, one dry run of each shipped config, the rehearsal mirror, and one finished run of the embedded default
for the tests that read a whole run.

Test files import the helpers by name (``from conftest import ROOT, snakemake``): pytest puts tests/ on sys.path
and imports this file as the module ``conftest``, so the import gets the very module pytest loaded.

Every test that makes Snakemake execute jobs must be marked ``slow`` (they take minutes and ``-m "not slow"`` leaves
them out): ``run_snakemake`` refuses, naming the test, to execute jobs for a test without the mark. A test that uses
a fixture listed in ``JOB_FIXTURES`` (a fixture that runs jobs) is marked ``slow`` at collection.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dlperf.estimate import job_stats

from dlperf.report.fidelity import Fidelity

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
# What a scratch copy of the workflow leaves behind: version control, the environment, every product of a run,
# and caches.
IGNORED = shutil.ignore_patterns(".git", ".venv", "results", "resources", ".snakemake", "logs", "benchmarks", ".bundle",
                                 "__pycache__", "*.egg-info", ".pytest_cache", ".hypothesis")

# Snakemake options under which it executes no job: it plans (dry run), checks, lists, summarises or renders.
NO_JOB_FLAGS = {"-n", "--dry-run", "--dryrun", "--lint", "--summary", "-S", "--detailed-summary", "-D", "-h",
                "--help", "--version", "-v", "--dag", "--rulegraph", "--filegraph", "--d3dag"}
# Fixtures that run jobs, by name -> the test module that defines it (None: defined here, usable anywhere).
# Every test that uses one, directly or through another fixture, is marked slow.
JOB_FIXTURES = {"embedded_run": None}

# Where the shared rehearsal mirror's override points until a test serves it (nothing listens on port 9).
MIRROR_URL = "http://127.0.0.1:9"
# What the report fixtures' figures say they come from (the fidelity printed under a caption).
FIXTURE_FIDELITY = Fidelity("embedded", "Fixture CPU", "0123456789ab")

_current: pytest.Item | None = None  # the test being set up, run or torn down


# ---- the slow-mark check --------------------------------------------------------------------------------------
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    """Mark slow every test that uses a fixture which runs jobs (before ``-m`` deselects)."""
    for item in items:
        module = getattr(getattr(item, "module", None), "__name__", None)
        if any(name in JOB_FIXTURES and JOB_FIXTURES[name] in (None, module) for name in item.fixturenames):
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Record the running test for the whole of its setup, call and teardown. (A hook rather than an autouse
    fixture: module- and session-scoped fixtures, which may run jobs, are set up before any function-scoped one.)"""
    global _current
    _current = item
    try:
        return (yield)
    finally:
        _current = None


def executes_jobs(args) -> bool:
    """Whether Snakemake with these arguments executes jobs: no dry-run, lint, list, summary, help or --report
    (which only renders) option before a ``--`` that starts the targets."""
    for arg in args:
        arg = str(arg)
        if arg == "--":
            break
        if arg in NO_JOB_FLAGS or arg.startswith("--list") or arg == "--report" or arg.startswith("--report="):
            return False
        if arg.startswith("-") and not arg.startswith("--") and arg[1:].isalpha() and "n" in arg[1:]:
            return False  # short options run together, -np
    return True


def check_slow(args) -> None:
    if not executes_jobs(args):
        return
    if _current is None:
        raise AssertionError(f"snakemake {' '.join(map(str, args))} executes jobs outside any test")
    if _current.get_closest_marker("slow") is None:
        raise AssertionError(f"{_current.nodeid} executes Snakemake jobs (snakemake {' '.join(map(str, args))}) "
                             "but is not marked slow: add @pytest.mark.slow")


# ---- Snakemake --------------------------------------------------------------------------------------------------
def run_snakemake(*args, cwd=ROOT, timeout=600, env=None) -> subprocess.CompletedProcess:
    """``python -m snakemake *args`` in ``cwd``, output captured as text. Raises AssertionError where it would
    execute jobs for a test not marked slow; subprocess.TimeoutExpired past ``timeout`` seconds."""
    check_slow(args)
    return subprocess.run([*SNAKEMAKE, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=env)


def snakemake(*args, cwd=ROOT, timeout=600, env=None) -> tuple[int, str]:
    """(return code, stdout + stderr) of ``python -m snakemake *args`` in ``cwd``."""
    out = run_snakemake(*args, cwd=cwd, timeout=timeout, env=env)
    return out.returncode, out.stdout + out.stderr


def job_counts(text: str) -> dict[str, int]:
    """The dry run's (first) 'Job stats' table as {rule: count}."""
    return job_stats(text)


# ---- copies of the workflow and config files ---------------------------------------------------------------------
def scratch_copy(dest: Path) -> Path:
    """A copy of the workflow at ``dest`` without any result, environment or cache (IGNORED); ``dest``."""
    shutil.copytree(ROOT, dest, ignore=IGNORED)
    return dest


def copy_run(src: Path, dest: Path) -> Path:
    """A copy of a finished work dir at ``dest``, its results, resources, logs, benchmarks and Snakemake's metadata
    (.snakemake) included, every mtime and symlink kept, so that Snakemake sees the same finished run; ``dest``.
    Edit the copy's config and dry-run it without touching the shared run (``embedded_run``)."""
    shutil.copytree(src, dest, symlinks=True, copy_function=shutil.copy2)
    return dest


def load_config(name: str = "config.yaml", root: Path = ROOT) -> dict:
    """``root/config/name`` parsed."""
    return yaml.safe_load((root / "config" / name).read_text())


def write_config(path: Path, cfg: dict, sort_keys: bool = True) -> Path:
    """``cfg`` as YAML at ``path``; ``path``."""
    path = Path(path)
    path.write_text(yaml.safe_dump(cfg, sort_keys=sort_keys))
    return path


# ---- what the shipped configs plan, shared ------------------------------------------------------------------------
@pytest.fixture(scope="session")
def default_plan() -> tuple[int, str]:
    """(return code, output) of ``snakemake -n --forceall`` on the embedded default: every job of its DAG, even
    where results exist from an earlier run."""
    return snakemake("-n", "--forceall", timeout=300)


@pytest.fixture(scope="session")
def full_plan() -> tuple[int, str]:
    """(return code, output) of ``snakemake -n --configfile config/full.yaml``: the full reproduction's DAG."""
    return snakemake("-n", "--configfile", "config/full.yaml", timeout=300)


# ---- the rehearsal mirror, shared ---------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def mirror_root(tmp_path_factory) -> Path:
    """The rehearsal mirror of config/full.yaml's downloads (``dlperf.data.mirror.build``), for 127.0.0.1:9 (no
    server); its root. A test that serves it rewrites its override for the server's port and restores it after."""
    from dlperf.data import mirror

    root = tmp_path_factory.mktemp("mirror")
    mirror.build(root, MIRROR_URL, full_config=ROOT / "config" / "full.yaml",
                 counts_config=ROOT / "config" / "rehearsal.yaml")
    return root


# ---- one finished run, shared ---------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def embedded_run(tmp_path_factory) -> Path:
    """A scratch copy of the workflow in which the embedded default ran end to end (``snakemake --cores 2``), once
    per session; its work dir. Read it, or copy_run it before editing or running anything in it.

    ``DLPERF_EMBEDDED_RUN=<dir>`` names an existing one instead (the workflow is brought up to date in it first):
    for iterating on the tests that read a run without paying for a fresh run each time."""
    given = os.environ.get("DLPERF_EMBEDDED_RUN")
    work = Path(given) if given else scratch_copy(tmp_path_factory.mktemp("embedded") / "repo")
    rc, text = snakemake("--cores", "2", cwd=work, timeout=1800)
    assert rc == 0, text[-5000:]
    return work
