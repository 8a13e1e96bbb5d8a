"""dlperf.serve over gRPC: KServe V2 for tritonclient.grpc and dlperf's own client, ORT server's Predict.

One server on 127.0.0.1, at ports it picks, serves every test; each answer is compared with onnxruntime run
directly on the same model file, bit for bit.
"""
from __future__ import annotations

import functools
import re
import socket
import threading
from pathlib import Path

import grpc
import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as triton
from google.protobuf import descriptor_pool
from onnx import numpy_helper
from tritonclient.grpc import service_pb2, service_pb2_grpc

from dlperf.serve import ModelRepository, ModelVersion, ServeError, ServingOptions, grpc_messages, ort_protocol
from dlperf.serve.grpc_client import KServeGrpcClient
from dlperf.serve.grpc_server import infer_inputs, start_grpc
from serve_fixtures import ssd10_like, tiny_ssd, write_repository

MODEL = "tiny_ssd"
MAX_BATCH = 4


@pytest.fixture(scope="module")
def repository(tmp_path_factory) -> Path:
    return write_repository(tmp_path_factory.mktemp("models"), {
        MODEL: {1: tiny_ssd(seed=1), 2: tiny_ssd(seed=2)}, "ssd10": {1: ssd10_like()}, "broken": {1: b"not onnx"}})


@pytest.fixture(scope="module")
def draining() -> threading.Event:
    return threading.Event()


@pytest.fixture(scope="module")
def served(repository) -> ModelRepository:
    models = ModelRepository(repository, ServingOptions(max_batch_size=MAX_BATCH), default_model=MODEL,
                             exit_on_error=False)
    yield models
    models.close()


@pytest.fixture(scope="module")
def front(served, draining):
    running = start_grpc(served, "127.0.0.1", 0, 0, ready=lambda: not draining.is_set())
    yield running
    running.stop(None)


@pytest.fixture(scope="module")
def client(front):
    with triton.InferenceServerClient(f"127.0.0.1:{front.kserve_port}") as connected:
        yield connected


@functools.cache
def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def direct(repository: Path, model: str, version: int, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """What onnxruntime itself computes."""
    session = _session(repository / model / str(version) / "model.onnx")
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))


def images(n: int, seed: int, size: int = 8) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, size, size)).astype(np.float32)


def assert_identical(actual: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    assert actual.keys() == expected.keys()
    for name in expected:
        assert actual[name].dtype == expected[name].dtype
        np.testing.assert_array_equal(actual[name], expected[name])


def triton_input(name: str, array: np.ndarray, datatype: str = "FP32") -> triton.InferInput:
    given = triton.InferInput(name, list(array.shape), datatype)
    given.set_data_from_numpy(array)
    return given


def test_tritonclient_sees_a_live_ready_server_that_turns_unready_while_draining(client, draining):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(MODEL) and client.is_model_ready(MODEL, "1")
    assert not any(client.is_model_ready(*name) for name in [("no_such_model",), (MODEL, "7"), ("broken",)])
    draining.set()
    try:
        assert client.is_server_live() and not client.is_server_ready()
    finally:
        draining.clear()
    assert client.get_server_metadata().name == "dlperf-serve"


def test_model_metadata_and_config_describe_what_the_server_runs(client):
    metadata = client.get_model_metadata(MODEL)
    assert (metadata.name, list(metadata.versions), metadata.platform) == (MODEL, ["1", "2"], "onnxruntime_onnx")
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.inputs] == [("input", "FP32", [-1, 3, 8, 8])]
    assert [t.name for t in metadata.outputs] == ["scores", "boxes"]
    assert list(client.get_model_metadata(MODEL, "1").versions) == ["1"]
    config = client.get_model_config(MODEL).config
    assert (config.name, config.backend, config.max_batch_size) == (MODEL, "onnxruntime", MAX_BATCH)
    assert [(t.name, t.data_type, list(t.dims)) for t in config.input] == [("input", 11, [3, 8, 8])]  # TYPE_FP32
    assert config.HasField("dynamic_batching")


