"""The workflow as a user runs it: dry runs of both configs, lint, and the embedded default end to end."""
import json
import re
import math

import pandas as pd
import pytest

from dlperf.compress import plan as compress_plan
from dlperf.depth.values import base_lr
from dlperf.workflow import lr_label

from conftest import job_counts, load_config, snakemake, write_config


def test_the_default_config_builds_its_dag(default_plan):
    rc, text = default_plan
    assert rc == 0, text


def test_the_full_config_builds_its_whole_dag_without_any_data(full_plan):
    rc, text = full_plan
    assert rc == 0, text
    assert "data_download" in text and "optimus_train" in text
    # 5 regression archs + the target, on 3 GPU types: the default's cpu label is not merged in
    assert job_counts(text)["optimus_train"] == 18
    assert "device=cpu" not in text


def test_the_full_config_dry_runs_through_the_kubernetes_profile_without_a_cluster():
    """The cloud profile: pods, a shared volume as fs storage, GPU node pools per device label."""
    rc, text = snakemake("-n", "--profile", "profiles/kubernetes", "--configfile", "config/full.yaml", timeout=300)
    assert rc == 0, text[-3000:]
    assert "/mnt/dlperf/results/report/report.pdf (in storage)" in text
    assert "machine_type=gpu-v100" in text


def test_the_dag_builds_with_several_device_labels_and_depths(tmp_path):
    cfg = load_config()
    cfg["optimus"]["archs"] = ["resnet20", "resnet32", "resnet44"]
    cfg["devices"] = {"cpu": {"accelerator": "cpu"}, "p100": {"accelerator": "cuda"}}
    cfg["optimus"]["devices"] = ["cpu", "p100"]
    path = write_config(tmp_path / "two-devices.yaml", cfg)
    rc, text = snakemake("-n", "--configfile", str(path), timeout=300)
    assert rc == 0, text
    # 4 archs x 2 labels, and the ResNet-56 the compression study distils from (no longer a regression arch)
    assert re.search(r"^optimus_train\s+9$", text, re.M), text[-3000:]
    assert "resnet50_prediction_p100.pdf" in text


def test_an_undeclared_device_label_is_rejected_naming_it(tmp_path):
    cfg = load_config()
    cfg["optimus"]["devices"] = ["cpu", "a100"]
    path = write_config(tmp_path / "unknown-label.yaml", cfg)
    rc, text = snakemake("-n", "--configfile", str(path), timeout=300)
    assert rc != 0
    assert "optimus.devices: unknown device label(s) 'a100'; declared under `devices`: cpu" in text


def test_lint_finds_nothing():
    rc, text = snakemake("--lint", timeout=300)
    assert rc == 0, text


