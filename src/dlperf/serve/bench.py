"""Serving benchmark: throughput and latency under concurrent clients, and ORT against PyTorch eager at batch 1.

A load test runs ``clients`` threads against a live server, each sending ``requests`` ORT-server requests
of one image, one after the other (a closed loop: a client sends its next request when the previous one is
answered). All clients start together after one untimed warm-up request each; throughput is requests over
the wall time of the timed part, latency the per-request round trip seen by the client. The server's
Triton-style statistics give the mean batch that its dynamic batcher actually merged.

The in-process comparison times one forward pass of a ``[1, 3, S, S]`` input in PyTorch eager mode and in an
onnxruntime session on the exported file, with the same thread count, after warm-up runs.

:func:`bench_table` turns the measured rows into the benchmark's table (with each row's speedup) and
:func:`serving_goals` reads the two goals off it: ORT at least :data:`GOAL` times faster than PyTorch eager at
batch 1, and dynamic batching at least :data:`GOAL` times the throughput without it at the most clients.
"""
from __future__ import annotations

import math
import threading
import time
from typing import Callable, Iterable

import numpy as np
import pandas as pd

from .client import KServeClient, OrtServerClient

COLUMNS = ["benchmark", "runtime", "batching", "clients", "batch_size", "requests", "throughput_rps", "p50_ms",
           "p99_ms", "mean_batch", "speedup"]
GOAL = 2.0


def _percentiles(latencies_s: list[float]) -> dict[str, float]:
    ms = 1000 * np.asarray(latencies_s)
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "mean_ms": float(ms.mean())}


def load_test(url: str, model: str, batch: np.ndarray, clients: int, requests: int,
              fmt: str = "protobuf") -> dict[str, float]:
    """Run the closed-loop load test; every answer is checked to have the model's batch of 1."""
    client, stats = OrtServerClient(url), KServeClient(url)
    start_barrier = threading.Barrier(clients + 1)
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            client.predict(model, {"input": batch}, fmt=fmt)  # warm-up: connection, first batch
        except BaseException as error:  # reported below, after the barrier lets everyone go
            errors.append(error)
        start_barrier.wait()
        if errors:
            return
        try:
            for _ in range(requests):
                sent = time.perf_counter()
                outputs = client.predict(model, {"input": batch}, fmt=fmt)
                latencies[index].append(time.perf_counter() - sent)
                if any(array.shape[0] != batch.shape[0] for array in outputs.values()):
                    raise AssertionError(f"answer shapes {[a.shape for a in outputs.values()]} for one image")
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    start_barrier.wait()
    before = _model_counts(stats, model)
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    after = _model_counts(stats, model)
    if errors:
        raise RuntimeError(f"{len(errors)} client(s) failed; first: {errors[0]!r}") from errors[0]
    executions = after[1] - before[1]
    return {
        "requests": clients * requests,
        "wall_s": wall,
        "throughput_rps": clients * requests / wall,
        **_percentiles([t for per_client in latencies for t in per_client]),
        "mean_batch": (after[0] - before[0]) / executions if executions else float("nan"),
    }


def _model_counts(stats: KServeClient, model: str) -> tuple[int, int]:
    """(rows inferred, onnxruntime runs) of all the model's versions so far."""
    records = stats.statistics(model)["model_stats"]
    return sum(r["inference_count"] for r in records), sum(r["execution_count"] for r in records)


def time_calls(call: Callable[[], object], warmup: int, repeats: int) -> dict[str, float]:
    """Latency percentiles of ``repeats`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        call()
    latencies = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - start)
    return {"requests": repeats, "wall_s": sum(latencies), "throughput_rps": repeats / sum(latencies),
            **_percentiles(latencies)}


def direct_latency(torch_model, onnx_path: str, batch: np.ndarray, threads: int, warmup: int,
                   repeats: int) -> dict[str, dict[str, float]]:
    """``{"pytorch_eager": stats, "onnxruntime": stats}`` for one forward pass of ``batch``, in-process."""
    import onnxruntime as ort
    import torch

    torch.set_num_threads(threads)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
    model = torch_model.eval()
    tensor = torch.from_numpy(batch)

    def eager() -> None:
        with torch.inference_mode():
            model(tensor)

    return {
        "pytorch_eager": time_calls(eager, warmup, repeats),
        "onnxruntime": time_calls(lambda: session.run(None, {"input": batch}), warmup, repeats),
    }


def bench_table(rows: Iterable[dict]) -> pd.DataFrame:
    """The benchmark's table (:data:`COLUMNS`) of the measured rows, with each row's ``speedup``: a server row's
    throughput over that without batching at the same number of clients, a direct row's p50 latency speedup
    over PyTorch eager."""
    table = pd.DataFrame(rows)
    off = table[(table.benchmark == "server") & (table.batching == "off")].set_index("clients").throughput_rps
    eager_p50 = table.loc[table.runtime == "pytorch_eager", "p50_ms"].iloc[0]
    table["speedup"] = [row.throughput_rps / off[row.clients] if row.benchmark == "server" else eager_p50 / row.p50_ms
                        for row in table.itertuples()]
    return table[COLUMNS]


def serving_goals(table: pd.DataFrame) -> tuple[dict[str, float], dict[str, bool]]:
    """``(speedups, goals_met)`` of a :func:`bench_table`: ORT over eager at batch 1, and dynamic batching over
    none at the most clients; a goal is met at a speedup of :data:`GOAL` or more (an undefined one is left out
    of ``goals_met``)."""
    server, direct = table[table.benchmark == "server"], table[table.benchmark == "direct"]
    most = int(server.clients.max())
    batched = server[(server.batching == "dynamic") & (server.clients == most)]
    speedups = {"ort_vs_eager_batch1": float(direct.loc[direct.runtime == "onnxruntime", "speedup"].iloc[0]),
                f"batched_vs_unbatched_{most}_clients": float(batched.speedup.iloc[0])}
    return speedups, {k: bool(v >= GOAL) for k, v in speedups.items() if not math.isnan(v)}
