"""The compiled report: every number a generated macro, every include a workflow product, no dangling reference.

The report is built by the real rules (report_values, report_pdf) over a small fixture results tree written here,
so these tests need neither a prior run of the workflow nor any training.
"""
import csv
import io
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from dlperf.flops.census import PUBLISHED, census
from dlperf.optimus.speed_model import derive_theta, optimal_workers, steps_needed, time_to_accuracy
from dlperf.report.latex import (
    Latex,
    log_problems,
    macro_name,
    newcommand,
    number_words,
    recorded_inputs,
    render_sections,
)
from dlperf.report.style import figure, save_figure
from dlperf.report.tables import write_table
from dlperf.workflow import lr_label
from report_fixtures_compress import write_compress
from report_fixtures_serve import write_serve
from report_fixtures_ssd import write_ssd

from conftest import FIXTURE_FIDELITY, IGNORED, ROOT, run_snakemake
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


# ---- the report compiled from a fixture results tree ------------------------------------------------------
def write_csv(path: Path, df: pd.DataFrame) -> pd.DataFrame:
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)
    return df


def write_json(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2))


def write_figure(path: Path) -> None:
    fig, ax = figure("single")
    ax.plot([1, 2, 3], [3, 1, 2])
    save_figure(fig, path, FIXTURE_FIDELITY)


def provenance(config: dict, **extra) -> dict:
    return {"config": config, "git": {"commit": "0123456789abcdef0123", "dirty": False},
            "packages": {"python": "3.11.7", "dlperf": "0.1.0", "torch": "2.14.1", "torchvision": "0.29.1",
                         "snakemake": "9.27.1"},
            "device": "cpu", "cpu": "Fixture CPU", "cpu_count": 2, "peak_flops": 4.0e10,
            "start": "2026-01-02T10:00:00+00:00", "end": "2026-01-02T10:05:00+00:00", **extra}


