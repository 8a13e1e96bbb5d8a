"""dlperf.serve: an ORT-server- and KServe-V2-compatible inference server on onnxruntime.

Servers run for real on 127.0.0.1 at ephemeral ports; every answer is compared with onnxruntime run
directly on the same model file.
"""
from __future__ import annotations

import base64
import functools
import http.client
import json
import threading
import uuid
from pathlib import Path
from typing import Callable

import numpy as np
import onnxruntime as ort
import pytest
import requests
from onnx import TensorProto

from dlperf.serve import KServeClient, OrtServerClient, ServerError
from dlperf.serve import kserve, ort_protocol
from dlperf.serve.app import ROUTES, route
from serve_fixtures import running_server, server_process, ssd10_like, tiny_ssd, write_repository

MODEL = "tiny_ssd"


@pytest.fixture(scope="module")
def repository(tmp_path_factory) -> Path:
    return write_repository(tmp_path_factory.mktemp("models"), {MODEL: {1: tiny_ssd(seed=1), 2: tiny_ssd(seed=2)}})


@pytest.fixture(scope="module")
def server(repository):
    """Batching with a generous delay, so that concurrent requests reliably meet in one batch."""
    with running_server(repository, max_batch_size=8, max_delay_ms=30) as live:
        yield live


@functools.cache
def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def direct(repository: Path, version: int, x: np.ndarray) -> dict[str, np.ndarray]:
    """What onnxruntime itself computes for ``x``."""
    session = _session(repository / MODEL / str(version) / "model.onnx")
    return dict(zip(["scores", "boxes"], session.run(None, {"input": x})))


def images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, 8, 8)).astype(np.float32)


