"""Both protocols over gRPC, each on a port of its own beside HTTP.

* KServe V2's ``inference.GRPCInferenceService``, which ``tritonclient.grpc`` and Triton's perf_analyzer speak;
  tensors travel as ``raw_input_contents`` (what tritonclient sends) or in the typed ``InferTensorContents``,
  and outputs always go back raw, as Triton sends them;
* ONNX Runtime Server's ``onnxruntime.server.PredictionService/Predict``, PredictRequest in, PredictResponse out.

grpcio's generic handlers route a method name to a plain function, so neither protoc nor generated stubs are
needed. Every request reaches the same ``ModelVersion.infer`` as over HTTP, so the two fronts share one batcher
and one set of statistics, and every refusal is the same ``ServeError`` with the same message; only its HTTP
status is translated, into the gRPC code Triton answers that failure with.
"""
from __future__ import annotations

import logging
import math
import socket
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import grpc
import numpy as np
from google.protobuf import json_format
from google.protobuf.message import DecodeError

from .. import __version__
from . import kserve, ort_protocol
from .app import MAX_BODY_BYTES
from .dtypes import BY_KSERVE, ElementType, element_of_array, shaped
from .errors import ServeError
from .grpc_messages import SERVICE, ModelInferRequest, ModelInferResponse, message_class
from .repository import ModelRepository, ModelVersion

log = logging.getLogger(__name__)

_CODES = {400: grpc.StatusCode.INVALID_ARGUMENT, 404: grpc.StatusCode.NOT_FOUND,
          413: grpc.StatusCode.RESOURCE_EXHAUSTED, 501: grpc.StatusCode.UNIMPLEMENTED,
          503: grpc.StatusCode.UNAVAILABLE}

# The InferTensorContents field that carries each datatype, and the numpy type it holds there. FP16 has none: as in
# Triton, it travels in raw_input_contents only.
_CONTENTS = {"BOOL": ("bool_contents", np.bool_), "INT8": ("int_contents", np.int32),
             "INT16": ("int_contents", np.int32), "INT32": ("int_contents", np.int32),
             "INT64": ("int64_contents", np.int64), "UINT8": ("uint_contents", np.uint32),
             "UINT16": ("uint_contents", np.uint32), "UINT32": ("uint_contents", np.uint32),
             "UINT64": ("uint64_contents", np.uint64), "FP32": ("fp32_contents", np.float32),
             "FP64": ("fp64_contents", np.float64), "BYTES": ("bytes_contents", object)}


def grpc_code(status: int) -> grpc.StatusCode:
    """The gRPC code for a ``ServeError`` status: Triton's where it has one, else the client's fault
    (INVALID_ARGUMENT) for a 4xx and the server's (INTERNAL) for a 5xx."""
    return _CODES.get(status, grpc.StatusCode.INVALID_ARGUMENT if status < 500 else grpc.StatusCode.INTERNAL)


def infer_inputs(request: ModelInferRequest) -> dict[str, np.ndarray]:
    """The input arrays of a ModelInferRequest. As in Triton, ``raw_input_contents`` holds either every input's
    bytes, in the order of ``inputs``, or nothing, in which case each input carries its typed ``contents``."""
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise ServeError(400, f"raw_input_contents holds {len(raw)} tensor(s) for {len(request.inputs)} input(s); "
                              "send one for each input, in order, or none")
    inputs: dict[str, np.ndarray] = {}
    for index, tensor in enumerate(request.inputs):
        name = tensor.name
        element = BY_KSERVE.get(tensor.datatype)
        if element is None:
            raise ServeError(400, f"tensor '{name}': unsupported datatype {tensor.datatype!r}; "
                                  f"use one of {sorted(BY_KSERVE)}")
        if any(d < 0 for d in tensor.shape):
            raise ServeError(400, f"tensor '{name}': 'shape' must be a list of non-negative integers")
        count = math.prod(tensor.shape)
        if name in inputs:
            raise ServeError(400, f"input '{name}' is given twice")
        values = (kserve.tensor_from_bytes(raw[index], element, count, name) if raw
                  else _typed_contents(tensor.contents, element, count, name))
        inputs[name] = shaped(values, tensor.shape, name)
    return inputs


