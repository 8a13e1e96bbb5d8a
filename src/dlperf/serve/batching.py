"""Dynamic batching: concurrent requests to one model version share a single onnxruntime run.

At most ``instances`` runs of a model version are in flight at once (Triton's ``instance_group`` count). A
request that finds a run free and nobody queued is run at once, alone, in its caller's own thread: an idle
model never makes a request wait, and its request pays nothing for the batcher but a counter under a lock
(Triton's dynamic batcher with ``max_queue_delay_microseconds: 0`` dispatches at once too). A request that finds
every run busy queues. When a run ends, the thread that ran it hands its run over, at once and without letting it
go free, to the oldest queued request together with every compatible request queued by then (same input names,
dtypes and non-batch dimensions, in arrival order, up to ``max_batch_size`` rows): the oldest request's own
thread, which had to wake to answer its client anyway, runs them as one batch and answers the others. So
requests that arrive during a run form the next batch, batches grow exactly when the model is busy, and a
queued request costs one thread wake-up, as it would on any server that runs it in another thread (there are
no worker threads to wake first). A positive ``max_delay_s`` adds an optional wait to that: a batch that is not
yet full waits until its oldest request has queued that long for more to join. Every output is split back along
axis 0 in request order, so each caller receives exactly its own rows.

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
from typing import Callable

import numpy as np

from .errors import ServeError

log = logging.getLogger(__name__)

Tensors = dict[str, np.ndarray]


class _Job:
    """A queued request: its inputs, and, once it is answered, its outputs or error. ``done`` is held until then
    (the cheapest wait CPython has); ``lead`` is the batch its thread is handed to run, if it leads one."""

    __slots__ = ("feeds", "batch_size", "key", "arrived", "started", "compute_s", "outputs", "error", "lead", "done")

    def __init__(self, feeds: Tensors, batch_size: int, key: tuple):
        self.feeds, self.batch_size, self.key = feeds, batch_size, key
        self.arrived = time.monotonic()
        self.started = self.compute_s = 0.0   # when the run that served it began (monotonic), and how long it took
        self.outputs: Tensors | None = None
        self.error: BaseException | None = None
        self.lead: list[_Job] | None = None
        self.done = threading.Lock()
        self.done.acquire()

    def answer(self, outputs: Tensors | None, error: BaseException | None = None) -> None:
        self.outputs, self.error = outputs, error
        self.done.release()

    def hand(self, batch: list[_Job]) -> None:
        """Wake this request's thread to run ``batch`` (which it leads)."""
        self.lead = batch
        self.done.release()


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
    """Runs ``run(feeds) -> outputs`` on the requests given to ``submit``, each in its caller's thread: alone when
    a run is free, else merged into batches handed from run to run; at most ``instances`` runs at once."""

    def __init__(self, run: Callable[[Tensors], Tensors], max_batch_size: int, max_delay_s: float, name: str,
                 instances: int = 1):
        self._run = run
        self.name = name
        self.max_batch_size = max_batch_size
        self.max_delay_s = max_delay_s
        self.instances = instances
        self._pending: collections.deque[_Job] = collections.deque()
        self._lock = threading.Lock()
        self._arrival = threading.Condition(self._lock)  # a batch waiting out the delay: a request queued, or closing
        self._idle = threading.Condition(self._lock)  # close(): every run has ended and nothing is queued
        self._free = instances  # runs not in flight; never positive while a request is queued
        self._closing = False

    def submit(self, feeds: Tensors, batch_size: int) -> Tensors:
        """Run one request (``batch_size`` rows along axis 0 of every input), alone or merged, and return its
        outputs."""
        return self.submit_timed(feeds, batch_size)[0]

    def submit_timed(self, feeds: Tensors, batch_size: int) -> tuple[Tensors, float, float]:
        """:meth:`submit`, with the seconds the request queued before its run began and the seconds that run took
        (Triton's queue and compute times; a merged run's time is charged to each request in it)."""
        with self._lock:
            idle = self._free > 0
            if idle:
                self._free -= 1
            else:
                job = _Job(feeds, batch_size, _merge_key(feeds))
                self._pending.append(job)
                if self.max_delay_s > 0:
                    self._arrival.notify_all()
        if idle:
            started = time.monotonic()
            try:
                outputs = self._run(feeds)
            finally:
                compute_s = time.monotonic() - started
                self._release()
            return outputs, 0.0, compute_s
        job.done.acquire()
        if job.lead is not None:   # this thread was handed the run: serve the batch, then hand the run on
            try:
                self._wait_for_company(job.lead)
                self._execute(job.lead)
            finally:
                self._release()
        if job.error is not None:
            raise job.error
        return job.outputs, max(0.0, job.started - job.arrived), job.compute_s

    @property
    def free(self) -> bool:
        """Whether a request now would run at once (a run free, so nobody queued); read without the lock."""
        return self._free > 0

    @property
    def queued(self) -> int:
        """Requests waiting for a run to become free: what the next batch will be made of."""
        with self._lock:
            return len(self._pending)

    def close(self) -> None:
        """Wait for the requests in flight and those queued to be served; call once no more can arrive."""
        with self._lock:
            self._closing = True
            self._arrival.notify_all()
            while self._pending or self._free < self.instances:
                self._idle.wait()

    def _release(self) -> None:
        """A run ended: hand it to the oldest queued request with the compatible ones queued with it, else let it
        go free."""
        with self._lock:
            if not self._pending:
                self._free += 1
                if self._closing and self._free == self.instances:
                    self._idle.notify_all()
                return
            batch = [self._pending.popleft()]
            fill_batch(batch, self._pending, self.max_batch_size)
        batch[0].hand(batch)

    def _wait_for_company(self, batch: list[_Job]) -> None:
        """With a delay: until the batch is full, or its oldest request has queued ``max_delay_s``."""
        if self.max_delay_s <= 0:
            return
        with self._lock:
            closed = fill_batch(batch, self._pending, self.max_batch_size)
            deadline = batch[0].arrived + self.max_delay_s
            while not closed and not self._closing and (wait := deadline - time.monotonic()) > 0:
                self._arrival.wait(wait)
                closed = fill_batch(batch, self._pending, self.max_batch_size)

    def _execute(self, batch: list[_Job]) -> None:
        """Run ``batch`` and answer each of its requests (the leader's own answer included)."""
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
            rows = {name: array[start:stop] for name, array in outputs.items()}
            start = stop
            if job is batch[0]:
                job.outputs = rows
            else:
                job.answer(rows)

    def _run_alone(self, job: _Job) -> None:
        job.started = time.monotonic()
        outputs, error = None, None
        try:
            outputs = self._run(job.feeds)
        except Exception as caught:
            error = caught
        job.compute_s = time.monotonic() - job.started
        if job.lead is not None:   # the leader keeps its own answer; it returns it itself
            job.outputs, job.error = outputs, error
        else:
            job.answer(outputs, error)
