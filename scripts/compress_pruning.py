"""Accuracy against sparsity over every pruning run (rule: compress_pruning)."""
import json
from pathlib import Path

import pandas as pd

from dlperf.atomic import write_csv
from dlperf.compress.summary import accuracy_sparsity_figure
from dlperf.report.fidelity import of_job
from dlperf.report.style import save_figure
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    records = [json.loads(Path(path).read_text()) for path in snakemake.input.pruning]
    pruning = pd.DataFrame(records).sort_values("sparsity")
    write_csv(snakemake.output.csv, pruning)
    layers = pd.concat([pd.read_csv(path).assign(sparsity_target=r["sparsity"])
                        for path, r in zip(snakemake.input.sparsity, records)])
    write_csv(snakemake.output.layers, layers)
    fidelity = of_job(snakemake)
    save_figure(accuracy_sparsity_figure(pruning), snakemake.output.figure, fidelity)
    print(pruning.to_string(index=False))
