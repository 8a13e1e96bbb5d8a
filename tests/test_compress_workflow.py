"""The compress study as the workflow runs it: the full config's DAG, and a real small run of every compress rule
(the SSD's quantization included, on stand-ins for the SSD study's files) in a scratch copy of the workflow."""
import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from conftest import job_counts, load_config, scratch_copy, snakemake, write_config

TARGETS = ["results/compress/summary.csv", "results/compress/tables/summary.tex",
           "results/compress/figures/accuracy_sparsity.pdf", "results/compress/figures/size_accuracy.pdf"]
SSD_INPUTS = ["results/serve/onnx/ssd.onnx", "results/ssd/finetune/labels.txt", "resources/data/openimages"]


def test_the_full_config_builds_the_compress_dag_without_any_data():
    rc, text = snakemake("-n", "--configfile", "config/full.yaml", "--", *TARGETS)
    assert rc == 0, text[-3000:]
    counts = job_counts(text)
    assert counts["compress_prune"] == 7 and counts["compress_distill"] == 2   # seven sparsities, the control 0 included; kd and labels
    assert counts["optimus_train"] == 2          # the ResNet-20 and ResNet-56 runs reused, on the v100 label
    assert counts["compress_quantize_ssd"] == 1   # the SSD study's detector is quantized too
    assert "results/optimus/runs/resnet56-v100-s0/checkpoint.pt" in text


def small_config(cfg: dict) -> dict:
    """The embedded default, smaller: ResNet-8 compressed, a ResNet-20 teacher, every run a few steps."""
    cfg["data"]["cifar10"] = {"source": "synthetic", "synthetic": {"n_train": 500, "n_test": 200, "noise": 0.4,
                                                                      "seed": 10}}
    cfg["threads"] = 1
    cfg["optimus"]["n_train"] = 256
    cfg["optimus"]["train"]["epochs"] = 2
    c = cfg["compress"]
    c["arch"] = "resnet8"
    c["latency"] = {"batch_sizes": [1, 4], "warmup": 1, "repeats": 3}
    c["prune"]["sparsities"] = [0, 0.9]
    c["prune"]["n_train"] = 128
    c["quantize"].update(calibration_images=64, ssd=True, ssd_calibration_images=2, ssd_op_types=["Conv"])
    c["share"]["clusters"] = [4, 16]
    c["distill"].update(teacher="resnet20", student="resnet8", n_train=128)
    c["distill"]["train"]["epochs"] = 1
    return cfg


def write_ssd_standins(repo: Path) -> None:
    """What the SSD study hands over, made here: a random-init small MobileNetV1-SSD exported to ONNX, its labels
    file and an Open Images root with the class subsets written."""
    from dlperf.data.openimages import write_subset
    from dlperf.data.synthetic_detection import synthesize_openimages
    from dlperf.models.mobilenet_ssd import mobilenet_v1_ssd

    root = synthesize_openimages(repo / "resources/data/openimages", n_train=2, n_validation=1, n_test=3, size=96,
                                 seed=0)
    for split in ("train", "validation", "test"):
        write_subset(root, split, ["Handgun", "Shotgun"])
    labels = repo / "results/ssd/finetune/labels.txt"
    labels.parent.mkdir(parents=True)
    labels.write_text("BACKGROUND\nHandgun\nShotgun\n")
    torch.manual_seed(0)
    ssd = mobilenet_v1_ssd(3, width_mult=0.25, image_size=96, is_test=True).eval()
    onnx_path = repo / "results/serve/onnx/ssd.onnx"
    onnx_path.parent.mkdir(parents=True)
    torch.onnx.export(ssd, (torch.randn(1, 3, 96, 96),), dynamo=True, input_names=["input"],
                      output_names=["scores", "boxes"], external_data=False).save(str(onnx_path))


@pytest.mark.slow
def test_the_compress_rules_run_on_a_small_config_and_a_rerun_does_nothing(tmp_path):
    repo = scratch_copy(tmp_path / "repo")
    write_config(repo / "config" / "config.yaml", small_config(load_config(root=repo)), sort_keys=False)
    write_ssd_standins(repo)

    rc, text = snakemake("--cores", "1", "--", *TARGETS, cwd=repo)
    assert rc == 0, text[-5000:]
    out = repo / "results" / "compress"
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary.columns) == ["method", "setting", "size_bytes", "nonzero_params", "metric", "metric_value",
                                     "latency_ms", "speedup"]
    assert summary.method.value_counts().to_dict() == {
        "baseline": 4, "quantize_dynamic": 2, "quantize_static": 2, "prune": 2, "prune_retrain": 2, "share": 2,
        "distill": 2}
    assert set(summary[summary.setting.str.startswith("SSD")].metric) == {"mAP"}
    assert (summary.latency_ms > 0).all() and (summary.speedup > 0).all()
    assert summary.metric_value.between(0, 1).all()

    pruning = pd.read_csv(out / "pruning.csv").set_index("sparsity")
    prunable = pruning.prunable_weights.iloc[0]
    assert pruning.loc[0.9, "pruned_weights"] == round(0.9 * prunable) and pruning.loc[0.0, "pruned_weights"] == 0
    assert pruning.loc[0.9, "size_bytes"] < pruning.loc[0.9, "dense_size_bytes"]
    classifier = pd.read_csv(out / "quantize" / "classifier.csv").set_index("variant")
    assert classifier.loc["ort_fp32", "max_abs_diff"] < 1e-3
    assert classifier.loc["ort_int8_static", "size_bytes"] < 0.5 * classifier.loc["ort_fp32", "size_bytes"]
    sharing = pd.read_csv(out / "share" / "sharing.csv").set_index("clusters")
    assert sharing.loc[4, "ratio"] > sharing.loc[16, "ratio"] > 1
    distill = pd.read_csv(out / "distill.csv")
    assert list(distill.role) == ["teacher", "student", "student"] and list(distill["mode"].fillna("")) == [
        "", "labels", "kd"]
    for run in ("prune/resnet8-cpu-s0-sp0.9", "distill/resnet8-kd-cpu-s0"):
        epochs = pd.read_csv(out / run / "epochs.csv")
        assert {"gflop_per_step", "achieved_tflops", "ppp"} <= set(epochs.columns)   # what training_ppp reads
        provenance = json.loads((out / run / "provenance.json").read_text())
        assert provenance["study"] == "compress" and provenance["peak_flops"] > 0
    kd = json.loads((out / "distill/resnet8-kd-cpu-s0/provenance.json").read_text())
    assert kd["config"]["compress"]["soft_targets"] == {"teacher": "resnet20", "temperature": 4.0, "alpha": 0.9}
    for figure in ("accuracy_sparsity", "size_accuracy"):
        assert (out / "figures" / f"{figure}.pdf").stat().st_size > 1000
        assert (out / "figures" / f"{figure}.png").stat().st_size > 1000

    rc, text = snakemake("--cores", "1", "--", *TARGETS, cwd=repo)
    assert rc == 0 and "Nothing to be done" in text, text[-2000:]


def test_an_undeclared_compress_device_label_is_rejected_naming_it(tmp_path):
    cfg = load_config()
    cfg["compress"]["device"] = "a100"
    path = write_config(tmp_path / "bad.yaml", cfg)
    rc, text = snakemake("-n", "--configfile", str(path), "--", *TARGETS)
    assert rc != 0 and "compress.device: unknown device label(s) 'a100'" in text, text[-2000:]
