"""dlperf.export: the SSD exported to ONNX (one file, dynamic batch, stack traces as doc strings, parity with PyTorch),
drawn with net_drawer's conventions, put in a Triton-layout repository that the server loads and answers from.

One small random MobileNetV1-SSD is exported once for the module; servers run for real on 127.0.0.1.
"""
from __future__ import annotations

import copy
import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from google.protobuf import text_format

from dlperf.detection.predictor import Predictor
from dlperf.export.net_drawer import docstring_url, docstrings_markdown, graph_dot, main as net_drawer_main, render_svg
from dlperf.export.onnx_export import (
    SSD_OUTPUT_NAMES,
    STACK_TRACE_KEY,
    ParityError,
    export_onnx,
    external_data_files,
    parity_check,
)
from dlperf.export.triton import model_config, parse_model_config, write_model_repository
from dlperf.models.mobilenet_ssd import mobilenet_v1_ssd
from dlperf.serve import KServeClient, OrtServerClient
from dlperf.serve.bench import load_test
from dlperf.serve.demo import draw_detections, first_image_of_each_class, request_detections
from serve_fixtures import running_server, ssd10_like

SIZE = 128
CLASSES = ["BACKGROUND", "Handgun", "Shotgun"]
SVG = "{http://www.w3.org/2000/svg}"
XLINK = "{http://www.w3.org/1999/xlink}"


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return mobilenet_v1_ssd(len(CLASSES), width_mult=0.25, image_size=SIZE, is_test=True).eval()


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory) -> tuple[Path, onnx.ModelProto, dict]:
    path = tmp_path_factory.mktemp("onnx") / "ssd.onnx"
    exported = export_onnx(model, torch.zeros(2, 3, SIZE, SIZE), path, output_names=SSD_OUTPUT_NAMES, doc_strings=True)
    return path, exported.proto, exported.doc_strings


def images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (n, 3, SIZE, SIZE)).astype(np.float32)


def alert_text(url: str) -> str:
    """The string a ``javascript:alert('...')`` link shows."""
    found = re.fullmatch(r"javascript:alert\('(.*)'\)", url, re.DOTALL)
    assert found, url
    return json.loads('"' + found[1].replace("\\'", "'") + '"')


# ---- export -------------------------------------------------------------------------------------------------
def test_the_export_is_one_self_contained_file_with_the_served_signature(exported):
    path, proto, _ = exported
    assert sorted(p.name for p in path.parent.iterdir()) == ["ssd.onnx"] and external_data_files(path) == []
    assert [i.name for i in proto.graph.input] == ["input"]
    assert [o.name for o in proto.graph.output] == ["scores", "boxes"]
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [3, SIZE, SIZE]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.shape[1:] for o in session.get_outputs()] == [[522, 3], [522, 4]]


def test_the_dynamic_batch_runs_at_1_and_3_and_matches_pytorch(model, exported):
    x = images(3)
    result = parity_check(model, exported[0], [x[:1], x], tolerance=1e-4)
    assert result["batch_sizes"] == [1, 3] and result["passed"]
    assert 0 <= max(result["max_abs_diff"].values()) <= 1e-4


def test_the_parity_check_fails_on_a_model_that_differs_from_the_file(model, exported):
    changed = copy.deepcopy(model)
    with torch.no_grad():
        changed.regression_headers[0].bias += 0.01
    with pytest.raises(ParityError, match="boxes"):
        parity_check(changed, exported[0], [images(2)], tolerance=1e-4)


def test_every_node_carries_its_pytorch_stack_trace_as_its_doc_string(exported):
    _, proto, counts = exported
    assert counts == {"stack_trace": len(proto.graph.node), "namespace": 0, "none": 0}
    for node in proto.graph.node:
        trace = {p.key: p.value for p in node.metadata_props}[STACK_TRACE_KEY]
        assert node.doc_string == trace and "mobilenet_ssd.py" in trace, node.name
    conv = next(n for n in proto.graph.node if n.op_type == "Conv")
    assert "in forward" in conv.doc_string
    # and the doc strings are in the file, not only in memory
    assert all(n.doc_string for n in onnx.load(str(exported[0])).graph.node)


