"""Request bodies: the bytes of them the inference server holds at once (``Limits.inflight_bytes``), shared by its
event loops, where a request that does not fit waits its turn and past ``admission_timeout`` gets 503 (``app.py``);
and reading one within its size and time limits."""
from __future__ import annotations

import asyncio
import collections
import threading

from .errors import ClosingError, ServeError


class ByteBudget:
    """Bytes of request bodies the server holds at once, shared by its event loops; a request that does not fit
    waits until its share is free, in arrival order among requests of its kind.

    Requests that cost at most ``small`` bytes are of one kind, larger ones of the other, and the last ``lane`` bytes
    are the small ones' alone. A request is charged before its body is read, so a client that declares a large body
    and sends nothing holds its share until its body deadline: one such client held the whole budget, and every other
    request, however small, waited 10 s behind it for a 503. Now a large request, admitted or waiting, never keeps a
    small one waiting: large ones together hold at most ``largest`` bytes (``capacity - lane``), and a small one
    queues only behind small ones. Small ones may use the whole budget, so a large one waits while they hold more
    than their lane, but not for all of them to end: one that costs ``largest`` is not starved by a stream of them."""

    def __init__(self, capacity: int, small: int = 0, lane: int = 0):
        self.capacity, self.small, self.used, self.large_used = capacity, small, 0, 0
        self.largest = capacity - lane
        self._lock = threading.Lock()
        # waiting requests, small and large: (bytes, its loop, the future that admits it)
        self._waiting: dict[bool, collections.deque[tuple[int, asyncio.AbstractEventLoop, asyncio.Future]]] = {
            True: collections.deque(), False: collections.deque()}

    def _fits(self, size: int) -> bool:
        return self.used + size <= self.capacity and (size <= self.small or self.large_used + size <= self.largest)

    def _take(self, size: int, sign: int = 1) -> None:
        self.used += sign * size
        if size > self.small:
            self.large_used += sign * size

    async def acquire(self, size: int, timeout: float) -> None:
        small = size <= self.small
        with self._lock:
            if self._fits(size) and not self._waiting[small]:   # the common case: no future, no wait
                self._take(size)
                return
            loop = asyncio.get_running_loop()
            entry = (size, loop, loop.create_future())
            self._waiting[small].append(entry)
        try:
            async with asyncio.timeout(timeout):
                await entry[2]
        except TimeoutError:
            with self._lock:
                if entry not in self._waiting[small]:   # granted as the wait timed out: the bytes are this request's
                    return
                self._waiting[small].remove(entry)
            raise ServeError(503, f"server busy: {self.used} bytes of request bodies in flight") from None

    def release(self, size: int) -> None:
        with self._lock:
            self._take(size, -1)
            for queue in self._waiting.values():
                while queue and self._fits(queue[0][0]):
                    granted, loop, future = queue.popleft()
                    self._take(granted)
                    loop.call_soon_threadsafe(_grant, future)


def _grant(future: asyncio.Future) -> None:
    if not future.done():   # a wait that timed out was cancelled
        future.set_result(None)


async def read_body(receive, size: int, exact: bool, limit: int, timeout: float,
                    sink=None) -> bytes | bytearray:
    """A request's body off uvicorn's ``receive``: 413 past ``limit`` bytes, 408 if it has not all come within
    ``timeout`` seconds (the connection closed after either). With ``exact``, ``size`` is its Content-Length, and it
    is read into one buffer of that size, made as its second chunk comes, where the chunks and their join would hold
    it twice (a body that comes in one chunk is that chunk); given the protocol's ``sink``
    (``protocol.BodySink``), the rest of it after the first chunk goes from the socket straight into that buffer."""
    chunks, received, whole = [], 0, None
    try:
        async with asyncio.timeout(timeout):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ConnectionAbortedError("the client left before its body ended")
                chunk = message.get("body", b"")
                if whole is not None:   # httptools ends the body at its Content-Length: it fits
                    whole[received:received + len(chunk)] = chunk
                elif exact and received and chunk:   # a second chunk: one buffer of the body's size from now on
                    whole = bytearray(size)
                    whole[:received] = b"".join(chunks)
                    whole[received:received + len(chunk)] = chunk
                    chunks.clear()
                elif exact and chunk and sink is not None and message.get("more_body", False) and size <= limit:
                    whole = bytearray(size)   # the rest from the socket straight into it
                    whole[:len(chunk)] = chunk
                    await sink.read_rest(whole, len(chunk))
                    return whole
                else:
                    chunks.append(chunk)
                received += len(chunk)
                if received > limit:
                    raise ClosingError(413, f"request body exceeds the limit of {limit} bytes")
                if not message.get("more_body", False):
                    return whole if whole is not None else b"".join(chunks)
    except TimeoutError:
        if sink is not None:
            received = max(received, sink.filled)
        raise ClosingError(408, f"request body not received within {timeout:g} s "
                                f"({received} of {size} bytes)") from None
