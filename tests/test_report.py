"""The compiled report: every number a generated macro, every include a workflow product, no dangling reference.

The report read here is the one the shared run of the embedded default built (conftest's ``embedded_run``); a report
at another scale is rebuilt by the report's own rules in a copy of that run.
"""
import csv
import io
import math
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dlperf.depth.values import base_lr
from dlperf.report.latex import (
    Latex,
    log_problems,
    macro_name,
    newcommand,
    number_words,
    recorded_inputs,
    render_sections,
)
from dlperf.report.values import fixed, plain, significant
from dlperf.workflow import lr_label

from conftest import copy_run, run_snakemake
REPORT = "results/report/report.pdf"
BUILD = Path("results/report/build")

needs_latex = pytest.mark.skipif(shutil.which("latexmk") is None, reason="latexmk not installed")


# ---- macro names, values and log checks ---------------------------------------------------------------------
def test_macro_names_are_letters_only_with_digit_runs_spelled_out():
    assert macro_name("flops", "gmacs", "vgg16") == "FlopsGmacsVggSixteen"
    assert macro_name("flops", "conv_share", "vgg16") == "FlopsConvShareVggSixteen"
    assert macro_name("optimus", "WStar", "p", 2) == "OptimusWStarPTwo"
    assert macro_name("TargetMape", "k80") == "TargetMapeKEighty"
    assert [number_words(n) for n in (0, 19, 50, 100, 1024)] == [
        "Zero", "Nineteen", "Fifty", "OneHundred", "OneThousandTwentyFour"]


def test_a_macro_is_written_escaped_unless_it_is_already_latex():
    assert newcommand("FlopsPeakSource", "2n^3 FLOPs, 100%") == (
        r"\newcommand{\FlopsPeakSource}{2n\textasciicircum{}3 FLOPs, 100\%}")
    assert newcommand("OptimusStepsNeeded", Latex(r"$\infty$")) == r"\newcommand{\OptimusStepsNeeded}{$\infty$}"
    with pytest.raises(ValueError, match="control word"):
        newcommand("Flops2", "1")


def test_the_section_list_inputs_each_study_file_in_order():
    text = render_sections(["report/sections/optimus.tex", "report/sections/flops.tex"])
    assert text.splitlines()[1:] == [r"\input{report/sections/optimus}", r"\input{report/sections/flops}"]


def test_the_log_check_reports_undefined_references_and_missing_files():
    log = "\n".join([
        "LaTeX Warning: Reference `fig:gone' on page 2 undefined on input line 40.",
        "LaTeX Warning: Citation `peng2018' on page 1 undefined on input line 12.",
        "LaTeX Warning: There were undefined references.",
        "! LaTeX Error: File `results/optimus/tables/missing.tex' not found.",
        "No file report.bbl.",
        "LaTeX Font Info:    Trying to load font information for T1+lmr on input line 9.",
    ])
    assert len(log_problems(log)) == 5
    assert log_problems("Output written on report.pdf (4 pages, 300000 bytes).") == []


# ---- the report of the embedded run --------------------------------------------------------------------------
def snakemake(repo: Path, *args, timeout=240) -> str:
    out = run_snakemake(*args, cwd=repo, timeout=timeout)
    assert out.returncode == 0, (out.stdout + out.stderr)[-5000:]
    return out.stdout


# The rules that gather the studies' values and compile them: a report at another scale reruns only these.
REPORT_RULES = ["report_claims", "report_figures", "report_values", "report_pdf"]


def macros(run: Path) -> dict[str, str]:
    """results/report/values.tex as {macro name: the text it stands for}."""
    text = (run / "results/report/values.tex").read_text()
    return dict(re.findall(r"^\\newcommand\{\\(\w+)\}\{(.*)\}$", text, re.M))


@needs_latex
def test_the_report_compiles_without_undefined_references_or_missing_files(embedded_run):
    assert (embedded_run / REPORT).stat().st_size > 10_000
    log = (embedded_run / BUILD / "report.log").read_text(errors="replace")
    assert "Output written on" in log
    assert log_problems(log) == []


@needs_latex
def test_the_sections_are_those_of_the_studies_in_the_config(embedded_run):
    sections = (embedded_run / "results/report/sections.tex").read_text()
    assert [line for line in sections.splitlines() if line.startswith("\\input")] == [
        r"\input{report/sections/transfer}", r"\input{report/sections/flops}", r"\input{report/sections/optimus}",
        r"\input{report/sections/depth}", r"\input{report/sections/ssd}", r"\input{report/sections/serve}",
        r"\input{report/sections/compress}"]


