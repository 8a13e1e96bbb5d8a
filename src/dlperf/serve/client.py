"""Clients for the two protocols ``dlperf.serve`` speaks, numpy in and numpy out.

They work against any server of the same protocol (ORT server, Triton, KServe runtimes), use only the
standard library for HTTP, and keep one keep-alive connection per thread, so a load generator can share
one client object between threads.
"""
from __future__ import annotations

import http.client
import json
import threading
from typing import Mapping
from urllib.parse import quote, urlsplit

import numpy as np

from . import kserve, ort_protocol


class ServerError(Exception):
    """The server answered with an error status; ``message`` is the text of its JSON error body."""

    def __init__(self, status: int, message: str):
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class _Connection:
    """One keep-alive HTTP connection per thread, reopened when the server has closed it."""

    def __init__(self, url: str, timeout: float):
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"expected an http://host:port URL, got {url!r}")
        self._address = (parts.hostname, parts.port or 80)
        self._prefix = parts.path.rstrip("/")
        self._timeout = timeout
        self._local = threading.local()

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: Mapping[str, str] | None = None) -> tuple[http.client.HTTPMessage, bytes]:
        """Headers and body of a successful answer; an error status raises ``ServerError``."""
        reusing = getattr(self._local, "connection", None) is not None
        try:
            response, data = self._exchange(method, path, body, headers)
        except (ConnectionResetError, BrokenPipeError):
            if not reusing:
                raise
            response, data = self._exchange(method, path, body, headers)  # the server closed an idle one
        if response.status >= 400:
            raise ServerError(response.status, _error_message(data))
        return response.headers, data

    def _exchange(self, method: str, path: str, body: bytes | None,
                  headers: Mapping[str, str] | None) -> tuple[http.client.HTTPResponse, bytes]:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = http.client.HTTPConnection(*self._address, timeout=self._timeout)
        try:
            connection.request(method, self._prefix + path, body=body, headers=dict(headers or {}))
            response = connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            self._drop(connection)
            raise
        if response.will_close:
            self._drop(connection)
        return response, data

    def _drop(self, connection: http.client.HTTPConnection) -> None:
        connection.close()
        self._local.connection = None


def _error_message(data: bytes) -> str:
    """The message of either protocol's JSON error body, or the raw text of any other."""
    try:
        document = json.loads(data)
    except ValueError:
        return data.decode("utf-8", "replace")
    if isinstance(document, dict):
        return str(document.get("error_message", document.get("error", document)))
    return str(document)


def _model_path(prefix: str, model: str, version: int | str | None) -> str:
    path = f"{prefix}/{quote(model, safe='')}"
    return path if version is None else f"{path}/versions/{quote(str(version), safe='')}"


class OrtServerClient:
    """ONNX Runtime Server HTTP API: PredictRequest/PredictResponse as binary protobuf or JSON."""

    def __init__(self, url: str, timeout: float = 60.0):
        self._http = _Connection(url, timeout)

    def health(self) -> bool:
        try:
            return self._http.request("GET", "/")[1] == b"Healthy"
        except (ServerError, OSError):
            return False

    def predict(self, model: str, inputs: Mapping[str, np.ndarray], version: int | None = None,
                fmt: str = "protobuf", output_filter: list[str] | None = None) -> dict[str, np.ndarray]:
        """The model's outputs (or those in ``output_filter``) for ``inputs``, sent as ``raw_data``."""
        return self.parse_response(self.predict_raw(model, inputs, version, fmt, output_filter), fmt)

    def predict_raw(self, model: str, inputs: Mapping[str, np.ndarray], version: int | None = None,
                    fmt: str = "protobuf", output_filter: list[str] | None = None) -> bytes:
        """:meth:`predict`'s request; returns the PredictResponse body as the server sent it."""
        if fmt not in ("protobuf", "json"):
            raise ValueError(f"fmt must be 'protobuf' or 'json', not {fmt!r}")
        request = ort_protocol.PredictRequest(output_filter=output_filter or [])
        for name, array in inputs.items():
            request.inputs[name].CopyFrom(ort_protocol.array_to_tensor(np.asarray(array), raw=True))
        media = ort_protocol.JSON if fmt == "json" else ort_protocol.PROTOBUF_TYPES[0]
        path = _model_path("/v1/models", model, version) + ":predict"
        return self._http.request("POST", path, ort_protocol.serialize(request, fmt),
                                  {"Content-Type": media, "Accept": media})[1]

    @staticmethod
    def parse_response(data: bytes, fmt: str = "protobuf") -> dict[str, np.ndarray]:
        """The output arrays of a PredictResponse body (``fmt`` 'protobuf' or 'json')."""
        response = ort_protocol.parse(ort_protocol.PredictResponse, data, fmt)
        return {name: ort_protocol.tensor_to_array(t, name) for name, t in response.outputs.items()}


class KServeClient:
    """KServe V2 / Open Inference Protocol over HTTP, with Triton's binary tensor extension."""

    def __init__(self, url: str, timeout: float = 60.0):
        self._http = _Connection(url, timeout)

    def live(self) -> bool:
        return self._ok("/v2/health/live")

    def ready(self) -> bool:
        return self._ok("/v2/health/ready")

    def model_ready(self, model: str, version: int | str | None = None) -> bool:
        return self._ok(_model_path("/v2/models", model, version) + "/ready")

    def metadata(self, model: str, version: int | str | None = None) -> dict:
        return json.loads(self._http.request("GET", _model_path("/v2/models", model, version))[1])

    def statistics(self, model: str, version: int | str | None = None) -> dict:
        """Triton-style ``{"model_stats": [...]}``: inference_count, execution_count, batch_stats."""
        return json.loads(self._http.request("GET", _model_path("/v2/models", model, version) + "/stats")[1])

    def infer(self, model: str, inputs: Mapping[str, np.ndarray], version: int | str | None = None,
              outputs: list[str] | None = None, binary: bool = True) -> dict[str, np.ndarray]:
        """The model's outputs (or ``outputs``) for ``inputs``; ``binary=False`` sends and asks for JSON
        tensors instead of the binary extension."""
        arrays = {name: np.asarray(array) for name, array in inputs.items()}
        body, headers = kserve.encode_request(arrays, outputs, binary)
        path = _model_path("/v2/models", model, version) + "/infer"
        reply_headers, data = self._http.request("POST", path, body, headers)
        return kserve.parse_response(data, reply_headers.get(kserve.HEADER_LENGTH))

    def _ok(self, path: str) -> bool:
        try:
            self._http.request("GET", path)
        except (ServerError, OSError):
            return False
        return True
