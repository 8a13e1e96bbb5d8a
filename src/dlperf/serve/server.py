"""The HTTP front: uvicorn serving ``app.InferenceApp``, with the deadlines and the drain it lacks.

uvicorn parses HTTP (httptools: llhttp, which refuses conflicting ``Content-Length`` headers), keeps a
listen backlog of 2048 so a burst of connections queues instead of being reset, answers 503 past
``limit_concurrency`` connections, and shuts down gracefully. What it does not do is added here:

* **A header deadline,** one write per response and one count of connections over every loop (``protocol.py``).
* **A drain that says so.** On SIGTERM (or SIGINT) readiness turns false at once (``/v2/health/ready`` is
  503), the server goes on serving for ``lame_duck`` seconds so a load balancer can notice, then stops
  accepting, closes idle keep-alive connections, answers what is in flight with ``Connection: close``, and
  returns; after ``drain_timeout`` seconds whatever is left is cancelled. The process exits 0: uvicorn
  re-raises the signal after a graceful stop, which would exit 143.
* **Binding before anything is served,** so a port clash is one line from ``__main__`` and not a
  traceback from inside the event loop.
* **Several event loops,** each in its own thread, one per core by default, and **an acceptor** that hands each
  new connection to the loop with the fewest (``InferenceServer``, ``_Acceptor``); ``limit_concurrency`` is counted
  over all of them. Loops that accepted on a shared socket themselves spread connections by chance: 16 clients on 4
  loops were split differently in every load test, and the small SSD's throughput swung from 790 to 1150 req/s.
  Two loops on the 2-core machine beat four: 1270 against 960 req/s at 16 clients, where the hand-written server
  gave 1020 and 900 (``bin/serve-compare``).
"""
from __future__ import annotations

import asyncio
import errno
import logging
import signal
import socket
import threading
import time
from dataclasses import dataclass

import uvicorn

from dlperf.workflow import available_cores

from .app import MAX_BODY_BYTES, InferenceApp, Limits
from .protocol import SCRATCH_BYTES, BufferedFront, DeadlineProtocol
from .repository import ModelRepository

__all__ = ["MAX_BODY_BYTES", "InferenceServer", "Limits", "ServerLimits"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)   # uvicorn's (it adds SIGBREAK on Windows)
_ACCEPTS_PER_WAKE = 64
_ACCEPT_RETRY_ERRORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_ACCEPT_RETRY_S = 1.0
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerLimits:
    """Connection-level limits (``Limits`` holds the per-request ones)."""

    limit_concurrency: int = 1000   # connections and requests at once; past it, 503
    backlog: int = 2048
    header_timeout: float = 10.0
    max_header_bytes: int = 64 * 1024
    keep_alive: float = 30.0        # seconds an idle kept-alive connection stays open
    linger: float = 5.0             # seconds a connection closed mid-request reads and drops what still comes
    lame_duck: float = 0.0
    drain_timeout: float = 30.0
    event_loops: int = min(8, available_cores())   # serving event loops, each in its own thread (``InferenceServer``)


class _Server(uvicorn.Server):
    """One event loop's uvicorn server, which serves the connections the acceptor hands it (it listens on no
    socket of its own); ``handed`` and ``adopted`` count them, as the acceptor gave them and as they were made, so
    their difference is what is on its way. Its ``server_state`` (a request's ``scope[LOOP]``) also says whether a
    model run holds the loop (``held``, app.py)."""

    def __init__(self, config: uvicorn.Config):
        super().__init__(config)
        self.handed = self.adopted = 0
        self.server_state.held = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self._scratch = memoryview(bytearray(SCRATCH_BYTES))   # where this loop's connections are read (protocol.py)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        await super().startup(sockets=[])   # an empty list: no listener (None would bind config's host and port)

    def _protocol(self) -> BufferedFront:
        return BufferedFront(self.config.http_protocol_class(config=self.config, server_state=self.server_state,
                                                             app_state=self.lifespan.state, _loop=self.loop),
                             self._scratch, self._made)

    def _made(self) -> None:
        self.adopted += 1

    def adopt(self, conn: socket.socket) -> None:
        """Serve ``conn`` (an accepted socket) on this loop; called in this loop's thread."""
        self.loop.create_task(self._connect(conn))

    async def _connect(self, conn: socket.socket) -> None:
        try:
            await self.loop.connect_accepted_socket(self._protocol, conn)
        except OSError:   # reset before it was made
            conn.close()
            self.adopted += 1

    @property
    def load(self) -> tuple[bool, int]:
        """What the acceptor weighs: whether a model run holds the loop, then its connections, made or on the way."""
        return self.server_state.held, len(self.server_state.connections) + self.handed - self.adopted


