"""Bundles (dlperf.bundle): the render rules' code inputs, the manifest checks, and the round trip of the embedded
run (pack, unpack in a fresh checkout, rebuild the report, compare every figure byte for byte)."""
from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from conftest import IGNORED, ROOT, job_counts, scratch_copy, snakemake
from dlperf.bundle import RENDER_RULES, REPORT
from dlperf.bundle.archive import LAYOUT, BundleError, parse_dry_run, unpack, verify
from dlperf.bundle.code import code_files
from dlperf.timing import TIMING_RULES

# ---- the render rules -------------------------------------------------------------------------------------------
def test_render_rules_exist_and_time_nothing():
    rc, text = snakemake("--list-rules")
    assert rc == 0, text
    rules = set(text.split())
    assert RENDER_RULES <= rules, sorted(RENDER_RULES - rules)
    assert not RENDER_RULES & set(TIMING_RULES)
    # what they read is checked on the real DAG: packing fails when a render rule reads resources/ (the round trip)


def test_code_files_follow_dlperf_imports_only():
    files = code_files(ROOT / "scripts/compress_pruning_figure.py")
    names = {Path(f).relative_to(ROOT / "src").as_posix() for f in files[1:]}
    assert files[0] == str(ROOT / "scripts/compress_pruning_figure.py")
    assert {"dlperf/compress/summary.py", "dlperf/report/style.py", "dlperf/compress/__init__.py"} <= names
    assert not any(n.startswith(("dlperf/depth/", "dlperf/serve/", "dlperf/optimus/")) for n in names), names
    assert all(n.startswith("dlperf/") for n in names)   # pandas, matplotlib: not followed


def test_parse_dry_run_reads_each_jobs_files():
    text = """Building DAG of jobs...
Job stats:
job    count

rule depth_summary:
    input: results/depth/a/metrics.json, results/depth/b/metrics.json, /repo/scripts/depth_summary.py
    output: results/depth/summary.csv, results/depth/tables/summary.tex
    log: logs/depth/summary.log
    jobid: 3
    reason: Forced execution
    resources: tmpdir=/tmp

localrule report_pdf:
    input: results/report/values.tex
    output: results/report/report.pdf
    jobid: 0
Job stats:
"""
    jobs = parse_dry_run(text)
    assert [j.rule for j in jobs] == ["depth_summary", "report_pdf"]
    assert jobs[0].inputs[-1] == "/repo/scripts/depth_summary.py" and len(jobs[0].inputs) == 3
    assert jobs[0].outputs == ("results/depth/summary.csv", "results/depth/tables/summary.tex")
    assert jobs[1].inputs == ("results/report/values.tex",)


# ---- manifests ----------------------------------------------------------------------------------------------------
def _bundle(path: Path, files: dict[str, bytes], *, manifest_files=None, layout=LAYOUT, extra=None) -> Path:
    """A bundle written by hand (not by pack): the reader is checked against the layout, not against the writer."""
    entry = lambda data: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}   # noqa: E731
    config = b"scale: embedded\n"
    manifest = {"layout": layout, "dlperf": "0.1.0", "git": {"commit": None, "dirty": None},
                "commits": ["0123456789abcdef0123456789abcdef01234567"],
                "configfiles": ["config/config.yaml"], "config": {"config/00-config.yaml": entry(config)},
                "checkpoints": False,
                "files": manifest_files if manifest_files is not None else {n: entry(d) for n, d in files.items()}}
    with tarfile.open(path, "w:gz") as tar:
        for name, data in [("MANIFEST.json", json.dumps(manifest).encode()), ("config/00-config.yaml", config),
                           *((f"files/{n}", d) for n, d in files.items()), *(extra or {}).items()]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


FILES = {"results/depth/summary.csv": b"run,acc\na,0.5\n", "results/depth/a/provenance.json": b"{}\n"}


def test_verify_accepts_a_bundle_that_matches_its_manifest(tmp_path):
    manifest = verify(_bundle(tmp_path / "b.tar.gz", FILES))
    assert set(manifest["files"]) == set(FILES)