# ---- drawing ------------------------------------------------------------------------------------------------
def test_the_drawing_has_one_op_node_per_op_with_its_doc_string_as_alert_and_tooltip(exported, tmp_path):
    _, proto, _ = exported
    dot = tmp_path / "graph.dot"
    dot.write_text(graph_dot(proto.graph, embed_docstring=True))
    svg = ET.parse(render_svg(dot, tmp_path / "graph.svg")).getroot()
    nodes = svg.findall(f".//{SVG}g[@class='node']")
    ops = [g for g in nodes if g.find(f".//{SVG}polygon[@fill='#0f9d58']") is not None]
    assert len(ops) == len(proto.graph.node)
    links = [g.find(f".//{SVG}a") for g in ops]
    shown = Counter(alert_text(a.get(f"{XLINK}href")) for a in links)
    expected = Counter(n.doc_string.replace('"', "'").replace("<", "").replace(">", "") for n in proto.graph.node)
    assert shown == expected
    tooltips = Counter(a.get(f"{XLINK}title").replace("\xa0", " ") for a in links)  # Graphviz keeps runs of
    assert tooltips == Counter(n.doc_string for n in proto.graph.node)                 # spaces as no-break ones
    tensors = {name for n in proto.graph.node for name in [*n.input, *n.output]}
    assert len(nodes) - len(ops) == len(tensors)  # no tensor is written twice in this graph: one octagon each


def test_op_labels_and_tensor_nodes_follow_net_drawer():
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Relu", ["x"], ["y"], name="r", doc_string='say "hi" it\'s <b>'),
         onnx.helper.make_node("Neg", ["y"], ["y"])], "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])])
    text = graph_dot(graph, embed_docstring=True)
    assert '"r/Relu (op#0)\\n input0 x\\n output0 y" [shape="box", color="#0F9D58", style="filled"' in text
    assert '"Neg (op#1)\\n input0 y\\n output0 y"' in text
    assert '"y0" [label="y", shape="octagon"]' in text and '"y1" [label="y", shape="octagon"]' in text
    assert alert_text(docstring_url('say "hi" it\'s <b>')) == "say 'hi' it's b"
    assert "URL=" not in graph_dot(graph)


def test_the_command_line_is_net_drawers(exported, tmp_path):
    net_drawer_main(["--input", str(exported[0]), "--output", str(tmp_path / "m.dot"), "--embed_docstring"])
    text = (tmp_path / "m.dot").read_text()
    assert text.startswith('digraph "') and text.count("javascript:alert(") == len(exported[1].graph.node)


def test_docstrings_md_shows_one_node_of_each_op_type(exported):
    _, proto, _ = exported
    text = docstrings_markdown(proto)
    headers = re.findall(r"^## (\w+)$", text, re.MULTILINE)
    assert sorted(headers) == sorted({n.op_type for n in proto.graph.node})
    first_softmax = next(n for n in proto.graph.node if n.op_type == "Softmax")
    assert first_softmax.doc_string in text


# ---- model repository ---------------------------------------------------------------------------------------
def test_config_pbtxt_parses_as_triton_model_config_and_matches_the_model(exported, tmp_path):
    path, proto, _ = exported
    root = write_model_repository(tmp_path / "repo", "ssd", 1, path, max_batch_size=8, max_queue_delay_us=5000)
    assert (root / "ssd" / "1" / "model.onnx").read_bytes() == path.read_bytes()
    config = parse_model_config((root / "ssd" / "config.pbtxt").read_text())
    assert (config.name, config.platform, config.max_batch_size) == ("ssd", "onnxruntime_onnx", 8)
    assert [(i.name, list(i.dims)) for i in config.input] == [("input", [3, SIZE, SIZE])]
    assert [(o.name, list(o.dims)) for o in config.output] == [("scores", [522, 3]), ("boxes", [522, 4])]
    assert text_format.MessageToString(config.input[0]).count("TYPE_FP32") == 1
    assert config.dynamic_batching.max_queue_delay_microseconds == 5000
    with pytest.raises(text_format.ParseError):
        parse_model_config('name: "ssd"\nmax_batch_sise: 8\n')


