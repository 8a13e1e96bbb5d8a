"""The ASGI application: routes, body limits, headers and error bodies for both protocols.

uvicorn (``server.py``) parses HTTP and owns connections; this is what runs per request. Routing and the
light answers (health, metadata, statistics, metrics) happen on the event loop; parsing a body and running
the model happen on a thread pool, where onnxruntime releases the GIL and the batcher merges the requests
that wait together.

Memory is bounded per request and in all: a body is refused past ``max_body_bytes`` (25 MiB, ORT server's
limit) by its declared length before a byte of it is read, a JSON body past ``max_json_bytes`` (parsing
JSON costs about ten times its size in Python objects), and bodies are admitted against a shared
``inflight_bytes`` budget, so a crowd of large requests waits its turn (or gets 503) instead of taking the
machine's memory. A body must arrive within ``body_timeout`` seconds (408 otherwise).

Errors take the shape of the protocol a path belongs to: ``{"error": ...}`` under ``/v2`` (what
``tritonclient`` parses), ORT server's ``{"error_code": ..., "error_message": ...}`` everywhere else.
A path no route matches is 404; a path that exists for another method is 405 with ``Allow``.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import unquote

from .. import __version__
from . import kserve, ort_protocol
from .budget import ByteBudget, read_body
from .errors import ClosingError, ServeError
from .openapi import openapi_document
from .repository import ModelRepository

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 25 * 1024 * 1024  # ORT server's body_limit
SERVER = f"{kserve.SERVER_NAME}/{__version__}"
JSON_EXPANSION = 3   # bytes of Python objects per byte of JSON while it is parsed
SMALL_REQUEST_BYTES = 1024 * 1024   # a request that costs at most this has the last eighth of the body budget to itself

_V2_MODEL = r"/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?"
ROUTES = tuple((method, re.compile(pattern), action) for method, pattern, action in (
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
_HEAVY = {"score", "predict", "v2_infer"}   # parse a body and run a model
# A heavy request runs on its event loop, not on the thread pool, when its body is small and its model runs
# quickly (by its recent runs): handing it to a pool thread and back costs two thread wake-ups, about a tenth of the
# small SSD's time per request. If every run of a batching model is busy, it waits on the loop for the next (and
# leads or joins that batch), unless the model's batch delay is longer than a quick run. The loop's other connections
# wait meanwhile, for about INLINE_COMPUTE_S; a longer run or a large body goes to the pool. The server runs several
# loops (server.py), so a few busy clients are served in parallel, each without a hand-off.
INLINE_BODY_BYTES = 256 * 1024
INLINE_COMPUTE_S = 0.002
# A request whose model has a run free also runs on its loop when its body has at most INLINE_BODY_BYTES of JSON to
# parse and the loop's connections, were each to wait one such run (by recent runs), would wait at most LOOP_WAIT_S
# in all: the hand-off to the pool and back cost the full-size SSD (1 MB binary in, 26 ms) 1.8 ms a request at one
# client, 2-4 % of its throughput at 4 clients on 2 loops and 3-5 % with batching at 16 (where its 8 connections a
# loop wait 0.21 s). A longer run or a larger JSON body runs on its loop only when its connection is the loop's only
# one (nobody else waits on it) and another loop stays free. A run on its loop holds it (``held``), and the server's
# acceptor hands a new connection to a loop that no run holds first: a readiness probe on a fresh connection while
# 16 clients loaded the full-size SSD waited 160 ms at the median when placed by count alone. The server puts the
# loop's state in the scope under LOOP: its ``connections`` and whether a run ``held`` it.
LOOP_WAIT_S = 0.5
LOOP = "dlperf.loop"
# The server's protocol also puts under BODY a sink that reads the rest of a body straight into the app's buffer
# (``protocol.BodySink``); without it, the body comes through ASGI's ``receive``.
BODY = "dlperf.body"


@dataclass(frozen=True)
class Limits:
    """What one request, and all of them together, may cost the server."""

    max_body_bytes: int = MAX_BODY_BYTES
    max_json_bytes: int = 8 * 1024 * 1024
    inflight_bytes: int = 4 * MAX_BODY_BYTES
    body_timeout: float = 30.0       # seconds from the end of the headers to the end of the body
    admission_timeout: float = 10.0  # seconds a body may wait for room in the budget before a 503
    workers: int = 64                # threads that parse bodies and wait on models


class MethodNotAllowed(ServeError):
    """A 405, with the methods the path takes for its ``Allow`` header."""

    def __init__(self, message: str, allowed: list[str]):
        super().__init__(405, message)
        self.allowed = allowed


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]   # lower-case names
    body: bytes = b""


@dataclass
class Reply:
    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    close: bool = False


def _json_reply(document: object, status: int = 200) -> Reply:
    return Reply(status, json.dumps(document, separators=(",", ":")).encode(), ort_protocol.JSON)


def error_reply(path: str, status: int, message: str) -> Reply:
    """An error in the dialect of the protocol that owns ``path``."""
    if path == "/v2" or path.startswith("/v2/"):
        return _json_reply({"error": message}, status)
    body = json.dumps({"error_code": status, "error_message": message}) + "\n"
    return Reply(status, body.encode(), ort_protocol.JSON)


def route(method: str, path: str) -> tuple[str, dict[str, str]]:
    allowed = []
    command = "GET" if method == "HEAD" else method   # HEAD: GET's answer without its body
    for route_method, pattern, action in ROUTES:
        found = pattern.fullmatch(path)
        if found and route_method == command:
            return action, {k: unquote(v) for k, v in found.groupdict().items() if v is not None}
        if found:
            allowed += [route_method, "HEAD"] if route_method == "GET" else [route_method]
    if allowed:
        raise MethodNotAllowed(f"Method Not Allowed. For HTTP method: {method} and request path: {path}", allowed)
    raise ServeError(404, f"Not Found. For HTTP method: {method} and request path: {path}")


class InferenceApp:
    """The ASGI callable. ``draining`` makes readiness false (``server.py`` sets it on SIGTERM), as does a model that
    failed to load while ``strict_readiness`` (:meth:`ready`)."""

    def __init__(self, repository: ModelRepository, limits: Limits = Limits(), strict_readiness: bool = True):
        self.repository, self.limits, self.strict_readiness = repository, limits, strict_readiness
        self.draining = False
        models = {name: repository.versions(name) for name in repository.names}
        self.openapi = json.dumps(openapi_document(models, repository.default_model)).encode()
        self.pool = ThreadPoolExecutor(limits.workers, thread_name_prefix="serve")
        self._budget = ByteBudget(limits.inflight_bytes, small=SMALL_REQUEST_BYTES, lane=limits.inflight_bytes // 8)
        self.event_loops = 1   # the server's (server.py sets it); loops a run holds (_hold_loop):
        self._held_loops, self._held_lock = 0, threading.Lock()
        # Request ids: a random UUID's first 20 hex digits and a count, a UUID unique to each response at a
        # tenth of uuid4's cost (os.urandom and a UUID object per response cost the small SSD 4 % of its rate).
        self._id_prefix, self._ids = str(uuid.uuid4())[:24].encode(), itertools.count()

    def _request_id(self) -> bytes:
        return b"%s%012x" % (self._id_prefix, next(self._ids) & 0xFFFFFFFFFFFF)

    def close(self) -> None:
        self.pool.shutdown(wait=True)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":   # lifespan is off in server.py; websockets are not served
            return
        method, path = scope["method"], scope["path"]
        headers = {}
        for name, value in scope["headers"]:
            headers[name.decode("latin-1")] = value.decode("latin-1")
        request = Request(method, path, headers)
        try:
            action, params = route(method, path)
            if action in _HEAVY:
                reply = await self._heavy(request, receive, action, params, scope.get(LOOP), scope.get(BODY))
            else:
                reply = getattr(self, "_" + action)(request, **params)
        except MethodNotAllowed as error:
            reply = error_reply(path, error.status, error.message)
            reply.headers["Allow"] = ", ".join(error.allowed)
        except ServeError as error:
            reply = error_reply(path, error.status, error.message)
            reply.close = isinstance(error, ClosingError)
        except ConnectionAbortedError:   # the client went away mid-body: nobody to answer
            return
        except asyncio.CancelledError:
            if not self.draining:
                raise
            # the drain's deadline passed and uvicorn cancels what is left: the client is told, not sent a 500
            reply = error_reply(path, 503, "server is shutting down: the request did not finish within the drain")
            reply.close = True
        except Exception:
            log.exception("%s %s failed", method, path)
            reply = error_reply(path, 500, "internal server error")
        await self._send(send, request, reply)

    async def _heavy(self, request: Request, receive, action: str, params: dict[str, str], loop, sink) -> Reply:
        size, exact = self._declared_length(request.headers), "content-length" in request.headers
        json_part = self._json_part(request, action, size)
        if exact:   # refused by its declared size, unread
            self._check_json_size(json_part)
        # past what one large request may hold: admitted alone, at that
        cost = min(size + JSON_EXPANSION * json_part, self._budget.largest)
        await self._budget.acquire(cost, self.limits.admission_timeout)
        try:
            request.body = await read_body(receive, size, exact, self.limits.max_body_bytes, self.limits.body_timeout,
                                           sink)
            handler, model = getattr(self, "_" + action), self._model(action, params)
            if model is not None and len(request.body) <= INLINE_BODY_BYTES and self._quick(model):
                return handler(request, **params)
            if model is not None and loop is not None and model.free() and self._hold_loop(loop, short=(
                    len(loop.connections) * model.recent_compute_s <= LOOP_WAIT_S
                    and min(json_part, len(request.body)) <= INLINE_BODY_BYTES)):
                try:
                    return handler(request, **params)
                finally:
                    self._release_loop(loop)
            return await asyncio.get_running_loop().run_in_executor(self.pool, lambda: handler(request, **params))
        finally:
            self._budget.release(cost)

    def _hold_loop(self, loop, short: bool) -> bool:
        """Take ``loop`` (its state) for a run: a ``short`` one at once; a long one only on the loop's only connection
        and while another loop stays free for new connections."""
        with self._held_lock:
            if not short and (len(loop.connections) > 1 or self._held_loops >= self.event_loops - 1):
                return False
            self._held_loops += 1
            loop.held = True
            return True

    def _release_loop(self, loop) -> None:
        with self._held_lock:
            self._held_loops -= 1
            loop.held = False

    def _model(self, action: str, params: dict[str, str]):
        """The request's model, or None where the handler will answer with an error (on the pool)."""
        try:
            return (self.repository.get(params["name"], params.get("version")) if action == "v2_infer"
                    else self.repository.ort_model(params.get("name", "default"), params.get("version")))
        except ServeError:
            return None

    @staticmethod
    def _quick(model) -> bool:
        """Whether ``model`` runs a request quickly, by its recent runs, and soon: at once, or after the run in
        flight and a batch delay no longer than a quick run."""
        return model.recent_compute_s <= INLINE_COMPUTE_S and (model.free() or model.queue_delay_s <= INLINE_COMPUTE_S)

    @staticmethod
    def _json_part(request: Request, action: str, size: int) -> int:
        """The bytes of a ``size``-byte body that are JSON: they cost the server again ``JSON_EXPANSION`` times as
        Python objects while parsed (a 24 MB JSON tensor took 75 MB)."""
        if action == "v2_infer":
            header = request.headers.get(kserve.HEADER_LENGTH.lower(), "")
            return min(int(header), size) if header.isascii() and header.isdigit() else size
        return size if "json" in request.headers.get("content-type", "").lower() else 0

    def _declared_length(self, headers: dict[str, str]) -> int:
        """The body's size from its headers; a chunked body is budgeted at the limit."""
        limit = self.limits.max_body_bytes
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return limit
        declared = headers.get("content-length", "0").strip()
        if not (declared.isascii() and declared.isdigit()):
            raise ClosingError(400, f"invalid Content-Length {declared!r}")
        if int(declared) > limit:   # unread: its connection closes lingering, so the client reads the 413
            raise ClosingError(413, f"request body of {declared} bytes exceeds the limit of {limit} bytes")
        return int(declared)

    async def _send(self, send, request: Request, reply: Reply) -> None:
        headers = [(b"server", SERVER.encode()), (b"content-length", str(len(reply.body)).encode()),
                   (b"x-ms-request-id", self._request_id())]
        if reply.content_type:
            headers.append((b"content-type", reply.content_type.encode()))
        client_id = request.headers.get("x-ms-client-request-id")
        if client_id:
            headers.append((b"x-ms-client-request-id", "".join(c for c in client_id if c.isprintable()).encode()))
        headers += [(name.lower().encode(), value.encode("latin-1")) for name, value in reply.headers.items()]
        if reply.close or self.draining:   # a draining server sends its clients elsewhere
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if request.method == "HEAD" else reply.body})

    def _check_json_size(self, size: int) -> None:
        """Parsing JSON tensors costs about ten times their text in Python objects: a smaller limit than binary."""
        if size > self.limits.max_json_bytes:
            raise ServeError(413, f"JSON request body of {size} bytes exceeds the limit of "
                                  f"{self.limits.max_json_bytes} bytes for JSON; send tensors as binary data "
                                  "(KServe's binary extension, or protobuf for ORT)")

    # ORT server

    def _health(self, request: Request) -> Reply:
        return Reply(200, b"Healthy", "text/plain")

    def _score(self, request: Request) -> Reply:
        return self._predict(request, "default")

    def _predict(self, request: Request, name: str, version: str | None = None) -> Reply:
        content_type = request.headers.get("content-type")
        fmt = ort_protocol.request_format(content_type)
        reply_fmt, reply_type = ort_protocol.response_format(request.headers.get("accept"), content_type)
        if fmt == "json":
            self._check_json_size(len(request.body))
        parsed = ort_protocol.parse(ort_protocol.PredictRequest, request.body, fmt)
        model = self.repository.ort_model(name, version)
        feeds, all_raw = ort_protocol.request_inputs(parsed)
        outputs = model.infer(feeds, list(parsed.output_filter))
        response = ort_protocol.build_response(outputs, raw=all_raw)
        return Reply(200, ort_protocol.serialize(response, reply_fmt), reply_type)

    def _openapi(self, request: Request) -> Reply:
        return Reply(200, self.openapi, ort_protocol.JSON)

    # KServe V2

    def _v2_server(self, request: Request) -> Reply:
        return _json_reply({"name": kserve.SERVER_NAME, "version": __version__,
                            "extensions": ["binary_tensor_data", "statistics"]})

    def _v2_live(self, request: Request) -> Reply:
        return Reply(200)

    def ready(self) -> bool:
        """Models load before the socket opens, so a server that answers is ready until it starts draining; with
        ``strict_readiness`` (Triton's default), only if every model of the repository loaded, so that a load
        balancer sends nothing to a server that would answer 503 (``--exit-on-error false``)."""
        return not self.draining and not (self.strict_readiness and self.repository.unavailable)

    def _v2_ready(self, request: Request) -> Reply:
        if not self.draining and not self.ready():
            return error_reply(request.path, 503, "unavailable models: " + ", ".join(self.repository.unavailable))
        return self._unless_draining(request)

    def _unless_draining(self, request: Request) -> Reply:
        return error_reply(request.path, 503, "server is shutting down") if self.draining else Reply(200)

    def _v2_model(self, request: Request, name: str, version: str | None = None) -> Reply:
        model = self.repository.get(name, version)
        versions = [model.version] if version is not None else self.repository.versions(name)
        return _json_reply(model.metadata(versions))

    def _v2_model_ready(self, request: Request, name: str, version: str | None = None) -> Reply:
        self.repository.get(name, version)   # 503 for an unavailable model, 404 for an unknown one
        return self._unless_draining(request)

    def _v2_stats(self, request: Request, name: str, version: str | None = None) -> Reply:
        repository = self.repository
        models = ([repository.get(name, version)] if version is not None
                  else [repository.get(name, str(v)) for v in repository.versions(name)])
        return _json_reply({"model_stats": [m.stats.snapshot(m.name, m.version) for m in models]})

    def _v2_config(self, request: Request, name: str, version: str | None = None) -> Reply:
        """The configuration the model runs with, in Triton's JSON form (:meth:`ModelVersion.config`)."""
        return _json_reply(self.repository.get(name, version).config())

    def _metrics(self, request: Request) -> Reply:
        return Reply(200, self.repository.metrics().encode(), "text/plain; version=0.0.4; charset=utf-8")

    def _v2_index(self, request: Request) -> Reply:
        return _json_reply(self.repository.index())

    def _v2_infer(self, request: Request, name: str, version: str | None = None) -> Reply:
        header_length = request.headers.get(kserve.HEADER_LENGTH.lower())
        json_size = len(request.body)
        if header_length is not None and header_length.isascii() and header_length.isdigit():
            json_size = min(json_size, int(header_length))
        self._check_json_size(json_size)
        parsed = kserve.parse_request(request.body, header_length)
        model = self.repository.get(name, version)
        outputs = model.infer(parsed.inputs, parsed.outputs)
        binary = {output: parsed.wants_binary(output) for output in outputs}
        data, headers = kserve.encode_response(model.name, model.version, parsed.id, outputs, binary)
        content_type = headers.pop("Content-Type")
        return Reply(200, data, content_type, headers)
