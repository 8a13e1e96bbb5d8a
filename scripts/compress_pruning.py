"""Accuracy and latency against sparsity over every pruning run (rule: compress_pruning;
rule compress_pruning_figure draws them).

The latencies are measured here, in one timing job that runs alone: the dense model and every pruned one, in turns
(dlperf.timing.time_in_turns). A pruned model keeps its zeros in dense tensors, so it does the dense model's work."""
import json
from pathlib import Path

import pandas as pd

from dlperf.atomic import write_csv
from dlperf.compress.evaluation import load_classifier, paired_eager_latency
from dlperf.provenance import Provenance
from dlperf.timing import TimedAlone
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    p, inp = snakemake.params, snakemake.input
    timed = TimedAlone(snakemake)
    records = [json.loads(Path(path).read_text()) for path in inp.pruning]
    models = {"dense": load_classifier(p.arch, inp.dense, width=p.width)}
    models |= {f"sparsity {r['sparsity']}": load_classifier(p.arch, path, width=p.width)
               for r, path in zip(records, inp.checkpoints)}
    batch = p.latency["batch_sizes"][0]
    latency = paired_eager_latency(models, batch, warmup=p.latency["warmup"], repeats=p.latency["repeats"])
    for r in records:
        r |= {"latency_ms": 1e3 * latency[f"sparsity {r['sparsity']}"].median_s, "latency_batch": batch,
              "dense_latency_ms": 1e3 * latency["dense"].median_s}
    pruning = pd.DataFrame(records).sort_values("sparsity")
    write_csv(snakemake.output.csv, pruning)
    layers = pd.concat([pd.read_csv(path).assign(sparsity_target=r["sparsity"])
                        for path, r in zip(inp.sparsity, records)])
    write_csv(snakemake.output.layers, layers)
    prov = Provenance({"compress": {"arch": p.arch, "latency": p.latency}, "threads": timed.threads})
    prov.record["timing"] = timed.record()
    prov.write(snakemake.output.provenance, latency_ms={k: 1e3 * v.median_s for k, v in latency.items()})
    print(pruning.to_string(index=False))
