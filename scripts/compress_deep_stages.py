"""Deep Compression's stages side by side (rule: compress_deep_stages): size on disk, measured and computed ratio,
top-1; compress.arch's (stages.csv), and every network's with it (networks.csv, the report's table)."""
import json

import pandas as pd

from dlperf.atomic import write_csv
from dlperf.compress.stages import networks_frame, stages_frame, stages_table
from dlperf.report.tables import write_table
from dlperf.workflow import script_logging


def read_json(path):
    with open(path) as fh:
        return json.load(fh)


with script_logging(snakemake.log[0]):
    inp, out, p = snakemake.input, snakemake.output, snakemake.params
    stages = stages_frame([read_json(path) for path in inp.stages], pd.read_csv(inp.formula))
    others = {name: stages_frame([read_json(path) for path in inp.networks[3 * i:3 * i + 3]],
                                 pd.read_csv(inp.network_formulas[i]))
              for i, name in enumerate(p.networks)}
    networks = networks_frame({p.arch: stages, **others})
    write_csv(out.csv, stages)
    write_csv(out.networks, networks)
    write_table(stages_table(networks if others else stages), out.table)
    print(networks.to_string(index=False))
