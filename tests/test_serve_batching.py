"""dlperf.serve.batching: idle dispatch. A request that finds the model idle runs at once; requests that arrive
while a run is in flight queue up and form the next batch.

The model is a fake ``run`` that the test holds inside a run with events, so every interleaving is set by the test,
not by timing: nothing here measures a duration or compares one against a threshold.
"""
from __future__ import annotations

import collections
import threading
import time

import numpy as np
import pytest

from dlperf.serve import ModelRepository, ServeError, ServingOptions
from dlperf.serve.batching import DynamicBatcher, _Job, _merge_key, fill_batch
from serve_fixtures import tiny_ssd, write_repository

WAIT = 10  # seconds an event may take before the test fails instead of hanging


class HeldModel:
    """Doubles ``x``, or fails on a NaN; records every batch it is given (its rows' first values), and holds each
    run until the test releases it."""

    def __init__(self):
        self.batches: list[list[float]] = []
        self.threads: list[str] = []  # the thread that ran each batch
        self.entered = threading.Semaphore(0)  # released once per run started
        self.release = threading.Event()

    def __call__(self, feeds):
        self.batches.append(feeds["x"][:, 0].tolist())
        self.threads.append(threading.current_thread().name)
        self.entered.release()
        assert self.release.wait(WAIT), "the test never released the run"
        if np.isnan(feeds["x"]).any():
            raise ServeError(400, "NaN input")
        return {"y": feeds["x"] * 2}

    def wait_for_run(self) -> None:
        assert self.entered.acquire(timeout=WAIT), "no run started"


def row(value: float, width: int = 2) -> np.ndarray:
    return np.full((1, width), value, np.float32)


def submit_in_thread(batcher: DynamicBatcher, x: np.ndarray, results: dict) -> threading.Thread:
    """Submit ``x`` from a thread of its own; its outputs, or the error it got, go to ``results[x[0, 0]]``."""
    def submit() -> None:
        try:
            results[float(x[0, 0])] = batcher.submit({"x": x}, len(x))
        except ServeError as error:
            results[float(x[0, 0])] = error

    thread = threading.Thread(target=submit, name=f"client {float(x[0, 0])}")
    thread.start()
    return thread


def queue_behind_a_held_run(batcher: DynamicBatcher, model: HeldModel, inputs: list[np.ndarray]) -> dict:
    """Hold a first run (of 0.0), queue ``inputs`` one after the other behind it, release every run; the results."""
    results: dict = {}
    threads = [submit_in_thread(batcher, row(0.0), results)]
    model.wait_for_run()
    for x in inputs:
        threads.append(submit_in_thread(batcher, x, results))
        wait_until_queued(batcher, len(threads) - 1)
    model.release.set()
    for thread in threads:
        thread.join(WAIT)
    batcher.close()
    return results


def wait_until_queued(batcher: DynamicBatcher, n: int) -> None:
    deadline = time.monotonic() + WAIT
    while batcher.queued != n:
        assert time.monotonic() < deadline, f"{batcher.queued} requests queued, not {n}"
        time.sleep(0.001)


def test_a_request_that_finds_the_model_idle_runs_at_once_and_alone():
    model, results = HeldModel(), {}
    batcher = DynamicBatcher(model, max_batch_size=8, max_delay_s=0.0, name="test")
    thread = submit_in_thread(batcher, row(1.0), results)
    model.wait_for_run()
    assert model.batches == [[1.0]] and batcher.queued == 0
    model.release.set()
    thread.join()
    batcher.close()
    np.testing.assert_array_equal(results[1.0]["y"], row(2.0))


def test_requests_that_arrive_during_a_run_are_merged_into_the_next_run_in_arrival_order():
    model = HeldModel()
    batcher = DynamicBatcher(model, max_batch_size=8, max_delay_s=0.0, name="test")
    results = queue_behind_a_held_run(batcher, model, [row(1.0), row(2.0), row(3.0)])
    assert model.batches == [[0.0], [1.0, 2.0, 3.0]]
    for value, outputs in results.items():
        np.testing.assert_array_equal(outputs["y"], row(2 * value))


