"""flops_measure's timings as the layer-timing table and the percent-of-peak figure (rule: flops_ppp_figure)."""
import json
from pathlib import Path

import pandas as pd

from dlperf.report import figures
from dlperf.report.fidelity import of_job
from dlperf.report.style import save_figure
from dlperf.report.tables import write_table
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    inp = snakemake.input
    df = pd.read_csv(inp.timing).merge(pd.read_csv(inp.ppp), on=["model", "batch", "gflops"])
    peak = json.loads(Path(inp.peak).read_text())
    shown = df[["model", "batch", "forward_ms", "layer_sum_ms", "achieved_tflops", "ppp"]].assign(
        ppp=100 * df.ppp).rename(columns={"ppp": "PPP (%)"})
    write_table(shown, snakemake.output.table, formats={"forward_ms": ".2f", "layer_sum_ms": ".2f",
                                                        "achieved_tflops": ".3f", "PPP (%)": ".1f"})
    # the fidelity of the measurement: flops_measure's own record (device, commit, timed alone)
    fidelity = of_job(snakemake, json.loads(Path(inp.provenance).read_text()))
    save_figure(figures.percent_of_peak(df, peak["device_name"]), snakemake.output.figure, fidelity)
