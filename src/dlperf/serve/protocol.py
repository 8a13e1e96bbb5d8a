"""The HTTP connection: uvicorn's httptools protocol with what an exposed server needs and it lacks.

* **A header deadline.** uvicorn arms no timer until a first response, so a client that sends its headers a byte at a
  time holds a connection for ever (slowloris). ``DeadlineProtocol`` gives every request head ``header_timeout``
  seconds and ``max_header_bytes`` bytes, counted from a new connection's opening or a kept-alive connection's next
  byte (its idle time is uvicorn's ``keep_alive``); past either, the connection gets 408 or 431 and is closed.
* **A lingering close.** A connection closed while its client may still be sending (a refused or early-answered
  request) first reads and drops what comes for up to ``linger`` seconds, so that the client reads its answer
  instead of a reset (``DeadlineProtocol.close_lingering``); a request answered before its body has all come
  closes its connection so (``OneWrite``), where uvicorn would read the rest of the body for ever.
* **One write per response** (``OneWrite``).
* **A body read straight into its buffer** (``BodySink``, ``BufferedFront``).
* **One count of connections over every event loop** (``Everywhere``), so that ``limit_concurrency`` bounds the
  whole server.
"""
from __future__ import annotations

import asyncio
from typing import Callable

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .app import BODY, LOOP

__all__ = ["BodySink", "BufferedFront", "DeadlineProtocol", "Everywhere", "OneWrite"]

SCRATCH_BYTES = 256 * 1024   # what one read takes outside a body's rest, as uvloop's own buffer


class BodySink:
    """The rest of one request's body, read from the socket straight into the buffer the app reads it into.

    Through ASGI's ``receive``, each chunk of a body was copied five times in the server: by uvloop into a bytes
    object, by httptools into another, by uvicorn onto the request's bytearray and out of it as the message's bytes,
    and by the app into its buffer, every copy with the GIL held. A thread-per-connection server reads a body into
    one buffer, with the GIL released. Once the app waits in :meth:`read_rest` (after the first chunk, its body's
    bytes admitted to the budget), ``BufferedFront`` has uvloop read the rest straight into the app's buffer, up to
    its Content-Length, past httptools (``DeadlineProtocol.body_done`` then ends the request as the parser would).
    Otherwise chunks go uvicorn's way, with its flow control."""

    __slots__ = ("cycle", "buffer", "filled")

    def __init__(self, cycle):
        self.cycle, self.buffer, self.filled = cycle, None, 0

    @property
    def reading(self) -> bool:
        return self.buffer is not None and self.filled < len(self.buffer)

    def write(self, chunk) -> None:
        end = self.filled + len(chunk)
        self.buffer[self.filled:end] = chunk   # the parser ends the body at its Content-Length: it fits
        self.filled = end

    async def read_rest(self, buffer: bytearray, filled: int) -> None:
        """Fill ``buffer`` past its first ``filled`` bytes with the rest of the body, to its end;
        ConnectionAbortedError if the client leaves first."""
        cycle = self.cycle
        self.buffer, self.filled = memoryview(buffer), filled
        try:
            if cycle.body:   # what came since the app's last receive
                self.write(cycle.body)
                cycle.body = bytearray()
            while cycle.more_body and not cycle.disconnected:
                cycle.flow.resume_reading()
                await cycle.message_event.wait()   # set at the body's end, or when the connection is lost
                cycle.message_event.clear()
            if cycle.disconnected:
                raise ConnectionAbortedError("the client left before its body ended")
        finally:
            self.buffer = None


class OneWrite:
    """One request's view of its connection's transport, which holds the response's head until its body comes, so
    that a response leaves in one write: uvicorn writes the head at ``http.response.start`` and the body at
    ``http.response.body``: two system calls for the server and two reads for the client where one of each does
    (on the small SSD the head's write cost the server twice the body's). Only a head with a body to follow is
    held; ``flush`` (at the response's end) and ``close`` send whatever is held.

    A response that starts before its request's body has all come (an early refusal, a GET sent a body) says
    ``Connection: close``, and its connection is closed with ``linger`` (``DeadlineProtocol.close_lingering``):
    otherwise uvicorn keeps reading the rest of the body for the kept-alive connection, and a client that trickles
    it holds the connection past every deadline."""

    __slots__ = ("_transport", "_cycle", "_head", "_started", "_linger")

    def __init__(self, transport, cycle, linger=None):
        self._transport, self._cycle, self._head, self._started = transport, cycle, None, False
        self._linger = linger or transport.close

    def write(self, data: bytes) -> None:
        if self._head is not None:
            data, self._head = self._head + data, None
        elif self._cycle.response_started and not self._started:   # the head (a 100 Continue comes before)
            self._started = True
            if self._cycle.more_body and self._cycle.keep_alive:   # answered before its body has all come
                self._cycle.keep_alive = False   # so uvicorn closes once the response is written
                data = data[:-2] + b"connection: close\r\n\r\n"
            if self._cycle.expected_content_length > 0 and not self._cycle.chunked_encoding:
                self._head = data   # its body is written next, in the same step of the same task
                return
        self._transport.write(data)

    def flush(self) -> None:
        if self._head is not None:
            head, self._head = self._head, None
            self._transport.write(head)

    def close(self) -> None:
        self.flush()
        if self._cycle.more_body:   # the client may still be sending: a plain close would reset the connection
            self._linger()
        else:
            self._transport.close()

    def __getattr__(self, name: str):
        return getattr(self._transport, name)


