"""Quantization-aware training: the fake-quantized model trains with the engine, its QDQ ONNX file runs on
onnxruntime's integer kernels and computes what the fake-quantized model computes, and training through the
rounding wins back what 4-bit rounding after training loses.

The toy task puts a small colour signal (±12 grey levels) on a bright background (200): the first convolution's
BatchNorm divides by the signal's small spread, so the folded weights are large and their rounding error, times
the bright background, shifts every output. 8-bit weights hardly notice, 4-bit weights do; a short QAT learns
weights (and biases) that absorb the error.
"""
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from dlperf.compress.qat import (
    ActivationFakeQuant,
    convert_for_export,
    export_qdq,
    int4_bytes,
    prepare_qat,
    weight_only_ptq,
)
from dlperf.compress.quantize import ArrayCalibrationReader, preprocess, quantize_static_model, session, session_outputs
from dlperf.export.onnx_export import export_onnx
from dlperf.models.cifar_resnet import CifarResNet
from dlperf.train.data import DeviceImages
from dlperf.train.engine import TrainConfig, evaluate, seed_everything, train

CLASSES, SIDE = 4, 8
INTEGER_OPS = {"QLinearConv", "QLinearAdd", "QGemm"}


def toy_data(n: int, seed: int) -> DeviceImages:
    """A colour offset of at most ±12 grey levels on a grey-200 background, ±1 level of pixel noise; the class is
    the argmax of a fixed linear map of the offset."""
    rng = np.random.default_rng(seed)
    colour = rng.uniform(-1, 1, (n, 1, 1, 3))
    images = np.clip(200 + 12 * colour + rng.normal(0, 1, (n, SIDE, SIDE, 3)), 0, 255).astype(np.uint8)
    labels = (colour[:, 0, 0] @ np.random.default_rng(123).normal(size=(3, CLASSES))).argmax(1)
    return DeviceImages(images, labels, "cpu")


def fit(model, data: DeviceImages, run: Path, *, epochs: int, optimizer: dict) -> torch.nn.Module:
    cfg = TrainConfig.from_config({"epochs": epochs, "batch_size": 32, "optimizer": optimizer,
                                   "schedule": {"name": "cosine", "t_max": epochs}}, seed=0)
    train(model, data, {}, cfg, run_dir=run, state_dir=run / "resume", run_name=run.name)
    return model.eval()


def fine_tune(model, data: DeviceImages, run: Path) -> torch.nn.Module:
    """QAT's fine-tune: three epochs of Adam at 1e-4. The folded net has no BatchNorm left to steady it, and SGD
    near the training rate (0.01) knocks it off the minimum it was trained to, by more than 8-bit rounding costs."""
    return fit(model, data, run, epochs=3, optimizer={"name": "adam", "lr": 1e-4})


def top1(model, data: DeviceImages) -> float:
    return evaluate(model, data, 1000, autocast=False)[1]


def normalised(data: DeviceImages) -> np.ndarray:
    return torch.cat([x for x, _ in data.batches(1000, shuffle=False)]).numpy()


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A ResNet-8 of widths 4/8/8 trained to convergence on the toy task, its data, and a scratch directory."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("qat")
    train_set, test_set = toy_data(1024, seed=0), toy_data(2000, seed=100)
    seed_everything(0)
    model = fit(CifarResNet(8, CLASSES, widths=(4, 8, 8)), train_set, root / "float", epochs=8,
                optimizer={"name": "sgd", "lr": 0.05, "momentum": 0.9})
    assert top1(model, test_set) > 0.95
    return model, train_set, test_set, root


@pytest.fixture(scope="module")
def int8_qat(toy):
    """The 8-bit QAT model (weights as onnxruntime's static PTQ rounds them here: per channel, reduce_range;
    uint8 activations) and its QDQ file."""
    model, train_set, test_set, root = toy
    qat = fine_tune(prepare_qat(model, 8, 8, reduce_range=True), train_set, root / "qat8")
    path = root / "qat8.onnx"
    export_qdq(qat, torch.from_numpy(normalised(test_set)[:2]), path)
    return qat, path


@pytest.fixture(scope="module")
def static_ptq(toy) -> Path:
    """onnxruntime's static INT8 PTQ of the float model (per channel, reduce_range, minmax on 256 images)."""
    model, train_set, test_set, root = toy
    raw = export_onnx(model, torch.from_numpy(normalised(test_set)[:2]), root / "raw.onnx", tolerance=1e-4).path
    return quantize_static_model(preprocess(raw, root / "fp32.onnx"), root / "static.onnx",
                                 ArrayCalibrationReader("input", [normalised(train_set)[:256]]))


def test_the_qdq_file_holds_integer_weights_between_quantize_and_dequantize_pairs(int8_qat):
    graph = onnx.load(str(int8_qat[1])).graph
    ops = Counter(node.op_type for node in graph.node)
    assert ops["QuantizeLinear"] > 0 and ops["DequantizeLinear"] > ops["QuantizeLinear"]
    weights = {node.input[0] for node in graph.node if node.op_type in ("Conv", "Gemm")}
    assert not weights & {t.name for t in graph.initializer}   # no float weight feeds a layer directly
    types = Counter(t.data_type for t in graph.initializer if t.name.endswith(".codes"))
    assert types == {onnx.TensorProto.INT8: 8}   # 7 convolutions and the classifier