def write_optimus(root: Path, cfg: dict, data: dict) -> None:
    """What the optimus rules write, with the embedded config's runs; the target is predicted to reach its
    accuracy after 3.2 epochs and reaches it after 4, with a prediction error of 12.3 %."""
    o, out = cfg["optimus"], root / "results" / "optimus"
    target, devices, seed = o["target_arch"], o["devices"], o["seeds"][0]
    archs = o["archs"] + [target]
    runs = [f"{arch}-{device}-s{seed}" for arch in archs for device in devices]
    write_json(root / "resources/data/cifar10/provenance.json",
               provenance({"data": {"cifar10": data}}, n_train=5000, n_test=1000, classes=10))
    for run in runs:
        arch, device, _ = run.rsplit("-", 2)
        write_json(out / "runs" / run / "provenance.json", provenance(
            {"arch": arch, "device_label": device, "seed": seed, "train": o["train"], "n_train": o["n_train"],
             "imagenet_width": o["imagenet_width"]}, study="optimus", run=run))
        write_csv(out / "runs" / run / "epochs.csv", pd.DataFrame(
            {"epoch": [1, 2], "train_loss": [2.0, 1.5], "test_loss": [2.1, 1.7], "test_acc": [0.3, 0.4],
             "wall_seconds": [10.0, 20.0]}))
    fits = write_csv(out / "loss_fits.csv", pd.DataFrame([
        {"arch": run.split("-")[0], "depth": int(run.split("-")[0][6:]), "device": run.split("-")[1], "seed": seed,
         "beta0": 0.5 + i / 10, "beta1": 0.4, "beta2": 1.0, "rmse": 0.1, "r2": 0.9 - i / 100, "n_points": 20,
         "status": "ok", "message": "fitted 20 points"} for i, run in enumerate(runs)]))
    write_table(fits.drop(columns=["depth", "n_points", "message"]), out / "tables" / "loss_fits.tex")
    write_csv(out / "beta_regression.csv", pd.DataFrame(
        [{"target": beta, "term": term, "coefficient": 0.1, "r2": 0.8, "rmse": 0.1, "n": len(o["archs"])}
         for beta in ("beta0", "beta1", "beta2") for term in ["depth"] + [f"device[{d}]" for d in devices]]))
    errors = write_csv(out / "prediction_error.csv", pd.DataFrame(
        [{"device": d, "mape_percent": 12.3, "predicted_epochs_to_target": 3.2, "measured_epochs_to_target": 4}
         for d in devices]))
    write_table(errors, out / "tables" / "prediction_error.tex")
    curves = write_csv(out / "learning_curves.csv", pd.DataFrame(
        [{"run": run, "epochs": o["train"]["epochs"], "train_loss": 1.5, "train_acc": 0.45, "test_loss": 1.7,
          "test_acc": 0.40 + i / 100, "images_per_s": 250.0, "wall_seconds": 20.0} for i, run in enumerate(runs)]))
    write_table(curves, out / "tables" / "learning_curves.tex")
    speed = o["speed_model"]
    theta = derive_theta(seconds_per_sample=1 / 250, model_bytes=1.5e6,
                         bandwidth_bytes_per_s=speed["bandwidth_gbit_s"] * 1e9 / 8,
                         step_overhead_s=speed["step_overhead_s"], per_worker_overhead_s=speed["per_worker_overhead_s"],
                         per_ps_overhead_s=speed["per_ps_overhead_s"])
    steps = steps_needed(3.2, o["n_train"], speed["global_batch"])
    tta = write_csv(out / "time_to_accuracy.csv", time_to_accuracy(
        speed["ps"], range(speed["workers"]["min"], speed["workers"]["max"] + 1), theta, speed["global_batch"], steps))
    write_json(out / "theta.json", {"theta": theta, "predicted_epochs_to_target": 3.2, "steps_needed": steps,
                                    "optimum": {str(ps): {"closed_form_w_star": optimal_workers(ps, theta,
                                                                                                speed["global_batch"]),
                                                          "best_w_on_grid": int(df.loc[df.hours_to_target.idxmin()]
                                                                                .workers)}
                                                for ps, df in tta.groupby("ps")}})
    write_json(out / "loss_fits.provenance.json", provenance({"optimus": {"fit": o["fit"]}}))
    write_json(out / "prediction.provenance.json", provenance({"optimus": {
        "target_arch": target, "target_accuracy": o["target_accuracy"], "regression_form": o["regression_form"],
        "fit": o["fit"]}}))
    write_json(out / "time_to_accuracy.provenance.json",
               provenance({"optimus": {"speed_model": speed, "target_arch": target}}))
    for name in ["learning_curves", "loss_fits", "time_to_accuracy"] + [f"resnet50_prediction_{d}" for d in devices]:
        write_figure(out / "figures" / f"{name}.pdf")


