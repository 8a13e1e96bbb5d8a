"""Model compression: exact pruning with masks that survive training, INT8 models that track FP32 in onnxruntime,
Deep Compression's ratio, and Hinton's distillation loss against hand-computed values."""
import json
import math
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
import torch
from torch import nn

from dlperf.compress.distill import DistillationLoss, distillation_loss
from dlperf.compress.evaluation import load_classifier, paired_eager_latency
from dlperf.compress.pruning import (
    check_masks_kept,
    make_permanent,
    masks,
    nonzero_params,
    prune_global,
    pruned_count,
    sparse_size_bytes,
    sparsity_table,
)
from dlperf.compress.quantize import (
    ArrayCalibrationReader,
    agreement,
    image_size,
    onnx_nonzero_params,
    preprocess,
    quantize_dynamic_model,
    quantize_static_model,
    read_labels,
    session,
    session_outputs,
    ssd_mean_ap,
    ssd_outputs,
)
from dlperf.compress.sharing import compression_ratio, index_bits, kmeans_1d, share_weights, shared_size_bytes
from dlperf.compress.summary import SUMMARY_COLUMNS, summary_frame
from dlperf.export.onnx_export import SSD_OUTPUT_NAMES, export_onnx
from dlperf.models.cifar_resnet import cifar_model
from dlperf.train.data import DeviceImages
from dlperf.train.engine import TrainConfig, seed_everything, train


def tiny_data(n=256, seed=0):
    """Four classes that differ in brightness: learnable in a few steps."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    x = (rng.integers(0, 60, (n, 32, 32, 3)) + 60 * y[:, None, None, None]).astype(np.uint8)
    return x, y


def tiny_config(epochs=3):
    return TrainConfig.from_config({"epochs": epochs, "batch_size": 32, "augment": {"crop_padding": 2, "flip": True},
                                    "optimizer": {"name": "sgd", "lr": 0.02, "momentum": 0.9,
                                                  "weight_decay": 0.0005}}, seed=1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A ResNet-8 trained briefly on the tiny data, with its checkpoint written by the training engine."""
    torch.set_num_threads(1)
    run = tmp_path_factory.mktemp("run")
    x, y = tiny_data()
    seed_everything(1)
    model = cifar_model("resnet8", num_classes=4)
    metrics = train(model, DeviceImages(x, y, "cpu"), {"test": DeviceImages(x[:64], y[:64], "cpu")}, tiny_config(),
                    run_dir=run, state_dir=run / "resume", run_name="tiny")
    assert metrics["test_acc"] > 0.9
    return run / "checkpoint.pt", x, y


# ---- pruning -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sparsity", [0.3, 0.5, 0.7, 0.9])
def test_global_pruning_removes_exactly_the_requested_share_of_conv_and_linear_weights(sparsity):
    torch.manual_seed(0)
    model = cifar_model("resnet20")
    total = sum(m.weight.numel() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    prune_global(model, sparsity)
    table = sparsity_table(model)
    assert table.iloc[-1].params == total == 269_722 - 10 - 2 * (16 * 7 + 32 * 6 + 64 * 6)  # less fc bias and BN
    assert table.iloc[-1].zeros == pruned_count(total, sparsity) == round(sparsity * total)
    # one global threshold: every pruned weight is no larger than every kept one
    pruned = torch.cat([m.weight_orig[m.weight_mask == 0].abs() for m in model.modules() if hasattr(m, "weight_mask")])
    kept = torch.cat([m.weight_orig[m.weight_mask == 1].abs() for m in model.modules() if hasattr(m, "weight_mask")])
    assert pruned.max() <= kept.min()
    assert table.sparsity.iloc[:-1].std() > 0   # layers lose different shares


def test_a_sparsity_outside_zero_to_one_is_rejected():
    with pytest.raises(ValueError, match=r"sparsity must be in \[0, 1\)"):
        prune_global(cifar_model("resnet8"), 1.0)


def test_masks_survive_retraining_and_pruned_weights_stay_zero(trained, tmp_path):
    checkpoint, x, y = trained
    model = load_classifier("resnet8", checkpoint, width=64)
    prune_global(model, 0.7)
    before = masks(model)
    zeros = sparsity_table(model).zeros.iloc[-1]
    start = {name: m.weight_orig.detach().clone() for name, m in model.named_modules() if hasattr(m, "weight_orig")}
    train(model, DeviceImages(x, y, "cpu"), {}, tiny_config(epochs=1), run_dir=tmp_path, state_dir=tmp_path / "resume",
          run_name="retrain")
    check_masks_kept(model, before)
    assert any(not torch.equal(start[name], m.weight_orig) for name, m in model.named_modules()
               if hasattr(m, "weight_orig")), "re-training must have changed the surviving weights"
    make_permanent(model)
    assert sparsity_table(model).zeros.iloc[-1] == zeros
    state = model.state_dict()
    assert not any(k.endswith(("_orig", "_mask")) for k in state)
    reloaded = cifar_model("resnet8", num_classes=4)
    reloaded.load_state_dict(state)   # a plain model again


def test_a_changed_mask_is_detected():
    model = prune_global(cifar_model("resnet8"), 0.5)
    before = masks(model)
    model.fc.weight_mask[0, 0] = 1 - model.fc.weight_mask[0, 0]
    with pytest.raises(RuntimeError, match="masks changed in \\['fc'\\]"):
        check_masks_kept(model, before)


def test_sparse_size_counts_four_bytes_per_kept_weight_plus_a_bit_per_position():
    layer = nn.Linear(4, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.1, -0.2, 0.3, -0.4], [0.5, -0.6, 0.7, -0.8]]))
    model = nn.Sequential(layer)
    prune_global(model, 0.5)
    assert masks(model)["0"].tolist() == [[0, 0, 0, 0], [1, 1, 1, 1]]
    assert sparse_size_bytes(model) == 4 * 4 + 1 + 2 * 4        # 4 kept weights, 8-bit mask, dense bias
    assert nonzero_params(model) == 4 + 2
    assert sparse_size_bytes(make_permanent(model)) == 25