def test_onnxruntime_runs_the_qat_model_on_the_integer_kernels_static_ptq_gets(int8_qat, static_ptq, tmp_path):
    def integer_ops(path: Path) -> Counter:
        options = ort.SessionOptions()
        options.optimized_model_filepath = str(tmp_path / f"{path.stem}.optimized.onnx")
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        nodes = onnx.load(options.optimized_model_filepath).graph.node
        assert not {"Conv", "Gemm"} & {node.op_type for node in nodes}, path
        return Counter(node.op_type for node in nodes if node.op_type in INTEGER_OPS)

    assert integer_ops(int8_qat[1]) == integer_ops(static_ptq) == {"QLinearConv": 7, "QLinearAdd": 3, "QGemm": 1}


def test_the_qdq_file_agrees_with_the_fake_quantized_model_within_an_output_step(int8_qat):
    qat, path = int8_qat
    images = normalised(toy_data(1000, seed=7))
    with torch.no_grad():
        expected = qat(torch.from_numpy(images)).numpy()
    got = session_outputs(session(path, threads=1), images, batch_size=250)
    step = float(qat.fc_quant.qparams()[0])   # the logits' own quantization step
    steps = np.abs(got - expected) / step
    assert (got.argmax(1) == expected.argmax(1)).mean() >= 0.99
    assert steps.max() <= 2.01 and steps.mean() <= 0.25


def test_8_bit_qat_is_as_accurate_as_static_ptq_within_a_point_or_two(toy, int8_qat, static_ptq):
    test_set = toy[2]
    images, labels = normalised(test_set), test_set.labels.numpy()

    def accuracy(path: Path) -> float:
        return float((session_outputs(session(path, threads=1), images, 1000).argmax(1) == labels).mean())

    assert accuracy(int8_qat[1]) >= accuracy(static_ptq) - 0.02


def test_4_bit_weights_lose_accuracy_after_training_and_qat_wins_most_of_it_back(toy):
    model, train_set, test_set, root = toy
    ptq8, ptq4 = top1(weight_only_ptq(model, 8), test_set), top1(weight_only_ptq(model, 4), test_set)
    qat4 = top1(fine_tune(prepare_qat(model, 4, None), train_set, root / "qat4"), test_set)
    assert ptq4 <= ptq8 - 0.03
    assert qat4 - ptq4 >= 0.5 * (ptq8 - ptq4)


def test_4_bit_weights_are_stored_two_to_a_byte_and_run_in_onnxruntime(toy, tmp_path):
    model, _, test_set, _ = toy
    images = normalised(test_set)[:64]
    ptq4 = weight_only_ptq(model, 4)
    exported = export_qdq(ptq4, torch.from_numpy(images[:2]), tmp_path / "w4.onnx", tolerance=1e-4)
    assert exported.parity["passed"]
    codes = {t.name: t for t in exported.proto.graph.initializer if t.name.endswith(".codes")}
    assert {t.data_type for t in codes.values()} == {onnx.TensorProto.INT4}
    weights = {name: module.weight for name, module in ptq4.named_modules() if hasattr(module, "parametrizations")}
    assert {name: len(t.raw_data) for name, t in codes.items()} == {
        f"{name}.codes": (w.numel() + 1) // 2 for name, w in weights.items()}
    assert next(o.version for o in exported.proto.opset_import if o.domain == "") == 21
    with torch.no_grad():
        expected = ptq4(torch.from_numpy(images)).numpy()
    assert np.abs(session_outputs(session(tmp_path / "w4.onnx", threads=1), images, 32) - expected).max() < 1e-4


def test_int4_packing_puts_the_first_value_in_the_low_nibble():
    assert int4_bytes(np.array([1, -1, 7, -8, 3])) == bytes([0xF1, 0x87, 0x03])


def test_activation_ranges_move_while_training_and_hold_still_in_eval_mode():
    quantizer = ActivationFakeQuant()
    quantizer(torch.tensor([-1.0, 3.0]))   # the first batch sets the range
    assert (quantizer.low.item(), quantizer.high.item()) == (-1.0, 3.0)
    quantizer(torch.tensor([0.0, 4.0]))    # later ones move it by 1 %
    assert quantizer.low.item() == pytest.approx(-0.99) and quantizer.high.item() == pytest.approx(3.01)
    quantizer.eval()
    out = quantizer(torch.tensor([-5.0, 0.3]))
    assert (quantizer.low.item(), quantizer.high.item()) == pytest.approx((-0.99, 3.01))
    scale, zero_point = quantizer.qparams()
    assert scale.item() == pytest.approx(4.0 / 255) and zero_point.item() == round(0.99 / scale.item())
    assert out[0].item() == pytest.approx(-zero_point.item() * scale.item())   # clipped to the range
    assert abs(out[1].item() - 0.3) <= scale.item() / 2


def test_a_model_whose_activations_saw_no_data_is_not_exported():
    qat = prepare_qat(CifarResNet(8, CLASSES, widths=(4, 8, 8)), 8, 8)
    with pytest.raises(ValueError, match="has seen no data"):
        convert_for_export(qat)


def test_only_8_bit_or_float_activations_are_offered():
    with pytest.raises(ValueError, match="8 bits or not at all"):
        prepare_qat(CifarResNet(8, CLASSES, widths=(4, 8, 8)), 8, 4)