def write_flops(root: Path, cfg: dict) -> None:
    """What the flops rules write: per-layer tables, totals, the peak model, timings and training PPP."""
    f, out = cfg["flops"], root / "results" / "flops"
    m = f["measure"]
    write_json(root / "results/devices/peak" / f"{m['device']}.json", {  # first: older than the measurements it feeds
        "device_label": m["device"], "device": "cpu", "device_name": "Fixture CPU", "threads": 2,
        "peak_flops": 4.0e10, "peak_tflops": 0.04, "source": "measured: median of 5 fp32 1024x1024 matmuls"})
    for model in set(f["models"]) | {"vgg16"}:
        layers = write_csv(out / f"{model}_layers.csv", pd.DataFrame([
            {"layer": "features.0", "type": "Conv2d", "input_shape": "1x3x224x224", "output_shape": "1x64x224x224",
             "params": 1792, "macs": 86704128, "flops": 173408256, "share": 0.99},
            {"layer": "classifier.0", "type": "Linear", "input_shape": "1x25088", "output_shape": "1x4096",
             "params": 102764544, "macs": 875823, "flops": 1751646, "share": 0.01}]))
        write_table(layers, out / f"{model}_layers.tex")
    summary = write_csv(out / "summary.csv", pd.DataFrame(
        [{"model": m, "params": 138357544, "gmacs": 15.47026432, "gflops": 30.94052864, "conv_share": 0.992008}
         for m in f["models"]]))
    write_table(summary, out / "tables" / "summary.tex")
    write_table(write_csv(out / "census.csv", census(list(PUBLISHED), 2)), out / "tables" / "census.tex")
    peak_time = write_csv(out / "peak_time.csv", pd.DataFrame(
        [{"model": m, "device": d, "peak_tflops": p, "gflops": 30.9405, "time_ms": 30.9405 / p,
          "images_per_s": 1e3 * p / 30.9405} for m in f["peak_model"]["models"]
         for d, p in f["peak_model"]["peaks_tflops"].items()]))
    write_table(peak_time, out / "tables" / "peak_time.tex")
    rows = [{"model": model, "batch": b, "image_size": m["image_size"], "gflops": 7.9 * b, "forward_ms": 270.0 * b,
             "forward_p10_ms": 260.0 * b, "forward_p90_ms": 300.0 * b, "layer_sum_ms": 250.0 * b, "n_layers": 39,
             "achieved_tflops": 0.029, "peak_tflops": 0.04, "ppp": 0.5 + b / 100}
            for model in m["models"] for b in m["batch_sizes"]]
    timing = write_csv(out / "layer_timing.csv", pd.DataFrame(rows)[
        ["model", "batch", "image_size", "gflops", "forward_ms", "forward_p10_ms", "forward_p90_ms", "layer_sum_ms",
         "n_layers"]])
    write_table(timing, out / "tables" / "layer_timing.tex")
    write_csv(out / "ppp.csv", pd.DataFrame(rows)[["model", "batch", "gflops", "achieved_tflops", "peak_tflops",
                                                   "ppp"]])
    training = write_csv(out / "training_ppp.csv", pd.DataFrame([
        {"study": "optimus", "run": f"resnet20-cpu-s{i}", "device": "Fixture CPU", "gflop_per_step": 31.1,
         "achieved_tflops": 0.02 + i / 100, "peak_tflops": 0.04, "ppp": 0.5 + i / 4} for i in range(2)]))
    write_table(training, out / "tables" / "training_ppp.tex")
    write_json(out / "measure.provenance.json", provenance({"flops": {"measure": m, "flop_per_mac": 2}}))
    write_figure(out / "figures" / "ppp.pdf")


def write_depth(root: Path, cfg: dict) -> None:
    """What the depth rules write: Table 1, the gradient-flow records and the run provenance, for the configured
    grid; VGG-38's first-layer gradient is 1e-14 times its last layer's, BN's 0.01 times."""
    d, out = cfg["depth"], root / "results" / "depth"
    write_json(root / "resources/data/cifar100/provenance.json",
               provenance({"data": {"cifar100": cfg["data"]["cifar100"]}}, n_train=2000, n_test=500, classes=100))
    rows, records = [], []
    for i, run in enumerate(d["runs"]):
        name = f"{run['model']}-lr{lr_label(run['lr'])}-s{d['seed']}"
        write_json(out / "runs" / name / "provenance.json", provenance({"depth": {**d, "run": run}}, run=name))
        rows.append({"model": run["model"], "lr": run["lr"], "params": 85204, "train_loss": 4.6 - i / 10,
                     "train_acc": 1.0 + i, "val_loss": 4.5 - i / 10, "val_acc": 2.0 + i, "test_loss": 4.5,
                     "test_acc": 1.5 + i, "best_epoch": 2})
        first = 1e-14 if run["model"] == "vgg38" else 1e-2
        records += [{"step": 0, "layer": layer, "mean_abs_grad": g, "epoch": 1, "run": name}
                    for layer, g in (("input_conv", first), ("block_0_0", 1e-3), ("logit_linear_layer", 1.0))]
    summary = write_csv(out / "summary.csv", pd.DataFrame(rows))
    write_table(summary, out / "tables" / "summary.tex")
    write_csv(out / "grad_flow.csv", pd.DataFrame(records))
    for name in ("curves", "grad_flow"):
        write_figure(out / "figures" / f"{name}.pdf")


