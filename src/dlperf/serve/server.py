"""The HTTP front: routes, body limits, headers and error bodies for both protocols.

Standard-library ``ThreadingHTTPServer`` (one thread per connection, HTTP/1.1 keep-alive): requests are
small in number and large in size, the heavy lifting happens in onnxruntime, which releases the GIL, and
no dependency is needed. Every request body is read (or, past the limit, drained) before the answer is
sent, so that an error never desynchronises a keep-alive connection or makes TCP reset it under a client
still sending.

Errors take the shape of the protocol a path belongs to: ``{"error": ...}`` under ``/v2`` (what
``tritonclient`` parses), ORT server's ``{"error_code": ..., "error_message": ...}`` everywhere else.
A path no route matches is 404; a path that exists for another method is 405.
"""
from __future__ import annotations

import json
import logging
import re
import socketserver
import sys
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

from .. import __version__
from . import kserve, ort_protocol
from .errors import ServeError
from .openapi import openapi_document
from .repository import ModelRepository, ModelVersion

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 25 * 1024 * 1024  # ORT server's body_limit

_V2_MODEL = r"/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?"
_ROUTES = tuple((method, re.compile(pattern), action) for method, pattern, action in (
    ("GET", r"/", "health"),
    ("POST", r"/score", "score"),
    ("POST", r"/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[0-9]+))?:(?:classify|regress|predict)",
     "predict"),
    ("GET", r"/openapi.json", "openapi"),
    ("GET", r"/v2", "v2_server"),
    ("GET", r"/v2/health/live", "v2_live"),
    ("GET", r"/v2/health/ready", "v2_ready"),
    ("GET", _V2_MODEL, "v2_model"),
    ("GET", _V2_MODEL + r"/ready", "v2_model_ready"),
    ("GET", _V2_MODEL + r"/stats", "v2_stats"),
    ("GET", _V2_MODEL + r"/config", "v2_config"),
    ("POST", _V2_MODEL + r"/infer", "v2_infer"),
    ("POST", r"/v2/repository/index", "v2_index"),
    ("GET", r"/metrics", "metrics"),
))


class MethodNotAllowed(ServeError):
    """A 405, with the methods the path takes for its ``Allow`` header."""

    def __init__(self, message: str, allowed: list[str]):
        super().__init__(405, message)
        self.allowed = allowed


@dataclass
class Reply:
    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


def _json_reply(document: object, status: int = 200) -> Reply:
    return Reply(status, json.dumps(document, separators=(",", ":")).encode(), ort_protocol.JSON)


def error_reply(path: str, status: int, message: str) -> Reply:
    """An error in the dialect of the protocol that owns ``path``."""
    if path == "/v2" or path.startswith("/v2/"):
        return _json_reply({"error": message}, status)
    body = json.dumps({"error_code": status, "error_message": message}) + "\n"
    return Reply(status, body.encode(), ort_protocol.JSON)


