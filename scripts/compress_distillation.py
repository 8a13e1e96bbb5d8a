"""Teacher and students side by side: accuracy, size and CPU latency (rule: compress_distillation)."""
import json
from pathlib import Path

import pandas as pd

from dlperf.atomic import write_csv
from dlperf.compress.evaluation import eager_latency, load_classifier
from dlperf.compress.pruning import dense_size_bytes, nonzero_params
from dlperf.timing import TimedAlone
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    p, inp = snakemake.params, snakemake.input
    lat = p.latency
    timed = TimedAlone(snakemake)
    batch = lat["batch_sizes"][0]
    entries = [("teacher", "", p.teacher, inp.teacher, inp.teacher_metrics)]
    entries += [("student", mode, p.student, ckpt, metrics)
                for mode, ckpt, metrics in zip(p.modes, inp.students, inp.metrics)]
    rows = []
    for role, mode, arch, checkpoint, metrics_path in entries:
        metrics = json.loads(Path(metrics_path).read_text())
        model = load_classifier(arch, checkpoint, width=p.width)
        rows.append({"role": role, "mode": mode, "arch": arch, "params": sum(t.numel() for t in model.parameters()),
                     "nonzero_params": nonzero_params(model), "size_bytes": dense_size_bytes(model.state_dict()),
                     "test_acc": metrics["test_acc"], "test_loss": metrics["test_loss"],
                     "latency_ms": 1e3 * eager_latency(model, batch, warmup=lat["warmup"],
                                                       repeats=lat["repeats"]).median_s,
                     "latency_batch": batch, "checkpoint": checkpoint})
    table = pd.DataFrame(rows)
    write_csv(snakemake.output.csv, table)
    print(table.to_string(index=False))
    print("timing:", json.dumps(timed.record()))