@pytest.mark.slow
def test_the_embedded_default_runs_end_to_end_and_a_rerun_does_nothing(embedded_run):
    work = embedded_run  # a scratch copy in which `snakemake --cores 2` ran end to end, rc 0 (conftest)

    results = work / "results"
    fits = pd.read_csv(results / "optimus" / "loss_fits.csv")
    assert list(fits.columns[:11]) == ["arch", "depth", "device", "seed", "beta0", "beta1", "beta2", "rmse", "r2",
                                       "n_points", "status"]
    assert (fits[fits.status == "ok"][["beta0", "beta1", "beta2"]] >= 0).all().all()
    assert list(pd.read_csv(results / "optimus" / "resnet50_prediction.csv").columns) == [
        "device", "epoch", "predicted_loss", "measured_loss"]
    assert list(pd.read_csv(results / "optimus" / "prediction_error.csv").columns) == [
        "device", "mape_percent", "predicted_epochs_to_target", "measured_epochs_to_target"]
    assert list(pd.read_csv(results / "optimus" / "time_to_accuracy.csv").columns) == [
        "ps", "workers", "steps_per_s", "hours_to_target"]
    for fig in ["learning_curves", "loss_fits", "time_to_accuracy", "resnet50_prediction_cpu"]:
        assert (results / "optimus" / "figures" / f"{fig}.pdf").stat().st_size > 1000
        assert (results / "optimus" / "figures" / f"{fig}.png").stat().st_size > 1000

    run = results / "optimus" / "runs" / "resnet20-cpu-s0"
    epochs = pd.read_csv(run / "epochs.csv")
    assert epochs.test_acc.iloc[-1] > 0.25, "ResNet-20 must end well above chance (0.1) on synthetic CIFAR-10"
    assert {"gflop_per_step", "achieved_tflops"} <= set(epochs.columns)
    provenance = json.loads((run / "provenance.json").read_text())
    assert {"config", "git", "packages", "host", "device", "start", "end", "wall_seconds"} <= set(provenance)
    assert provenance["packages"]["torch"].startswith("2.14")

    flops = results / "flops"
    summary = pd.read_csv(flops / "summary.csv")
    assert list(summary.columns) == ["model", "params", "gmacs", "gflops", "conv_share"]
    assert summary.set_index("model").loc["vgg16", "gmacs"] == pytest.approx(15.47, rel=0.01)
    for model in ["vgg16", "vgg19", "googlenet", "resnet50"]:
        assert (flops / f"{model}_layers.csv").exists() and (flops / f"{model}_layers.tex").exists()
    assert "all conv layers" in (flops / "vgg19_layers.tex").read_text()
    assert set(pd.read_csv(flops / "peak_time.csv").model) == {"vgg16", "googlenet", "resnet50"}
    assert {"forward_ms", "layer_sum_ms"} <= set(pd.read_csv(flops / "layer_timing.csv").columns)
    ppp = pd.read_csv(flops / "training_ppp.csv")
    assert list(ppp.columns) == ["study", "run", "device", "gflop_per_step", "achieved_tflops", "peak_tflops", "ppp"]
    # every training run of the workflow
    cfg = load_config()
    depth_runs = len(cfg["depth"]["runs"])
    # compress: each pruned model, both distillation students, each QAT variant and Deep Compression's centroids
    compress_runs = len(compress_plan.prune_runs(cfg["compress"]) + compress_plan.distill_runs(cfg["compress"])
                        + compress_plan.qat_runs(cfg["compress"])) + 1
    assert ppp.study.value_counts().to_dict() == {"depth": depth_runs, "optimus": 4, "transfer": 5,
                                                  "compress": compress_runs}
    assert (ppp.ppp > 0).all()
    assert "ppp" in pd.read_csv(run / "epochs.csv").columns

    check_depth_results(results / "depth")
    check_transfer_results(work, results / "transfer")
    assert (results / "report" / "report.pdf").stat().st_size > 10_000
    rc, text = snakemake("--report", "results/report/report.html", cwd=work, timeout=300)
    assert rc == 0 and "Report created" in text, text[-2000:]
    assert (results / "report" / "report.html").stat().st_size > 100_000

    rc, text = snakemake("--cores", "2", cwd=work, timeout=300)
    assert rc == 0 and "Nothing to be done" in text, text[-2000:]


