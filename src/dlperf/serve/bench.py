"""Serving benchmark: throughput and latency under concurrent clients, and ORT against PyTorch eager at batch 1.

A load test runs ``clients`` threads against a live server, each sending ORT-server requests of one image, one
after the other (a closed loop: a client sends its next request when the previous one is answered). All clients
start together after one untimed warm-up request each, and keep sending until ``clients`` × ``requests`` requests
have been answered after the first ``clients`` answers (the ramp). Throughput is measured as Triton's
perf_analyzer does, over a window in which every client is busy: the answers counted are those after the
``clients``-th answer up to and including the last one wanted, over the time between those two answers. Both ends
of the window are answers, so a server that answers in batches is neither favoured nor penalised by where the
window cuts its batches; and the clients never drain, so the end of a test, when fewer than ``clients`` requests
are in flight and a server that batched leaves cores idle behind its last batch, is not timed (with a few
requests a client, that tail cost batching several per cent). Latency is the round trip, seen by the client, of
each request answered in the window. The server's Triton-style statistics give the mean batch that its dynamic
batcher actually merged, and the server process's CPU time over the same test gives the cores it kept busy
(``cpu_cores``): a comparison of two servers is fair only if both could use the same cores. Two servers are
compared by load tests taken in turn, several rounds (:func:`rounds_of_load_tests`), so that other work on the
machine cannot favour the one that happened to run while it paused.

A server process has luck of its own, too: where its memory and threads land. Two servers doing the same work (the
embedded SSD at 16 clients, 4 rounds in turn of 100-150 requests a client) differed by a standard deviation of 1 %
in one set of 6 pairs of processes and 3.5 % in another. So each round starts fresh servers, and a speedup comes
with the 95 % interval of its rounds' paired ratios (:func:`speedup_interval`):
where batching does the same work as no batching (the embedded SSD's batcher never merges: nothing queues), the true
speedup is 1, a single figure falls below it about half the time, and only the interval tells a loss from noise.

The in-process comparison times one forward pass of a ``[1, 3, S, S]`` input in PyTorch eager mode and in an
onnxruntime session on the exported file, with the same thread count, after warm-up runs; its ``cpu_cores``
is this process's CPU time over the timed calls' wall time.

:func:`bench_table` turns the measured rows into the benchmark's table (with each row's speedup) and
:func:`serving_goals` reads the goals off it: ORT at least :data:`ORT_GOAL` times faster than PyTorch eager at
batch 1, and, for each model, dynamic batching at least :data:`BATCHING_GOAL` times the throughput without it
at the most clients: batching must never lose, that is, its speedup or the speedup's 95 % interval must reach the
goal (:func:`batching_goal_met`).
"""
from __future__ import annotations

import itertools
import math
import threading
import time
from dataclasses import dataclass
from typing import Callable, ContextManager, Iterable, Mapping

import numpy as np
import pandas as pd

from dlperf.timing import time_callable

from .client import KServeClient, OrtServerClient
from .grpc_client import KServeGrpcClient
from .process import RunningServer, server_processes

COLUMNS = ["benchmark", "model", "runtime", "protocol", "batching", "clients", "batch_size", "requests",
           "throughput_rps", "p50_ms", "p99_ms", "mean_batch", "cpu_cores", "speedup", "speedup_low", "speedup_high"]
ORT_GOAL = 2.0  # ONNX Runtime over PyTorch eager, one image in process
BATCHING_GOAL = 1.0  # dynamic batching over none at the most clients: it must never lose


def _percentiles(latencies_s: list[float]) -> dict[str, float]:
    ms = 1000 * np.asarray(latencies_s)
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "mean_ms": float(ms.mean())}


@dataclass
class LoadSample:
    """What one closed-loop load test recorded: the round trip of each request answered in its window and the
    window's length (:func:`steady_window`), and the server's rows inferred, onnxruntime runs and CPU seconds over
    the whole test, ``cpu_wall_s`` long (the window's length if not given)."""

    latencies_s: list[float]
    wall_s: float
    rows: int
    executions: int
    cpu_s: float
    cpu_wall_s: float | None = None