@pytest.mark.parametrize("damage, named", [
    ("tampered", "files/results/depth/summary.csv does not match"),
    ("missing", "files/results/depth/a/provenance.json is in its MANIFEST.json but not in the archive"),
    ("extra", "files/results/stray.csv is not in its MANIFEST.json"),
    ("layout", "has layout 999, and this checkout reads layout"),
])
def test_verify_refuses_a_bundle_that_does_not_match_naming_the_file(tmp_path, damage, named):
    files, listed, extra, layout = dict(FILES), None, None, LAYOUT
    good = {n: {"sha256": hashlib.sha256(d).hexdigest(), "bytes": len(d)} for n, d in FILES.items()}
    if damage == "tampered":
        files["results/depth/summary.csv"] = b"run,acc\na,0.9\n"
        listed = good
    elif damage == "missing":
        del files["results/depth/a/provenance.json"]
        listed = good
    elif damage == "extra":
        extra = {"files/results/stray.csv": b"x\n"}
    else:
        layout = 999
    bundle = _bundle(tmp_path / "b.tar.gz", files, manifest_files=listed, layout=layout, extra=extra)
    with pytest.raises(BundleError, match=named.replace(".", r"\.")) as error:
        verify(bundle)
    assert str(bundle) in str(error.value)


def test_verify_refuses_what_is_not_a_bundle(tmp_path):
    path = tmp_path / "notes.tar.gz"
    path.write_bytes(b"not a tarball")
    with pytest.raises(BundleError, match="not a dlperf bundle"):
        verify(path)
    with pytest.raises(BundleError, match="no such bundle"):
        verify(tmp_path / "absent.tar.gz")


def test_unpack_keeps_identical_files_and_refuses_another_runs(tmp_path):
    bundle, work = _bundle(tmp_path / "b.tar.gz", FILES), tmp_path / "work"
    _, configs = unpack(bundle, work)
    assert (work / "results/depth/summary.csv").read_bytes() == FILES["results/depth/summary.csv"]
    assert [c.relative_to(work).as_posix() for c in configs] == [".bundle/config/00-config.yaml"]
    kept = work / "results/depth/summary.csv"
    os.utime(kept, (1_000_000, 1_000_000))
    unpack(bundle, work)                       # the same bytes: left alone, so nothing drawn from it is redrawn
    assert kept.stat().st_mtime == 1_000_000
    kept.write_bytes(b"run,acc\nb,0.1\n")      # another run's result
    with pytest.raises(BundleError, match="summary.csv: differs from"):
        unpack(bundle, work)
    assert kept.read_bytes() == b"run,acc\nb,0.1\n"
    unpack(bundle, work, force=True)
    assert kept.read_bytes() == FILES["results/depth/summary.csv"]
    assert kept.stat().st_mtime > time.time() - 60   # rewritten now: newer than what was drawn from the old one