def test_a_model_without_a_dynamic_batch_axis_cannot_be_configured_for_batching():
    static = onnx.load_from_string(ssd10_like())
    with pytest.raises(ValueError, match="image .*dynamic first axis"):
        model_config(static, "ssd10", max_batch_size=4, max_queue_delay_us=100)
    assert "dynamic_batching" not in model_config(static, "ssd10", max_batch_size=0, max_queue_delay_us=100)


@pytest.fixture(scope="module")
def served(exported, tmp_path_factory):
    root = write_model_repository(tmp_path_factory.mktemp("served") / "repo", "ssd", 1, exported[0],
                                  max_batch_size=4, max_queue_delay_us=20000)
    with running_server(root, max_batch_size=16, max_delay_ms=1, intra_op_threads=1) as server:
        yield server


def test_the_server_takes_max_batch_size_and_max_delay_from_config_pbtxt(served):
    version = served.repository.get("ssd")
    assert (version._batcher.max_batch_size, version._batcher.max_delay_s) == (4, 0.02)


def test_clients_of_both_protocols_get_what_onnxruntime_computes_on_the_file(served, exported):
    import tritonclient.http as triton

    x = images(2, seed=5)
    session = ort.InferenceSession(str(exported[0]), providers=["CPUExecutionProvider"])
    expected = dict(zip(["scores", "boxes"], session.run(None, {"input": x})))
    ort_client = OrtServerClient(served.url)
    for fmt in ("protobuf", "json"):
        got = ort_client.predict("ssd", {"input": x}, fmt=fmt)
        for name in expected:
            np.testing.assert_allclose(got[name], expected[name], rtol=1e-5, atol=1e-6)
    client = triton.InferenceServerClient(served.url.removeprefix("http://"))
    request = triton.InferInput("input", list(x.shape), "FP32")
    request.set_data_from_numpy(x, binary_data=True)
    result = client.infer("ssd", [request])
    for name in expected:
        np.testing.assert_allclose(result.as_numpy(name), expected[name], rtol=1e-5, atol=1e-6)


def test_the_demo_client_gets_the_detections_pytorch_predicts(served, model):
    image = np.random.default_rng(3).integers(0, 256, (90, 120, 3), dtype=np.uint8)
    served_prediction, raw = request_detections(OrtServerClient(served.url), "ssd", image, SIZE,
                                                prob_threshold=0.3, nms_iou=0.45, top_k=5)
    local = Predictor(model, prob_threshold=0.3, top_k=5).predict(image)
    assert len(local.labels) > 0 and raw
    assert torch.equal(served_prediction.labels, local.labels)
    torch.testing.assert_close(served_prediction.boxes, local.boxes, rtol=1e-4, atol=1e-3)
    picture = draw_detections(image, served_prediction, CLASSES, ground_truth=np.array([[10, 10, 50, 40.0]]))
    assert picture.size == (120, 90) and np.any(np.asarray(picture) != image)


def test_the_demo_shows_each_class_on_its_own_image_when_there_is_one():
    labels = [np.array([1, 2]), np.array([2]), np.array([1])]
    assert first_image_of_each_class(labels, CLASSES, ["Handgun", "Shotgun"]) == {"Handgun": 2, "Shotgun": 1}
    assert first_image_of_each_class(labels[:1], CLASSES, ["Handgun", "Shotgun"]) == {"Handgun": 0, "Shotgun": 0}
    with pytest.raises(ValueError, match="Shotgun"):
        first_image_of_each_class([np.array([1])], CLASSES, ["Shotgun"])


def test_the_load_test_counts_every_request_and_the_batches_the_server_merged(served):
    before = KServeClient(served.url).statistics("ssd")["model_stats"][0]["inference_count"]
    result = load_test(served.url, "ssd", images(1), clients=3, requests=2)
    assert result["requests"] == 6 and result["throughput_rps"] > 0
    assert 0 < result["p50_ms"] <= result["p99_ms"]
    assert 1 <= result["mean_batch"] <= 3
    # the server saw each client's warm-up, the ramp of one answer a client, the 6 timed, and at most one more from
    # each other client, in flight when the window closed
    served_requests = KServeClient(served.url).statistics("ssd")["model_stats"][0]["inference_count"] - before
    assert 3 + 3 + 6 <= served_requests <= 3 + 3 + 6 + 2