def check_depth_results(depth):
    """The coursework's Table 1 layout, and the pathology: plain VGG_38 stays at chance, BatchNorm trains."""
    summary = pd.read_csv(depth / "summary.csv")
    assert list(summary.columns[:9]) == ["model", "lr", "params", "train_loss", "train_acc", "val_loss", "val_acc",
                                         "test_loss", "test_acc"]
    rows = summary.set_index(["model", "lr"])
    chance = math.log(100)
    base = base_lr(summary)   # the rate every variant runs at: the coursework's 1e-3, 3e-3 in the embedded grid
    assert rows.loc[("vgg38", base), "train_loss"] == pytest.approx(chance, abs=0.05)
    # The table's row is the epoch of best validation accuracy, which on 250 images of 100 classes is a matter of a
    # few images; the curves show what trains: plain VGG-38 never leaves chance, every repaired variant does.
    curves = {run.name: pd.read_csv(run / "epochs.csv") for run in (depth / "runs").iterdir()}
    run = {model: f"{model}-lr{lr_label(base)}-s0" for model in summary.model[summary.lr == base]}
    assert (curves[run["vgg38"]].train_loss - chance).abs().max() < 0.05
    for name in curves:   # every repaired run of the grid, at any rate, leaves chance
        if name.startswith(("vgg38_bn", "vgg38_rc")):
            assert curves[name].val_loss.min() < chance - 0.2, (name, curves[name].val_loss.tolist())
    flow = pd.read_csv(depth / "grad_flow.csv")
    first_and_last = flow[flow.run == run["vgg38"]].groupby("layer", sort=False).mean_abs_grad.mean()
    assert first_and_last.iloc[0] < 1e-6 * first_and_last.iloc[-1]


def check_transfer_results(work, transfer):
    """The contract files of the transfer study, the description against the files on disk, learning above chance."""
    classes = pd.read_csv(transfer / "dataset" / "classes.csv")
    assert list(classes.columns) == ["class", "n_train", "n_val", "n_test"]
    for row in classes.itertuples():
        for split in ("train", "val", "test"):
            on_disk = len(list((work / "resources/data/decathlon" / split / row[1]).glob("*.png")))
            assert getattr(row, f"n_{split}") == on_disk
    summary = pd.read_csv(transfer / "summary.csv")
    assert list(summary.columns) == ["mode", "lr", "best_val_acc", "final_test_acc", "epochs", "train_seconds",
                                     "device", "chance_acc"]
    assert (summary.chance_acc == 1 / 5).all()   # five synthetic target classes
    assert summary["mode"].value_counts().to_dict() == {"finetune": 3, "feature_extractor": 4}
    assert summary.best_val_acc.max() > 1.5 / len(classes), "the best transfer run must end well above chance"
    backbones = pd.read_csv(transfer / "backbones.csv")
    assert list(backbones.columns) == ["backbone", "lr", "val_acc", "cache_seconds", "train_seconds", "device"]
    assert set(backbones.backbone) == {"resnet50", "mobilenet_v2"} and set(backbones.lr) == {0.1, 0.005, 1.0}
    timing = pd.read_csv(transfer / "device_timing.csv").set_index(["device", "mode"])
    cpu = timing.loc["cpu"]
    assert set(cpu.index) == {"finetune", "feature_extractor_cached", "feature_extractor_uncached"}
    assert cpu.loc["feature_extractor_cached", "epoch_seconds"] < cpu.loc["feature_extractor_uncached", "epoch_seconds"]
    for name in ("class_distribution", "samples"):
        assert (transfer / "dataset" / f"{name}.pdf").stat().st_size > 1000


def test_no_job_ran_beside_a_timing_job_and_each_says_it_measured_alone(embedded_run):
    """Snakemake's own log of the embedded run: a job whose outputs are times or rates overlapped no other job."""
    from dlperf.report.benchmarks import job_intervals, overlaps
    from dlperf.timing import TIMING_RULES

    logs = sorted((embedded_run / ".snakemake" / "log").glob("*.snakemake.log"))
    intervals = [iv for log in logs for iv in job_intervals(log)]
    ran = {iv.rule for iv in intervals}
    assert set(TIMING_RULES) <= ran, set(TIMING_RULES) - ran
    assert not overlaps(intervals, TIMING_RULES), [(a.rule, b.rule) for a, b in overlaps(intervals, TIMING_RULES)]
    for path in ["results/devices/peak/cpu.json", "results/flops/measure.provenance.json",
                 "results/compress/quantize/provenance.json"]:
        record = json.loads((embedded_run / path).read_text())["timing"]
        assert record["threads"] == 1 and record["busy_cores"] is not None, (path, record)
        assert record["alone"] and record["other_cores"] <= 0.5, (path, record)
