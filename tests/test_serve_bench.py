"""dlperf.serve.bench: load tests of two servers are taken in turn, in alternating order, and their rounds add up to
one row as if they were one test."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from dlperf.serve import bench
from dlperf.serve.bench import LoadSample, interleaved_load_tests, summary


def test_rounds_add_up_as_one_load_test_every_total_over_every_total():
    samples = [LoadSample([0.010, 0.020, 0.030], wall_s=1.0, rows=3, executions=3, cpu_s=1.5),
               LoadSample([0.040], wall_s=3.0, rows=1, executions=1, cpu_s=0.5)]
    result = summary(samples)
    assert {k: result[k] for k in ("requests", "wall_s", "throughput_rps", "mean_batch", "cpu_cores")} == {
        "requests": 4, "wall_s": 4.0, "throughput_rps": 1.0, "mean_batch": 1.0, "cpu_cores": 0.5}
    assert result["p50_ms"] == pytest.approx(25.0) and result["mean_ms"] == pytest.approx(25.0)


def test_merged_batches_count_rows_per_run_over_all_rounds():
    samples = [LoadSample([0.01] * 8, 1.0, rows=8, executions=2, cpu_s=1.0),
               LoadSample([0.01] * 8, 1.0, rows=8, executions=6, cpu_s=1.0)]
    assert summary(samples)["mean_batch"] == 2.0


def test_servers_take_turns_each_going_first_as_often_as_second(monkeypatch):
    taken = []

    def fake_sample(url, model, batch, clients, requests, fmt, cpu_seconds, grpc_target):
        taken.append(url)
        return LoadSample([0.01] * clients * requests, 1.0, clients * requests, clients * requests, 1.0)

    monkeypatch.setattr(bench, "load_sample", fake_sample)
    servers = {name: SimpleNamespace(url=name, cpu_seconds=lambda: 0.0) for name in ("off", "dynamic")}
    results = interleaved_load_tests(servers, "ssd", None, clients=2, requests=3, rounds=4)
    assert taken == ["off", "dynamic", "dynamic", "off", "off", "dynamic", "dynamic", "off"]
    assert {name: r["requests"] for name, r in results.items()} == {"off": 24, "dynamic": 24}
