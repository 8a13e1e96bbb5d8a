"""The compress study as the workflow runs it: the full config's DAG, and the files of every compress rule (the SSD's
quantization included) in the shared run of the embedded default."""
import json
import re

import numpy as np
import pandas as pd

from conftest import job_counts, load_config, snakemake, write_config
from dlperf.compress import plan as compress_plan

TARGETS = ["results/compress/summary.csv", "results/compress/tables/summary.tex",
           "results/compress/figures/accuracy_sparsity.pdf", "results/compress/figures/size_accuracy.pdf"]


def test_the_full_config_builds_the_compress_dag_without_any_data(full_plan):
    rc, text = full_plan
    assert rc == 0, text[-3000:]
    counts = job_counts(text)
    # seven sparsities, the control 0 included, and Deep Compression's other networks at its 0.9; kd and labels
    assert counts["compress_prune"] == 7 + 2 and counts["compress_distill"] == 2
    assert counts["compress_quantize_ssd"] == 1   # the SSD study's detector is quantized too
    # the ResNet-20, -32 and -56 runs of the Optimus study reused, on the v100 label
    read = {path for rule, inputs in re.findall(r"^(?:local)?rule (\w+):\n    input: (.*)$", text, re.M)
            if rule.startswith("compress_") for path in inputs.split(", ")}
    assert {path.split("/")[3] for path in read if path.startswith("results/optimus/runs/")} == {
        "resnet20-v100-s0", "resnet32-v100-s0", "resnet56-v100-s0"}
    assert "results/optimus/runs/resnet56-v100-s0/checkpoint.pt" in read


def test_the_compress_rules_write_the_contract_files_in_the_embedded_run(embedded_run):
    c = load_config(root=embedded_run)["compress"]
    out = embedded_run / "results" / "compress"
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary.columns) == ["method", "setting", "size_bytes", "nonzero_params", "metric", "metric_value",
                                     "latency_ms", "speedup"]
    # baselines: the classifier in PyTorch and onnxruntime, the teacher, the SSD in onnxruntime
    sparsities, clusters = c["prune"]["sparsities"], c["share"]["clusters"]
    assert summary.method.value_counts().to_dict() == {
        "baseline": 4, "quantize_dynamic": 2, "quantize_static": 2, "prune": len(sparsities),
        "prune_retrain": len(sparsities), "share": len(clusters), "distill": 2, "deep_pruned": 1, "deep_shared": 1,
        "deep_huffman": 1, "qat": 1, "ptq_weight_only": 1, "qat_weight_only": 1}
    assert set(summary[summary.setting.str.startswith("SSD")].metric) == {"mAP"}
    timed = summary[~summary.method.str.startswith("deep_")]   # Deep Compression's files are decoded to run
    assert (timed.latency_ms > 0).all() and (timed.speedup > 0).all()
    assert summary.metric_value.between(0, 1).all()

    pruning = pd.read_csv(out / "pruning.csv").set_index("sparsity")
    prunable, most = pruning.prunable_weights.iloc[0], max(sparsities)
    assert pruning.loc[most, "pruned_weights"] == round(most * prunable) and pruning.loc[0.0, "pruned_weights"] == 0
    assert pruning.loc[most, "size_bytes"] < pruning.loc[most, "dense_size_bytes"]
    classifier = pd.read_csv(out / "quantize" / "classifier.csv").set_index("variant")
    assert classifier.loc["ort_fp32", "max_abs_diff"] < 1e-3
    assert classifier.loc["ort_int8_static", "size_bytes"] < 0.5 * classifier.loc["ort_fp32", "size_bytes"]
    sharing = pd.read_csv(out / "share" / "sharing.csv").set_index("clusters")
    assert sharing.loc[min(clusters), "ratio"] > sharing.loc[max(clusters), "ratio"] > 1
    distill = pd.read_csv(out / "distill.csv")
    assert list(distill.role) == ["teacher", "student", "student"] and list(distill["mode"].fillna("")) == [
        "", "labels", "kd"]
    most_pruned = compress_plan.prune_runs(c)[sparsities.index(most)]
    kd_run = compress_plan.distill_runs(c)[compress_plan.MODES.index("kd")]
    for run in (most_pruned, kd_run):
        epochs = pd.read_csv(embedded_run / run / "epochs.csv")
        assert {"gflop_per_step", "achieved_tflops", "ppp"} <= set(epochs.columns)   # what training_ppp reads
        provenance = json.loads((embedded_run / run / "provenance.json").read_text())
        assert provenance["study"] == "compress" and provenance["peak_flops"] > 0
    kd = json.loads((embedded_run / kd_run / "provenance.json").read_text())
    assert kd["config"]["compress"]["soft_targets"] == {
        "teacher": c["distill"]["teacher"], "temperature": c["distill"]["temperature"], "alpha": c["distill"]["alpha"]}
    for figure in ("accuracy_sparsity", "size_accuracy"):
        assert (out / "figures" / f"{figure}.pdf").stat().st_size > 1000
        assert (out / "figures" / f"{figure}.png").stat().st_size > 1000