def test_tritonclient_infer_equals_onnxruntime_and_echoes_the_id(client, repository):
    x = images(3, seed=1)
    wanted = [triton.InferRequestedOutput(name) for name in ("scores", "boxes")]
    result = client.infer(MODEL, [triton_input("input", x)], model_version="1", outputs=wanted, request_id="r-1")
    assert result.get_response().id == "r-1" and result.get_response().model_version == "1"
    assert_identical({n: result.as_numpy(n) for n in ("scores", "boxes")}, direct(repository, MODEL, 1, {"input": x}))
    only_boxes = client.infer(MODEL, [triton_input("input", x)], outputs=[triton.InferRequestedOutput("boxes")])
    assert [t.name for t in only_boxes.get_response().outputs] == ["boxes"]
    np.testing.assert_array_equal(only_boxes.as_numpy("boxes"), direct(repository, MODEL, 2, {"input": x})["boxes"])


def test_a_full_size_ssd_image_beyond_grpcs_4_mib_default_is_served(client, repository):
    image = images(1, seed=2, size=1200)   # 17 MB, under the 25 MiB HTTP body limit
    result = client.infer("ssd10", [triton_input("image", image)])
    expected = direct(repository, "ssd10", 1, {"image": image})
    assert_identical({name: result.as_numpy(name) for name in expected}, expected)


def test_typed_contents_are_accepted_and_outputs_come_back_raw(front, repository):
    x = images(2, seed=3)
    request = service_pb2.ModelInferRequest(model_name=MODEL, model_version="2")
    request.inputs.add(name="input", datatype="FP32", shape=x.shape).contents.fp32_contents.extend(x.ravel())
    with grpc.insecure_channel(f"127.0.0.1:{front.kserve_port}") as channel:
        response = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request)
    expected = direct(repository, MODEL, 2, {"input": x})
    assert [(t.name, t.datatype, list(t.shape)) for t in response.outputs] == [
        (name, "FP32", list(array.shape)) for name, array in expected.items()]
    actual = {t.name: np.frombuffer(raw, "<f4").reshape(t.shape) for t, raw in
              zip(response.outputs, response.raw_output_contents)}
    assert_identical(actual, expected)


@pytest.mark.parametrize("datatype, field, array", [
    ("BOOL", "bool_contents", np.array([True, False])),
    ("INT8", "int_contents", np.array([-128, 127], dtype=np.int8)),
    ("UINT16", "uint_contents", np.array([0, 65535], dtype=np.uint16)),
    ("UINT64", "uint64_contents", np.array([0, 2**64 - 1], dtype=np.uint64)),
    ("FP64", "fp64_contents", np.array([1e300, -0.0])),
    ("BYTES", "bytes_contents", np.array(["a", "é"], dtype=object)),
])
def test_each_datatype_decodes_from_its_typed_contents_field(datatype, field, array):
    request = grpc_messages.ModelInferRequest()
    values = [v.encode() for v in array] if datatype == "BYTES" else array.tolist()
    getattr(request.inputs.add(name="x", datatype=datatype, shape=[1, 2]).contents, field).extend(values)
    decoded = infer_inputs(request)["x"]
    assert decoded.dtype == array.dtype and decoded.tolist() == [array.tolist()]


@pytest.mark.parametrize("datatype, field, values, raw, message", [
    ("INT8", "int_contents", [128, 0], [], "tensor 'x': int_contents holds values outside INT8"),
    ("FP32", "int_contents", [1, 2], [], "tensor 'x': fp32_contents holds 0 values where the shape says 2"),
    ("FP16", "int_contents", [1, 2], [], "tensor 'x': FP16 data must come in raw_input_contents"),
    ("FP32", "fp32_contents", [], [b"", b""], "raw_input_contents holds 2 tensor(s) for 1 input(s)"),
    ("FP32", "fp32_contents", [], [bytes(4)], "tensor 'x': 4 bytes do not hold 2 FP32 values"),
])
def test_contents_that_do_not_match_the_tensor_are_refused(datatype, field, values, raw, message):
    request = grpc_messages.ModelInferRequest(raw_input_contents=raw)
    getattr(request.inputs.add(name="x", datatype=datatype, shape=[2]).contents, field).extend(values)
    with pytest.raises(ServeError, match=re.escape(message)) as refused:
        infer_inputs(request)
    assert refused.value.status == 400


