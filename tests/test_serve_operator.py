"""dlperf.serve against what operators do to a server (issue 22): oversized batches, bad model configs and model
files, a taken port, smuggling-prone headers, non-finite numbers in JSON, and the smaller HTTP courtesies.

Servers run for real on 127.0.0.1; start-up failures run ``python -m dlperf.serve`` as an operator would.
"""
from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dlperf.serve import KServeClient, ModelRepository, OrtServerClient, ServerError, ServingOptions
from dlperf.serve.model_config import ModelConfigError
from dlperf.serve.grpc_client import KServeGrpcClient
from dlperf.serve.process import SRC, server_process
from serve_fixtures import running_server, tiny_ssd, write_repository

MODEL = "tiny_ssd"
GOOD = "max_batch_size: 4\ninput [{ name: \"input\" data_type: TYPE_FP32 dims: [3, 8, 8] }]\n"


def images(n: int) -> np.ndarray:
    return np.random.default_rng(n).standard_normal((n, 3, 8, 8)).astype(np.float32)


@pytest.fixture(scope="module")
def repository(tmp_path_factory) -> Path:
    return write_repository(tmp_path_factory.mktemp("models"), {MODEL: {1: tiny_ssd(seed=1)}}, {MODEL: GOOD})


@pytest.fixture(scope="module")
def server(repository):
    with running_server(repository) as live:
        yield live


