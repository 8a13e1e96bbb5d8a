"""Planning is light: Snakemake parses the workflow (Snakefile, rules/*.smk, the plans they import) and plans every
job without importing the numerical stack, which only the jobs that compute with it load."""
import subprocess
import sys

import pytest

from conftest import ROOT

# What a dry run must not import: each costs seconds to import, and none of them is needed to plan a job.
HEAVY = {"torch", "torchvision", "scipy", "matplotlib"}
# Snakemake's command line, run in this interpreter; at exit it writes every module imported to the file named by
# its first argument.
RECORD_IMPORTS = """
import atexit, sys
from pathlib import Path
record = Path(sys.argv.pop(1))
atexit.register(lambda: record.write_text("\\n".join(sorted(sys.modules))))
from snakemake.cli import main
main(sys.argv[1:])
"""


def modules_of_a_dry_run(tmp_path, *args) -> set[str]:
    """Every module a dry run imports, planning every job (--forceall) whatever results exist already."""
    record = tmp_path / "modules.txt"
    out = subprocess.run([sys.executable, "-c", RECORD_IMPORTS, str(record), "-n", "--forceall", "--cores", "1", *args],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return set(record.read_text().split())


@pytest.mark.parametrize("configfile", [None, "config/full.yaml"])
def test_a_dry_run_imports_none_of_torch_torchvision_scipy_or_matplotlib(configfile, tmp_path):
    modules = modules_of_a_dry_run(tmp_path, *(["--configfile", configfile] if configfile else []))
    assert "dlperf.optimus.plan" in modules and "dlperf.transfer.plan" in modules  # the studies' plans were read
    assert sorted({name.split(".")[0] for name in modules} & HEAVY) == []