class _Acceptor(_Server):
    """The main thread's loop: it accepts every connection on the listening socket and hands each to the serving
    loop with the fewest (``_Server.load``), so that N clients on N loops get a loop each, every time; it answers
    no request itself, and never blocks, so accepting never waits on a run. It also carries the lame-duck drain and
    the clean exit on SIGTERM: a signal reaches it, and once it has stopped, the serving loops stop
    (``InferenceServer.serve_forever``)."""

    def __init__(self, config: uvicorn.Config, app: InferenceApp, lame_duck: float, listener: socket.socket,
                 loops: list[_Server]):
        super().__init__(config)
        self.inference_app, self.lame_duck, self.listener, self.loops = app, lame_duck, listener, loops
        self._stop_at: float | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup()
        self.listener.setblocking(False)
        self.loop.add_reader(self.listener.fileno(), self._accept)

    def _accept(self) -> None:
        for _ in range(_ACCEPTS_PER_WAKE):   # then let the loop's other work (signals, ticks) in
            try:
                conn, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:   # reset by its client while it waited in the backlog
                continue
            except OSError as error:   # out of descriptors or memory: leave the rest queued a while, as asyncio does
                if error.errno not in _ACCEPT_RETRY_ERRORS:
                    raise
                log.warning("accept failed (%s); accepting again in %g s", error, _ACCEPT_RETRY_S)
                self.loop.remove_reader(self.listener.fileno())
                self.loop.call_later(_ACCEPT_RETRY_S, self.loop.add_reader, self.listener.fileno(), self._accept)
                return
            conn.setblocking(False)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            target = min(self.loops, key=lambda server: server.load)
            target.handed += 1
            target.loop.call_soon_threadsafe(target.adopt, conn)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.listener.fileno() >= 0:
            self.loop.remove_reader(self.listener.fileno())
        self.listener.close()   # stop accepting: a connection now is refused, not left waiting in the backlog
        for server in self.loops:   # now, not after uvicorn's shutdown of this loop, which holds no connection
            server.should_exit = True   # but sleeps 0.1 s all the same (a stop took 0.38 s, now 0.28)
            server.force_exit = server.force_exit or self.force_exit
        await super().shutdown()

    def handle_exit(self, sig, frame) -> None:
        if self._stop_at is not None:   # a second signal: stop now
            for server in (self, *self.loops):
                server.should_exit = server.force_exit = True
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
    ``shutdown`` (from another thread) or a signal (from the main thread).

    ``serve_forever``'s caller runs the acceptor's event loop, which hands each new connection to the one of
    ``event_loops`` serving loops, each in its own thread, with the fewest connections, a loop that a model run holds
    last. A request to a model whose runs are short runs on its loop itself (``app.py``), so, as the connection
    threads of the hand-written server did, a few busy clients are served in parallel by threads that read, run and
    answer without handing a request to another. The loops share the app, its thread pool, its body budget and the
    models (and so the dynamic batcher); ``limit_concurrency`` counts all of them."""

    def __init__(self, repository: ModelRepository, host: str = "127.0.0.1", port: int = 0,
                 limits: Limits = Limits(), server_limits: ServerLimits = ServerLimits(),
                 strict_readiness: bool = True):
        self.repository = repository
        self.app = InferenceApp(repository, limits, strict_readiness)
        self.socket = socket.create_server((host, port), backlog=server_limits.backlog,
                                           family=socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.server_name, self.server_port = self.socket.getsockname()[:2]
        protocol = type("DeadlineProtocol", (DeadlineProtocol,), {
            "header_timeout": server_limits.header_timeout, "max_header_bytes": server_limits.max_header_bytes,
            "linger": server_limits.linger})
        config = uvicorn.Config(
            self.app, http=protocol, lifespan="off", log_config=None, access_log=False, server_header=False,
            proxy_headers=False,   # nothing here reads the client's address: X-Forwarded-For needs no rewriting
            limit_concurrency=server_limits.limit_concurrency, backlog=server_limits.backlog,
            timeout_keep_alive=server_limits.keep_alive, timeout_graceful_shutdown=server_limits.drain_timeout,
        )
        loops = [_Server(config) for _ in range(max(1, server_limits.event_loops))]
        self._acceptor = _Acceptor(config, self.app, server_limits.lame_duck, self.socket, loops)
        protocol.every_connections = [server.server_state.connections for server in loops]
        protocol.every_tasks = [server.server_state.tasks for server in loops]
        self.app.event_loops = len(loops)
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
        loops = self._acceptor.loops
        threads = [threading.Thread(target=server.run, kwargs={"sockets": []}, name=f"http-loop-{i}", daemon=True)
                   for i, server in enumerate(loops, 1)]
        # The drain's signal handlers go in before any loop can answer (uvicorn installs them only as the acceptor's
        # loop starts, and a SIGTERM before that would kill the process outright), and stay until every loop has
        # stopped.
        in_main_thread = threading.current_thread() is threading.main_thread()
        previous = {sig: signal.signal(sig, self._acceptor.handle_exit) for sig in _SIGNALS} if in_main_thread else {}
        try:
            for thread in threads:
                thread.start()
            for server in loops:   # a connection is handed only to a loop that runs
                while not server.started and any(thread.is_alive() for thread in threads):
                    time.sleep(0.001)
            self._acceptor.run(sockets=[])
        finally:
            for server in loops:   # accepting has stopped: the loops close their connections, answering in flight
                # (the acceptor's shutdown has told them so already, unless it stopped without one)
                server.should_exit = True
                if self._acceptor.force_exit:
                    server.force_exit = True
            for thread in threads:
                thread.join()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._stopped.set()

    def drain(self) -> None:
        """What SIGTERM does: readiness false now, stop after the lame-duck period, in-flight answered."""
        self._acceptor.begin_drain()

    def shutdown(self) -> None:
        self._acceptor.should_exit = True
        self._stopped.wait()

    def server_close(self) -> None:
        self.socket.close()
        self.app.close()