@pytest.mark.parametrize("model, array, datatype, code, message", [
    ("no_such_model", images(1, 0), "FP32", "NOT_FOUND", "unknown model 'no_such_model'; the repository holds"),
    ("broken", images(1, 0), "FP32", "UNAVAILABLE", "model 'broken' is unavailable: "),
    (MODEL, images(1, 0).astype(np.float64), "FP64", "INVALID_ARGUMENT",
     "input 'input': expected tensor(float), got tensor(double)"),
    (MODEL, images(1, 0, size=4), "FP32", "INVALID_ARGUMENT",
     "input 'input': shape [1, 3, 4, 4] does not match the model's [-1, 3, 8, 8]"),
    (MODEL, images(MAX_BATCH + 1, 0), "FP32", "INVALID_ARGUMENT",
     f"inference request batch-size must be <= {MAX_BATCH} for '{MODEL}'"),
])
def test_refusals_carry_the_http_message_under_tritons_status_code(client, model, array, datatype, code, message):
    with pytest.raises(triton.InferenceServerException) as refused:
        client.infer(model, [triton_input("input", array, datatype)])
    assert refused.value.status() == f"StatusCode.{code}"
    assert refused.value.message().startswith(message)


def test_an_unforeseen_failure_is_internal_and_logged(client, monkeypatch, caplog):
    monkeypatch.setattr(ModelVersion, "config", lambda self: 1 / 0)
    with pytest.raises(triton.InferenceServerException) as refused:
        client.get_model_config(MODEL)
    assert (refused.value.status(), refused.value.message()) == ("StatusCode.INTERNAL", "internal server error")
    assert "gRPC ModelConfig failed" in caplog.text and "ZeroDivisionError" in caplog.text


def test_statistics_and_repository_index_follow_the_requests(front, client):
    client.infer(MODEL, [triton_input("input", images(2, seed=4))], model_version="1")
    stats = client.get_inference_statistics(MODEL, "1").model_stats
    assert [(s.name, s.version) for s in stats] == [(MODEL, "1")]
    assert stats[0].inference_count >= 2 and stats[0].inference_stats.success.count >= 1
    assert len(client.get_inference_statistics().model_stats) == 3   # no name: every version of every model
    index = client.get_model_repository_index().models
    assert [(m.name, m.version, m.state) for m in index] == [
        ("broken", "", "UNAVAILABLE"), ("ssd10", "1", "READY"), (MODEL, "1", "READY"), (MODEL, "2", "READY")]
    assert "onnxruntime cannot load it" in index[0].reason
    with grpc.insecure_channel(f"127.0.0.1:{front.kserve_port}") as channel:
        ready = service_pb2_grpc.GRPCInferenceServiceStub(channel).RepositoryIndex(
            service_pb2.RepositoryIndexRequest(ready=True))
    assert [m.name for m in ready.models] == ["ssd10", MODEL, MODEL]


def test_ort_predict_over_grpc_serves_the_default_model_and_answers_raw_to_raw(front, repository):
    x = images(2, seed=5)
    expected = direct(repository, MODEL, 2, {"input": x})
    with grpc.insecure_channel(f"127.0.0.1:{front.ort_port}") as channel:
        predict = channel.unary_unary("/onnxruntime.server.PredictionService/Predict",
                                      request_serializer=ort_protocol.PredictRequest.SerializeToString,
                                      response_deserializer=ort_protocol.PredictResponse.FromString)
        for raw in (True, False):
            request = ort_protocol.PredictRequest()
            request.inputs["input"].CopyFrom(ort_protocol.array_to_tensor(x, raw=raw))
            response, call = predict.with_call(request, metadata=[("x-ms-client-request-id", "c-1")])
            assert all(t.HasField("raw_data") == raw for t in response.outputs.values())
            assert_identical({n: numpy_helper.to_array(t) for n, t in response.outputs.items()}, expected)
            assert ("x-ms-client-request-id", "c-1") in call.initial_metadata()
        request.output_filter.append("boxes")
        assert list(predict(request).outputs) == ["boxes"]


