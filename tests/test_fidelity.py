"""A figure carries its fidelity (scale, device, commit) in its metadata, read back for the line under its caption,
and the same inputs draw byte-identical figure files, in separate processes too."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
from conftest import ROOT, copy_run, snakemake
from PIL import Image

from dlperf.report import fidelity
from dlperf.report.fidelity import Fidelity, from_records, of_job, provenance_files
from dlperf.report.latex import render_fidelities

DRAW = """
import sys
import pandas as pd
from dlperf.report.fidelity import Fidelity
from dlperf.report.figures import learning_curves
from dlperf.report.style import save_figure
runs = {f"run{i}": pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [2.0, 1.5 - i / 10, 1.2], "test_loss": [2.1, 1.7, 1.6],
                                 "train_acc": [0.2, 0.4, 0.5], "test_acc": [0.2, 0.35, 0.4 + i / 100]}) for i in range(12)}
save_figure(learning_curves(runs), sys.argv[1], Fidelity("embedded", "AMD EPYC 7B13 (R) 64-Core", "1584e01a2b3c"))
"""


def draw(path, hash_seed: str) -> None:
    env = os.environ | {"PYTHONHASHSEED": hash_seed, "SOURCE_DATE_EPOCH": hash_seed}
    subprocess.run([sys.executable, "-c", DRAW, str(path)], check=True, env=env, cwd=ROOT, timeout=120)


def test_the_same_inputs_draw_byte_identical_pdf_and_png_in_separate_processes(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    for directory, seed in ((first, "1"), (second, "2")):
        directory.mkdir()
        draw(directory / "fig.pdf", seed)
    assert (first / "fig.pdf").read_bytes() == (second / "fig.pdf").read_bytes()
    assert (first / "fig.png").read_bytes() == (second / "fig.png").read_bytes()
    assert b"/CreationDate" not in (first / "fig.pdf").read_bytes()


def test_the_fidelity_is_read_back_from_the_pdf_and_the_png(tmp_path):
    draw(tmp_path / "fig.pdf", "0")
    line = "scale embedded; AMD EPYC 7B13 (R) 64-Core; commit 1584e01a2b3c"
    assert fidelity.read(tmp_path / "fig.pdf") == line  # parentheses survive the PDF string's escaping
    assert fidelity.read(tmp_path / "fig.png") == line
    with Image.open(tmp_path / "fig.png") as image:
        assert image.text["Title"] == "fig"


def test_a_figure_without_fidelity_is_an_error_naming_it(tmp_path):
    from dlperf.report.style import figure
    fig, _ = figure()
    fig.savefig(tmp_path / "bare.pdf")
    with pytest.raises(ValueError, match="bare.pdf: no dlperf fidelity"):
        fidelity.read(tmp_path / "bare.pdf")


def test_device_and_commit_come_from_the_plotted_results_provenance(tmp_path):
    runs = []
    for name, gpu in (("a", "NVIDIA H200"), ("b", "NVIDIA H200"), ("c", None)):
        run = tmp_path / "runs" / name
        run.mkdir(parents=True)
        (run / "epochs.csv").write_text("epoch\n1\n")
        record = {"cpu": "Fixture CPU", "git": {"commit": "abcdef0123456789", "dirty": name == "c"}}
        (run / "provenance.json").write_text(json.dumps(record | ({"gpu": gpu} if gpu else {})))
        runs.append(str(run / "epochs.csv"))
    job = SimpleNamespace(input=runs, params=SimpleNamespace(scale="full"))
    assert len(provenance_files(job.input)) == 3
    assert of_job(job) == Fidelity("full", "NVIDIA H200 and Fixture CPU", "abcdef012345, abcdef012345+dirty")
    own = {"gpu": "NVIDIA H100", "git": {"commit": "0" * 40, "dirty": False}}
    assert of_job(job, own) == Fidelity("full", "NVIDIA H100", "000000000000")


def test_without_provenance_the_fidelity_is_this_machine_and_checkout():
    found = from_records("embedded", [])
    assert found.scale == "embedded" and found.device != "unknown device" and found.commit


def test_the_caption_lines_are_latex_escaped():
    assert render_fidelities({"results/x/a_b.pdf": "scale full; Intel(R) Xeon_8480; commit 1"}).splitlines()[1] == (
        r"\figurefidelity{results/x/a_b.pdf}{scale full; Intel(R) Xeon\_8480; commit 1}")


def test_a_figure_redrawn_by_the_workflow_from_the_same_results_is_byte_identical(embedded_run, tmp_path):
    run = copy_run(embedded_run, tmp_path / "run")
    figure = run / "results/optimus/figures/learning_curves.pdf"
    before = figure.read_bytes()
    rc, out = snakemake("--cores", "1", "--forcerun", "optimus_learning_curves", "--", str(figure.relative_to(run)),
                        cwd=run)
    assert rc == 0, out[-3000:]
    assert figure.read_bytes() == before
    assert fidelity.read(figure).startswith("scale embedded; ")


def test_a_timing_record_says_whether_the_figure_was_measured_alone():
    alone = {"cpu": "Fixture CPU", "git": {"commit": "0" * 40}, "timing": {"alone": True}}
    shared = {**alone, "timing": {"alone": False}}
    assert from_records("embedded", [alone]).text().endswith("; measured alone")
    assert from_records("embedded", [alone, shared]).timing == "measured beside other work"
    assert from_records("embedded", [{k: v for k, v in alone.items() if k != "timing"}]).timing == ""


def test_the_gpu_a_job_held_and_its_packing_are_in_the_fidelity_line():
    record = {"gpu": "NVIDIA H100", "gpu_id": "2", "git": {"commit": "0" * 40}}
    assert from_records("full", [record]).device == "NVIDIA H100 (GPU 2)"
    assert from_records("full", [{**record, "gpu_pack": 4}]).device == "NVIDIA H100 (GPU 2, shared by 4 jobs)"