def assert_outputs_equal(actual: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    assert actual.keys() == expected.keys()
    for name in expected:
        assert actual[name].dtype == expected[name].dtype and actual[name].shape == expected[name].shape
        np.testing.assert_allclose(actual[name], expected[name], rtol=1e-5, atol=1e-6)


# health and headers


def test_health_endpoints_answer_on_both_protocols(server):
    root = requests.get(server.url + "/", headers={"x-ms-client-request-id": "client-7"})
    assert (root.status_code, root.text, root.headers["Content-Type"]) == (200, "Healthy", "text/plain")
    assert uuid.UUID(root.headers["x-ms-request-id"])
    assert root.headers["x-ms-client-request-id"] == "client-7"
    for path in ("/v2/health/live", "/v2/health/ready", f"/v2/models/{MODEL}/ready",
                 f"/v2/models/{MODEL}/versions/1/ready"):
        assert requests.get(server.url + path).status_code == 200, path
    assert requests.get(server.url + "/v2").json()["extensions"] == ["binary_tensor_data", "statistics"]


# ORT server protocol


def test_protobuf_round_trip_equals_onnxruntime(server, repository):
    x = images(2, seed=0)
    outputs = OrtServerClient(server.url).predict(MODEL, {"input": x}, fmt="protobuf")
    assert_outputs_equal(outputs, direct(repository, 2, x))


def test_json_round_trip_uses_protobufs_json_mapping(server, repository):
    x = images(1, seed=1)
    request = {"inputs": {"input": {"dims": ["1", "3", "8", "8"], "dataType": 1,
                                    "rawData": base64.b64encode(x.tobytes()).decode()}}}
    answer = requests.post(f"{server.url}/v1/models/{MODEL}:predict", data=json.dumps(request),
                           headers={"Content-Type": "application/json", "Accept": "application/json"})
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/json"
    scores = answer.json()["outputs"]["scores"]
    assert scores["dims"] == ["1", "64", "3"] and scores["dataType"] == 1 and scores["dataLocation"] == "DEFAULT"
    expected = direct(repository, 2, x)
    np.testing.assert_allclose(np.frombuffer(base64.b64decode(scores["rawData"]), np.float32).reshape(1, 64, 3),
                               expected["scores"], rtol=1e-5, atol=1e-6)
    assert_outputs_equal(OrtServerClient(server.url).predict(MODEL, {"input": x}, fmt="json"), expected)


def test_typed_field_inputs_get_typed_field_outputs_and_output_filter_applies(server, repository):
    x = images(1, seed=2)
    request = {"inputs": {"input": {"dims": [1, 3, 8, 8], "dataType": 1, "floatData": x.ravel().tolist()}},
               "outputFilter": ["boxes"]}
    answer = requests.post(f"{server.url}/score", json=request, headers={"Accept": "application/json"})
    outputs = answer.json()["outputs"]
    assert list(outputs) == ["boxes"] and "rawData" not in outputs["boxes"]
    np.testing.assert_allclose(np.array(outputs["boxes"]["floatData"], np.float32).reshape(1, 64, 4),
                               direct(repository, 2, x)["boxes"], rtol=1e-5, atol=1e-6)


def test_response_format_follows_accept_else_mirrors_the_request(server):
    request = ort_protocol.PredictRequest()
    request.inputs["input"].CopyFrom(ort_protocol.array_to_tensor(images(1, seed=3), raw=True))
    body = request.SerializeToString()
    for content_type, accept, answered in [
        ("application/x-protobuf", None, "application/x-protobuf"),
        ("application/octet-stream", "*/*", "application/octet-stream"),
        ("application/vnd.google.protobuf", "application/json", "application/json"),
    ]:
        headers = {"Content-Type": content_type, "Accept": accept}  # None: requests sends no Accept
        answer = requests.post(f"{server.url}/score", data=body, headers=headers)
        assert answer.headers["Content-Type"] == answered, (content_type, accept)
    json_body = json.dumps(ort_protocol.json_format.MessageToDict(request))
    answer = requests.post(f"{server.url}/score", data=json_body,
                           headers={"Content-Type": "application/json", "Accept": None})
    assert answer.headers["Content-Type"] == "application/json" and "outputs" in answer.json()


def test_predict_request_wire_format_is_that_of_predict_proto():
    """Field numbers spelled out by hand, so the runtime-built messages cannot drift from predict.proto
    unnoticed (a generated predict_pb2 is what real clients use)."""
    request = ort_protocol.PredictRequest(output_filter=["s"])
    request.inputs["x"].dims.append(1)
    request.inputs["x"].data_type = TensorProto.FLOAT
    request.inputs["x"].raw_data = b"\x00\x00\x80\x3f"
    tensor = b"\x08\x01" + b"\x10\x01" + b"\x4a\x04\x00\x00\x80\x3f"  # dims=1, data_type=2, raw_data=9
    entry = b"\x0a\x01x" + b"\x12" + bytes([len(tensor)]) + tensor  # map entry: key=1, value=2
    assert request.SerializeToString() == b"\x12" + bytes([len(entry)]) + entry + b"\x1a\x01s"
    assert type(request.inputs["x"]) is TensorProto


def test_onnx_tutorial_client_works_unchanged_against_python_m_dlperf_serve(tmp_path):
    """onnx/tutorials OnnxRuntimeServerSSDModel: its client code, with only the URL changed. The
    protoc-generated ``assets`` modules are replaced by the equivalent message classes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.patches as patches
    import matplotlib.pyplot as plt
    import onnx.onnx_ml_pb2 as onnx_ml_pb2
    from PIL import Image

    import dlperf.serve.ort_protocol as predict_pb2

    root = write_repository(tmp_path / "models", {"ssd": {1: ssd10_like()}})
    (tmp_path / "coco_classes.txt").write_text("".join(f"class{i}\n" for i in range(1, 81)))
    photo = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    with server_process(root) as server:
        url = server.url
        # --- the tutorial, verbatim but for the URL and file paths ---
        img = Image.fromarray(photo)
        img = img.resize((1200, 1200), Image.BILINEAR)
        img_data = np.array(img)
        img_data = np.transpose(img_data, [2, 0, 1])
        img_data = np.expand_dims(img_data, 0)
        mean_vec = np.array([0.485, 0.456, 0.406])
        stddev_vec = np.array([0.229, 0.224, 0.225])
        norm_img_data = np.zeros(img_data.shape).astype('float32')
        for i in range(img_data.shape[1]):
            norm_img_data[:, i, :, :] = (img_data[:, i, :, :] / 255 - mean_vec[i]) / stddev_vec[i]

        input_tensor = onnx_ml_pb2.TensorProto()
        input_tensor.dims.extend(norm_img_data.shape)
        input_tensor.data_type = 1
        input_tensor.raw_data = norm_img_data.tobytes()

        request_message = predict_pb2.PredictRequest()
        request_message.inputs["image"].data_type = input_tensor.data_type
        request_message.inputs["image"].dims.extend(input_tensor.dims)
        request_message.inputs["image"].raw_data = input_tensor.raw_data

        content_type_headers = ['application/x-protobuf', 'application/octet-stream', 'application/vnd.google.protobuf']
        for h in content_type_headers:
            request_headers = {
                'Content-Type': h,
                'Accept': 'application/x-protobuf'
            }

        inference_url = url + "/v1/models/default/versions/1:predict"
        response = requests.post(inference_url, headers=request_headers, data=request_message.SerializeToString())

        response_message = predict_pb2.PredictResponse()
        response_message.ParseFromString(response.content)

        bboxes = np.frombuffer(response_message.outputs['bboxes'].raw_data, dtype=np.float32)
        labels = np.frombuffer(response_message.outputs['labels'].raw_data, dtype=np.int64)
        scores = np.frombuffer(response_message.outputs['scores'].raw_data, dtype=np.float32)

        classes = [line.rstrip('\n') for line in open(tmp_path / 'coco_classes.txt')]
        plt.figure()
        fig, ax = plt.subplots(1, figsize=(12, 9))
        ax.imshow(img)
        resized_width = 1200
        resized_height = 1200
        num_boxes = 6
        for c in range(num_boxes):
            base_index = c * 4
            y1, x1, y2, x2 = bboxes[base_index] * resized_height, bboxes[base_index + 1] * resized_width, bboxes[
                base_index + 2] * resized_height, bboxes[base_index + 3] * resized_width
            color = 'blue'
            box_h = (y2 - y1)
            box_w = (x2 - x1)
            bbox = patches.Rectangle((y1, x1), box_h, box_w, linewidth=2, edgecolor=color, facecolor='none')
            ax.add_patch(bbox)
            plt.text(y1, x1, s=classes[labels[c] - 1], color='white', verticalalignment='top',
                     bbox={'color': color, 'pad': 0})
        plt.axis('off')
        plt.savefig(tmp_path / "ssd_result.jpg", bbox_inches='tight', pad_inches=0.0)
        plt.close("all")
        # --- end of the tutorial ---
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/x-protobuf"
    assert [list(response_message.outputs[n].dims) for n in ("bboxes", "labels", "scores")] == [
        [1, 200, 4], [1, 200], [1, 200]]
    session = ort.InferenceSession(str(root / "ssd" / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    expected = dict(zip(["bboxes", "labels", "scores"], session.run(None, {"image": norm_img_data})))
    np.testing.assert_allclose(bboxes, expected["bboxes"].ravel(), rtol=1e-5)
    np.testing.assert_array_equal(labels, expected["labels"].ravel())
    np.testing.assert_allclose(scores, expected["scores"].ravel(), rtol=1e-5)
    assert (tmp_path / "ssd_result.jpg").stat().st_size > 0


# versions


def test_versions_serve_their_own_model_and_the_highest_is_the_default(server, repository):
    x = images(1, seed=4)
    v1, v2 = direct(repository, 1, x), direct(repository, 2, x)
    assert not np.allclose(v1["scores"], v2["scores"])
    ort_client, kserve_client = OrtServerClient(server.url), KServeClient(server.url)
    assert_outputs_equal(ort_client.predict(MODEL, {"input": x}, version=1), v1)
    assert_outputs_equal(ort_client.predict(MODEL, {"input": x}, version=2), v2)
    assert_outputs_equal(ort_client.predict(MODEL, {"input": x}), v2)
    assert_outputs_equal(ort_client.predict("default", {"input": x}, version=1), v1)
    assert_outputs_equal(kserve_client.infer(MODEL, {"input": x}, version="1"), v1)
    assert_outputs_equal(kserve_client.infer(MODEL, {"input": x}), v2)
    assert kserve_client.metadata(MODEL) == {
        "name": MODEL, "versions": ["1", "2"], "platform": "onnxruntime_onnx",
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 3, 8, 8]}],
        "outputs": [{"name": "scores", "datatype": "FP32", "shape": [-1, 64, 3]},
                    {"name": "boxes", "datatype": "FP32", "shape": [-1, 64, 4]}],
    }
    assert kserve_client.metadata(MODEL, version=1)["versions"] == ["1"]


# KServe V2


def test_tritonclient_http_infers_against_the_live_server(server, repository):
    import tritonclient.http as triton

    client = triton.InferenceServerClient(server.url.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready(MODEL)
    assert client.get_model_metadata(MODEL, "1")["inputs"][0]["shape"] == [-1, 3, 8, 8]
    x = images(3, seed=5)
    for binary in (True, False):
        given = triton.InferInput("input", list(x.shape), "FP32")
        given.set_data_from_numpy(x, binary_data=binary)
        wanted = [triton.InferRequestedOutput(name, binary_data=binary) for name in ("scores", "boxes")]
        result = client.infer(MODEL, [given], model_version="1", outputs=wanted, request_id="r-1")
        assert result.get_response()["id"] == "r-1"
        assert_outputs_equal({n: result.as_numpy(n) for n in ("scores", "boxes")}, direct(repository, 1, x))
    result = client.infer(MODEL, [given])  # no outputs named: all of them, binary
    assert_outputs_equal({n: result.as_numpy(n) for n in ("scores", "boxes")}, direct(repository, 2, x))
    stats = client.get_inference_statistics(MODEL, "1")["model_stats"][0]
    assert stats["version"] == "1" and stats["inference_count"] >= 6
    with pytest.raises(triton.InferenceServerException, match="unknown model"):
        client.infer("no_such_model", [given])
    client.close()


def test_kserve_client_round_trips_json_and_binary_tensors(server, repository):
    x = images(2, seed=6)
    client = KServeClient(server.url)
    for binary in (True, False):
        assert_outputs_equal(client.infer(MODEL, {"input": x}, binary=binary), direct(repository, 2, x))
    assert list(client.infer(MODEL, {"input": x}, outputs=["boxes"])) == ["boxes"]


@pytest.mark.parametrize("array", [
    np.arange(6, dtype=np.float32).reshape(2, 3) / 7,
    np.array([[1.5, -2.25]], dtype=np.float16),
    np.array([1e300, -0.0], dtype=np.float64),
    np.array([-128, 127], dtype=np.int8),
    np.array([0, 255], dtype=np.uint8),
    np.array([-32768, 32767], dtype=np.int16),
    np.array([0, 65535], dtype=np.uint16),
    np.array([-2**31, 2**31 - 1], dtype=np.int32),
    np.array([-2**63, 2**63 - 1], dtype=np.int64),
    np.array([0, 2**32 - 1], dtype=np.uint32),
    np.array([0, 2**64 - 1], dtype=np.uint64),
    np.array([[True, False]]),
    np.array([["ünï", ""], ["b", "c"]], dtype=object),
], ids=lambda a: str(a.dtype) if a.dtype != object else "string")
def test_every_element_type_survives_both_codecs_in_every_encoding(array):
    for raw, fmt in [(True, "protobuf"), (True, "json"), (False, "protobuf"), (False, "json")]:
        request = ort_protocol.PredictRequest()
        request.inputs["t"].CopyFrom(ort_protocol.array_to_tensor(array, raw=raw))
        parsed = ort_protocol.parse(ort_protocol.PredictRequest, ort_protocol.serialize(request, fmt), fmt)
        decoded = ort_protocol.tensor_to_array(parsed.inputs["t"], "t")
        assert decoded.dtype == array.dtype and np.array_equal(decoded, array)
    for binary in (True, False):
        body, headers = kserve.encode_request({"t": array}, None, binary)
        decoded = kserve.parse_request(body, headers.get(kserve.HEADER_LENGTH)).inputs["t"]
        assert decoded.dtype == array.dtype and np.array_equal(decoded, array)


# bad input

_X = images(1, seed=7)


def _predict_body(tensor: TensorProto | None = None, name: str = "input") -> bytes:
    request = ort_protocol.PredictRequest()
    request.inputs[name].CopyFrom(tensor or ort_protocol.array_to_tensor(_X, raw=True))
    return request.SerializeToString()


def _infer_body(**changes) -> bytes:
    tensor = {"name": "input", "shape": [1, 3, 8, 8], "datatype": "FP32", "data": _X.ravel().tolist(), **changes}
    return json.dumps({"inputs": [tensor]}).encode()


_PB = {"Content-Type": "application/x-protobuf"}
_PREDICT = f"/v1/models/{MODEL}:predict"
_INFER = f"/v2/models/{MODEL}/infer"
_OVERSIZED = b"\x00" * (25 * 1024 * 1024 + 1)

BAD_REQUESTS = {
    "malformed protobuf": ("POST", _PREDICT, _PB, b"\xff\xff\xff", 400),
    "malformed JSON": ("POST", _PREDICT, {"Content-Type": "application/json"}, b'{"inputs": ', 400),
    "missing Content-Type": ("POST", _PREDICT, {}, _predict_body(), 400),
    "unsupported Content-Type": ("POST", _PREDICT, {"Content-Type": "text/plain"}, _predict_body(), 400),
    "unsupported Accept": ("POST", _PREDICT, {**_PB, "Accept": "text/html"}, _predict_body(), 400),
    "wrong input name": ("POST", _PREDICT, _PB, _predict_body(name="image"), 400),
    "wrong dtype": ("POST", _PREDICT, _PB,
                    _predict_body(ort_protocol.array_to_tensor(_X.astype(np.float64), raw=True)), 400),
    "wrong shape": ("POST", _PREDICT, _PB, _predict_body(ort_protocol.array_to_tensor(_X[..., :4], raw=True)), 400),
    "raw_data shorter than dims": ("POST", _PREDICT, _PB,
                                   _predict_body(TensorProto(dims=[1, 3, 8, 8], data_type=1, raw_data=b"\0" * 8)), 400),
    "external data location": ("POST", _PREDICT, _PB, _predict_body(TensorProto(
        dims=[1], data_type=1, data_location=TensorProto.EXTERNAL,
        external_data=[{"key": "location", "value": "/etc/passwd"}])), 400),
    "empty batch": ("POST", _PREDICT, _PB,
                    _predict_body(TensorProto(dims=[0, 3, 8, 8], data_type=1, raw_data=b"")), 400),
    "unknown output in filter": ("POST", _PREDICT, {"Content-Type": "application/json"},
                                 json.dumps({"outputFilter": ["logits"]}).encode(), 400),
    "unknown model (ORT)": ("POST", "/v1/models/resnet:predict", _PB, _predict_body(), 404),
    "unknown version (ORT)": ("POST", f"/v1/models/{MODEL}/versions/9:predict", _PB, _predict_body(), 404),
    "unknown route": ("POST", "/v1/predict", _PB, _predict_body(), 404),
    "GET on a POST route": ("GET", "/score", {}, b"", 405),
    "unknown method": ("DELETE", "/", {}, b"", 405),
    "oversized body (ORT)": ("POST", _PREDICT, _PB, _OVERSIZED, 413),
    "malformed JSON (V2)": ("POST", _INFER, {}, b"[1, 2", 400),
    "JSON that is no object": ("POST", _INFER, {}, b"[]", 400),
    "wrong input name (V2)": ("POST", _INFER, {}, _infer_body(name="image"), 400),
    "wrong datatype": ("POST", _INFER, {}, _infer_body(datatype="FP64"), 400),
    "unknown datatype": ("POST", _INFER, {}, _infer_body(datatype="FLOAT"), 400),
    "wrong shape (V2)": ("POST", _INFER, {}, _infer_body(shape=[1, 3, 8, 4], data=_X[..., :4].ravel().tolist()), 400),
    "data count differs from shape": ("POST", _INFER, {}, _infer_body(data=[1.0, 2.0]), 400),
    "strings where numbers belong": ("POST", _INFER, {}, _infer_body(data=["a"] * 192), 400),
    "binary size past the body": ("POST", _INFER, {"Inference-Header-Content-Length": "10"}, b'{"inputs":[]}', 400),
    "unknown model (V2)": ("POST", "/v2/models/resnet/infer", {}, _infer_body(), 404),
    "unknown version (V2)": ("GET", f"/v2/models/{MODEL}/versions/3", {}, b"", 404),
    "unknown route (V2)": ("GET", "/v2/repository/models", {}, b"", 404),
    "GET on the POST-only index": ("GET", "/v2/repository/index", {}, b"", 405),
    "oversized body (V2)": ("POST", _INFER, {}, _OVERSIZED, 413),
    "chunked body, read and parsed": ("POST", _INFER, {"Transfer-Encoding": "chunked"}, b"0\r\n\r\n", 400),
}


@pytest.mark.parametrize("case", BAD_REQUESTS)
def test_bad_request_gets_its_4xx_json_error_and_the_server_keeps_serving(server, case):
    method, path, headers, body, status = BAD_REQUESTS[case]
    connection = http.client.HTTPConnection(server.server_name, server.server_port, timeout=30)
    if "Transfer-Encoding" in headers:
        connection.putrequest(method, path)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders(body)
    else:
        connection.request(method, path, body=body, headers={"Content-Length": str(len(body)), **headers})
    answer = connection.getresponse()
    error = json.loads(answer.read())
    assert answer.status == status, error
    assert answer.getheader("Content-Type") == "application/json" and answer.getheader("x-ms-request-id")
    if path.startswith("/v2"):
        assert set(error) == {"error"} and error["error"]
    else:
        assert error.keys() == {"error_code", "error_message"} and error["error_code"] == status
    if answer.will_close:
        connection = http.client.HTTPConnection(server.server_name, server.server_port, timeout=30)
    connection.request("POST", _PREDICT, body=_predict_body(), headers=_PB)  # same connection if kept alive
    assert connection.getresponse().status == 200
    connection.close()


def test_client_raises_server_error_with_the_servers_message(server):
    with pytest.raises(ServerError, match="takes inputs") as raised:
        OrtServerClient(server.url).predict(MODEL, {"image": _X})
    assert raised.value.status == 400


# dynamic batching


def _hammer(url: str, expected: Callable[[np.ndarray], dict], threads: int, per_thread: int) -> None:
    """Concurrent requests over both protocols with distinct inputs; each answer must be its own."""
    barrier = threading.Barrier(threads)
    failures: list[BaseException] = []

    def work(index: int) -> None:
        ort_client, kserve_client = OrtServerClient(url), KServeClient(url)
        try:
            barrier.wait()
            for j in range(per_thread):
                x = images(1 + (index + j) % 2, seed=1000 * index + j)
                if index % 2:
                    got = ort_client.predict(MODEL, {"input": x}, version=2)
                else:
                    got = kserve_client.infer(MODEL, {"input": x}, version=2)
                assert_outputs_equal(got, expected(x))
        except BaseException as error:  # re-raised below, in the test's thread
            failures.append(error)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert not failures, failures[0]


def _version2_stats(url: str) -> dict:
    return KServeClient(url).statistics(MODEL, 2)["model_stats"][0]


def test_concurrent_requests_are_merged_into_batches_and_each_gets_its_own_rows(repository):
    """A queued batch waits up to 20 ms to fill: without it, whether 16 clients ever find the tiny model busy
    depends on how loaded the machine is."""
    with running_server(repository, max_delay_ms=20) as live:
        before = _version2_stats(live.url)
        _hammer(live.url, lambda x: direct(repository, 2, x), threads=16, per_thread=3)
        after = _version2_stats(live.url)
    served = after["inference_stats"]["success"]["count"] - before["inference_stats"]["success"]["count"]
    assert served == 48
    assert after["execution_count"] - before["execution_count"] < served
    batch_sizes = [entry["batch_size"] for entry in after["batch_stats"]]
    assert 2 < max(batch_sizes) <= 8


@pytest.mark.parametrize("how", ["--no-batching", "config.pbtxt max_batch_size: 0"])
def test_batching_can_be_turned_off(tmp_path, repository, how):
    configs = {MODEL: "max_batch_size: 0\n"} if how.startswith("config") else {}
    root = write_repository(tmp_path, {MODEL: {2: (repository / MODEL / "2" / "model.onnx").read_bytes()}}, configs)
    with running_server(root, batching=how != "--no-batching", max_delay_ms=30) as live:
        _hammer(live.url, lambda x: direct(repository, 2, x), threads=8, per_thread=2)
        stats = _version2_stats(live.url)
        assert stats["inference_stats"]["success"]["count"] == stats["execution_count"] == 16


# the API description, and fuzzing it


def test_openapi_document_describes_every_route(server):
    document = requests.get(server.url + "/openapi.json").json()
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) == {
        "/", "/score", "/v1/models/{name}:predict", "/v1/models/{name}/versions/{version}:predict",
        "/openapi.json", "/v2", "/v2/health/live", "/v2/health/ready", "/v2/repository/index", "/metrics",
        *(f"/v2/models/{{name}}{v}{suffix}" for v in ("", "/versions/{version}")
          for suffix in ("", "/ready", "/stats", "/config", "/infer")),
    }
    assert document["paths"]["/v2/models/{name}"]["get"]["parameters"][0]["schema"]["enum"] == [MODEL]


def test_openapi_document_and_router_agree_in_both_directions(server):
    """The document is written by hand beside the router: every documented operation must route, and every route
    must be documented, so neither can drift from the other."""
    document = requests.get(server.url + "/openapi.json").json()
    operations = {(method.upper(), path.replace("{name}", MODEL).replace("{version}", "1"))
                  for path, item in document["paths"].items() for method in item}
    for method, path in operations:
        route(method, path)   # a 404 or 405 raises
    for method, pattern, action in ROUTES:
        assert any(m == method and pattern.fullmatch(path) for m, path in operations), f"{action} is undocumented"


def test_fuzzing_the_openapi_document_finds_no_server_error(server):
    """schemathesis generates valid and invalid requests for every documented operation; besides the
    absence of 5xx it checks that statuses, content types and JSON bodies are the documented ones."""
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,
                                                   status_code_conformance)

    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    cases = st.one_of(schema.as_strategy(), schema.as_strategy(schemathesis.GenerationMode.NEGATIVE))
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

    @given(case=cases)
    @settings(max_examples=100, deadline=None, database=None, derandomize=True, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    def fuzz(case):
        case.call_and_validate(base_url=server.url, checks=checks)

    fuzz()


def test_the_bench_table_has_speedups_per_model_and_the_goals_read_the_direct_and_most_client_rows():
    from dlperf.serve.bench import COLUMNS, bench_table, serving_goals

    def row(benchmark, model, runtime, batching, clients, rps, p50, protocol="http"):
        return {"benchmark": benchmark, "model": model, "runtime": runtime, "batching": batching, "clients": clients,
                "batch_size": 1, "requests": 10, "throughput_rps": rps, "p50_ms": p50, "p99_ms": p50,
                "mean_batch": 1.0, "cpu_cores": 1.5,
                "protocol": protocol if benchmark == "server" else "in_process"}

    rows = [row("server", "ssd", "onnxruntime", "off", 1, 10.0, 5.0),
            row("server", "ssd", "onnxruntime", "off", 8, 20.0, 5.0),
            row("server", "ssd", "onnxruntime", "dynamic", 1, 10.0, 5.0),
            row("server", "ssd", "onnxruntime", "dynamic", 8, 50.0, 5.0),
            row("server", "ssd_full", "onnxruntime", "off", 1, 4.0, 250.0),
            row("server", "ssd_full", "onnxruntime", "off", 8, 8.0, 1000.0),
            row("server", "ssd_full", "onnxruntime", "dynamic", 1, 4.0, 250.0),
            row("server", "ssd_full", "onnxruntime", "dynamic", 8, 6.0, 1300.0),
            row("server", "ssd", "onnxruntime", "off", 8, 25.0, 4.0, protocol="grpc"),
            row("server", "ssd", "onnxruntime", "dynamic", 8, 30.0, 4.0, protocol="grpc"),
            row("direct", "ssd", "pytorch_eager", "off", 1, 100.0, 9.0),
            row("direct", "ssd", "onnxruntime", "off", 1, 300.0, 3.0)]
    table = bench_table(rows)
    assert list(table.columns) == COLUMNS
    assert table.speedup.tolist() == [1.0, 1.0, 1.0, 2.5, 1.0, 1.0, 1.0, 0.75, 1.0, 1.2, 1.0, 3.0]
    speedups, met = serving_goals(table)
    assert speedups == {"ort_vs_eager_batch1": 3.0, "batched_vs_unbatched_8_clients_ssd": 2.5,
                        "batched_vs_unbatched_8_clients_ssd_full": 0.75}
    assert met == {"ort_vs_eager_batch1": True, "batched_vs_unbatched_8_clients_ssd": True,
                   "batched_vs_unbatched_8_clients_ssd_full": False}


def test_batching_that_matches_no_batching_meets_its_goal_and_ort_at_twice_eager_meets_its_own():
    from dlperf.serve.bench import bench_table, serving_goals

    def row(benchmark, runtime, batching, rps, p50):
        return {"benchmark": benchmark, "model": "ssd", "runtime": runtime, "batching": batching, "clients": 16,
                "protocol": "http" if benchmark == "server" else "in_process",
                "batch_size": 1, "requests": 10, "throughput_rps": rps, "p50_ms": p50, "p99_ms": p50,
                "mean_batch": 1.0, "cpu_cores": 1.0}

    table = bench_table([row("server", "onnxruntime", "off", 40.0, 5.0),
                         row("server", "onnxruntime", "dynamic", 40.0, 5.0),
                         row("direct", "pytorch_eager", "off", 100.0, 4.0),
                         row("direct", "onnxruntime", "off", 200.0, 2.0)])
    assert serving_goals(table) == ({"ort_vs_eager_batch1": 2.0, "batched_vs_unbatched_16_clients_ssd": 1.0},
                                    {"ort_vs_eager_batch1": True, "batched_vs_unbatched_16_clients_ssd": True})
