"""The HTTP front: uvicorn serving ``app.InferenceApp``, with the deadlines and the drain it lacks.

uvicorn parses HTTP (httptools: llhttp, which refuses conflicting ``Content-Length`` headers), keeps a
listen backlog of 2048 so a burst of connections queues instead of being reset, answers 503 past
``limit_concurrency`` connections, and shuts down gracefully. Three things it does not do are added here:

* **A header deadline.** uvicorn arms no timer until a first response, so a client that sends its headers
  a byte at a time holds a connection for ever (slowloris). ``_DeadlineProtocol`` gives every request head
  ``header_timeout`` seconds and ``max_header_bytes`` bytes, counted from a new connection's opening or a
  kept-alive connection's next byte (its idle time is uvicorn's ``keep_alive``); past either, the
  connection gets 408 or 431 and is closed.
* **A drain that says so.** On SIGTERM (or SIGINT) readiness turns false at once (``/v2/health/ready`` is
  503), the server goes on serving for ``lame_duck`` seconds so a load balancer can notice, then stops
  accepting, closes idle keep-alive connections, answers what is in flight with ``Connection: close``, and
  returns; after ``drain_timeout`` seconds whatever is left is cancelled. The process exits 0: uvicorn
  re-raises the signal after a graceful stop, which would exit 143.
* **Binding before anything is served,** so a port clash is one line from ``__main__`` and not a
  traceback from inside the event loop.
"""
from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .app import MAX_BODY_BYTES, InferenceApp, Limits
from .repository import ModelRepository

__all__ = ["MAX_BODY_BYTES", "InferenceServer", "Limits", "ServerLimits"]


@dataclass(frozen=True)
class ServerLimits:
    """Connection-level limits (``Limits`` holds the per-request ones)."""

    limit_concurrency: int = 1000   # connections and requests at once; past it, 503
    backlog: int = 2048
    header_timeout: float = 10.0
    max_header_bytes: int = 64 * 1024
    keep_alive: float = 30.0        # seconds an idle kept-alive connection stays open
    lame_duck: float = 0.0
    drain_timeout: float = 30.0


class _DeadlineProtocol(HttpToolsProtocol):
    """httptools' protocol with a deadline and a size limit on every request head."""

    header_timeout = 10.0
    max_header_bytes = 64 * 1024

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._head_timer = None
        self._await_head()   # a new connection owes its first head at once

    def on_message_begin(self) -> None:
        super().on_message_begin()   # a kept-alive connection's next request: its first byte is here
        self._await_head()

    def _await_head(self) -> None:
        self._awaiting_head, self._head_bytes = True, 0
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_timeout, self._refuse, 408, "Request Timeout")

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._awaiting_head:
            self._head_bytes += len(data)
            if self._head_bytes > self.max_header_bytes:
                self._refuse(431, "Request Header Fields Too Large")

    def on_headers_complete(self) -> None:
        self._awaiting_head = False
        self._disarm()
        if len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers) > self.max_header_bytes:
            self._refuse(431, "Request Header Fields Too Large")   # a head that came whole in one read
            return
        super().on_headers_complete()

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _refuse(self, status: int, reason: str) -> None:
        self._disarm()
        if not self.transport.is_closing():
            body = f"{status} {reason}\n".encode()
            self.transport.write(f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n"
                                 f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode() + body)
            self.transport.close()


class _Server(uvicorn.Server):
    """uvicorn's server with a lame-duck drain and a clean exit on SIGTERM."""

    def __init__(self, config: uvicorn.Config, app: InferenceApp, lame_duck: float):
        super().__init__(config)
        self.inference_app, self.lame_duck = app, lame_duck
        self._stop_at: float | None = None

    def handle_exit(self, sig, frame) -> None:
        if self._stop_at is not None:   # a second signal: stop now
            self.should_exit = self.force_exit = True
            return
        self.begin_drain()

    def begin_drain(self) -> None:
        self.inference_app.draining = True
        self._stop_at = time.monotonic() + self.lame_duck

    async def on_tick(self, counter: int) -> bool:
        if self._stop_at is not None and time.monotonic() >= self._stop_at:
            self.should_exit = True
        return await super().on_tick(counter)


class InferenceServer:
    """Serves ``repository`` on ``host:port`` (port 0: any free one; see ``url``). The socket is bound here,
    so an ``OSError`` for a taken port comes from the constructor; ``serve_forever`` runs until
    ``shutdown`` (from another thread) or a signal (from the main thread)."""

    def __init__(self, repository: ModelRepository, host: str = "127.0.0.1", port: int = 0,
                 limits: Limits = Limits(), server_limits: ServerLimits = ServerLimits()):
        self.repository = repository
        self.app = InferenceApp(repository, limits)
        self.socket = socket.create_server((host, port), backlog=server_limits.backlog,
                                           family=socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.server_name, self.server_port = self.socket.getsockname()[:2]
        protocol = type("DeadlineProtocol", (_DeadlineProtocol,), {
            "header_timeout": server_limits.header_timeout, "max_header_bytes": server_limits.max_header_bytes})
        config = uvicorn.Config(
            self.app, http=protocol, lifespan="off", log_config=None, access_log=False, server_header=False,
            limit_concurrency=server_limits.limit_concurrency, backlog=server_limits.backlog,
            timeout_keep_alive=server_limits.keep_alive, timeout_graceful_shutdown=server_limits.drain_timeout,
        )
        self._server = _Server(config, self.app, server_limits.lame_duck)
        # uvicorn's httptools protocol logs every request whenever its access logger has a handler anywhere up the
        # tree (the root's, here), whatever access_log says: a log line per request is not what a server should cost
        logging.getLogger("uvicorn.access").disabled = True
        self._stopped = threading.Event()

    @property
    def url(self) -> str:
        host = f"[{self.server_name}]" if ":" in self.server_name else self.server_name
        return f"http://{host}:{self.server_port}"

    def serve_forever(self, poll_interval: float | None = None) -> None:
        """Serve until stopped; ``poll_interval`` is accepted for socketserver's signature and unused."""
        self._stopped.clear()
        try:
            self._server.run(sockets=[self.socket])
        finally:
            self._stopped.set()

    def drain(self) -> None:
        """What SIGTERM does: readiness false now, stop after the lame-duck period, in-flight answered."""
        self._server.begin_drain()

    def shutdown(self) -> None:
        self._server.should_exit = True
        self._stopped.wait()

    def server_close(self) -> None:
        self.socket.close()
        self.app.close()
