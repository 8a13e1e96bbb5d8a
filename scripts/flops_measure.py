"""Whole-forward vs per-layer time and percent of peak on the present device (rule: flops_measure)."""
import json
from pathlib import Path

import pandas as pd

from dlperf.atomic import write_csv
from dlperf.flops.study import measure
from dlperf.provenance import Provenance
from dlperf.report import figures
from dlperf.report.fidelity import of_job
from dlperf.report.style import save_figure
from dlperf.report.tables import write_table
from dlperf.train.engine import select_device
from dlperf.timing import TimedAlone
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    timed = TimedAlone(snakemake)
    cfg = snakemake.params.measure
    peak = json.loads(Path(snakemake.input.peak).read_text())
    device = select_device(snakemake.params.accelerator)
    prov = Provenance({"flops": {"measure": cfg, "flop_per_mac": snakemake.params.flop_per_mac}},
                      device=str(device), peak_flops=peak["peak_flops"], peak_source=peak["source"])
    rows = []
    for model in cfg["models"]:
        for batch in cfg["batch_sizes"]:
            rows.append(measure(model, batch, cfg["image_size"], device, snakemake.params.flop_per_mac,
                                peak["peak_flops"], cfg["warmup"], cfg["repeats"]))
            print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    write_csv(snakemake.output.timing, df[["model", "batch", "image_size", "gflops", "forward_ms", "forward_p10_ms",
                                           "forward_p90_ms", "layer_sum_ms", "n_layers"]])
    write_csv(snakemake.output.ppp, df[["model", "batch", "gflops", "achieved_tflops", "peak_tflops", "ppp"]])
    shown = df[["model", "batch", "forward_ms", "layer_sum_ms", "achieved_tflops", "ppp"]].assign(
        ppp=100 * df.ppp).rename(columns={"ppp": "PPP (%)"})
    write_table(shown, snakemake.output.table, formats={"forward_ms": ".2f", "layer_sum_ms": ".2f",
                                                        "achieved_tflops": ".3f", "PPP (%)": ".1f"})
    prov.record["timing"] = timed.record()
    fidelity = of_job(snakemake, prov.record)
    save_figure(figures.percent_of_peak(df, peak["device_name"]), snakemake.output.figure, fidelity)
    prov.write(snakemake.output.provenance, results=rows)