def steady_window(answers: list[tuple[float, float]], clients: int, requests: int) -> tuple[list[float], float]:
    """``(latencies, seconds)`` of the ``clients`` × ``requests`` answers after the first ``clients`` of a load test,
    ``answers`` being each answer's ``(time it arrived, round trip)``: the window runs from the ``clients``-th
    answer to the last one counted, so it starts and ends on an answer."""
    ordered = sorted(answers)
    wanted = clients * requests
    if len(ordered) < clients + wanted:
        raise ValueError(f"{len(ordered)} answers; a window of {wanted} after a ramp of {clients} needs more")
    window = ordered[clients:clients + wanted]
    return [trip for _, trip in window], window[-1][0] - ordered[clients - 1][0]


def load_sample(url: str, model: str, batch: np.ndarray, clients: int, requests: int, fmt: str = "protobuf",
                cpu_seconds: Callable[[], float] | None = None, grpc_target: str | None = None) -> LoadSample:
    """Run the closed-loop load test, timed over its :func:`steady_window`; every answer is checked to have the
    model's batch of 1. Requests go to ORT server's HTTP API in ``fmt``, or, given a ``grpc_target``, to KServe V2
    over gRPC there. ``cpu_seconds`` reads the server's CPU time
    (:meth:`dlperf.serve.process.RunningServer.cpu_seconds`); without it the sample's ``cpu_s`` is NaN."""
    stats = KServeClient(url)
    if grpc_target is None:
        ort_client = OrtServerClient(url)

        def predict(inputs):
            return ort_client.predict(model, inputs, fmt=fmt)
    else:
        grpc_client = KServeGrpcClient(grpc_target)

        def predict(inputs):
            return grpc_client.infer(model, inputs)
    start_barrier = threading.Barrier(clients + 1)
    answers: list[tuple[float, float]] = []
    enough = threading.Event()  # set by the answer that completes the window: then every client stops
    target = clients + clients * requests
    errors: list[BaseException] = []

    def run() -> None:
        try:
            predict({"input": batch})  # warm-up: connection, first batch
        except BaseException as error:  # reported below, after the barrier lets everyone go
            errors.append(error)
        start_barrier.wait()
        try:
            while not errors and not enough.is_set():
                sent = time.perf_counter()
                outputs = predict({"input": batch})
                arrived = time.perf_counter()
                if any(array.shape[0] != batch.shape[0] for array in outputs.values()):
                    raise AssertionError(f"answer shapes {[a.shape for a in outputs.values()]} for one image")
                answers.append((arrived, arrived - sent))
                if len(answers) >= target:
                    enough.set()
        except BaseException as error:
            errors.append(error)
            enough.set()

    threads = [threading.Thread(target=run, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    start_barrier.wait()
    before, cpu_before = _model_counts(stats, model), cpu_seconds() if cpu_seconds else math.nan
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    test_s = time.perf_counter() - started
    after, cpu_after = _model_counts(stats, model), cpu_seconds() if cpu_seconds else math.nan
    if errors:
        raise RuntimeError(f"{len(errors)} client(s) failed; first: {errors[0]!r}") from errors[0]
    latencies, wall = steady_window(answers, clients, requests)
    return LoadSample(latencies, wall, after[0] - before[0], after[1] - before[1], cpu_after - cpu_before, test_s)


def summary(samples: list[LoadSample]) -> dict[str, float]:
    """Requests, throughput, latency percentiles, mean merged batch and busy cores of load tests taken together:
    every total over every total, as if they were one test; and each test's own throughput (``round_rps``)."""
    latencies = [t for sample in samples for t in sample.latencies_s]
    wall, executions = sum(s.wall_s for s in samples), sum(s.executions for s in samples)
    return {
        "requests": len(latencies),
        "wall_s": wall,
        "throughput_rps": len(latencies) / wall,
        **_percentiles(latencies),
        "mean_batch": sum(s.rows for s in samples) / executions if executions else math.nan,
        "cpu_cores": sum(s.cpu_s for s in samples) / sum(s.wall_s if s.cpu_wall_s is None else s.cpu_wall_s
                                                         for s in samples),
        "round_rps": [len(s.latencies_s) / s.wall_s for s in samples],
    }


def load_test(url: str, model: str, batch: np.ndarray, clients: int, requests: int,
              fmt: str = "protobuf") -> dict[str, float]:
    """One closed-loop load test (:func:`load_sample`), summarised."""
    return summary([load_sample(url, model, batch, clients, requests, fmt)])


def batching_modes(cores: int) -> dict[str, list[str]]:
    """The two servers compared, as ``python -m dlperf.serve`` flags: without batching (a request runs at once, so
    concurrent ones spread over every core) and with it, one more run than ``cores`` in flight, so that a core stays
    busy while a thread waits for Python's GIL to hand out a batch's results and gather the next batch (measured on
    2 cores: with only as many runs as cores, 1-11 % less throughput at 4 and 16 clients in 8 paired runs). On a
    CPU a merged run costs what its rows cost apart (the small SSD: 0.55 ms a row alone, 0.52-0.53 ms in batches of
    2 to 8; the full-size one 26 ms either way), so batching there can only break even: it saves the runs'
    overheads and keeps fewer runs competing for the cores."""
    return {"off": ["--no-batching"], "dynamic": ["--instances", str(cores + 1)]}


def rounds_of_load_tests(start: Callable[[], ContextManager[list[RunningServer]]], names: list[str], model: str,
                         image: np.ndarray, cells: list[tuple[int, str]], requests: int,
                         rounds: int) -> dict[tuple[str, int, str], list[LoadSample]]:
    """``rounds`` rounds, each starting fresh servers with ``start()`` (one for each of ``names``, in order) and
    load-testing them in turn (:func:`load_sample`) at each ``(clients, protocol)`` of ``cells``, ``protocol`` being
    ``http`` (ORT server's API) or ``grpc`` (KServe V2); the servers take turns going first, from one test to the
    next and one round to the next. The samples by ``(name, clients, protocol)``, a round each."""
    samples: dict[tuple[str, int, str], list[LoadSample]] = {(name, *cell): [] for name in names for cell in cells}
    for round_ in range(rounds):
        with start() as started:
            servers = list(zip(names, started))
            for turn, (n, protocol) in enumerate(cells):
                for name, server in servers if (round_ + turn) % 2 == 0 else servers[::-1]:
                    samples[name, n, protocol].append(load_sample(
                        server.url, model, image, n, requests, cpu_seconds=server.cpu_seconds,
                        grpc_target=server.grpc if protocol == "grpc" else None))
    return samples


def compare_batching(repository, model: str, image_size: int, clients: Iterable[int], requests: int, rounds: int,
                     modes: Mapping[str, list[str]], log=None, protocols: Iterable[str] = ("http",)) -> list[dict]:
    """bench.csv's server rows of ``model``: :func:`rounds_of_load_tests` of a fresh server of each of ``modes`` on
    ``repository`` each round, side by side (one onnxruntime thread a run), over each of ``protocols`` at each
    number of ``clients``, with one random ``image_size`` image a request. A row sums its rounds (:func:`summary`)
    and is printed once measured."""
    image = np.random.default_rng(0).standard_normal((1, 3, image_size, image_size)).astype(np.float32)
    arguments = [["--intra-op-threads", "1", *flags] for flags in modes.values()]
    samples = rounds_of_load_tests(lambda: server_processes(repository, arguments, log=log), list(modes), model,
                                   image, list(itertools.product(clients, protocols)), requests, rounds)
    rows = []
    for (mode, n, protocol), taken in samples.items():
        result = summary(taken)
        rows.append({"benchmark": "server", "model": model, "runtime": "onnxruntime", "protocol": protocol,
                     "batching": mode, "clients": n, "batch_size": 1, **result})
        print(f"{model}, {protocol}, batching {mode}, {n} clients: {result['throughput_rps']:.1f} req/s, "
              f"p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, mean batch {result['mean_batch']:.2f}, "
              f"server busy {result['cpu_cores']:.2f} cores", flush=True)
    return rows


def _model_counts(stats: KServeClient, model: str) -> tuple[int, int]:
    """(rows inferred, onnxruntime runs) of all the model's versions so far."""
    records = stats.statistics(model)["model_stats"]
    return sum(r["inference_count"] for r in records), sum(r["execution_count"] for r in records)


def time_calls(call: Callable[[], object], warmup: int, repeats: int) -> dict[str, float]:
    """Latency percentiles of ``repeats`` calls after ``warmup`` untimed ones (:func:`dlperf.timing.time_callable`),
    and the cores this process kept busy meanwhile."""
    timed = time_callable(call, warmup=warmup, repeats=repeats)
    wall = sum(timed.samples)
    return {"requests": repeats, "wall_s": wall, "throughput_rps": repeats / wall,
            **_percentiles(list(timed.samples)), "cpu_cores": timed.cpu_s / wall}


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


def speedup_interval(speedup: float, rates: Iterable[float], base_rates: Iterable[float]) -> tuple[float, float]:
    """The 95 % interval of ``speedup``, a throughput over a base one, from the paired ratios of their rounds
    (``rates`` and ``base_rates``, round by round: a t interval of the log ratios' mean, put around ``speedup``);
    NaN for fewer than two rounds."""
    logs = np.log(np.asarray(list(rates), dtype=float) / np.asarray(list(base_rates), dtype=float))
    if len(logs) < 2:
        return math.nan, math.nan
    from scipy.stats import t

    reach = float(t.ppf(0.975, len(logs) - 1)) * logs.std(ddof=1) / math.sqrt(len(logs))
    return speedup * math.exp(-reach), speedup * math.exp(reach)


def batching_goal_met(speedup: float, high: float) -> bool:
    """Batching never loses: its speedup reaches :data:`BATCHING_GOAL`, or the speedup's 95 % interval does (the
    benchmark cannot tell it from no loss)."""
    return bool(speedup >= BATCHING_GOAL or high >= BATCHING_GOAL)


def bench_table(rows: Iterable[dict]) -> pd.DataFrame:
    """The benchmark's table (:data:`COLUMNS`) of the measured rows, with each row's ``speedup``: a server row's
    throughput over that of the same model without batching over the same protocol at the same number of clients
    (the goals read only ORT server's HTTP rows, the protocol the benchmark has always measured), with its 95 %
    interval (:func:`speedup_interval`, from the rows' ``round_rps``; NaN for the rows without batching and where
    the rounds are unknown); a direct row's p50 latency speedup over PyTorch eager."""
    table = pd.DataFrame(rows)
    if "round_rps" not in table:
        table["round_rps"] = [[] for _ in range(len(table))]
    server = table[table.benchmark == "server"]
    off = server[server.batching == "off"].set_index(["model", "protocol", "clients"])
    eager_p50 = table.loc[table.runtime == "pytorch_eager", "p50_ms"].iloc[0]
    table["speedup"] = [row.throughput_rps / off.throughput_rps[row.model, row.protocol, row.clients]
                        if row.benchmark == "server" else eager_p50 / row.p50_ms for row in table.itertuples()]
    intervals = [speedup_interval(row.speedup, row.round_rps, off.round_rps[row.model, row.protocol, row.clients])
                 if row.benchmark == "server" and row.batching != "off" and isinstance(row.round_rps, list)
                 else (math.nan, math.nan) for row in table.itertuples()]
    table["speedup_low"], table["speedup_high"] = [low for low, _ in intervals], [high for _, high in intervals]
    return table[COLUMNS]


def serving_goals(table: pd.DataFrame) -> tuple[dict[str, float], dict[str, bool]]:
    """``(speedups, goals_met)`` of a :func:`bench_table`: ORT over eager at batch 1 (goal :data:`ORT_GOAL`), and
    for each served model dynamic batching over none at the most clients (:func:`batching_goal_met`); an undefined
    speedup is left out of ``goals_met``."""
    server, direct = table[table.benchmark == "server"], table[table.benchmark == "direct"]
    most = int(server.clients.max())
    batched = server[(server.batching == "dynamic") & (server.clients == most) & (server.protocol == "http")]
    ort = float(direct.loc[direct.runtime == "onnxruntime", "speedup"].iloc[0])
    name = f"batched_vs_unbatched_{most}_clients_{{}}".format
    speedups = {"ort_vs_eager_batch1": ort, **{name(row.model): float(row.speedup) for row in batched.itertuples()}}
    met = {"ort_vs_eager_batch1": ort >= ORT_GOAL,
           **{name(row.model): batching_goal_met(row.speedup, row.speedup_high) for row in batched.itertuples()}}
    return speedups, {goal: bool(ok) for goal, ok in met.items() if not math.isnan(speedups[goal])}
