"""Per-layer gradient flow of every variant at chosen epochs, and each run's first-to-last-layer gradient ratio
(rule: depth_grad_flow)."""
import json
from pathlib import Path

import pandas as pd

from dlperf.atomic import write_csv
from dlperf.depth.gradients import gradient_ratios
from dlperf.report.figures import grad_flow
from dlperf.report.fidelity import of_job
from dlperf.report.style import save_figure
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    frames = {Path(p).parent.name: pd.read_csv(p) for p in snakemake.input.grad_flow}
    combined = pd.concat([df.assign(run=name) for name, df in frames.items()], ignore_index=True)
    write_csv(snakemake.output.csv, combined)
    runs = {Path(p).parent.name: json.loads(Path(p).read_text())["config"]["depth"]["run"]
            for p in snakemake.input.provenance}
    ratios = gradient_ratios(combined, runs)
    write_csv(snakemake.output.ratios, ratios)
    print(ratios.to_string(index=False))
    fidelity = of_job(snakemake)
    save_figure(grad_flow(frames, snakemake.params.epochs), snakemake.output.figure, fidelity)
