"""Percent of peak of every training run of the workflow (rule: flops_training_ppp)."""
import json
from pathlib import Path

import pandas as pd

from dlperf.atomic import write_csv
from dlperf.report.tables import write_table
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    rows = []
    for study, epochs_path, prov_path in zip(snakemake.params.studies, snakemake.input.epochs,
                                             snakemake.input.provenance):
        epochs = pd.read_csv(epochs_path)
        prov = json.loads(Path(prov_path).read_text())
        achieved = float(epochs.achieved_tflops.median())   # median epoch: robust to a slow first epoch
        peak = prov["peak_flops"] / 1e12
        rows.append({"study": study, "run": Path(epochs_path).parent.name,
                     "device": prov.get("gpu") or prov.get("cpu"), "gflop_per_step": float(epochs.gflop_per_step.iloc[0]),
                     "achieved_tflops": achieved, "peak_tflops": peak, "ppp": achieved / peak})
    df = pd.DataFrame(rows)
    write_csv(snakemake.output.csv, df)
    write_table(df.assign(ppp=100 * df.ppp).rename(columns={"ppp": "PPP (%)"}), snakemake.output.table,
                formats={"gflop_per_step": ".2f", "achieved_tflops": ".4f", "peak_tflops": ".3f", "PPP (%)": ".1f"})
    print(df.to_string(index=False))
