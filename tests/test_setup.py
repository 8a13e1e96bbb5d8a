"""The setup the two commands run: `make run` installs the runtime only, `make test` adds the development extras, and
bin/setup-python prints one line per step and, when pip fails, the log's tail and its path."""
from __future__ import annotations

import os
import subprocess
import textwrap

from conftest import ROOT


def make_plan(target: str) -> str:
    """The commands ``make -n -B <target>`` would run (every target considered out of date)."""
    out = subprocess.run(["make", "-n", "-B", target], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_make_run_installs_the_runtime_and_make_test_the_development_extras():
    run, test = make_plan("run"), make_plan("test")
    assert "bin/setup-python .venv python3 runtime" in run and " dev" not in run.replace("--dev", "")
    assert "bin/setup-python .venv python3 dev" in test and "pytest" in test
    assert "snakemake --cores all" in run
    figures = make_plan("figures")   # no BUNDLE: it says how to name one, after the runtime setup
    assert "bin/setup-python .venv python3 runtime" in figures and "dev" not in figures


def fake_venv(tmp_path, pip_fails: bool):
    """A venv whose python answers `pip list` with two packages and fails (or not) `pip install`."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin/python"
    python.write_text(textwrap.dedent(f"""\
        #!/usr/bin/env bash
        case "$*" in
          *"pip --disable-pip-version-check list"*) printf 'a==1\\nb==2\\n' ;;
          *"install -e"*) echo "Collecting torch"; {'echo "ERROR: No matching distribution found for torch"; exit 1' if pip_fails else 'exit 0'} ;;
          *) exit 0 ;;
        esac
        """))
    python.chmod(0o755)
    return venv


def test_setup_prints_one_line_per_step(tmp_path):
    venv = fake_venv(tmp_path, pip_fails=False)
    out = subprocess.run([ROOT / "bin/setup-python", venv, "python3", "runtime"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == f"setup: installing dlperf into {venv} (log: {venv}/install.log) ..."
    assert lines[1].startswith(f"setup: 2 packages in {venv} (0 new, ") and len(lines) == 2


def test_a_failed_install_shows_the_logs_tail_and_path(tmp_path):
    venv = fake_venv(tmp_path, pip_fails=True)
    out = subprocess.run([ROOT / "bin/setup-python", venv, "python3", "dev"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, env={**os.environ})
    assert out.returncode == 1
    assert "ERROR: No matching distribution found for torch" in out.stdout
    assert f"setup: pip install failed; the whole log: {venv}/install-dev.log" in out.stderr
