"""transfer_timing's epoch times per device as a table (rule: transfer_render_timing)."""
import pandas as pd

from dlperf.report.tables import write_table
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    write_table(pd.read_csv(snakemake.input.csv), snakemake.output.table,
                formats={"epoch_seconds": ".4f", "images_per_s": ".0f", "one_time_seconds": ".3f",
                         "speedup_vs_uncached": ".1f"})