def _typed_contents(contents, element: ElementType, count: int, name: str) -> np.ndarray:
    """Values of the InferTensorContents field for ``element``; the narrow integer types travel in 32-bit fields
    and must fit the type they stand for."""
    if element.kserve not in _CONTENTS:
        raise ServeError(400, f"tensor '{name}': {element.kserve} data must come in raw_input_contents")
    field, carrier = _CONTENTS[element.kserve]
    values = getattr(contents, field)
    if len(values) != count:
        raise ServeError(400, f"tensor '{name}': {field} holds {len(values)} values where the shape says {count}")
    if element.is_string:
        return kserve.utf8_strings(list(values), name)
    carried = np.array(values, dtype=carrier)
    if carried.dtype != element.numpy and carried.size:
        limits = np.iinfo(element.numpy)
        if carried.min() < limits.min or carried.max() > limits.max:
            raise ServeError(400, f"tensor '{name}': {field} holds values outside {element.kserve}")
    return carried.astype(element.numpy)


def infer_response(model: ModelVersion, request_id: str, outputs: dict[str, np.ndarray]) -> ModelInferResponse:
    """Outputs as Triton answers them: name, datatype and shape in ``outputs``, the bytes in
    ``raw_output_contents``, and the request's ``id`` echoed."""
    response = ModelInferResponse(model_name=model.name, model_version=str(model.version), id=request_id)
    for name, array in outputs.items():
        element = element_of_array(array)
        response.outputs.add(name=name, datatype=element.kserve, shape=array.shape)
        response.raw_output_contents.append(kserve.tensor_to_bytes(array, element))
    return response


class KServeService:
    """The RPCs of ``inference.GRPCInferenceService``, named as in the .proto like grpcio's servicers: each takes
    the request message and answers a response message, or a dict in the response's shape (the repository's
    metadata, config and statistics are already in that shape for HTTP's JSON)."""

    def __init__(self, repository: ModelRepository, ready: Callable[[], bool]):
        self.repository = repository
        self.ready = ready

    def ServerLive(self, request, context) -> dict:
        return {"live": True}

    def ServerReady(self, request, context) -> dict:
        """Models load before the port opens: the server is unready while it drains before shutdown, and with strict
        readiness while a model failed to load (``InferenceApp.ready``)."""
        return {"ready": self.ready()}

    def ModelReady(self, request, context) -> dict:
        """False, not an error, for a model that is not in the repository: Triton's answer."""
        try:
            self.repository.get(request.name, request.version or None)
        except ServeError:
            return {"ready": False}
        return {"ready": True}

    def ServerMetadata(self, request, context) -> dict:
        return {"name": kserve.SERVER_NAME, "version": __version__, "extensions": ["statistics"]}

    def ModelMetadata(self, request, context) -> dict:
        model = self.repository.get(request.name, request.version or None)
        versions = [model.version] if request.version else self.repository.versions(request.name)
        return model.metadata(versions)

    def ModelConfig(self, request, context) -> dict:
        return {"config": self.repository.get(request.name, request.version or None).config()}

    def ModelStatistics(self, request, context) -> dict:
        """One model version's statistics, every version's of one model, or, with no name, every model's."""
        if request.name:
            self.repository.get(request.name, request.version or None)   # an unknown name or version is a 404
        models = [m for m in self.repository
                  if request.name in ("", m.name) and request.version in ("", str(m.version))]
        return {"model_stats": [m.stats.snapshot(m.name, m.version) for m in models]}

    def RepositoryIndex(self, request, context) -> dict:
        rows = self.repository.index()
        return {"models": [row for row in rows if row["state"] == "READY"] if request.ready else rows}

    def ModelInfer(self, request, context) -> ModelInferResponse:
        if any("classification" in output.parameters for output in request.outputs):
            raise ServeError(400, "the classification extension is not supported")
        inputs = infer_inputs(request)
        model = self.repository.get(request.model_name, request.model_version or None)
        outputs = model.infer(inputs, [output.name for output in request.outputs])
        return infer_response(model, request.id, outputs)


def ort_predict(repository: ModelRepository) -> Callable:
    """ORT server's Predict, which served its one model as "default": here a model of that name, else the
    repository's default model. The request ids go back in the initial metadata, as ORT server sent them."""

    def predict(request, context):
        metadata = [("x-ms-request-id", str(uuid.uuid4()))]
        client_id = dict(context.invocation_metadata()).get("x-ms-client-request-id")
        if client_id:
            metadata.append(("x-ms-client-request-id", client_id))
        context.send_initial_metadata(metadata)
        feeds, all_raw = ort_protocol.request_inputs(request)
        outputs = repository.ort_model().infer(feeds, list(request.output_filter))
        return ort_protocol.build_response(outputs, raw=all_raw)

    return predict