def write_transfer(root: Path, cfg: dict) -> None:
    """What the transfer rules write: dataset description, both sweeps, the backbone comparison and a CPU-only
    timing (so the section takes its no-GPU branch); fine-tuning at lr 0.01 wins with 80 % validation accuracy."""
    t, out = cfg["transfer"], root / "results" / "transfer"
    data = cfg["data"][t["dataset"]]
    write_json(root / "resources/data" / t["dataset"] / "provenance.json",
               provenance({"data": {t["dataset"]: data}}, classes=5))
    classes = write_csv(out / "dataset/classes.csv", pd.DataFrame(
        [{"class": f"class_{500 + c}", "n_train": 40, "n_val": 10, "n_test": 10} for c in range(5)]))
    assert len(classes) == 5
    for name in ("class_distribution", "samples"):
        write_figure(out / "dataset" / f"{name}.pdf")
    backbone = t["backbones"][t["backbone"]]
    finetune_run = f"finetune-{t['backbone']}-lr{lr_label(t['finetune']['lrs'][0])}"
    write_json(out / "runs" / finetune_run / "provenance.json", provenance(
        {"transfer": {"mode": "finetune", "backbone": backbone, "lr": t["finetune"]["lrs"][0],
                      "image_size": t["image_size"], "dataset": t["dataset"], "weights": backbone["weights"]},
         "train": t["finetune"]["train"]}, run=finetune_run))
    write_json(out / "pretrain" / t["backbone"] / "provenance.json", provenance(
        {"transfer": {"backbone": backbone, "pretrain": t["pretrain"], "image_size": t["image_size"]}},
        source_classes=10, metrics={"best_val_acc": 0.62}))
    rows = [{"mode": "finetune", "lr": lr, "best_val_acc": 0.8 if lr == 0.01 else 0.5, "final_test_acc": 0.7,
             "epochs": 6, "train_seconds": 30.0, "device": "Fixture CPU"} for lr in t["finetune"]["lrs"]]
    rows += [{"mode": "feature_extractor", "lr": lr, "best_val_acc": 0.6, "final_test_acc": 0.55, "epochs": 30,
              "train_seconds": 0.3, "device": "Fixture CPU"} for lr in t["feature_extractor"]["lrs"]]
    summary = write_csv(out / "summary.csv", pd.DataFrame(rows))
    write_table(summary, out / "tables" / "summary.tex")
    comparison = t["backbone_comparison"]
    backbones = write_csv(out / "backbones.csv", pd.DataFrame(
        [{"backbone": b, "lr": lr, "val_acc": 0.5, "cache_seconds": 1.0, "train_seconds": 0.2, "device": "Fixture CPU"}
         for b in comparison["backbones"] for lr in comparison["lrs"]]))
    write_table(backbones, out / "tables" / "backbones.tex")
    timing = write_csv(out / "device_timing.csv", pd.DataFrame(
        [{"device": "cpu", "device_name": "Fixture CPU", "mode": mode, "epoch_seconds": s, "images_per_s": 200 / s,
          "one_time_seconds": once, "speedup_vs_uncached": 2.0 / s}
         for mode, s, once in (("finetune", 4.0, 0.0), ("feature_extractor_cached", 0.01, 1.5),
                               ("feature_extractor_uncached", 2.0, 0.0))]))
    write_table(timing, out / "tables" / "device_timing.tex")
    write_json(out / "device_timing.provenance.json", provenance({"transfer": {"timing": t["timing"]}}))
    for name in ("curves_finetune", "curves_feature"):
        write_figure(out / "figures" / f"{name}.pdf")


def snakemake(repo: Path, *args, timeout=240) -> str:
    out = run_snakemake(*args, cwd=repo, timeout=timeout)
    assert out.returncode == 0, (out.stdout + out.stderr)[-5000:]
    return out.stdout