def serve(root: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """``python -m dlperf.serve`` on ``root`` as an operator starts it; for start-ups that must fail."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "dlperf.serve", "--model-repository", str(root), "--port", "0",
                           "--grpc-port", "0", "--ort-grpc-port", "0", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


# the batch limit


@pytest.mark.parametrize("batching", [True, False])
def test_a_batch_beyond_the_configs_max_batch_size_gets_tritons_400_on_both_protocols(repository, batching):
    with running_server(repository, batching=batching) as live:
        with pytest.raises(ServerError, match=r"batch-size must be <= 4 for 'tiny_ssd'") as raised:
            KServeClient(live.url).infer(MODEL, {"input": images(8)})
        assert raised.value.status == 400
        with pytest.raises(ServerError, match=r"batch-size must be <= 4") as raised:
            OrtServerClient(live.url).predict(MODEL, {"input": images(5)})
        assert raised.value.status == 400
        assert KServeClient(live.url).infer(MODEL, {"input": images(4)})["scores"].shape[0] == 4


def test_without_a_config_the_servers_max_batch_size_is_the_limit(tmp_path):
    root = write_repository(tmp_path, {MODEL: {1: tiny_ssd(seed=1)}})
    with running_server(root, max_batch_size=8) as live:
        with pytest.raises(ServerError, match=r"<= 8"):
            KServeClient(live.url).infer(MODEL, {"input": images(16)})
        assert KServeClient(live.url).infer(MODEL, {"input": images(8)})["scores"].shape[0] == 8


# model configs, checked at start-up against their models

BAD_CONFIGS = {
    "unparseable": ("max_batch_size: 8\ninput [ name: \"input\" ]\n", r"protobuf text format"),
    "a negative max_batch_size": ("max_batch_size: -5\n", r"max_batch_size must be >= 0, got -5"),
    "an input the model lacks": ("input [{ name: \"image\" data_type: TYPE_FP32 dims: [3, 8, 8] }]\n",
                                 r"input 'image' is not one of the model's inputs \['input'\]"),
    "dims that contradict the model": ("max_batch_size: 4\ninput [{ name: \"input\" dims: [3, 16, 16] }]\n",
                                       r"dims \[3, 16, 16\] here but \[3, 8, 8\] in the model"),
    "a data type that contradicts the model": ("output [{ name: \"scores\" data_type: TYPE_INT64 }]\n",
                                               r"output 'scores' is INT64 here but FP32"),
    "another model's name": ("name: \"resnet\"\n", r"name 'resnet' differs from the model's directory"),
    "another platform": ("platform: \"tensorrt_plan\"\n", r"ONNX models only"),
}


@pytest.mark.parametrize("case", BAD_CONFIGS)
def test_a_config_that_triton_would_refuse_stops_the_start_naming_the_file(tmp_path, case):
    text, message = BAD_CONFIGS[case]
    root = write_repository(tmp_path, {MODEL: {1: tiny_ssd(seed=1)}}, {MODEL: text})
    with pytest.raises(ModelConfigError, match=message) as raised:
        ModelRepository(root, ServingOptions())
    assert str(raised.value).startswith(str(root / MODEL / "config.pbtxt"))


def test_a_non_utf8_config_is_one_line_naming_the_file_and_exit_1(tmp_path):
    root = write_repository(tmp_path, {MODEL: {1: tiny_ssd(seed=1)}})
    (root / MODEL / "config.pbtxt").write_bytes(b"max_batch_size: 8 # caf\xe9\n")
    result = serve(root)
    assert result.returncode == 1 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == f"error: {root / MODEL / 'config.pbtxt'}: not UTF-8 text (byte 23: 0xe9)", result.stderr
    assert "Traceback" not in result.stderr


def test_a_config_with_fields_this_server_does_not_act_on_still_loads(tmp_path):
    text = (GOOD + "dynamic_batching { max_queue_delay_microseconds: 500 }\n"
            "instance_group [{ count: 2 kind: KIND_CPU }]\n"
            "optimization { execution_accelerators { cpu_execution_accelerator: [{ name: \"openvino\" }] } }\n")
    root = write_repository(tmp_path, {MODEL: {1: tiny_ssd(seed=1)}}, {MODEL: text})
    repository = ModelRepository(root, ServingOptions())
    try:
        model = repository.get(MODEL)
        assert model.max_batch_size == 4 and model.config()["dynamic_batching"] == {
            "max_queue_delay_microseconds": "500"}
    finally:
        repository.close()


def test_one_bad_model_file_refuses_the_start_by_default_and_is_listed_unavailable_on_request(tmp_path):
    root = write_repository(tmp_path, {MODEL: {1: tiny_ssd(seed=1)}, "broken": {1: b"not an onnx model"}})
    result = serve(root)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: {root / 'broken' / '1' / 'model.onnx'}: ")

    repository = ModelRepository(root, ServingOptions(), exit_on_error=False)
    try:
        assert [row["state"] for row in repository.index()] == ["UNAVAILABLE", "READY"]
        with running_server(root, exit_on_error=False) as live:
            assert KServeClient(live.url).infer(MODEL, {"input": images(1)})["scores"].shape[0] == 1
            index = http_json(live, "POST", "/v2/repository/index")
            assert index[0]["name"] == "broken" and index[0]["state"] == "UNAVAILABLE"
            assert "model.onnx" in index[0]["reason"]
            assert http_status(live, "GET", "/v2/models/broken/ready") == 503
            assert http_status(live, "GET", f"/v2/models/{MODEL}/ready") == 200
            # Triton's strict readiness: not ready while a model is unavailable, so a load balancer sends it nothing
            assert http_status(live, "GET", "/v2/health/ready") == 503
            assert http_status(live, "GET", "/v2/health/live") == 200
        with running_server(root, exit_on_error=False, strict_readiness=False) as live:   # the others suffice
            assert http_status(live, "GET", "/v2/health/ready") == 200
        with server_process(root, "--exit-on-error", "false") as live, KServeGrpcClient(live.grpc) as grpc_client:
            assert not KServeClient(live.url).ready() and not grpc_client.ready()   # both fronts say so
            assert grpc_client.model_ready(MODEL) and grpc_client.live()
    finally:
        repository.close()


@pytest.mark.parametrize("flag", ["--port", "--grpc-port", "--ort-grpc-port"])
@pytest.mark.parametrize("port", ["70000", "-1"])
def test_a_port_out_of_range_is_refused_before_anything_loads(repository, flag, port):
    """--port 70000 ended in an OverflowError traceback after the models had loaded; --grpc-port 70000 listened on
    4464, and -5 on 65531."""
    result = serve(repository, flag, port)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"argument {flag}: a TCP port is 0 to 65535, not {port}" in result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_the_models_load_stops_the_start_with_exit_0(tmp_path, stop):
    """Killed while it loaded its models, the server exited -15 on SIGTERM and with a KeyboardInterrupt traceback on
    Ctrl-C; the drain that makes a serving server exit 0 only starts once it serves."""
    root = write_repository(tmp_path, {f"model{i}": {1: tiny_ssd(seed=i)} for i in range(12)})
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen([sys.executable, "-m", "dlperf.serve", "--model-repository", str(root), "--port", "0",
                                "--grpc-port", "0", "--ort-grpc-port", "0"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, env=env)
    lines = []
    for line in process.stdout:   # the first of twelve models is loaded: the others are loading
        lines.append(line)
        if "loaded model" in line:
            process.send_signal(stop)
            break
    lines += process.stdout.readlines()
    assert process.wait(timeout=30) == 0, "".join(lines)   # had it come after the start, the drain answers: 0 too
    assert "Traceback" not in "".join(lines)


def test_a_taken_port_is_one_line_and_exit_1(repository):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = serve(repository, "--port", str(port))
        grpc_result = serve(repository, "--grpc-port", str(port))
    def said(result) -> list[str]:   # beyond the log's INFO lines (the models loaded)
        return [line for line in result.stderr.strip().splitlines() if " INFO " not in line]

    assert result.returncode == 1
    assert len(said(result)) == 1 and said(result)[0].startswith(f"error: cannot listen on 127.0.0.1:{port}: ")
    assert grpc_result.returncode == 1   # and no line of grpcio's own
    assert said(grpc_result) == [f"error: cannot serve gRPC on 127.0.0.1:{port}: the address is in use or not "
                                 "available here"]


# headers and bodies


def raw_exchange(server, request: bytes) -> bytes:
    with socket.create_connection((server.server_name, server.server_port), timeout=30) as conn:
        conn.sendall(request)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_conflicting_content_lengths_are_refused_with_400_and_the_connection_closed(server):
    answer = raw_exchange(server, b"POST /v2/models/tiny_ssd/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                                  b"Content-Length: 7\r\n\r\n{}GET / HTTP/1.1\r\n\r\n")
    head = answer.split(b"\r\n\r\n", 1)[0]
    assert head.startswith(b"HTTP/1.1 400") and b"connection: close" in head.lower()
    assert answer.count(b"HTTP/1.1") == 1, "the smuggled second request must not be answered"
    assert OrtServerClient(server.url).health()


def test_v2_json_replies_are_strict_json_with_non_finite_floats_as_strings(server):
    x = images(1)
    x[0, 0, 0, 0] = np.nan
    body = json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": list(x.shape),
                                   "data": ["NaN" if np.isnan(v) else float(v) for v in x.ravel()]}]})
    conn = http.client.HTTPConnection(server.server_name, server.server_port, timeout=30)
    conn.request("POST", f"/v2/models/{MODEL}/infer", body=body, headers={"Content-Type": "application/json"})
    answer = conn.getresponse()
    text = answer.read()
    assert answer.status == 200, text

    def refuse(constant):
        raise ValueError(f"bare {constant} in the reply")

    reply = json.loads(text, parse_constant=refuse)
    scores = np.array(next(o for o in reply["outputs"] if o["name"] == "scores")["data"], dtype=np.float32)
    assert np.isnan(scores).any()   # the NaN went through the model and came back, as a string
    assert np.isnan(KServeClient(server.url).infer(MODEL, {"input": x})["scores"]).any()   # and our client reads it


def http_status(server, method: str, path: str) -> int:
    conn = http.client.HTTPConnection(server.server_name, server.server_port, timeout=30)
    conn.request(method, path)
    answer = conn.getresponse()
    answer.read()
    return answer.status


def http_json(server, method: str, path: str):
    conn = http.client.HTTPConnection(server.server_name, server.server_port, timeout=30)
    conn.request(method, path, body=b"{}" if method == "POST" else None)
    answer = conn.getresponse()
    assert answer.status == 200
    return json.loads(answer.read())


def test_a_405_names_the_allowed_methods_and_head_answers_like_get_without_a_body(server):
    conn = http.client.HTTPConnection(server.server_name, server.server_port, timeout=30)
    conn.request("DELETE", "/v2/health/ready")
    answer = conn.getresponse()
    answer.read()
    assert answer.status == 405 and answer.getheader("Allow") == "GET, HEAD"
    conn.request("HEAD", "/v2/health/ready")
    answer = conn.getresponse()
    assert answer.status == 200 and answer.read() == b""
    conn.request("HEAD", f"/v2/models/{MODEL}")
    answer = conn.getresponse()
    assert answer.status == 200 and int(answer.getheader("Content-Length")) > 0 and answer.read() == b""
    server_header = answer.getheader("Server")
    assert server_header.startswith("dlperf-serve/") and "Python" not in server_header


def test_the_model_config_route_gives_tritons_json_config(server):
    config = http_json(server, "GET", f"/v2/models/{MODEL}/config")
    assert config["name"] == MODEL and config["platform"] == "onnxruntime_onnx" and config["max_batch_size"] == 4
    assert config["input"] == [{"name": "input", "data_type": "TYPE_FP32", "dims": [3, 8, 8]}]
    assert [o["name"] for o in config["output"]] == ["scores", "boxes"]


# metrics


def prometheus_samples(text: str) -> dict[str, float]:
    """``name{labels}`` -> value of a text exposition; every metric must have its HELP and TYPE lines."""
    samples, typed = {}, set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
        elif line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            samples[key] = float(value)
    for key in samples:
        name = key.split("{")[0]
        assert name in typed or any(name == base + suffix for base in typed for suffix in ("_bucket", "_sum", "_count"))
    return samples


def test_metrics_count_successes_failures_rows_and_runs_per_model_in_prometheus_format(repository):
    with running_server(repository, max_delay_ms=20) as live:
        client = KServeClient(live.url)
        for n in (1, 2, 3):
            client.infer(MODEL, {"input": images(n)})
        with pytest.raises(ServerError):
            client.infer(MODEL, {"input": images(1)[:, :, :4]})   # a wrong shape fails before it is queued
        conn = http.client.HTTPConnection(live.server_name, live.server_port, timeout=30)
        conn.request("GET", "/metrics")
        answer = conn.getresponse()
        assert answer.status == 200 and answer.getheader("Content-Type").startswith("text/plain; version=0.0.4")
        samples = prometheus_samples(answer.read().decode())
    label = '{model="tiny_ssd",version="1"}'
    assert samples["nv_inference_request_success" + label] == 3
    assert samples["nv_inference_request_failure" + label] == 1
    assert samples["nv_inference_count" + label] == 6
    assert samples["nv_inference_exec_count" + label] == 3
    assert samples['dlperf_inference_batch_size_bucket{model="tiny_ssd",version="1",le="2"}'] == 2
    assert samples["dlperf_inference_batch_size_count" + label] == 3
    assert samples["dlperf_inference_batch_size_sum" + label] == 6
    request_us = samples["nv_inference_request_duration_us" + label]
    assert 0 < samples["nv_inference_compute_infer_duration_us" + label] <= request_us
    assert samples["nv_inference_queue_duration_us" + label] <= request_us