# ---- the round trip ---------------------------------------------------------------------------------------------
def _bundle_cli(*args, cwd, env=None):
    return subprocess.run([sys.executable, "-m", "dlperf.bundle", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, env=env, timeout=1800)


@pytest.fixture(scope="module")
def round_trip(embedded_run, tmp_path_factory):
    """The embedded run packed, and a fresh checkout (its own src/, so its code can be edited) with the bundle
    unpacked and the report rebuilt from it: (run, bundle, checkout, the dry run before building)."""
    base = tmp_path_factory.mktemp("bundle")
    bundle = base / "run.tar.gz"
    out = _bundle_cli("pack", "--output", bundle, cwd=embedded_run)
    assert out.returncode == 0, out.stdout + out.stderr
    fresh = scratch_copy(base / "checkout")
    env = {**os.environ, "PYTHONPATH": str(fresh / "src")}
    plan = _bundle_cli("figures", bundle, "--dry-run", cwd=fresh, env=env)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    build = _bundle_cli("figures", bundle, "--cores", "2", cwd=fresh, env=env)
    assert build.returncode == 0, (build.stdout + build.stderr)[-6000:]
    return embedded_run, bundle, fresh, plan.stdout + plan.stderr


def test_bundle_carries_results_only(round_trip):
    _, bundle, _, _ = round_trip
    manifest = verify(bundle)
    names = list(manifest["files"])
    assert names and all(n.startswith(("results/", "benchmarks/")) for n in names), names
    assert not [n for n in names if n.endswith((".pt", ".onnx", ".dlpf", ".pdf"))]   # no checkpoint, no figure
    assert "results/data/cifar10.provenance.json" in names   # the dataset's record, not the dataset
    assert manifest["configfiles"] == ["config/config.yaml"]
    # the commits that made the results, from their records (the run's work dir is no git checkout here)
    run, _, _, _ = round_trip
    recorded = {(json.loads((run / n).read_text()).get("git") or {}).get("commit") for n in names
                if n.endswith("provenance.json")} - {None}
    assert {c.removesuffix("+dirty") for c in manifest["commits"]} == recorded


def test_figures_plans_no_download_training_or_timing_job(round_trip):
    _, _, _, plan = round_trip
    counts = job_counts(plan)
    assert counts and set(counts) - {"total"} <= RENDER_RULES, sorted(set(counts) - RENDER_RULES - {"total"})
    assert "report_pdf" in counts and "depth_summary" in counts and "flops_ppp_figure" in counts


def test_figures_rebuilds_every_figure_and_table_byte_for_byte(round_trip):
    run, _, fresh, _ = round_trip
    drawn = sorted(p.relative_to(fresh) for p in (fresh / "results").rglob("*")
                   if p.is_file() and p.suffix in (".pdf", ".png", ".tex", ".md", ".json", ".csv")
                   and p.name != "report.pdf" and "build" not in p.parts
                   and not p.name.endswith("provenance.json"))   # a fit's record: when and where it was computed
    figures = [p for p in drawn if p.suffix in (".pdf", ".png")]
    assert len(figures) >= 30, figures
    different = [str(p) for p in drawn if (run / p).read_bytes() != (fresh / p).read_bytes()]
    assert not different, different
    # the report's numbers, and each figure's fidelity line: the run's device and commit
    assert (fresh / "results/report/values.tex").read_text() == (run / "results/report/values.tex").read_text()
    assert (fresh / "results/report/figures.tex").read_bytes() == (run / "results/report/figures.tex").read_bytes()
    assert (fresh / REPORT).stat().st_size > 10_000


def test_an_edited_plotting_module_redraws_only_its_figures(round_trip):
    _, bundle, fresh, _ = round_trip
    env = {**os.environ, "PYTHONPATH": str(fresh / "src")}
    plan = lambda: _bundle_cli("figures", bundle, "--dry-run", cwd=fresh, env=env)   # noqa: E731
    again = plan()
    assert "Nothing to be done" in again.stdout + again.stderr, again.stdout[-3000:]
    # an edit (Snakemake compares the content of an input newer than the outputs, so touching is not editing)
    module = fresh / "src/dlperf/compress/summary.py"
    original = module.read_text()
    module.write_text(original + "\n# an edit\n")
    counts = set(job_counts(plan().stdout)) - {"total"}
    assert {"compress_summary", "compress_pruning_figure", "compress_values", "report_pdf"} <= counts, counts
    assert all(rule.startswith(("compress_", "report_")) for rule in counts), counts
    assert "compress_deep_stages" not in counts   # its code does not import the module
    module.write_text(original)
    caption = fresh / "report/sections/depth.tex"
    caption.write_text(caption.read_text() + "% an edit of the text\n")
    assert set(job_counts(plan().stdout)) - {"total"} == {"report_pdf"}   # the text: the report alone


def test_figures_refuses_a_tampered_bundle_naming_the_file(round_trip, tmp_path):
    _, bundle, _, _ = round_trip
    with tarfile.open(bundle, "r:gz") as src, tarfile.open(tmp_path / "bad.tar.gz", "w:gz") as dst:
        for member in src:
            data = src.extractfile(member).read() if member.isfile() else None
            if member.name == "files/results/data/cifar10.provenance.json":
                data = data.replace(b"{", b"{ ", 1)
                member.size = len(data)
            dst.addfile(member, io.BytesIO(data) if data is not None else None)
    work = scratch_copy(tmp_path / "checkout")
    out = _bundle_cli("figures", tmp_path / "bad.tar.gz", "--dry-run", cwd=work)
    assert out.returncode == 1
    assert "files/results/data/cifar10.provenance.json does not match its MANIFEST.json" in out.stderr
    assert not (work / "results").exists()   # checked before anything is written


def test_with_checkpoints_the_bundle_also_carries_them(round_trip, tmp_path):
    run, bundle, _, _ = round_trip
    out = _bundle_cli("pack", "--with-checkpoints", "--output", tmp_path / "full.tar.gz", cwd=run)
    assert out.returncode == 0, out.stdout + out.stderr
    plain, full = set(verify(bundle)["files"]), verify(tmp_path / "full.tar.gz")
    added = set(full["files"]) - plain
    assert full["checkpoints"] and added and all(n.endswith((".pt", ".onnx", ".dlpf")) for n in added), added
    assert "results/serve/model_repository/ssd/1/model.onnx" in added or any(n.endswith(".onnx") for n in added)
    assert not [n for n in added if "/resume/" in n]