def test_an_undeclared_compress_device_label_is_rejected_naming_it(tmp_path):
    cfg = load_config()
    cfg["compress"]["device"] = "a100"
    path = write_config(tmp_path / "bad.yaml", cfg)
    rc, text = snakemake("-n", "--configfile", str(path), "--", *TARGETS)
    assert rc != 0 and "compress.device: unknown device label(s) 'a100'" in text, text[-2000:]


def test_deep_compression_stages_shrink_on_disk_and_report_the_decoded_models_accuracy(embedded_run):
    c = load_config(root=embedded_run)["compress"]
    deep = embedded_run / compress_plan.DEEP
    stages = pd.read_csv(deep / "stages.csv").set_index("stage")
    assert list(stages.index) == ["dense", "pruned", "shared", "huffman"]
    files = {"dense": deep / "dense.pt", **{s: deep / f"{s}.dlpf" for s in ("pruned", "shared", "huffman")}}
    for stage, path in files.items():
        assert stages.loc[stage, "size_bytes"] == path.stat().st_size   # measured on disk, not computed
    assert stages.size_bytes.is_monotonic_decreasing and stages.size_bytes.is_unique
    assert np.allclose(stages.ratio, stages.loc["dense", "size_bytes"] / stages.size_bytes, rtol=1e-12, atol=0)
    assert (stages.loc[["shared", "huffman"], "conv_bits"] == c["deep"]["bits"]["conv"]).all()
    assert stages.loc["shared", "top1"] == stages.loc["huffman", "top1"]   # Huffman coding is lossless
    for stage in ("pruned", "shared", "huffman"):   # each script decoded its file and checked it against memory
        assert json.loads((deep / f"{stage}.json").read_text())["top1"] == stages.loc[stage, "top1"]


def test_qat_sits_beside_ptq_at_the_same_bit_widths_and_runs_in_onnxruntime(embedded_run):
    c = load_config(root=embedded_run)["compress"]
    qat = pd.read_csv(embedded_run / "results/compress/qat/classifier.csv").set_index("method")
    assert set(qat.index) == {"baseline", "quantize_static", "qat", "ptq_weight_only", "qat_weight_only"}
    assert qat.loc["qat", "weight_bits"] == qat.loc["quantize_static", "weight_bits"] == 8
    assert qat.loc["qat_weight_only", "weight_bits"] == qat.loc["ptq_weight_only", "weight_bits"] == (
        c["qat"]["weight_only_bits"])
    assert (qat.loc[["ptq_weight_only", "qat_weight_only"], "size_bytes"] < 0.3 * qat.loc["baseline", "size_bytes"]).all()
    latency = pd.read_csv(embedded_run / "results/compress/qat/latency.csv")
    assert set(latency.variant) == set(qat.variant) and (latency.median_ms > 0).all()
