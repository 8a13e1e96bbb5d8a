"""serve_bench's load tests as a table (rule: serve_bench_table)."""
import pandas as pd

from dlperf.report.tables import write_table
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    write_table(pd.read_csv(snakemake.input.csv), snakemake.output.table,
                formats={"throughput_rps": ".1f", "p50_ms": ".2f", "p99_ms": ".2f", "mean_batch": ".2f",
                         "cpu_cores": ".2f", "speedup": ".2f"})
