"""The bytes of request bodies the inference server holds at once (``Limits.inflight_bytes``), shared by its event
loops: a request that does not fit waits its turn, and past ``admission_timeout`` gets 503 (``app.py``)."""
from __future__ import annotations

import asyncio
import collections
import threading

from .errors import ServeError


class ByteBudget:
    """Bytes of request bodies the server holds at once, shared by its event loops; a request that does not fit
    waits, in arrival order, until its share is free."""

    def __init__(self, capacity: int):
        self.capacity, self.used = capacity, 0
        self._lock = threading.Lock()
        self._waiting: collections.deque[tuple[int, asyncio.AbstractEventLoop, asyncio.Future]] = collections.deque()

    async def acquire(self, size: int, timeout: float) -> None:
        with self._lock:
            if self.used + size <= self.capacity and not self._waiting:   # the common case: no future, no wait
                self.used += size
                return
            loop = asyncio.get_running_loop()
            entry = (size, loop, loop.create_future())
            self._waiting.append(entry)
        try:
            async with asyncio.timeout(timeout):
                await entry[2]
        except TimeoutError:
            with self._lock:
                if entry not in self._waiting:   # granted as the wait timed out: the bytes are this request's
                    return
                self._waiting.remove(entry)
            raise ServeError(503, f"server busy: {self.used} bytes of request bodies in flight") from None

    def release(self, size: int) -> None:
        with self._lock:
            self.used -= size
            while self._waiting and self.used + self._waiting[0][0] <= self.capacity:
                granted, loop, future = self._waiting.popleft()
                self.used += granted
                loop.call_soon_threadsafe(_grant, future)


def _grant(future: asyncio.Future) -> None:
    if not future.done():   # a wait that timed out was cancelled
        future.set_result(None)
