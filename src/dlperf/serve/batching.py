"""Dynamic batching: concurrent requests to one model version share a single onnxruntime run.

One worker thread per model version takes the oldest waiting request, then keeps collecting requests whose
inputs can be concatenated with it (same names, dtypes and non-batch dimensions) until the merged batch
reaches ``max_batch_size`` or the oldest request has waited ``max_delay_s``; requests already queued by then
join without waiting, so a busy server, whose oldest request is often past its delay, still batches. The batch runs once; every
output is split back along axis 0 in request order, so each caller receives exactly its own rows.

Requests that cannot join the current batch wait in a backlog for the next one, so no request is ever
dropped or reordered past a compatible one. If a merged run fails, each request is rerun alone: a request
must never be failed by a neighbour it happened to share a batch with.
"""
from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .errors import ServeError

log = logging.getLogger(__name__)

Tensors = dict[str, np.ndarray]


@dataclass
class _Job:
    feeds: Tensors
    batch_size: int
    key: tuple
    arrived: float = field(default_factory=time.monotonic)
    result: Future = field(default_factory=Future)


def _merge_key(feeds: Tensors) -> tuple:
    """Requests merge only if every input agrees on name, dtype and all dimensions after the first."""
    return tuple((name, array.dtype.str, array.shape[1:]) for name, array in sorted(feeds.items()))


class DynamicBatcher:
    """Runs ``run(feeds) -> outputs`` on merged batches of the requests given to ``submit``."""

    def __init__(self, run: Callable[[Tensors], Tensors], max_batch_size: int, max_delay_s: float, name: str):
        self._run = run
        self.max_batch_size = max_batch_size
        self.max_delay_s = max_delay_s
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._backlog: collections.deque[_Job] = collections.deque()
        self._worker = threading.Thread(target=self._serve, name=f"batcher-{name}", daemon=True)
        self._worker.start()

    def submit(self, feeds: Tensors, batch_size: int) -> Tensors:
        """Queue one request (``batch_size`` rows along axis 0 of every input) and wait for its outputs."""
        job = _Job(feeds, batch_size, _merge_key(feeds))
        self._queue.put(job)
        return job.result.result()

    def close(self) -> None:
        """Serve the requests already queued, then stop the worker; call once no more can arrive."""
        self._queue.put(None)
        self._worker.join()

    def _serve(self) -> None:
        while (batch := self._collect()) is not None:
            self._execute(batch)

    def _collect(self) -> list[_Job] | None:
        """The next batch: the oldest request plus every compatible one that arrives in time."""
        first = self._backlog.popleft() if self._backlog else self._queue.get()
        if first is None:
            return None
        batch, size = [first], first.batch_size

        def joins(job: _Job) -> bool:
            nonlocal size
            if job.key != first.key or size + job.batch_size > self.max_batch_size:
                return False
            batch.append(job)
            size += job.batch_size
            return True

        waiting, self._backlog = self._backlog, collections.deque()
        for job in waiting:
            if not joins(job):
                self._backlog.append(job)
        deadline = first.arrived + self.max_delay_s
        while size < self.max_batch_size:
            # Wait for more until the oldest request's delay is used up; after that (a busy server picks up
            # requests that have already waited), still take every request that is queued right now.
            wait = deadline - time.monotonic()
            try:
                job = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                self._queue.put(None)
                break
            if not joins(job):
                self._backlog.append(job)
                if wait <= 0:
                    break
        return batch

    def _execute(self, batch: list[_Job]) -> None:
        if len(batch) == 1:
            self._run_alone(batch[0])
            return
        total = sum(job.batch_size for job in batch)
        try:
            outputs = self._run({name: np.concatenate([job.feeds[name] for job in batch]) for name in batch[0].feeds})
            if any(array.shape[:1] != (total,) for array in outputs.values()):
                raise ServeError(500, "the model's outputs do not keep the batch dimension")
        except Exception as error:
            log.warning("merged batch of %d requests failed (%s); running them one by one", len(batch), error)
            for job in batch:
                self._run_alone(job)
            return
        start = 0
        for job in batch:
            stop = start + job.batch_size
            job.result.set_result({name: array[start:stop] for name, array in outputs.items()})
            start = stop

    def _run_alone(self, job: _Job) -> None:
        try:
            job.result.set_result(self._run(job.feeds))
        except Exception as error:
            job.result.set_exception(error)