def _unary(method: Callable, request_class, response_class) -> grpc.RpcMethodHandler:
    """``method`` as a grpcio handler: a dict answer becomes the response message, and a ServeError (or anything
    unforeseen, logged with its traceback) becomes the RPC's status. The request is decoded here, not by grpcio,
    which answers bytes that are no message with INTERNAL and an error logged for each: the client's fault is
    INVALID_ARGUMENT."""

    def answer(data: bytes, context):
        try:
            request = request_class.FromString(data)
        except DecodeError:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"the request is not a {request_class.DESCRIPTOR.name}")
        try:
            reply = method(request, context)
            return json_format.ParseDict(reply, response_class()) if isinstance(reply, dict) else reply
        except ServeError as error:
            context.abort(grpc_code(error.status), error.message)
        except Exception:
            log.exception("gRPC %s failed", method.__name__)
            context.abort(grpc.StatusCode.INTERNAL, "internal server error")

    return grpc.unary_unary_rpc_method_handler(answer, response_serializer=response_class.SerializeToString)


def kserve_handler(repository: ModelRepository, ready: Callable[[], bool]) -> grpc.GenericRpcHandler:
    service = KServeService(repository, ready)
    return grpc.method_handlers_generic_handler(SERVICE.full_name, {
        method.name: _unary(getattr(service, method.name), message_class(method.input_type.name),
                            message_class(method.output_type.name))
        for method in SERVICE.methods})


def ort_handler(repository: ModelRepository) -> grpc.GenericRpcHandler:
    return grpc.method_handlers_generic_handler("onnxruntime.server.PredictionService", {
        "Predict": _unary(ort_predict(repository), ort_protocol.PredictRequest, ort_protocol.PredictResponse)})


@dataclass
class GrpcFront:
    """The running gRPC servers and the ports they bound (None: that service is off)."""

    kserve_port: int | None
    ort_port: int | None
    servers: list[grpc.Server]
    executor: ThreadPoolExecutor

    def stop(self, grace: float | None = None) -> None:
        """Refuse new RPCs, give those in flight ``grace`` seconds (None: all the time they need), cancel the rest,
        and return once both servers are down."""
        for stopped in [server.stop(grace) for server in self.servers]:
            stopped.wait()
        self.executor.shutdown()


def start_grpc(repository: ModelRepository, host: str, kserve_port: int | None, ort_port: int | None, *,
               ready: Callable[[], bool] = lambda: True, workers: int = 64,
               max_message_bytes: int | None = None) -> GrpcFront:
    """Serve KServe V2 on ``host:kserve_port`` and ORT server's Predict on ``host:ort_port`` (0: any free port;
    None: that service off). ``ready`` answers ServerReady, so a draining server can say it is not ready;
    ``workers`` RPCs are served at once (each a thread that mostly waits on onnxruntime or the batcher), more
    wait their turn. A request may be up to ``max_message_bytes`` long (None: the HTTP body limit), where grpc's
    own 4 MiB would refuse a batch of full-size images. A port that cannot be bound raises OSError."""
    if max_message_bytes is None:
        max_message_bytes = MAX_BODY_BYTES
    # so_reuseport off: a port already served is an error here, not a second server silently sharing its clients
    options = [("grpc.max_receive_message_length", max_message_bytes), ("grpc.so_reuseport", 0)]
    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="grpc")
    front = GrpcFront(None, None, [], executor)
    try:
        if kserve_port is not None:
            front.kserve_port = _bind(front, kserve_handler(repository, ready), host, kserve_port, options)
        if ort_port is not None:
            front.ort_port = _bind(front, ort_handler(repository), host, ort_port, options)
    except OSError:
        for server in front.servers:   # grpcio lets go of a bound port only when a started server stops
            server.start()
        front.stop(None)
        raise
    for server in front.servers:
        server.start()
    return front


def _bind(front: GrpcFront, handler: grpc.GenericRpcHandler, host: str, port: int, options: list) -> int:
    """A new server of ``front`` with ``handler`` on ``host:port``; the port it bound. A port that cannot be bound
    raises a one-line OSError: it is tried first with a socket of our own (grpcio's core would log a line of its own
    before failing), and grpcio's own failure, returning 0 or raising RuntimeError depending on its version, which
    a port taken in between would still meet, becomes the same error."""
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if port and not _bindable(host, port):
        raise OSError(f"cannot serve gRPC on {address}: the address is in use or not available here")
    server = grpc.server(front.executor, handlers=[handler], options=options)
    front.servers.append(server)
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError:
        bound = 0
    if not bound:
        raise OSError(f"cannot serve gRPC on {address}: the address is in use or not available here")
    return bound


def _bindable(host: str, port: int) -> bool:
    """Whether a TCP listener could bind ``host:port`` now, on any address ``host`` resolves to, as grpcio binds
    (address reuse on, so a port in TIME_WAIT counts as free)."""
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError:
        return False
    for family, kind, proto, _, sockaddr in addresses:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(sockaddr)
                return True
            except OSError:
                continue
    return False
