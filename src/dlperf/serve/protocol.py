"""The HTTP connection: uvicorn's httptools protocol with what an exposed server needs and it lacks.

* **A header deadline.** uvicorn arms no timer until a first response, so a client that sends its headers a byte at a
  time holds a connection for ever (slowloris). ``DeadlineProtocol`` gives every request head ``header_timeout``
  seconds and ``max_header_bytes`` bytes, counted from a new connection's opening or a kept-alive connection's next
  byte (its idle time is uvicorn's ``keep_alive``); past either, the connection gets 408 or 431 and is closed.
* **One write per response** (``OneWrite``).
* **One count of connections over every event loop** (``Everywhere``), so that ``limit_concurrency`` bounds the
  whole server.
"""
from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .app import LOOP

__all__ = ["DeadlineProtocol", "Everywhere", "OneWrite"]


class OneWrite:
    """One request's view of its connection's transport, which holds the response's head until its body comes, so
    that a response leaves in one write: uvicorn writes the head at ``http.response.start`` and the body at
    ``http.response.body``: two system calls for the server and two reads for the client where one of each does
    (on the small SSD the head's write cost the server twice the body's). Only a head with a body to follow is
    held; ``flush`` (at the response's end) and ``close`` send whatever is held."""

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


class DeadlineProtocol(HttpToolsProtocol):
    """httptools' protocol with a deadline and a size limit on every request head, and one write per response."""

    header_timeout = 10.0
    max_header_bytes = 64 * 1024
    every_connections: list[set] = []   # the connections of each of this server's event loops (set per server)
    every_tasks: list[set] = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.connections = Everywhere(self.connections, self.every_connections)
        self.tasks = Everywhere(self.tasks, self.every_tasks)

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
            self.cycle.transport = OneWrite(self.transport, self.cycle)
            self.scope[LOOP] = self.server_state   # this loop's connections, and whether it is held (app.py)

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


class Everywhere:
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
