"""A KServe V2 gRPC client, numpy in and numpy out, on grpcio and dlperf.serve.grpc_messages alone.

It speaks to any ``inference.GRPCInferenceService`` (this server, Triton). Tensors travel as
``raw_input_contents`` and come back as ``raw_output_contents``, the encoding that costs no per-element work,
and every call goes over one channel, which grpcio multiplexes: a load generator shares one client between
threads, as it does the HTTP clients. A failed RPC raises ``grpc.RpcError`` (``code()``, ``details()``), the
server's message in ``details()``.
"""
from __future__ import annotations

import math
from typing import Mapping

import grpc
import numpy as np

from . import kserve
from .dtypes import BY_KSERVE, element_of_array
from .grpc_messages import SERVICE, ModelInferRequest, ModelInferResponse, message_class


# Each RPC's request and response classes.
_MESSAGES = {method.name: (message_class(method.input_type.name), message_class(method.output_type.name))
             for method in SERVICE.methods}


class KServeGrpcClient:
    """KServe V2 over gRPC at ``target`` (``host:port``)."""

    def __init__(self, target: str, timeout: float = 60.0):
        # no size limit on either side: the server sets its own, and a client trusts the server it asked
        self._channel = grpc.insecure_channel(target, options=[("grpc.max_receive_message_length", -1),
                                                               ("grpc.max_send_message_length", -1)])
        self._timeout = timeout
        self._calls = {name: self._channel.unary_unary(f"/{SERVICE.full_name}/{name}",
                                                        request_serializer=request.SerializeToString,
                                                        response_deserializer=response.FromString)
                       for name, (request, response) in _MESSAGES.items()}

    def live(self) -> bool:
        return self._flag("ServerLive", "live")

    def ready(self) -> bool:
        return self._flag("ServerReady", "ready")

    def model_ready(self, model: str, version: int | str | None = None) -> bool:
        return self._flag("ModelReady", "ready", name=model, version=_version(version))

    def infer(self, model: str, inputs: Mapping[str, np.ndarray], version: int | str | None = None,
              outputs: list[str] | None = None) -> dict[str, np.ndarray]:
        """The model's outputs (or ``outputs``) for ``inputs``."""
        request = ModelInferRequest(model_name=model, model_version=_version(version))
        for name, array in inputs.items():
            array = np.asarray(array)
            element = element_of_array(array)
            if element is None:
                raise TypeError(f"tensor '{name}': numpy dtype {array.dtype} has no KServe datatype")
            request.inputs.add(name=name, datatype=element.kserve, shape=array.shape)
            request.raw_input_contents.append(kserve.tensor_to_bytes(array, element))
        for name in outputs or ():
            request.outputs.add(name=name)
        response: ModelInferResponse = self._calls["ModelInfer"](request, timeout=self._timeout)
        return {tensor.name: _array(tensor, data)
                for tensor, data in zip(response.outputs, response.raw_output_contents, strict=True)}

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> KServeGrpcClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _flag(self, method: str, field: str, **request) -> bool:
        """A health answer; False when the server cannot be reached or refuses, as the HTTP client answers."""
        try:
            response = self._calls[method](_MESSAGES[method][0](**request), timeout=self._timeout)
        except grpc.RpcError:
            return False
        return getattr(response, field)


def _version(version: int | str | None) -> str:
    return "" if version is None else str(version)


def _array(tensor, data: bytes) -> np.ndarray:
    shape = tuple(tensor.shape)
    return kserve.tensor_from_bytes(data, BY_KSERVE[tensor.datatype], math.prod(shape), tensor.name).reshape(shape)
