"""The HTTP front: uvicorn serving ``app.InferenceApp``, with the deadlines and the drain it lacks.

uvicorn parses HTTP (httptools: llhttp, which refuses conflicting ``Content-Length`` headers), keeps a
listen backlog of 2048 so a burst of connections queues instead of being reset, answers 503 past
``limit_concurrency`` connections, and shuts down gracefully. What it does not do is added here:

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
* **Several event loops** on the one socket, each in its own thread (``InferenceServer``), with
  ``limit_concurrency`` counted over all of them, and **one write per response** (``_OneWrite``).
"""
from __future__ import annotations

import logging
import signal
import socket
import threading
import time
from dataclasses import dataclass

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .app import LOOP_CONNECTIONS, MAX_BODY_BYTES, InferenceApp, Limits
from .repository import ModelRepository

__all__ = ["MAX_BODY_BYTES", "InferenceServer", "Limits", "ServerLimits"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)   # uvicorn's (it adds SIGBREAK on Windows)


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
    event_loops: int = 4            # HTTP event loops, each in its own thread (see ``InferenceServer``)


class _OneWrite:
    """One request's view of its connection's transport, which holds the response's head until its body comes, so
    that a response leaves in one write: uvicorn writes the head at ``http.response.start`` and the body at
    ``http.response.body``: two system calls for the server and two reads for the client where one of each does
    (on the small SSD the head's write cost the server twice the body's). Only a head with a body to follow is held; ``flush`` (at the
    response's end) and ``close`` send whatever is held."""

    __slots__ = ("_transport", "_cycle", "_head")

    def __init__(self, transport, cycle):
        self._transport, self._cycle, self._head = transport, cycle, None

    def write(self, data: bytes) -> None:
        if self._head is not None:
            data, self._head = self._head + data, None
        elif (self._cycle.response_started and not self._cycle.response_complete
              and self._cycle.expected_content_length > 0 and not self._cycle.chunked_encoding
              and data.startswith(b"HTTP/")):
            self._head = data   # the head; its body is written next, in the same step of the same task
            return
        self._transport.write(data)

    def flush(self) -> None:
        if self._head is not None:
            head, self._head = self._head, None
            self._transport.write(head)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str):
        return getattr(self._transport, name)


class _DeadlineProtocol(HttpToolsProtocol):
    """httptools' protocol with a deadline and a size limit on every request head, and one write per response."""

    header_timeout = 10.0
    max_header_bytes = 64 * 1024
    every_connections: list[set] = []   # the connections of each of this server's event loops (set per server)
    every_tasks: list[set] = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.connections = _Everywhere(self.connections, self.every_connections)
        self.tasks = _Everywhere(self.tasks, self.every_tasks)

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
        previous = self.cycle
        super().on_headers_complete()
        if self.cycle is not previous:   # a request to answer (not an upgrade, which uvicorn refuses)
            self.cycle.transport = _OneWrite(self.transport, self.cycle)
            self.scope[LOOP_CONNECTIONS] = self.server_state.connections   # this loop's own (see app.py)

    def on_response_complete(self) -> None:
        if self.cycle is not None:
            self.cycle.transport.flush()   # a HEAD answer's head, whose body is never written
        super().on_response_complete()

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
    """One event loop's uvicorn server, with a lame-duck drain and a clean exit on SIGTERM. The loops of one
    ``InferenceServer`` drain and stop together: a signal to one (the main thread's) reaches all."""

    def __init__(self, config: uvicorn.Config, app: InferenceApp, lame_duck: float, group: list[_Server]):
        super().__init__(config)
        self.inference_app, self.lame_duck, self.group = app, lame_duck, group
        self._stop_at: float | None = None

    def handle_exit(self, sig, frame) -> None:
        if self._stop_at is not None:   # a second signal: stop now
            for server in self.group:
                server.should_exit = server.force_exit = True
            return
        for server in self.group:
            server.begin_drain()

    def begin_drain(self) -> None:
        self.inference_app.draining = True
        self._stop_at = time.monotonic() + self.lame_duck

    async def on_tick(self, counter: int) -> bool:
        if self._stop_at is not None and time.monotonic() >= self._stop_at:
            self.should_exit = True
        return await super().on_tick(counter)


