"""Whole-forward vs per-layer time and percent of peak on the present device (rule: flops_measure; rule
flops_ppp_figure draws them)."""
import json
from pathlib import Path

import pandas as pd

from dlperf.atomic import write_csv
from dlperf.flops.study import measure
from dlperf.provenance import Provenance
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
    prov.record["timing"] = timed.record()
    prov.write(snakemake.output.provenance, results=rows)