# ---- weight sharing ------------------------------------------------------------------------------------------
def test_compression_ratio_matches_the_hand_computation():
    # 16 weights of 32 bits = 512 bits; k=4: 16 x 2-bit indices + 4 x 32-bit centroids = 160 bits
    assert compression_ratio(16, 4) == pytest.approx(512 / 160) == pytest.approx(3.2)
    # k=3 needs 2-bit indices too: 32 + 96 = 128 bits
    assert index_bits(3) == 2 and compression_ratio(16, 3) == pytest.approx(4.0)
    # Deep Compression's example (section 3): 16 weights, 4 clusters -> 3.2x
    with pytest.raises(ValueError, match="at least 2"):
        index_bits(1)


def test_a_shared_layer_stores_indices_and_a_codebook_and_its_ratio_is_the_hand_computed_one():
    layer = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.0, 0.1, 0.9, 1.0]]))
    shared, table = share_weights(nn.Sequential(layer), k=2, iterations=10)
    assert shared[0].weight.flatten().tolist() == pytest.approx([0.05, 0.05, 0.95, 0.95])
    assert layer.weight.flatten().tolist() == pytest.approx([0.0, 0.1, 0.9, 1.0])   # the original is untouched
    row = table.iloc[-1]
    assert (row.bits_before, row.bits_after) == (4 * 32, 4 * 1 + 2 * 32)
    assert row.ratio == pytest.approx(128 / 68)
    assert shared_size_bytes(shared[0:1], 2) == math.ceil(68 / 8)


def test_kmeans_gives_at_most_k_values_and_less_error_with_more_clusters():
    weights = torch.randn(5000, generator=torch.Generator().manual_seed(0))
    errors = []
    for k in (2, 4, 16):
        centroids, index = kmeans_1d(weights, k, iterations=50)
        assert len(centroids) == k and index.max() < k
        errors.append(float(((centroids[index] - weights.double()) ** 2).mean()))
    assert errors[0] > errors[1] > errors[2]


