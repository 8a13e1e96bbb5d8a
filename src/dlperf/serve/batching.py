"""Dynamic batching: concurrent requests to one model version share a single onnxruntime run.

At most ``instances`` runs of a model version are in flight at once (Triton's ``instance_group`` count). A
request that finds a run free and nobody queued is run at once, alone, in its caller's own thread: an idle
model never makes a request wait, and pays no hand-over to another thread (Triton's dynamic batcher with
``max_queue_delay_microseconds: 0`` dispatches at once too). A request that finds every run busy queues; one
of ``instances`` worker threads takes it, as soon as a run is free, together with every compatible request
queued by then (same input names, dtypes and non-batch dimensions, in arrival order, up to ``max_batch_size``
rows), and runs them as one batch. So requests that arrive during a run form the next batch: batches grow
exactly when the model is busy. A positive ``max_delay_s`` adds an optional wait to that: a worker whose batch
is not yet full waits until its oldest request has queued that long for more to join. Every output is split
back along axis 0 in request order, so each caller receives exactly its own rows.

A batch stops at the first compatible request that would overflow it, which then leads the next batch;
incompatible requests keep their place in the queue. So no request is ever dropped or overtaken by a
compatible one. If a merged run fails, each request is rerun alone: a request must never be failed by a
neighbour it happened to share a batch with.
"""
from __future__ import annotations

import collections
import logging
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
    started: float = 0.0   # when the run that served it began (monotonic), and how long that run took
    compute_s: float = 0.0


def _merge_key(feeds: Tensors) -> tuple:
    """Requests merge only if every input agrees on name, dtype and all dimensions after the first."""
    return tuple((name, array.dtype.str, array.shape[1:]) for name, array in sorted(feeds.items()))


def fill_batch(batch: list, pending: collections.deque, max_batch_size: int) -> bool:
    """Move the queued requests that join ``batch`` (those of its first request's key, in order) from ``pending``
    into it; True once the batch is closed: full, or the next compatible request would overflow it."""
    size = sum(job.batch_size for job in batch)
    kept = collections.deque()
    closed = size >= max_batch_size
    while pending:
        job = pending.popleft()
        if closed or job.key != batch[0].key:
            kept.append(job)
        elif size + job.batch_size > max_batch_size:
            kept.append(job)
            closed = True
        else:
            batch.append(job)
            size += job.batch_size
            closed = size >= max_batch_size
    pending.extend(kept)
    return closed


class DynamicBatcher:
    """Runs ``run(feeds) -> outputs`` on the requests given to ``submit``: alone in the caller's thread when the
    model is idle, else merged into batches by ``instances`` worker threads; at most ``instances`` runs at once."""

    def __init__(self, run: Callable[[Tensors], Tensors], max_batch_size: int, max_delay_s: float, name: str,
                 instances: int = 1):
        self._run = run
        self.max_batch_size = max_batch_size
        self.max_delay_s = max_delay_s
        self._pending: collections.deque[_Job] = collections.deque()
        lock = threading.Lock()
        self._work = threading.Condition(lock)  # idle workers: a request queued and a run is free, or closing
        self._arrival = threading.Condition(lock)  # a worker waiting out the delay: a request queued, or closing
        self._free = instances  # runs not in flight
        self._closing = False
        self._workers = [threading.Thread(target=self._serve, name=f"batcher-{name}-{i}", daemon=True)
                         for i in range(instances)]
        for worker in self._workers:
            worker.start()

    def submit(self, feeds: Tensors, batch_size: int) -> Tensors:
        """Run one request (``batch_size`` rows along axis 0 of every input), alone or merged, and return its
        outputs."""
        return self.submit_timed(feeds, batch_size)[0]

    def submit_timed(self, feeds: Tensors, batch_size: int) -> tuple[Tensors, float, float]:
        """:meth:`submit`, with the seconds the request queued before its run began and the seconds that run took
        (Triton's queue and compute times; a merged run's time is charged to each request in it)."""
        job = _Job(feeds, batch_size, _merge_key(feeds))
        with self._work:
            idle = self._free > 0 and not self._pending
            if idle:
                self._free -= 1
            else:
                self._pending.append(job)
                self._arrival.notify_all()
                if self._free > 0:
                    self._work.notify()
        if idle:
            self._run_alone(job)
            self._release()
        outputs = job.result.result()
        return outputs, max(0.0, job.started - job.arrived), job.compute_s

    @property
    def queued(self) -> int:
        """Requests waiting for a run to become free: what the next batch will be made of."""
        with self._work:
            return len(self._pending)

    def close(self) -> None:
        """Serve the requests already queued, then stop the workers; call once no more can arrive."""
        with self._work:
            self._closing = True
            self._work.notify_all()
            self._arrival.notify_all()
        for worker in self._workers:
            worker.join()

    def _serve(self) -> None:
        while (batch := self._next_batch()) is not None:
            self._execute(batch)
            self._release()

    def _release(self) -> None:
        """A run ended; wake a worker only if a request waits for it (a wake costs a thread switch)."""
        with self._work:
            self._free += 1
            if self._pending:
                self._work.notify()

    def _next_batch(self) -> list[_Job] | None:
        """Once a run is free and a request queued: a run, and the oldest request with the compatible ones queued
        with it. None once closed and drained."""
        with self._work:
            while not (self._pending and self._free > 0) and not (self._closing and not self._pending):
                self._work.wait()
            if not self._pending:
                return None
            self._free -= 1
            batch = [self._pending.popleft()]
            closed = fill_batch(batch, self._pending, self.max_batch_size)
            deadline = batch[0].arrived + self.max_delay_s
            while not closed and not self._closing and (wait := deadline - time.monotonic()) > 0:
                self._arrival.wait(wait)
                closed = fill_batch(batch, self._pending, self.max_batch_size)
            return batch

    def _execute(self, batch: list[_Job]) -> None:
        if len(batch) == 1:
            self._run_alone(batch[0])
            return
        total = sum(job.batch_size for job in batch)
        started = time.monotonic()
        try:
            outputs = self._run({name: np.concatenate([job.feeds[name] for job in batch]) for name in batch[0].feeds})
            if any(array.shape[:1] != (total,) for array in outputs.values()):
                raise ServeError(500, "the model's outputs do not keep the batch dimension")
        except Exception as error:
            log.warning("merged batch of %d requests failed (%s); running them one by one", len(batch), error)
            for job in batch:
                self._run_alone(job)
            return
        compute_s, start = time.monotonic() - started, 0
        for job in batch:
            job.started, job.compute_s = started, compute_s
            stop = start + job.batch_size
            job.result.set_result({name: array[start:stop] for name, array in outputs.items()})
            start = stop

    def _run_alone(self, job: _Job) -> None:
        job.started = time.monotonic()
        try:
            outputs = self._run(job.feeds)
        except Exception as error:
            job.compute_s = time.monotonic() - job.started
            job.result.set_exception(error)
            return
        job.compute_s = time.monotonic() - job.started
        job.result.set_result(outputs)
