"""The bytes of request bodies the inference server holds at once (``Limits.inflight_bytes``), shared by its event
loops: a request that does not fit waits its turn, and past ``admission_timeout`` gets 503 (``app.py``)."""
from __future__ import annotations

import asyncio
import collections
import threading

from .errors import ServeError


class ByteBudget:
    """Bytes of request bodies the server holds at once, shared by its event loops; a request that does not fit
    waits until its share is free, in arrival order among requests of its kind.

    Requests that cost at most ``small`` bytes are of one kind, larger ones of the other, and the last ``lane`` bytes
    are the small ones' alone. A request is charged before its body is read, so a client that declares a large body
    and sends nothing holds its share until its body deadline: one such client held the whole budget, and every other
    request, however small, waited 10 s behind it for a 503. Now a large request, admitted or waiting, never keeps a
    small one waiting: a large one holds at most ``largest`` bytes (``capacity - lane``), and a small one queues only
    behind small ones."""

    def __init__(self, capacity: int, small: int = 0, lane: int = 0):
        self.capacity, self.small, self.used = capacity, small, 0
        self.largest = capacity - lane
        self._lock = threading.Lock()
        # waiting requests, small and large: (bytes, its loop, the future that admits it)
        self._waiting: dict[bool, collections.deque[tuple[int, asyncio.AbstractEventLoop, asyncio.Future]]] = {
            True: collections.deque(), False: collections.deque()}

    def _fits(self, size: int) -> bool:
        return self.used + size <= (self.capacity if size <= self.small else self.largest)

    async def acquire(self, size: int, timeout: float) -> None:
        small = size <= self.small
        with self._lock:
            if self._fits(size) and not self._waiting[small]:   # the common case: no future, no wait
                self.used += size
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
            self.used -= size
            for queue in self._waiting.values():
                while queue and self._fits(queue[0][0]):
                    granted, loop, future = queue.popleft()
                    self.used += granted
                    loop.call_soon_threadsafe(_grant, future)


def _grant(future: asyncio.Future) -> None:
    if not future.done():   # a wait that timed out was cancelled
        future.set_result(None)