@needs_latex
def test_every_file_the_report_reads_is_an_input_of_report_pdf_and_every_result_is_made_by_a_rule(embedded_run):
    """LaTeX's own record of what it read (.fls) against Snakemake's record of the DAG (--detailed-summary)."""
    read = [p.as_posix() for p in recorded_inputs((embedded_run / BUILD / "report.fls").read_text(), embedded_run)
            if not p.is_relative_to(BUILD)]
    summary = {row["output_file"]: row for row in csv.DictReader(
        io.StringIO(snakemake(embedded_run, "--detailed-summary", REPORT)), delimiter="\t")}
    results = [p for p in read if p.startswith("results/")]
    assert {"results/report/values.tex", "results/optimus/figures/loss_fits.pdf",
            "results/flops/tables/summary.tex"} <= set(results)
    assert {p: summary[p]["rule"] for p in results if p not in summary or summary[p]["rule"] == "-"} == {}
    # the report's own sources are inputs by their path in the repository (the working directory may be elsewhere);
    # the dlperf modules the rule's script imports (render_code) by theirs, wherever the package is installed
    def relative(p):
        path = Path(p).resolve()
        return path.relative_to(embedded_run.resolve()).as_posix() if path.is_relative_to(embedded_run.resolve()) \
            else p
    report_inputs = {relative(p) if Path(p).is_absolute() else p for p in summary[REPORT]["input-file(s)"].split(",")}
    assert set(read) - report_inputs == set()


@needs_latex
def test_the_numbers_in_the_text_are_those_of_the_results(embedded_run):
    results, values = embedded_run / "results", macros(embedded_run)
    errors = pd.read_csv(results / "optimus/prediction_error.csv").set_index("device")
    mape = fixed(errors.loc[values["OptimusPredictionDevice"], "mape_percent"], 1)
    assert values["OptimusTargetMape"] == mape
    # plain VGG-38's first-layer gradient against its last layer's, in the first recorded epoch
    flow = pd.read_csv(results / "depth/grad_flow.csv")
    base = base_lr(pd.read_csv(results / "depth/summary.csv"))
    run = flow[flow.run == f"vgg38-lr{lr_label(base)}-s0"]
    per_layer = run[run.epoch == run.epoch.min()].groupby("layer", sort=False).mean_abs_grad.mean()
    assert values["DepthGradLogRatioVggThirtyEight"] == fixed(
        math.log10(per_layer.iloc[0] / per_layer.iloc[-1]), 1)
    assert values["DepthCourseworkParamsVggThirtyEightBn"] == r"338\,500"  # at the coursework's 32 filters
    summary = pd.read_csv(results / "transfer/summary.csv")
    finetune = summary[summary["mode"] == "finetune"]
    assert values["TransferFinetuneBestLr"] == plain(finetune.lr[finetune.best_val_acc.idxmax()])
    timing = pd.read_csv(results / "transfer/device_timing.csv").set_index(["device", "mode"])
    assert values["TransferCpuCacheSpeedup"] == significant(
        timing.loc[("cpu", "feature_extractor_cached"), "speedup_vs_uncached"])
    if shutil.which("pdftotext"):
        text = " ".join(subprocess.run(["pdftotext", str(embedded_run / REPORT), "-"], capture_output=True,
                                       text=True, check=True).stdout.split())
        assert f"error of {mape} %" in text


@needs_latex
def test_the_embedded_scale_states_under_the_title_that_its_data_are_synthetic(embedded_run):
    aux = (embedded_run / BUILD / "report.aux").read_text()
    assert r"\newlabel{note:synthetic}" in aux   # the note's label: the embedded branch was typeset
    if shutil.which("pdftotext"):
        first_page = subprocess.run(["pdftotext", "-l", "1", str(embedded_run / REPORT), "-"], capture_output=True,
                                    text=True, check=True).stdout
        assert "Synthetic data." in first_page and "scale: embedded" in first_page


@needs_latex
def test_the_full_scale_report_has_no_synthetic_data_note(embedded_run, tmp_path):
    run = copy_run(embedded_run, tmp_path / "run")
    snakemake(run, "--cores", "1", "--allowed-rules", *REPORT_RULES, "--config", "scale=full", "--", REPORT)
    assert r"\newcommand{\ReportScale}{full}" in (run / "results/report/values.tex").read_text()
    assert "note:synthetic" not in (run / BUILD / "report.aux").read_text()


# ---- figures and wording at full run counts (found by the rehearsal) -------------------------------------------
def test_learning_curves_of_eighteen_runs_have_eighteen_colours_and_a_log_axis_when_one_diverges():
    from dlperf.report.figures import learning_curves

    runs = {f"run{i:02d}": pd.DataFrame({"epoch": [1, 2], "train_loss": [2.3, 2.0], "train_acc": [0.1, 0.2],
                                         "test_loss": [2.4, 1e9 if i == 0 else 2.1], "test_acc": [0.1, 0.2]})
            for i in range(18)}
    fig = learning_curves(runs)
    ax_loss = fig.axes[0]
    assert len({line.get_color() if isinstance(line.get_color(), str) else tuple(line.get_color())
                for line in ax_loss.get_lines()}) == 18
    assert ax_loss.get_yscale() == "log"


def test_the_time_to_accuracy_figure_spans_the_worker_grid_when_the_target_is_never_reached():
    from dlperf.optimus.figures import time_to_accuracy

    tta = pd.DataFrame({"ps": [2] * 32, "workers": range(1, 33), "steps_per_s": 1.0, "hours_to_target": np.inf})
    theta = {"theta0": 0.25, "theta1": 0.005, "theta2": 0.15, "theta3": 0.002, "theta4": 0.001}
    ax = time_to_accuracy(tta, theta, 128, 0.92).axes[0]
    assert ax.get_xlim() == (0.5, 32.5)
    assert any("not reached" in text.get_text() for text in ax.texts)