class DeadlineProtocol(HttpToolsProtocol):
    """httptools' protocol with a deadline and a size limit on every request head, one write per response, and a
    lingering close for a connection whose client may still be sending."""

    header_timeout = 10.0
    max_header_bytes = 64 * 1024
    linger = 5.0   # seconds a connection closed mid-request reads and drops what still comes
    every_connections: list[set] = []   # the connections of each of this server's event loops (set per server)
    every_tasks: list[set] = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.connections = Everywhere(self.connections, self.every_connections)
        self.tasks = Everywhere(self.tasks, self.every_tasks)

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._head_timer = self._linger_timer = None
        self._lingering = False
        self._sink = None
        self._await_head()   # a new connection owes its first head at once

    def on_message_begin(self) -> None:
        super().on_message_begin()   # a kept-alive connection's next request: its first byte is here
        self._await_head()

    def _await_head(self) -> None:
        self._awaiting_head, self._head_bytes = True, 0
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_timeout, self._refuse, 408, "Request Timeout")

    def data_received(self, data: bytes) -> None:
        if self._lingering:   # the rest of a request already answered: dropped, never parsed
            return
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
            self.cycle.transport = OneWrite(self.transport, self.cycle, self.close_lingering)
            self.scope[LOOP] = self.server_state   # this loop's connections, and whether it is held (app.py)
            self.scope[BODY] = self._sink = BodySink(self.cycle)

    @property
    def sink(self) -> BodySink | None:
        """The current request's sink while the rest of its body is to be read into it."""
        sink = self._sink
        return sink if sink is not None and sink.reading and sink.cycle is self.cycle else None

    def body_done(self) -> None:
        """The sink has the body's last byte, which httptools never saw: a new parser for the connection's next
        request, set up as uvicorn sets up its own, and the request's end as the parser would have called it."""
        self.parser = httptools.HttpRequestParser(self)
        try:
            self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
        except AttributeError:   # httptools < 0.6.3, as uvicorn allows
            pass
        self.on_message_complete()

    def on_response_complete(self) -> None:
        if self.cycle is not None:
            self.cycle.transport.flush()   # a HEAD answer's head, whose body is never written
        super().on_response_complete()
        if self._lingering:   # closing: uvicorn's keep-alive wait is not for this connection
            self._unset_keepalive_if_required()

    def close_lingering(self) -> None:
        """Close without a reset: send what is written and then end of stream, read and drop whatever the client
        is still sending until it closes too or ``linger`` seconds pass, then close. Closed with unread data, a
        socket resets its connection, and a client still sending its body loses the answer it was sent (a 413,
        408 or 431)."""
        if self._lingering or self.transport.is_closing():
            return
        self._lingering = True
        self._disarm()
        self._unset_keepalive_if_required()
        self.flow.resume_reading()
        try:
            self.transport.write_eof()
        except (OSError, RuntimeError, NotImplementedError):
            self.transport.close()
            return
        self._linger_timer = self.loop.call_later(self.linger, self.transport.close)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def connection_lost(self, exc) -> None:
        self._disarm()
        if self._linger_timer is not None:
            self._linger_timer.cancel()
        super().connection_lost(exc)

    def _refuse(self, status: int, reason: str) -> None:
        self._disarm()
        if not self.transport.is_closing():
            body = f"{status} {reason}\n".encode()
            self.transport.write(f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n"
                                 f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode() + body)
            self.close_lingering()


class BufferedFront(asyncio.BufferedProtocol):
    """A ``DeadlineProtocol`` as uvloop's buffered protocol (uvloop reads into buffers only for a protocol that is
    not an ``asyncio.Protocol``, which uvicorn's is): the rest of a body the app waits for is read into its sink, the
    system call copying it with the GIL released; anything else into ``scratch`` (one per event loop: each read is
    parsed before the next), and on to httptools as uvicorn would have it. ``made`` is called once the connection
    is in its loop's set (the acceptor counts what is on its way until then)."""

    __slots__ = ("inner", "scratch", "made")

    def __init__(self, inner: DeadlineProtocol, scratch: memoryview, made: Callable[[], None]):
        self.inner, self.scratch, self.made = inner, scratch, made

    def get_buffer(self, sizehint: int):
        sink = self.inner.sink
        return sink.buffer[sink.filled:] if sink is not None else self.scratch

    def buffer_updated(self, nbytes: int) -> None:
        sink = self.inner.sink
        if sink is None:
            self.inner.data_received(self.scratch[:nbytes])
            return
        sink.filled += nbytes
        if not sink.reading:
            self.inner.body_done()

    def connection_made(self, transport) -> None:
        self.inner.connection_made(transport)
        self.made()

    def connection_lost(self, exc) -> None:
        self.inner.connection_lost(exc)

    def eof_received(self):
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


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
