"""The serving rules' results in the shared run of the embedded default (conftest's ``embedded_run``): the export
and its parity, the model repository, the demo through the server, the benchmark, and the report's macros."""
from __future__ import annotations

import json

import onnx
import pandas as pd
import pytest
from PIL import Image

from conftest import load_config
from dlperf.export.triton import parse_model_config
from dlperf.serve import OrtServerClient

pytestmark = pytest.mark.slow  # every test reads the embedded run (the `workflow` fixture)

BENCH_COLUMNS = ["benchmark", "model", "runtime", "protocol", "batching", "clients", "batch_size", "requests",
                 "throughput_rps", "p50_ms", "p99_ms", "mean_batch", "cpu_cores", "speedup", "speedup_low",
                 "speedup_high"]


@pytest.fixture(scope="module")
def workflow(embedded_run):
    """The embedded run's work dir and its config."""
    return embedded_run, load_config(root=embedded_run)


def test_the_export_passes_parity_on_real_test_images_with_the_served_signature(workflow):
    repo, cfg = workflow
    parity = json.loads((repo / "results/serve/onnx/parity.json").read_text())
    assert parity["passed"] and parity["tolerance"] == cfg["serve"]["parity"]["tolerance"]
    assert max(parity["max_abs_diff"].values()) <= 1e-4
    test_images = cfg["ssd"]["data"]["openimages"]["synthetic"]["n_test"]
    assert parity["batch_sizes"] == [1, min(cfg["serve"]["parity"]["images"], test_images)]
    assert parity["input"]["name"] == "input" and parity["outputs"] == ["scores", "boxes"]
    assert isinstance(parity["input"]["shape"][0], str)  # the batch axis is a symbol
    model = onnx.load(str(repo / "results/serve/onnx/ssd.onnx"))
    assert all(node.doc_string for node in model.graph.node)
    provenance = json.loads((repo / "results/serve/onnx/provenance.json").read_text())
    assert provenance["config"]["ssd"]["model"] == cfg["ssd"]["model"]


def test_the_graph_and_the_doc_strings_page_cover_every_op(workflow):
    repo, _ = workflow
    model = onnx.load(str(repo / "results/serve/onnx/ssd.onnx"))
    svg = (repo / "results/serve/onnx/graph.svg").read_text()
    assert svg.count("javascript:alert(") == len(model.graph.node)
    page = (repo / "results/serve/onnx/docstrings.md").read_text()
    assert page.count("\n## ") == len({node.op_type for node in model.graph.node})


def test_the_model_repository_is_in_triton_layout_and_the_server_serves_it(workflow):
    repo, cfg = workflow
    model_dir = repo / "results/serve/model_repository/ssd"
    assert sorted(p.name for p in model_dir.iterdir()) == ["1", "config.pbtxt"]
    config = parse_model_config((model_dir / "config.pbtxt").read_text())
    batching = cfg["serve"]["batching"]
    assert config.max_batch_size == batching["max_batch_size"]
    assert config.dynamic_batching.max_queue_delay_microseconds == round(1000 * batching["max_delay_ms"])
    assert (model_dir / "1/model.onnx").read_bytes() == (repo / "results/serve/onnx/ssd.onnx").read_bytes()


def test_the_demo_drew_one_image_per_class_from_the_servers_responses(workflow):
    repo, cfg = workflow
    serving = repo / "results/serve"
    records = json.loads((serving / "detections.json").read_text())
    assert list(records) == cfg["serve"]["demo"]["classes"]
    for name, record in records.items():
        raw = (serving / record["response"]).read_bytes()
        outputs = OrtServerClient.parse_response(raw, cfg["serve"]["demo"]["format"])
        assert outputs["scores"].shape[0] == 1 and outputs["scores"].shape[2] == 1 + len(records)
        test_image = repo / "resources/data/openimages/test" / f"{record['image_id']}.jpg"
        with Image.open(serving / f"annotated_{name}.png") as picture, Image.open(test_image) as original:
            assert picture.format == "PNG" and picture.size == original.size  # drawn on the test image itself
    assert "Listening at: http://127.0.0.1:" in (repo / "logs/serve/demo.log").read_text()


