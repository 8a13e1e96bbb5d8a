"""Deep Compression's stages side by side (rule: compress_deep_stages): size on disk, measured and computed ratio, top-1."""
import json

import pandas as pd

from dlperf.atomic import write_csv
from dlperf.compress.stages import stages_frame, stages_table
from dlperf.report.tables import write_table
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    inp, out = snakemake.input, snakemake.output
    stages = stages_frame([json.loads(open(path).read()) for path in inp.stages], pd.read_csv(inp.formula))
    write_csv(out.csv, stages)
    write_table(stages_table(stages), out.table)
    print(stages.to_string(index=False))
