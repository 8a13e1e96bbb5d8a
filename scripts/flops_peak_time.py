"""PALEO's peak-throughput model: t = FLOPs / peak at batch 1 (rule: flops_peak_time)."""
import pandas as pd

from dlperf.atomic import write_csv
from dlperf.flops.summary import peak_time
from dlperf.report.tables import write_table
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    cfg = snakemake.params.peak_model
    table = peak_time(pd.read_csv(snakemake.input.summary), cfg["peaks_tflops"], cfg["models"])
    write_csv(snakemake.output.csv, table)
    write_table(table, snakemake.output.table, formats={"peak_tflops": ".2f", "gflops": ".2f", "time_ms": ".3f",
                                                        "images_per_s": ".0f"})
    print(table.to_string(index=False))
