"""Serving benchmark (rule: serve_bench): throughput and p50/p99 latency of python -m dlperf.serve at each number of
concurrent clients, with dynamic batching and without, for the served SSD and (unless it is the served one) the
full-size SSD; and ORT against PyTorch eager at batch 1, in-process, for the served SSD. The two servers of a model
run side by side and are load-tested in turn at each number of clients, `rounds` times, a fresh pair each round
(dlperf.serve.bench.compare_batching): the served SSD over HTTP (ORT server's API) and gRPC (KServe V2), the full-size
one over HTTP, the protocol the goals read.

Both servers get the same compute: every core this process may use, one onnxruntime thread per run. Without batching,
each request runs at once, so concurrent requests spread over every core; with batching, one more run than cores is
in flight at once (model instances; dlperf.serve.bench.batching_modes says why, with the figures)."""
from pathlib import Path

import numpy as np

from dlperf.atomic import write_csv
from dlperf.export.detector import load_detector
from dlperf.provenance import Provenance
from dlperf.serve.bench import (BATCHING_GOAL, ORT_GOAL, batching_modes, bench_table, compare_batching,
                                direct_latency, serving_goals)
from dlperf.timing import TimedAlone
from dlperf.workflow import available_cores, script_logging

with script_logging(snakemake.log[0]), open(snakemake.log[0], "a", buffering=1) as server_log:
    timed = TimedAlone(snakemake)   # every core: the servers spread over them
    p, out, threads = snakemake.params, snakemake.output, timed.threads
    bench, cores = p.bench, available_cores()
    served = {"name": p.name, **p.model, "repository": Path(snakemake.input.model_files[0]).parents[2],
              "requests_per_client": bench["requests_per_client"], "weights": "the fine-tuned SSD's",
              "protocols": ["http", "grpc"]}
    models = [served]
    if snakemake.input.full_size:  # no input when the served SSD is the full-size one
        models.append({"name": p.full_size["name"], **p.full_size["model"],
                       "repository": Path(snakemake.input.full_size[0]).parents[2],
                       "requests_per_client": bench["full_size"]["requests_per_client"],
                       "weights": "random, for timing only (results/serve/full_size/provenance.json)",
                       "protocols": ["http"]})
    modes = batching_modes(cores)
    provenance = Provenance({"serve": {"bench": bench}, "ssd": {"model": p.model}}, device="cpu", threads=threads,
                            servers={"cores": cores, "intra_op_threads": 1, "modes": modes},
                            models={m["name"]: {k: v for k, v in m.items() if k != "repository"} for m in models})
    rows = [row for model in models
            for row in compare_batching(model["repository"], model["name"], model["image_size"], bench["clients"],
                                        model["requests_per_client"], bench["rounds"], modes, log=server_log,
                                        protocols=model["protocols"])]
    detector, _ = load_detector(snakemake.input.checkpoint, snakemake.input.labels, p.model["width_mult"],
                                p.model["image_size"])
    image = np.random.default_rng(0).standard_normal((1, 3, p.model["image_size"], p.model["image_size"]))
    direct = direct_latency(detector, snakemake.input.model_files[0], image.astype(np.float32), p.direct_threads,
                            bench["warmup"], bench["repeats"])
    for runtime, result in direct.items():
        rows.append({"benchmark": "direct", "model": p.name, "runtime": runtime, "protocol": "in_process",
                     "batching": "off", "clients": 1,
                     "batch_size": 1, "mean_batch": 1.0, **result})
    table = bench_table(rows)
    write_csv(out.csv, table)
    print(table.to_string(index=False))
    goals, met = serving_goals(table)
    print(f"goals (ORT >= {ORT_GOAL:g}, batching >= {BATCHING_GOAL:g} or its 95 % interval reaching it):",
          {k: round(v, 3) for k, v in goals.items()}, met)
    provenance.write(out.provenance, speedups=goals, goals_met=met, timing=timed.record())