def test_every_conv_and_linear_weight_takes_one_of_k_values():
    torch.manual_seed(0)
    shared, table = share_weights(cifar_model("resnet8"), k=8, iterations=20)
    assert all(len(m.weight.unique()) <= 8 for m in shared.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    assert table.iloc[-1].ratio == pytest.approx(
        table.iloc[:-1].bits_before.sum() / (table.iloc[:-1].params.sum() * 3 + 8 * 32 * (len(table) - 1)))


# ---- distillation --------------------------------------------------------------------------------------------
def test_the_distillation_loss_equals_the_hand_computed_value():
    student = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    teacher = torch.tensor([[3.0, 2.0, 1.0], [1.0, 0.0, 0.0]])
    labels = torch.tensor([2, 0])
    # KL(softmax(t/2) || softmax(s/2)): row 1 (e^1.5-e^.5)/(e^1.5+e+e^.5) * 1 = 0.32023, row 2 0.03010; mean 0.17516.
    # CE: row 1 -log(e^3 / (e + e^2 + e^3)) = 0.40761, row 2 log 3 = 1.09861; mean 0.75311.
    # 0.5 * 2^2 * 0.17516 + 0.5 * 0.75311 = 0.72688
    loss = distillation_loss(student, teacher, labels, temperature=2.0, alpha=0.5)
    assert loss.item() == pytest.approx(0.7268781312971986, rel=1e-6)
    assert distillation_loss(student, teacher, labels, temperature=2.0, alpha=0.0).item() == pytest.approx(
        0.7531091265562451, rel=1e-6)
    assert distillation_loss(student, teacher, labels, temperature=2.0, alpha=1.0).item() == pytest.approx(
        4 * 0.175161784009538, rel=1e-6)


def test_bad_distillation_settings_are_rejected():
    with pytest.raises(ValueError, match="temperature"):
        distillation_loss(torch.zeros(1, 2), torch.zeros(1, 2), torch.zeros(1, dtype=torch.long), temperature=0,
                          alpha=0.5)
    with pytest.raises(ValueError, match="alpha"):
        DistillationLoss(nn.Linear(2, 2), temperature=1, alpha=1.5)


def test_the_engine_loss_runs_the_teacher_frozen_and_trains_only_the_student():
    torch.manual_seed(0)
    teacher, student = nn.Linear(3, 4), nn.Linear(3, 4)
    loss_fn = DistillationLoss(teacher, temperature=4.0, alpha=0.9)
    images, labels = torch.randn(5, 3), torch.tensor([0, 1, 2, 3, 0])
    loss = loss_fn(student(images), labels, images)
    loss.backward()
    assert teacher.weight.grad is None and student.weight.grad is not None
    assert loss.item() == pytest.approx(distillation_loss(student(images), teacher(images), labels, temperature=4.0,
                                                          alpha=0.9).item())


# ---- quantization --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def quantized(trained, tmp_path_factory):
    checkpoint, x, y = trained
    out = tmp_path_factory.mktemp("onnx")
    model = load_classifier("resnet8", checkpoint, width=64)
    data = DeviceImages(x, y, "cpu")
    images = torch.cat([b for b, _ in data.batches(64, shuffle=False)])
    raw = export_onnx(model, images[:2], out / "raw.onnx", tolerance=1e-3).path
    fp32 = preprocess(raw, out / "fp32.onnx")
    reader = ArrayCalibrationReader("input", (b.numpy() for b, _ in data.batches(32, shuffle=False)))
    static = quantize_static_model(fp32, out / "static.onnx", reader)
    dynamic = quantize_dynamic_model(fp32, out / "dynamic.onnx")
    with torch.inference_mode():
        reference = model(images).numpy()
    return {"raw": raw, "fp32": fp32, "static": static, "dynamic": dynamic, "images": images.numpy(),
            "reference": reference, "labels": y, "model": model}


def test_the_exported_graph_has_a_dynamic_batch_and_matches_pytorch(quantized):
    sess = session(quantized["fp32"], threads=1)
    logits = session_outputs(sess, quantized["images"], batch_size=100)   # batches of 100 and a last one of 56
    assert logits.shape == (256, 4)
    assert agreement(logits, quantized["reference"])["max_abs_diff"] < 1e-3


@pytest.mark.parametrize("variant", ["static", "dynamic"])
def test_the_int8_models_run_in_onnxruntime_and_track_fp32(quantized, variant):
    path = quantized[variant]
    graph = onnx.load(str(path)).graph
    ops = {node.op_type for node in graph.node}
    assert ({"QuantizeLinear", "DequantizeLinear"} <= ops) if variant == "static" else ("ConvInteger" in ops)
    assert path.stat().st_size < 0.5 * quantized["fp32"].stat().st_size
    logits = session_outputs(session(path, threads=1), quantized["images"], batch_size=64)
    stats = agreement(logits, quantized["reference"])
    assert stats["top1_agreement"] >= 0.95
    assert stats["max_rel_diff"] < 0.25
    accuracy = (logits.argmax(1) == quantized["labels"]).mean()
    assert accuracy >= (quantized["reference"].argmax(1) == quantized["labels"]).mean() - 0.05


def test_calibration_needs_images():
    with pytest.raises(ValueError, match="at least one batch"):
        ArrayCalibrationReader("input", [])


def test_nonzero_params_of_a_graph_are_those_of_its_weight_layers(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2)).eval()
    with torch.no_grad():
        model[0].weight[0] = 0   # 27 zeros
    path = export_onnx(model, torch.randn(2, 3, 8, 8), tmp_path / "m.onnx").path
    assert onnx_nonzero_params(path) == nonzero_params(model) == sum(p.numel() for p in model.parameters()) - 27


