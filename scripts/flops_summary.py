"""Model-level FLOP summary from the per-layer tables (rule: flops_summary)."""
from pathlib import Path

import pandas as pd

from dlperf.atomic import write_csv
from dlperf.flops.summary import SUMMARY_COLUMNS, summary_from_layers
from dlperf.report.tables import write_table
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    rows = [summary_from_layers(Path(p).name.removesuffix("_layers.csv"), pd.read_csv(p))
            for p in snakemake.input.layers]
    summary = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    write_csv(snakemake.output.csv, summary)
    write_table(summary.assign(conv_share=100 * summary.conv_share).rename(columns={"conv_share": "conv share (%)"}),
                snakemake.output.table, formats={"gmacs": ".3f", "gflops": ".3f", "conv share (%)": ".2f"})
    print(summary.to_string(index=False))