def test_own_client_round_trips_through_raw_contents(front, repository):
    x = images(2, seed=6)
    with KServeGrpcClient(f"127.0.0.1:{front.kserve_port}") as client:
        assert client.live() and client.ready() and client.model_ready(MODEL, 1)
        assert not client.model_ready("no_such_model")
        assert_identical(client.infer(MODEL, {"input": x}, version=1), direct(repository, MODEL, 1, {"input": x}))
        assert list(client.infer(MODEL, {"input": x}, outputs=["boxes"])) == ["boxes"]
        with pytest.raises(grpc.RpcError) as refused:
            client.infer(MODEL, {"input": images(MAX_BATCH + 1, 0)})
        assert refused.value.details() == f"inference request batch-size must be <= {MAX_BATCH} for '{MODEL}'"
    with KServeGrpcClient(f"127.0.0.1:{_free_port()}", timeout=5) as nobody:
        assert not nobody.live() and not nobody.ready()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _fields(message) -> dict[int, tuple]:
    return {f.number: (f.name, f.type, f.is_repeated, f.message_type and f.message_type.full_name,
                       f.enum_type and {v.name: v.number for v in f.enum_type.values},
                       f.containing_oneof and f.containing_oneof.name) for f in message.fields}


def _all_messages(messages):
    for message in messages:
        yield message
        yield from _all_messages(message.nested_types)


def test_every_message_and_rpc_matches_tritonclients_descriptor_field_for_field():
    tritons = descriptor_pool.Default()   # where tritonclient's generated modules put grpc_service.proto
    for message in _all_messages(grpc_messages.DESCRIPTOR.message_types_by_name.values()):
        assert _fields(message) == _fields(tritons.FindMessageTypeByName(message.full_name)), message.full_name
    # model_config's subset of Triton's ModelConfig: its fields are Triton's, less the oneof that holds
    # dynamic_batching there, which with its other members left out changes nothing on the wire
    model_config = grpc_messages.DESCRIPTOR.dependencies[0]
    for message in _all_messages(model_config.message_types_by_name.values()):
        theirs = _fields(tritons.FindMessageTypeByName(message.full_name))
        assert {n: field[:-1] for n, field in _fields(message).items()} == {
            n: theirs[n][:-1] for n in _fields(message)}, message.full_name
    service = service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    for method in grpc_messages.SERVICE.methods:
        theirs = service.methods_by_name[method.name]
        assert (method.input_type.full_name, method.output_type.full_name, method.server_streaming) == (
            theirs.input_type.full_name, theirs.output_type.full_name, theirs.server_streaming)


def test_a_port_in_use_is_an_os_error_naming_the_address_and_what_was_bound_is_let_go(front, served):
    free = _free_port()
    with pytest.raises(OSError, match=f"^cannot serve gRPC on 127.0.0.1:{front.ort_port}: "):
        start_grpc(served, "127.0.0.1", free, front.ort_port)
    start_grpc(served, "127.0.0.1", free, None).stop(None)


@pytest.mark.parametrize("port, method", [("kserve_port", "/inference.GRPCInferenceService/ModelInfer"),
                                          ("ort_port", "/onnxruntime.server.PredictionService/Predict")])
def test_bytes_that_are_no_message_are_the_clients_fault(front, port, method, caplog):
    """grpcio decoding the request itself answered INTERNAL and logged an error for each such request."""
    with grpc.insecure_channel(f"127.0.0.1:{getattr(front, port)}") as channel:
        with pytest.raises(grpc.RpcError) as refused:
            channel.unary_unary(method)(b"\xff\xff\xff", timeout=10)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.value.details()
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