def test_the_benchmark_has_every_client_count_with_and_without_batching_for_both_models_and_both_runtimes(workflow):
    repo, cfg = workflow
    bench = pd.read_csv(repo / "results/serve/bench.csv")
    assert list(bench.columns) == BENCH_COLUMNS
    server = bench[bench.benchmark == "server"]
    clients, rounds = cfg["serve"]["bench"]["clients"], cfg["serve"]["bench"]["rounds"]
    requests = cfg["serve"]["bench"]["requests_per_client"]
    assert sorted(zip(server.model, server.protocol, server.batching, server.clients)) == sorted(
        (m, p, b, c) for m, protocols in (("ssd", ("grpc", "http")), ("ssd_full", ("http",))) for p in protocols
        for b in ("dynamic", "off") for c in clients)
    full_size_requests = cfg["serve"]["bench"]["full_size"]["requests_per_client"]
    per_client = server.model.map({"ssd": requests, "ssd_full": full_size_requests})
    assert (server.requests == server.clients * per_client * rounds).all()
    assert (server.loc[server.batching == "off", "mean_batch"] == 1).all()
    batched = server[server.batching == "dynamic"]   # each round a fresh pair of servers: an interval from them
    assert (batched.speedup_low < batched.speedup).all() and (batched.speedup < batched.speedup_high).all()
    assert server.loc[server.batching == "off", ["speedup_low", "speedup_high"]].isna().all(axis=None)
    assert (bench.p50_ms > 0).all() and (bench.p99_ms >= bench.p50_ms).all() and (bench.throughput_rps > 0).all()
    assert (bench.cpu_cores > 0).all()
    direct = bench[bench.benchmark == "direct"]
    assert set(direct.runtime) == {"pytorch_eager", "onnxruntime"} and set(direct.model) == {"ssd"}
    assert (repo / "results/serve/tables/bench.md").exists()


def test_the_full_size_ssd_is_the_published_architecture_with_random_weights_said_so(workflow):
    repo, _ = workflow
    provenance = json.loads((repo / "results/serve/full_size/provenance.json").read_text())
    assert {k: provenance["model"][k] for k in ("width_mult", "image_size", "priors")} == {
        "width_mult": 1.0, "image_size": 300, "priors": 3000}
    assert provenance["model"]["weights"].startswith("random")
    config = parse_model_config((repo / "results/serve/full_size/model_repository/ssd_full/config.pbtxt").read_text())
    assert config.name == "ssd_full" and list(config.input[0].dims) == [3, 300, 300]


def test_the_report_quotes_the_results_the_rules_wrote(workflow):
    from dlperf.serve.values import serving_values

    repo, cfg = workflow
    bench = pd.read_csv(repo / "results/serve/bench.csv")
    values = serving_values(
        bench=bench, parity=json.loads((repo / "results/serve/onnx/parity.json").read_text()),
        export=json.loads((repo / "results/serve/onnx/provenance.json").read_text()),
        detections=json.loads((repo / "results/serve/detections.json").read_text()),
        classes=cfg["serve"]["demo"]["classes"], batching=cfg["serve"]["batching"])
    eager, ort = bench[bench.benchmark == "direct"].set_index("runtime").p50_ms[["pytorch_eager", "onnxruntime"]]
    assert values["ServeOrtSpeedup"] == f"{eager / ort:.1f}"
    assert values["ServeClientsMax"] == max(cfg["serve"]["bench"]["clients"])
    assert values["ServeOrtGoalMet"] == ("yes" if eager / ort >= 2 else "no")
    most = bench[(bench.benchmark == "server") & (bench.clients == bench.clients.max()) & (bench.batching == "dynamic")
                 & (bench.protocol == "http")]   # the goals read ORT server's HTTP rows; gRPC's are compared apart
    speedups = most.set_index("model").speedup
    assert values["ServeFullSizeBenched"] == "yes"
    assert values["ServeBatchingSpeedup"] == f"{speedups['ssd']:.2f}"
    assert values["ServeFullSizeBatchingSpeedup"] == f"{speedups['ssd_full']:.2f}"
    highs = most.set_index("model").speedup_high
    assert values["ServeFullSizeBatchingGoalMet"] == (
        "yes" if max(float(f"{speedups['ssd_full']:.2f}"), float(f"{highs['ssd_full']:.2f}")) >= 1 else "no")
    assert values["ServeBatchingInterval"] == rf" (95\,\% interval {most.speedup_low.iloc[0]:.2f}--{highs['ssd']:.2f})"
    grpc = bench[(bench.protocol == "grpc") & (bench.model == "ssd") & (bench.batching == "dynamic")
                 & (bench.clients == bench.clients.max())].throughput_rps.iloc[0]
    assert values["ServeGrpcOverHttp"] == f"{grpc / most.set_index('model').throughput_rps['ssd']:.2f}"
    assert all(name.startswith("Serve") and name.isalpha() for name in values)