class _Everywhere:
    """A protocol's view of its loop's connections (or tasks) whose size counts those of every loop, so that
    uvicorn's ``limit_concurrency`` bounds the whole server and not each loop; adding and discarding stay local."""

    __slots__ = ("local", "every")

    def __init__(self, local: set, every: list[set]):
        self.local, self.every = local, every

    def add(self, item) -> None:
        self.local.add(item)

    def discard(self, item) -> None:
        self.local.discard(item)

    def __len__(self) -> int:
        return sum(map(len, self.every))


class InferenceServer:
    """Serves ``repository`` on ``host:port`` (port 0: any free one; see ``url``). The socket is bound here,
    so an ``OSError`` for a taken port comes from the constructor; ``serve_forever`` runs until
    ``shutdown`` (from another thread) or a signal (from the main thread).

    ``event_loops`` event loops, each in its own thread, accept on the one socket (the main one runs in
    ``serve_forever``'s caller). A small request to a quick model runs on its loop itself (``app.py``), so,
    as the connection threads of the hand-written server did, a few busy clients are served in parallel by
    threads that read, run and answer without handing a request to another. The loops share the app, its thread
    pool, its body budget and the models (and so the dynamic batcher); ``limit_concurrency`` counts all of them."""

    def __init__(self, repository: ModelRepository, host: str = "127.0.0.1", port: int = 0,
                 limits: Limits = Limits(), server_limits: ServerLimits = ServerLimits()):
        self.repository = repository
        self.app = InferenceApp(repository, limits)
        self.socket = socket.create_server((host, port), backlog=server_limits.backlog,
                                           family=socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.server_name, self.server_port = self.socket.getsockname()[:2]
        self._servers: list[_Server] = []
        protocol = type("DeadlineProtocol", (_DeadlineProtocol,), {
            "header_timeout": server_limits.header_timeout, "max_header_bytes": server_limits.max_header_bytes})
        config = uvicorn.Config(
            self.app, http=protocol, lifespan="off", log_config=None, access_log=False, server_header=False,
            proxy_headers=False,   # nothing here reads the client's address: X-Forwarded-For needs no rewriting
            limit_concurrency=server_limits.limit_concurrency, backlog=server_limits.backlog,
            timeout_keep_alive=server_limits.keep_alive, timeout_graceful_shutdown=server_limits.drain_timeout,
        )
        self._servers += [_Server(config, self.app, server_limits.lame_duck, self._servers)
                          for _ in range(max(1, server_limits.event_loops))]
        protocol.every_connections = [server.server_state.connections for server in self._servers]
        protocol.every_tasks = [server.server_state.tasks for server in self._servers]
        self.app.event_loops = len(self._servers)
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
        main, *others = self._servers
        # Each other loop listens on a duplicate of the socket: uvicorn closes a loop's socket when that loop stops,
        # and the socket stops accepting once every loop has closed its copy.
        threads = [threading.Thread(target=server.run, kwargs={"sockets": [self.socket.dup()]},
                                    name=f"http-loop-{i}", daemon=True) for i, server in enumerate(others, 1)]
        # The drain's signal handlers go in before any loop can answer: another loop may serve a request before the
        # main one has started (uvicorn installs them only as the main one starts), and a SIGTERM then would kill
        # the process outright. They stay until every loop has stopped.
        in_main_thread = threading.current_thread() is threading.main_thread()
        previous = {sig: signal.signal(sig, main.handle_exit) for sig in _SIGNALS} if in_main_thread else {}
        try:
            for thread in threads:
                thread.start()
            main.run(sockets=[self.socket])
        finally:
            for server in others:   # the main loop stopped: whatever stopped it stops the others too
                server.should_exit = True
                if main.force_exit:
                    server.force_exit = True
            for thread in threads:
                thread.join()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._stopped.set()

    def drain(self) -> None:
        """What SIGTERM does: readiness false now, stop after the lame-duck period, in-flight answered."""
        for server in self._servers:
            server.begin_drain()

    def shutdown(self) -> None:
        for server in self._servers:
            server.should_exit = True
        self._stopped.wait()

    def server_close(self) -> None:
        self.socket.close()
        self.app.close()