# The report's rules: each study's values rule and the two that gather and compile.
REPORT_RULES = ["report_claims", "report_figures", "report_values", "report_pdf",
                *(f"{s}_values" for s in ("transfer", "flops", "optimus", "depth", "ssd", "serve", "compress"))]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A copy of the workflow with fixture results, and its report built by the report rules alone."""
    repo = tmp_path_factory.mktemp("report") / "repo"
    shutil.copytree(ROOT, repo, ignore=IGNORED)
    cfg = yaml.safe_load((repo / "config" / "config.yaml").read_text())
    write_optimus(repo, cfg, cfg["data"]["cifar10"])
    write_flops(repo, cfg)
    write_depth(repo, cfg)
    write_transfer(repo, cfg)
    write_ssd(repo, cfg)
    write_serve(repo, cfg)
    write_compress(repo, cfg)
    # Only the report's rules may run: the fixture stands in for everything upstream.
    snakemake(repo, "--cores", "1", "--allowed-rules", *REPORT_RULES, "--", REPORT)
    return repo


@needs_latex
def test_the_report_compiles_without_undefined_references_or_missing_files(built):
    assert (built / REPORT).stat().st_size > 10_000
    log = (built / BUILD / "report.log").read_text(errors="replace")
    assert "Output written on" in log
    assert log_problems(log) == []


@needs_latex
def test_the_sections_are_those_of_the_studies_in_the_config(built):
    sections = (built / "results/report/sections.tex").read_text()
    assert [line for line in sections.splitlines() if line.startswith("\\input")] == [
        r"\input{report/sections/transfer}", r"\input{report/sections/flops}", r"\input{report/sections/optimus}",
        r"\input{report/sections/depth}", r"\input{report/sections/ssd}", r"\input{report/sections/serve}",
        r"\input{report/sections/compress}"]


@needs_latex
def test_every_file_the_report_reads_is_an_input_of_report_pdf_and_every_result_is_made_by_a_rule(built):
    """LaTeX's own record of what it read (.fls) against Snakemake's record of the DAG (--detailed-summary)."""
    read = [p.as_posix() for p in recorded_inputs((built / BUILD / "report.fls").read_text(), built)
            if not p.is_relative_to(BUILD)]
    summary = {row["output_file"]: row for row in csv.DictReader(
        io.StringIO(snakemake(built, "--detailed-summary", REPORT)), delimiter="\t")}
    results = [p for p in read if p.startswith("results/")]
    assert {"results/report/values.tex", "results/optimus/figures/loss_fits.pdf",
            "results/flops/tables/summary.tex"} <= set(results)
    assert {p: summary[p]["rule"] for p in results if p not in summary or summary[p]["rule"] == "-"} == {}
    # the report's own sources are inputs by their path in the repository (the working directory may be elsewhere)
    report_inputs = {Path(p).resolve().relative_to(built.resolve()).as_posix() if Path(p).is_absolute() else p
                     for p in summary[REPORT]["input-file(s)"].split(",")}
    assert set(read) - report_inputs == set()


@needs_latex
def test_the_numbers_in_the_text_are_those_of_the_results(built):
    values = (built / "results/report/values.tex").read_text()
    assert r"\newcommand{\OptimusTargetMape}{12.3}" in values
    assert r"\newcommand{\OptimusTargetPredictedEpochs}{3.20}" in values
    assert r"\newcommand{\GitCommit}{0123456789ab}" in values
    assert r"\newcommand{\DepthGradLogRatioVggThirtyEightLrOneEThree}{-14.0}" in values
    assert r"\newcommand{\DepthCourseworkParamsVggThirtyEightBn}{338\,500}" in values
    assert r"\newcommand{\TransferFinetuneBestLr}{0.01}" in values
    assert r"\newcommand{\TransferCpuCacheSpeedup}{200}" in values
    if shutil.which("pdftotext"):
        text = " ".join(subprocess.run(["pdftotext", str(built / REPORT), "-"], capture_output=True, text=True,
                                       check=True).stdout.split())
        assert "error of 12.3 %" in text
        assert "3.20 epochs" in text


@needs_latex
def test_the_embedded_scale_states_under_the_title_that_its_data_are_synthetic(built):
    aux = (built / BUILD / "report.aux").read_text()
    assert r"\newlabel{note:synthetic}" in aux   # the note's label: the embedded branch was typeset
    if shutil.which("pdftotext"):
        first_page = subprocess.run(["pdftotext", "-l", "1", str(built / REPORT), "-"], capture_output=True,
                                    text=True, check=True).stdout
        assert "Synthetic data." in first_page and "scale: embedded" in first_page


@needs_latex
def test_the_full_scale_report_has_no_synthetic_data_note(built, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(built, repo, ignore=shutil.ignore_patterns(".snakemake"))
    shutil.rmtree(repo / "results" / "report")
    snakemake(repo, "--cores", "1", "--allowed-rules", *REPORT_RULES, "--config", "scale=full", "--",
              REPORT)
    assert r"\newcommand{\ReportScale}{full}" in (repo / "results/report/values.tex").read_text()
    assert "note:synthetic" not in (repo / BUILD / "report.aux").read_text()


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