def test_an_ssd_graph_is_quantized_and_scored_with_voc_map(tmp_path):
    from dlperf.data.openimages import OpenImagesDataset, write_subset
    from dlperf.data.synthetic_detection import synthesize_openimages
    from dlperf.models.mobilenet_ssd import mobilenet_v1_ssd

    root = synthesize_openimages(tmp_path / "openimages", n_train=4, n_validation=1, n_test=3, size=96, seed=0)
    for split in ("train", "test"):
        write_subset(root, split, ["Handgun", "Shotgun"])
    (tmp_path / "labels.txt").write_text("BACKGROUND\nHandgun\nShotgun\n")
    classes = read_labels(tmp_path / "labels.txt")
    torch.manual_seed(0)
    ssd = mobilenet_v1_ssd(len(classes) + 1, width_mult=0.25, image_size=96, is_test=True).eval()
    raw = export_onnx(ssd, torch.randn(1, 3, 96, 96), tmp_path / "ssd.onnx", output_names=SSD_OUTPUT_NAMES,
                      dynamic_batch=False).path
    assert image_size(raw) == 96
    fp32 = preprocess(raw, tmp_path / "fp32.onnx")
    train_set = OpenImagesDataset(root, "train", classes)
    from dlperf.detection.predictor import preprocess as preprocess_image
    reader = ArrayCalibrationReader("input", (preprocess_image(train_set.get_image(i), 96)[None].numpy()
                                              for i in range(len(train_set))))
    static = quantize_static_model(fp32, tmp_path / "static.onnx", reader, op_types=["Conv"])
    test_set = OpenImagesDataset(root, "test", classes)
    batch = preprocess_image(test_set.get_image(0), 96)[None].numpy()
    scores, boxes = ssd_outputs(session(fp32, 1), batch)
    q_scores, q_boxes = ssd_outputs(session(static, 1), batch)
    assert q_scores.shape == scores.shape and q_boxes.shape == boxes.shape
    assert np.abs(q_scores - scores).max() < 0.1 and np.abs(q_boxes - boxes).max() < 0.1
    result = ssd_mean_ap(session(static, 1), test_set, 96)
    assert set(result.per_class) == {1, 2} and 0 <= result.mean_ap <= 1


def test_a_labels_file_without_background_first_is_rejected(tmp_path):
    (tmp_path / "labels.txt").write_text("Handgun\nShotgun\n")
    with pytest.raises(ValueError, match="BACKGROUND"):
        read_labels(tmp_path / "labels.txt")