def test_a_batch_runs_in_the_thread_of_its_oldest_request_and_the_batcher_starts_no_thread():
    """The run is handed from the thread that ends one run to the thread of the next batch's oldest request, which
    must wake to answer its own client anyway: a queued request costs one wake-up, not two."""
    before = threading.active_count()
    model = HeldModel()
    batcher = DynamicBatcher(model, max_batch_size=2, max_delay_s=0.0, name="test", instances=1)
    assert threading.active_count() == before
    queue_behind_a_held_run(batcher, model, [row(1.0), row(2.0), row(3.0)])
    assert model.batches == [[0.0], [1.0, 2.0], [3.0]]
    assert model.threads == ["client 0.0", "client 1.0", "client 3.0"]


def test_requests_queued_beyond_max_batch_size_wait_for_the_run_after_and_each_gets_its_own_rows():
    model = HeldModel()
    batcher = DynamicBatcher(model, max_batch_size=3, max_delay_s=0.0, name="test")
    inputs = [np.array([[1.0, 1.0], [1.5, 1.5]], np.float32), row(2.0), row(3.0), row(4.0),
              np.array([[5.0, 5.0], [5.5, 5.5]], np.float32)]
    results = queue_behind_a_held_run(batcher, model, inputs)
    assert model.batches == [[0.0], [1.0, 1.5, 2.0], [3.0, 4.0], [5.0, 5.5]]
    for x in inputs:
        np.testing.assert_array_equal(results[float(x[0, 0])]["y"], 2 * x)


def test_requests_whose_shapes_differ_are_never_merged_but_keep_their_order():
    model = HeldModel()
    batcher = DynamicBatcher(model, max_batch_size=8, max_delay_s=0.0, name="test")
    inputs = [row(1.0, width=2), row(2.0, width=3), row(3.0, width=2), row(4.0, width=3)]
    results = queue_behind_a_held_run(batcher, model, inputs)
    assert model.batches == [[0.0], [1.0, 3.0], [2.0, 4.0]]
    for x in inputs:
        np.testing.assert_array_equal(results[float(x[0, 0])]["y"], 2 * x)


def test_a_failing_merged_run_fails_only_the_request_that_caused_it():
    model = HeldModel()
    batcher = DynamicBatcher(model, max_batch_size=8, max_delay_s=0.0, name="test")
    results = queue_behind_a_held_run(batcher, model, [row(1.0), row(np.nan), row(3.0)])
    # the merged run fails, then each of its requests runs alone
    np.testing.assert_equal(model.batches, [[0.0], [1.0, np.nan, 3.0], [1.0], [np.nan], [3.0]])
    error = next(value for key, value in results.items() if np.isnan(key))
    assert isinstance(error, ServeError) and error.status == 400
    np.testing.assert_array_equal(results[1.0]["y"], row(2.0))
    np.testing.assert_array_equal(results[3.0]["y"], row(6.0))


def test_a_second_instance_takes_a_request_at_once_while_the_first_is_busy():
    model, results = HeldModel(), {}
    batcher = DynamicBatcher(model, max_batch_size=8, max_delay_s=0.0, name="test", instances=2)
    first = submit_in_thread(batcher, row(1.0), results)
    model.wait_for_run()
    second = submit_in_thread(batcher, row(2.0), results)
    model.wait_for_run()  # the second run starts while the first is still held
    assert model.batches == [[1.0], [2.0]]
    model.release.set()
    for thread in (first, second):
        thread.join()
    batcher.close()
    np.testing.assert_array_equal(results[2.0]["y"], row(4.0))


def test_a_delay_never_holds_a_request_that_finds_the_model_idle():
    """A delay far longer than any test: had the lone request waited for company, the test would hang."""
    model, results = HeldModel(), {}
    model.release.set()
    batcher = DynamicBatcher(model, max_batch_size=8, max_delay_s=3600.0, name="test")
    submit_in_thread(batcher, row(1.0), results).join(WAIT)
    assert model.batches == [[1.0]] and 1.0 in results
    batcher.close()


def test_with_a_delay_requests_queued_during_a_run_wait_for_company_until_their_batch_is_full():
    """The batch after the held run leaves when the third request fills it, not when the hour-long delay ends."""
    model, results = HeldModel(), {}
    batcher = DynamicBatcher(model, max_batch_size=2, max_delay_s=3600.0, name="test")
    threads = [submit_in_thread(batcher, row(1.0), results)]
    model.wait_for_run()
    threads.append(submit_in_thread(batcher, row(2.0), results))
    wait_until_queued(batcher, 1)
    model.release.set()  # the held run ends
    wait_until_queued(batcher, 0)  # request 2 was handed the run; without the delay it would run alone
    threads.append(submit_in_thread(batcher, row(3.0), results))
    for thread in threads:
        thread.join(WAIT)
    batcher.close()
    assert model.batches == [[1.0], [2.0, 3.0]]


