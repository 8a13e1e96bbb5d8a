"""dlperf.serve.bench: a load test is timed over a window that starts and ends on an answer, with every client busy;
load tests of two servers are taken in turn, in alternating order, and their rounds add up to one row as if they
were one test."""
from __future__ import annotations

import contextlib
import math
from types import SimpleNamespace

import pytest

from dlperf.serve import bench
from dlperf.serve.bench import LoadSample, steady_window, summary


def test_rounds_add_up_as_one_load_test_every_total_over_every_total():
    samples = [LoadSample([0.010, 0.020, 0.030], wall_s=1.0, rows=3, executions=3, cpu_s=1.5),
               LoadSample([0.040], wall_s=3.0, rows=1, executions=1, cpu_s=0.5)]
    result = summary(samples)
    assert {k: result[k] for k in ("requests", "wall_s", "throughput_rps", "mean_batch", "cpu_cores")} == {
        "requests": 4, "wall_s": 4.0, "throughput_rps": 1.0, "mean_batch": 1.0, "cpu_cores": 0.5}
    assert result["p50_ms"] == pytest.approx(25.0) and result["mean_ms"] == pytest.approx(25.0)


def answers_in_batches(batch: int, gap_s: float, count: int, first_s: float = 0.37) -> list[tuple[float, float]]:
    """``count`` answers arriving ``batch`` at a time, one batch every ``gap_s`` from ``first_s``: a server that
    answers ``batch / gap_s`` requests a second; each round trip is the gap."""
    return [(first_s + (i // batch) * gap_s, gap_s) for i in range(count)]


@pytest.mark.parametrize("batch", [1, 2, 4, 8])
def test_the_window_measures_the_same_rate_whether_answers_come_alone_or_in_batches(batch):
    """100 requests a second, answered one by one or in batches of up to 8: a window that ended between batches, or
    began at the test's start, would count a batch too many or too few and favour or penalise the batcher."""
    latencies, seconds = steady_window(answers_in_batches(batch, batch / 100, 16 + 16 * 8), clients=16, requests=8)
    assert len(latencies) == 128 and len(latencies) / seconds == pytest.approx(100.0)


def test_answers_after_the_window_such_as_a_slow_drain_are_not_timed():
    answers = answers_in_batches(1, 0.01, 3 + 3 * 4) + [(10.0, 9.0), (20.0, 10.0)]
    latencies, seconds = steady_window(answers[::-1], clients=3, requests=4)   # in any order
    assert seconds == pytest.approx(0.12) and max(latencies) == pytest.approx(0.01)


def test_a_test_with_fewer_answers_than_its_window_is_refused():
    with pytest.raises(ValueError, match="11 answers"):
        steady_window(answers_in_batches(1, 0.01, 11), clients=3, requests=4)


def test_busy_cores_are_the_cpu_seconds_over_the_whole_test_not_the_window():
    sample = LoadSample([0.01] * 10, wall_s=1.0, rows=10, executions=10, cpu_s=3.0, cpu_wall_s=2.0)
    assert summary([sample])["cpu_cores"] == 1.5 and summary([sample])["throughput_rps"] == 10.0


def test_merged_batches_count_rows_per_run_over_all_rounds():
    samples = [LoadSample([0.01] * 8, 1.0, rows=8, executions=2, cpu_s=1.0),
               LoadSample([0.01] * 8, 1.0, rows=8, executions=6, cpu_s=1.0)]
    assert summary(samples)["mean_batch"] == 2.0


def test_every_round_starts_a_fresh_pair_of_servers_that_take_turns_and_rows_keep_each_rounds_rate(monkeypatch):
    """A process's own luck moves its throughput by a few per cent, so each round gets new processes; within a round
    the servers alternate going first from one load test to the next, and from one round to the next."""
    started, taken = [], []

    @contextlib.contextmanager
    def fake_servers(repository, arguments, log=None):
        servers = []
        for flags in arguments:
            started.append(flags[-1])
            servers.append(SimpleNamespace(url=f"{flags[-1]}#{len(started)}", cpu_seconds=lambda: 0.0, grpc=None))
        yield servers

    def fake_sample(url, model, batch, clients, requests, cpu_seconds=None, grpc_target=None):
        taken.append((url, clients))
        answers = clients * requests
        return LoadSample([0.01] * answers, answers / (20.0 if url.startswith("dynamic") else 10.0), answers, answers,
                          1.0)

    monkeypatch.setattr(bench, "server_processes", fake_servers)
    monkeypatch.setattr(bench, "load_sample", fake_sample)
    rows = bench.compare_batching("repo", "ssd", 8, [1, 4], requests=2, rounds=2,
                                  modes={"off": ["off"], "dynamic": ["dynamic"]})
    assert started == ["off", "dynamic", "off", "dynamic"]
    assert taken == [("off#1", 1), ("dynamic#2", 1), ("dynamic#2", 4), ("off#1", 4),
                     ("dynamic#4", 1), ("off#3", 1), ("off#3", 4), ("dynamic#4", 4)]
    by = {(row["batching"], row["clients"]): row for row in rows}
    assert by["dynamic", 4]["round_rps"] == [20.0, 20.0] and by["off", 1]["requests"] == 4


def test_a_speedup_interval_comes_from_its_rounds_paired_ratios_and_needs_two():
    low, high = bench.speedup_interval(1.0, [10.0, 11.0, 9.0], [10.0, 10.0, 10.0])
    assert low < 0.9 and high > 1.1 and low * high == pytest.approx(1.0)
    assert bench.speedup_interval(1.0, [11.0, 22.0], [10.0, 20.0]) == pytest.approx((1.0, 1.0))   # no spread
    assert all(math.isnan(end) for end in bench.speedup_interval(1.0, [11.0], [10.0]))
    assert bench.batching_goal_met(0.97, 1.02) and bench.batching_goal_met(1.0, math.nan)
    assert not bench.batching_goal_met(0.97, 0.99) and not bench.batching_goal_met(0.97, math.nan)


@pytest.mark.parametrize("dynamic_rounds, met", [([9.4, 10.2, 9.8, 9.6], True), ([9.6, 9.7, 9.6, 9.7], False)])
def test_the_batching_goal_reads_the_speedups_interval_not_only_its_figure(dynamic_rounds, met):
    """0.97 both times: rounds that straddle no loss meet the goal, rounds that all lose do not."""
    def row(batching, rounds, clients=16, benchmark="server", runtime="onnxruntime"):
        return {"benchmark": benchmark, "model": "ssd", "runtime": runtime, "protocol": "http", "batching": batching,
                "clients": clients, "batch_size": 1, "requests": 40, "throughput_rps": sum(rounds) / len(rounds),
                "p50_ms": 1.0, "p99_ms": 1.0, "mean_batch": 1.0, "cpu_cores": 1.0, "round_rps": rounds}

    table = bench.bench_table([row("off", [10.0] * 4), row("dynamic", dynamic_rounds),
                               row("off", [1.0], 1, "direct", "pytorch_eager"), row("off", [3.0], 1, "direct")])
    speedups, goals = bench.serving_goals(table)
    assert speedups["batched_vs_unbatched_16_clients_ssd"] == pytest.approx(0.975 if met else 0.965)
    assert goals["batched_vs_unbatched_16_clients_ssd"] is met