# ---- summary -------------------------------------------------------------------------------------------------
def test_the_summary_has_the_contract_columns_and_speedups_over_the_same_runtime():
    latency = pd.DataFrame([{"model": "classifier", "variant": v, "batch": 1, "median_ms": ms, "p10_ms": ms,
                             "p90_ms": ms} for v, ms in [("eager_fp32", 8.0), ("ort_fp32", 2.0),
                                                         ("ort_int8_dynamic", 4.0), ("ort_int8_static", 1.0)]])
    classifier = pd.DataFrame([{"variant": v, "size_bytes": s, "nonzero_params": 100, "top1": 0.5}
                               for v, s in [("eager_fp32", 400), ("ort_fp32", 420), ("ort_int8_dynamic", 120),
                                            ("ort_int8_static", 130)]])
    pruning = pd.DataFrame([{"sparsity": 0.5, "size_bytes": 220, "nonzero_params": 50, "pruned_test_acc": 0.3,
                             "retrained_test_acc": 0.45, "latency_ms": 8.0, "dense_latency_ms": 10.0,
                             "dense_test_acc": 0.5}])
    sharing = pd.DataFrame([{"clusters": 4, "size_bytes": 60, "nonzero_params": 100, "top1": 0.4, "latency_ms": 8.0,
                             "dense_latency_ms": 8.0}])
    distill = pd.DataFrame([{"role": "teacher", "mode": "", "arch": "resnet56", "size_bytes": 1200,
                             "nonzero_params": 300, "test_acc": 0.6, "latency_ms": 24.0},
                            {"role": "student", "mode": "kd", "arch": "resnet20", "size_bytes": 400,
                             "nonzero_params": 100, "test_acc": 0.55, "latency_ms": 8.0}])
    summary = summary_frame(arch="resnet20", pruning=pruning, classifier=classifier, latency=latency,
                            sharing=sharing, distill=distill, temperature=4.0, alpha=0.9)
    assert tuple(summary.columns) == SUMMARY_COLUMNS == (
        "method", "setting", "size_bytes", "nonzero_params", "metric", "metric_value", "latency_ms", "speedup")
    speedup = summary.set_index("method").speedup
    assert speedup["quantize_static"] == 2.0 and speedup["quantize_dynamic"] == 0.5
    assert speedup["prune_retrain"] == 1.25 and speedup["distill"] == 3.0
    assert summary.set_index("setting").loc["resnet20 student soft targets T=4 alpha=0.9", "metric_value"] == 0.55
    assert json.loads(summary.to_json(orient="records"))[0]["method"] == "baseline"


def test_the_report_values_come_from_the_results_the_fixture_writes(tmp_path):
    import yaml
    from snakemake.utils import validate

    from dlperf.compress.values import compress_values
    from report_fixtures_compress import write_compress

    root = Path(__file__).resolve().parents[1]
    cfg = yaml.safe_load((root / "config" / "config.yaml").read_text())
    validate(cfg, str(root / "config" / "schema.yaml"))
    write_compress(tmp_path, cfg)
    out = tmp_path / "results" / "compress"
    macros = compress_values(
        summary=pd.read_csv(out / "summary.csv"), pruning=pd.read_csv(out / "pruning.csv"),
        classifier=pd.read_csv(out / "quantize" / "classifier.csv"), latency=pd.read_csv(out / "quantize" / "latency.csv"),
        sharing=pd.read_csv(out / "share" / "sharing.csv"), distill=pd.read_csv(out / "distill.csv"),
        deep=pd.read_csv(out / "deep" / "stages.csv"), qat=pd.read_csv(out / "qat" / "classifier.csv"),
        quantize=json.loads((out / "quantize" / "provenance.json").read_text()), settings=cfg["compress"], ssd=False)
    assert macros["CompressDeepHuffmanKilobytes"] == "42.3" and macros["CompressDeepPrunedRatio"] == "7.5"
    assert macros["CompressQatEightTop"] == "41.2" and macros["CompressQatWeightOnlyGain"] == "2.5"
    assert macros["CompressStaticTop"] == "40.8" and macros["CompressOrtTop"] == "41.0"
    assert macros["CompressStaticSpeedupBOne"] == f"{2.4 / 1.2:.2f}"        # FP32 onnxruntime over static INT8
    assert macros["CompressGoalMet"] == "yes" and macros["CompressStaticLoss"] == "0.2"
    assert macros["CompressKdBetter"] == "yes" and macros["CompressKdGain"] == "1.5"
    assert macros["CompressHasControl"] == "yes" and macros["CompressRetrainedAccuracySNinety"] == "41.1"
    assert all(name.startswith("Compress") and name.isalpha() for name in macros)


def test_paired_latency_times_each_model_in_turns_and_leaves_the_models_untouched():
    calls = []

    class Recorder(nn.Module):
        def __init__(self, name):
            super().__init__()
            self.name = name
            self.scale = nn.Parameter(torch.ones(1))

        def forward(self, x):
            calls.append(self.name)
            return x * self.scale

    models = {"dense": Recorder("dense"), "pruned": Recorder("pruned")}
    timings = paired_eager_latency(models, 2, warmup=2, repeats=3)
    assert calls == ["dense", "dense", "pruned", "pruned"] + ["dense", "pruned"] * 3
    assert {name: len(t.samples) for name, t in timings.items()} == {"dense": 3, "pruned": 3}
    assert all(m.training for m in models.values())   # timed on copies: the callers' modules keep their mode
