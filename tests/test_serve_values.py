"""dlperf.serve.values: the serving section's macros state batching against no batching at the most clients for each
model benched, and whether batching met its goal of never losing, as the reader sees the ratio printed."""
from __future__ import annotations

import pytest

from dlperf.serve.bench import bench_table
from dlperf.serve.values import serving_values

PARITY = {"opset": 20, "nodes": 124, "op_types": {"Conv": 47, "Relu": 35}, "doc_strings": {"stack_trace": 124},
          "bytes": 2 * 2**20, "images": ["a", "b"], "batch_sizes": [1, 2], "tolerance": 1e-4,
          "max_abs_diff": {"scores": 3e-8, "boxes": 1e-7}}
EXPORT = {"config": {"ssd": {"model": {"width_mult": 0.25, "image_size": 128}}}}
DETECTIONS = {"Handgun": {"detections": [{}], "ground_truth": 2}}


def server_rows(model: str, off_rps: float, dynamic_rps: float, protocol: str = "http") -> list[dict]:
    """At 1 client both modes answer 10 requests/s; at 16, ``off_rps`` and ``dynamic_rps``."""
    return [{"benchmark": "server", "model": model, "runtime": "onnxruntime", "protocol": protocol,
             "batching": batching, "clients": clients,
             "batch_size": 1, "requests": 6 * clients, "throughput_rps": rps, "p50_ms": 2.0 * clients,
             "p99_ms": 3.0 * clients, "mean_batch": 1.0 if batching == "off" else clients / 2,
             "cpu_cores": 1.5 if batching == "off" else 1.25}
            for batching, at_most in (("off", off_rps), ("dynamic", dynamic_rps))
            for clients, rps in ((1, 10.0), (16, at_most))]


DIRECT = [{"benchmark": "direct", "model": "ssd", "runtime": runtime, "protocol": "in_process", "batching": "off",
           "clients": 1, "batch_size": 1, "requests": 20, "throughput_rps": 1000 / ms, "p50_ms": ms, "p99_ms": ms,
           "mean_batch": 1.0, "cpu_cores": 1.0}
          for runtime, ms in (("pytorch_eager", 6.0), ("onnxruntime", 2.0))]


def values(*rows: list[dict]) -> dict:
    bench = bench_table([row for group in rows for row in group] + DIRECT)
    return serving_values(bench=bench, parity=PARITY, export=EXPORT, detections=DETECTIONS, classes=["Handgun"],
                          batching={"max_batch_size": 8, "max_delay_ms": 0})


def test_each_model_gets_its_ratio_at_the_most_clients_and_whether_batching_never_lost():
    macros = values(server_rows("ssd", 400.0, 440.0), server_rows("ssd_full", 40.0, 38.0))
    assert {k: macros[f"Serve{k}"] for k in ("BatchingSpeedup", "BatchingGoalMet", "ThroughputOffMax",
                                             "ThroughputDynamicMax", "CoresOffMax", "CoresDynamicMax",
                                             "MeanBatchMax", "RequestsPerClient")} == {
        "BatchingSpeedup": "1.10", "BatchingGoalMet": "yes", "ThroughputOffMax": "400", "ThroughputDynamicMax": "440",
        "CoresOffMax": "1.5", "CoresDynamicMax": "1.2", "MeanBatchMax": "8.0", "RequestsPerClient": 6}
    assert macros["ServeFullSizeBenched"] == "yes"
    assert (macros["ServeFullSizeBatchingSpeedup"], macros["ServeFullSizeBatchingGoalMet"]) == ("0.95", "no")
    assert (macros["ServeSingleClientSpeedup"], macros["ServeFullSizeSingleClientSpeedup"]) == ("1.00", "1.00")
    assert (macros["ServeFullSizeThroughputOffMax"], macros["ServeFullSizeThroughputDynamicMax"]) == ("40.0", "38.0")
    assert (macros["ServeBatchingGoal"], macros["ServeClientsMax"]) == ("1", 16)


@pytest.mark.parametrize("dynamic_rps, printed, met", [(39.85, "1.00", "yes"), (39.75, "0.99", "no")])
def test_the_goal_is_judged_on_the_ratio_as_printed(dynamic_rps, printed, met):
    macros = values(server_rows("ssd", 40.0, dynamic_rps))
    assert (macros["ServeBatchingSpeedup"], macros["ServeBatchingGoalMet"]) == (printed, met)


def test_when_the_served_ssd_is_the_full_size_one_there_are_no_full_size_rows_and_no_full_size_macros():
    macros = values(server_rows("ssd", 30.0, 33.0))
    assert macros["ServeFullSizeBenched"] == "no"
    assert not [name for name in macros if name.startswith("ServeFullSize") and name != "ServeFullSizeBenched"]
    assert macros["ServeBatchingSpeedup"] == "1.10"


def test_grpc_rows_are_compared_with_http_and_leave_the_http_macros_alone():
    macros = values(server_rows("ssd", 400.0, 440.0), server_rows("ssd", 500.0, 550.0, protocol="grpc"))
    assert (macros["ServeGrpcBenched"], macros["ServeGrpcThroughputDynamicMax"], macros["ServeGrpcOverHttp"]) == (
        "yes", "550", "1.25")
    assert (macros["ServeBatchingSpeedup"], macros["ServeThroughputDynamicMax"]) == ("1.10", "440")
    assert values(server_rows("ssd", 400.0, 440.0))["ServeGrpcBenched"] == "no"


@pytest.mark.parametrize("round_ratios, interval, met", [
    ((0.93, 1.01, 0.99, 0.95), "0.91--1.03", "yes"),    # 0.97, but the rounds cannot tell it from no loss
    ((0.96, 0.97, 0.98, 0.97), "0.96--0.98", "no"),     # every round lost: a loss
])
def test_a_ratio_below_the_goal_meets_it_only_if_its_rounds_interval_reaches_it(round_ratios, interval, met):
    rows = server_rows("ssd", 400.0, 388.0)
    for row in rows:
        ratios = round_ratios if row["batching"] == "dynamic" and row["clients"] == 16 else (1.0,) * 4
        row["round_rps"] = [10.0 * ratio for ratio in ratios]
    macros = values(rows)
    assert macros["ServeBatchingSpeedup"] == "0.97"
    assert (macros["ServeBatchingInterval"], macros["ServeBatchingGoalMet"]) == (
        rf" (95\,\% interval {interval})", met)


def test_the_ratio_at_one_client_is_printed_as_the_benchmarks_noise():
    rows = server_rows("ssd", 400.0, 440.0)
    next(r for r in rows if r["clients"] == 1 and r["batching"] == "dynamic")["throughput_rps"] = 9.2
    assert values(rows)["ServeSingleClientSpeedup"] == "0.92"
