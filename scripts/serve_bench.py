"""Serving benchmark (rule: serve_bench): throughput and p50/p99 latency of python -m dlperf.serve at each number of
concurrent clients, with dynamic batching and without, and ORT against PyTorch eager at batch 1, in-process."""
from pathlib import Path

import numpy as np

from dlperf.atomic import write_csv
from dlperf.export.detector import load_detector
from dlperf.provenance import Provenance
from dlperf.report.tables import write_table
from dlperf.serve.bench import GOAL, bench_table, direct_latency, load_test, serving_goals
from dlperf.serve.process import server_process
from dlperf.workflow import limit_threads, script_logging

with script_logging(snakemake.log[0]), open(snakemake.log[0], "a", buffering=1) as server_log:
    p, out, threads = snakemake.params, snakemake.output, snakemake.threads
    repository = Path(snakemake.input.model_files[0]).parents[2]  # <root>/<name>/1/model.onnx
    bench = p.bench
    limit_threads(threads)
    provenance = Provenance({"serve": {"bench": bench}, "ssd": {"model": p.model}},
                            device="cpu", threads=threads)
    size = p.model["image_size"]
    image = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)
    rows = []
    for batching, flags in (("off", ["--no-batching"]), ("dynamic", [])):
        with server_process(repository, "--intra-op-threads", str(threads), *flags, log=server_log) as url:
            for clients in bench["clients"]:
                result = load_test(url, p.name, image, clients, bench["requests_per_client"])
                rows.append({"benchmark": "server", "runtime": "onnxruntime", "batching": batching, "clients": clients,
                             "batch_size": 1, **result})
                print(f"batching {batching}, {clients} clients: {result['throughput_rps']:.1f} req/s, "
                      f"p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, "
                      f"mean batch {result['mean_batch']:.2f}")
    model, _ = load_detector(snakemake.input.checkpoint, snakemake.input.labels, p.model["width_mult"], size)
    direct = direct_latency(model, snakemake.input.model_files[0], image, threads, bench["warmup"], bench["repeats"])
    for runtime, result in direct.items():
        rows.append({"benchmark": "direct", "runtime": runtime, "batching": "off", "clients": 1, "batch_size": 1,
                     "mean_batch": 1.0, **result})
    table = bench_table(rows)
    write_csv(out.csv, table)
    write_table(table, out.table, formats={"throughput_rps": ".1f", "p50_ms": ".2f", "p99_ms": ".2f",
                                           "mean_batch": ".2f", "speedup": ".2f"})
    print(table.to_string(index=False))
    goals, met = serving_goals(table)
    print(f"goals (>= {GOAL:g} each):", {k: round(v, 2) for k, v in goals.items()})
    provenance.write(out.provenance, speedups=goals, goals_met=met)