class InferenceServer(ThreadingHTTPServer):
    """Serves ``repository`` on ``host:port`` (port 0: any free one; see ``url``)."""

    daemon_threads = True
    request_queue_size = 128  # socketserver's 5 resets clients that connect in a burst

    def __init__(self, repository: ModelRepository, host: str = "127.0.0.1", port: int = 0,
                 max_body_bytes: int = MAX_BODY_BYTES):
        self.repository = repository
        self.max_body_bytes = max_body_bytes
        models = {name: repository.versions(name) for name in repository.names}
        self.openapi = json.dumps(openapi_document(models, repository.default_model)).encode()
        super().__init__((host, port), _Handler)

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse-DNS lookup of the host, which can stall offline."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    @property
    def url(self) -> str:
        return f"http://{self.server_name}:{self.server_port}"

    def handle_error(self, request, client_address) -> None:
        """A client resetting its kept-alive connection is routine, not worth socketserver's traceback
        on stderr; anything else goes to the log with its traceback."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            log.debug("connection from %s reset", client_address)
        else:
            log.exception("error serving %s", client_address)


class _Handler(BaseHTTPRequestHandler):
    server: InferenceServer
    protocol_version = "HTTP/1.1"
    server_version = f"dlperf-serve/{__version__}"   # and not http.server's Python version beside it
    timeout = 120  # seconds a kept-alive connection may idle before its thread gives up
    # Headers and body leave in two writes; with Nagle's algorithm the body waits for the ACK of the headers,
    # which the client delays (~40 ms on Linux): every small answer would take 40 ms more.
    disable_nagle_algorithm = True

    def version_string(self) -> str:
        return self.server_version

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def __getattr__(self, name: str):
        """Any other method (PUT, DELETE, even made-up ones) reaches the router and gets a JSON 405,
        instead of http.server's HTML 501."""
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    def _dispatch(self) -> None:
        self._request_id = str(uuid.uuid4())
        path = urlsplit(self.path).path
        try:
            body = self._read_body()
        except ServeError as error:
            self._send(error_reply(path, error.status, error.message))
            return
        except OSError:  # the client went away or stalled mid-body: nobody to answer
            self.close_connection = True
            return
        try:
            action, params = self._route(path)
            reply = getattr(self, "_" + action)(body, **params)
        except MethodNotAllowed as error:
            reply = error_reply(path, error.status, error.message)
            reply.headers["Allow"] = ", ".join(error.allowed)
        except ServeError as error:
            reply = error_reply(path, error.status, error.message)
        except Exception:
            log.exception("%s %s failed", self.command, path)
            reply = error_reply(path, 500, "internal server error")
        self._send(reply)

    def _route(self, path: str) -> tuple[str, dict[str, str]]:
        allowed = []
        command = "GET" if self.command == "HEAD" else self.command   # HEAD: GET's answer without its body
        for method, pattern, action in _ROUTES:
            found = pattern.fullmatch(path)
            if found and method == command:
                return action, {k: unquote(v) for k, v in found.groupdict().items() if v is not None}
            if found:
                allowed += [method, "HEAD"] if method == "GET" else [method]
        if allowed:
            raise MethodNotAllowed(f"Method Not Allowed. For HTTP method: {self.command} and request path: {path}",
                                   allowed)
        raise ServeError(404, f"Not Found. For HTTP method: {self.command} and request path: {path}")

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            raise ServeError(411, "chunked request bodies are not accepted; send Content-Length")
        lengths = {value.strip() for value in self.headers.get_all("Content-Length", [])}
        if len(lengths) > 1:   # which one a proxy in front believed is unknowable: request smuggling
            self.close_connection = True
            raise ServeError(400, f"conflicting Content-Length headers {sorted(lengths)}")
        declared = lengths.pop() if lengths else "0"
        if not (declared.isascii() and declared.isdigit()):
            self.close_connection = True
            raise ServeError(400, f"invalid Content-Length {declared!r}")
        length, limit = int(declared), self.server.max_body_bytes
        if length > limit:
            self._discard(length)
            raise ServeError(413, f"request body of {length} bytes exceeds the limit of {limit} bytes")
        body = self.rfile.read(length)
        if len(body) < length:
            raise ConnectionAbortedError("request body ended early")
        return body

    def _discard(self, length: int) -> None:
        """Drop an oversized body so the client gets to read the 413; one far beyond the limit is not
        worth reading, and the connection is closed instead."""
        if length > 4 * self.server.max_body_bytes:
            self.close_connection = True
            return
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 20))
            if not chunk:
                raise ConnectionAbortedError("request body ended early")
            length -= len(chunk)

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        if reply.content_type:
            self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        self.send_header("x-ms-request-id", self._request_id)
        headers = getattr(self, "headers", None)  # absent when the request line itself was malformed
        client_id = headers.get("x-ms-client-request-id") if headers else None
        if client_id:
            self.send_header("x-ms-client-request-id", "".join(c for c in client_id if c.isprintable()))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if getattr(self, "command", None) != "HEAD":
            self.wfile.write(reply.body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own failures (bad request line, oversized headers) get JSON bodies too."""
        self._request_id = str(uuid.uuid4())
        self.close_connection = True
        path = urlsplit(getattr(self, "path", None) or "/").path
        self._send(error_reply(path, code, message or HTTPStatus(code).phrase))

    def log_message(self, format: str, *args) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    # ORT server

    def _health(self, body: bytes) -> Reply:
        return Reply(200, b"Healthy", "text/plain")

    def _score(self, body: bytes) -> Reply:
        return self._predict(body, "default")

    def _predict(self, body: bytes, name: str, version: str | None = None) -> Reply:
        content_type = self.headers.get("Content-Type")
        fmt = ort_protocol.request_format(content_type)
        reply_fmt, reply_type = ort_protocol.response_format(self.headers.get("Accept"), content_type)
        request = ort_protocol.parse(ort_protocol.PredictRequest, body, fmt)
        model = self._ort_model(name, version)
        feeds, all_raw = ort_protocol.request_inputs(request)
        outputs = model.infer(feeds, list(request.output_filter))
        response = ort_protocol.build_response(outputs, raw=all_raw)
        return Reply(200, ort_protocol.serialize(response, reply_fmt), reply_type)

    def _ort_model(self, name: str, version: str | None) -> ModelVersion:
        """ORT server served one model under any name; ``default`` keeps naming it here."""
        repository = self.server.repository
        if name == "default" and name not in repository.names:
            if repository.default_model is None:
                raise ServeError(404, f"no default model among {repository.names}; name one in the URL "
                                      "or start the server with --default-model")
            name = repository.default_model
        return repository.get(name, version)

    def _openapi(self, body: bytes) -> Reply:
        return Reply(200, self.server.openapi, ort_protocol.JSON)

    # KServe V2

    def _v2_server(self, body: bytes) -> Reply:
        return _json_reply({"name": "dlperf-serve", "version": __version__,
                            "extensions": ["binary_tensor_data", "statistics"]})

    def _v2_live(self, body: bytes) -> Reply:
        return Reply(200)

    def _v2_ready(self, body: bytes) -> Reply:
        """Models load before the socket opens, so a server that answers is ready."""
        return Reply(200)

    def _v2_model(self, body: bytes, name: str, version: str | None = None) -> Reply:
        repository = self.server.repository
        model = repository.get(name, version)
        versions = [model.version] if version is not None else repository.versions(name)
        return _json_reply(model.metadata(versions))

    def _v2_model_ready(self, body: bytes, name: str, version: str | None = None) -> Reply:
        self.server.repository.get(name, version)
        return Reply(200)

    def _v2_stats(self, body: bytes, name: str, version: str | None = None) -> Reply:
        repository = self.server.repository
        models = ([repository.get(name, version)] if version is not None
                  else [repository.get(name, str(v)) for v in repository.versions(name)])
        return _json_reply({"model_stats": [m.stats.snapshot(m.name, m.version) for m in models]})

    def _v2_config(self, body: bytes, name: str, version: str | None = None) -> Reply:
        """The configuration the model runs with, in Triton's JSON form (:meth:`ModelVersion.config`)."""
        return _json_reply(self.server.repository.get(name, version).config())

    def _metrics(self, body: bytes) -> Reply:
        return Reply(200, self.server.repository.metrics().encode(), "text/plain; version=0.0.4; charset=utf-8")

    def _v2_index(self, body: bytes) -> Reply:
        return _json_reply(self.server.repository.index())

    def _v2_infer(self, body: bytes, name: str, version: str | None = None) -> Reply:
        request = kserve.parse_request(body, self.headers.get(kserve.HEADER_LENGTH))
        model = self.server.repository.get(name, version)
        outputs = model.infer(request.inputs, request.outputs)
        binary = {output: request.wants_binary(output) for output in outputs}
        data, headers = kserve.encode_response(model.name, model.version, request.id, outputs, binary)
        content_type = headers.pop("Content-Type")
        return Reply(200, data, content_type, headers)