def test_closing_serves_the_requests_still_queued():
    model, results = HeldModel(), {}
    batcher = DynamicBatcher(model, max_batch_size=8, max_delay_s=0.0, name="test")
    threads = [submit_in_thread(batcher, row(1.0), results)]
    model.wait_for_run()
    threads.append(submit_in_thread(batcher, row(2.0), results))
    wait_until_queued(batcher, 1)
    closing = threading.Thread(target=batcher.close)
    closing.start()
    model.release.set()
    for thread in (*threads, closing):
        thread.join(WAIT)
    assert model.batches == [[1.0], [2.0]] and sorted(results) == [1.0, 2.0]


def job(value: float, rows: int = 1, width: int = 2) -> _Job:
    feeds = {"x": np.full((rows, width), value, np.float32)}
    return _Job(feeds, rows, _merge_key(feeds))


def values(jobs) -> list[float]:
    return [float(j.feeds["x"][0, 0]) for j in jobs]


def test_a_batch_takes_the_compatible_requests_in_order_and_leaves_the_others_in_place():
    batch, pending = [job(1)], collections.deque([job(2, width=3), job(3), job(4, width=3), job(5)])
    assert fill_batch(batch, pending, max_batch_size=8) is False
    assert values(batch) == [1, 3, 5] and values(pending) == [2, 4]


def test_a_batch_closes_at_the_first_compatible_request_that_would_overflow_it_which_no_later_one_overtakes():
    batch, pending = [job(1)], collections.deque([job(2, width=3), job(3, rows=3), job(4)])
    assert fill_batch(batch, pending, max_batch_size=3) is True
    assert values(batch) == [1] and values(pending) == [2, 3, 4]


def test_a_full_batch_is_closed():
    batch, pending = [job(1)], collections.deque([job(2, rows=2), job(3)])
    assert fill_batch(batch, pending, max_batch_size=3) is True
    assert values(batch) == [1, 2] and values(pending) == [3]


@pytest.mark.parametrize("config, delay_s", [
    ("max_batch_size: 4\ndynamic_batching {\n}\n", 0.0),
    ("max_batch_size: 4\ndynamic_batching {\n  max_queue_delay_microseconds: 2500\n}\n", 0.0025),
    ("max_batch_size: 4\n", 0.03),
])
def test_the_delay_is_config_pbtxts_a_dynamic_batching_block_without_one_means_none(tmp_path, config, delay_s):
    root = write_repository(tmp_path, {"m": {1: tiny_ssd(seed=1)}}, {"m": config})
    repository = ModelRepository(root, ServingOptions(max_delay_ms=30))
    try:
        assert repository.get("m")._batcher.max_delay_s == delay_s
    finally:
        repository.close()


def test_by_default_a_model_runs_what_is_queued_without_delay_on_one_instance():
    assert (ServingOptions().max_delay_ms, ServingOptions().instances) == (0.0, 1)


def test_a_batching_model_is_warmed_up_at_every_batch_size_it_can_form_and_its_statistics_start_at_zero(
        tmp_path, monkeypatch):
    """onnxruntime plans memory per shape, so a shape's first run is slower: the model runs each batch size its
    batcher can form once at load, as Triton's model_warmup does, and no client pays for it."""
    import onnxruntime as ort

    shapes = []

    class Recording(ort.InferenceSession):
        def run(self, output_names, feeds, *args, **kwargs):
            shapes.append(next(iter(feeds.values())).shape)
            return super().run(output_names, feeds, *args, **kwargs)

    monkeypatch.setattr("dlperf.serve.repository.ort.InferenceSession", Recording)
    root = write_repository(tmp_path, {"m": {1: tiny_ssd(seed=1)}, "n": {1: tiny_ssd(seed=2)}},
                            {"m": "max_batch_size: 4\n"})
    repository = ModelRepository(root, ServingOptions(max_batch_size=2, batching=True))
    try:
        assert sorted(shape[0] for shape in shapes) == [1, 1, 2, 2, 3, 4]   # m up to 4, n up to the default 2
        assert all(shape[1:] == (3, 8, 8) for shape in shapes)
        assert repository.get("m").stats.snapshot("m", 1)["execution_count"] == 0
    finally:
        repository.close()
    shapes.clear()
    ModelRepository(root, ServingOptions(batching=False)).close()
    assert shapes == []   # without batching, a request's batch is the client's: nothing to warm
