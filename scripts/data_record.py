"""A dataset directory's provenance.json, copied under results/ for the rules that only describe it (rule:
data_record)."""
import json
from pathlib import Path

from dlperf.atomic import write_json
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    source = Path(snakemake.input[0]) / "provenance.json"
    if not source.is_file():
        raise FileNotFoundError(f"{source}: the dataset has no provenance record")
    write_json(snakemake.output[0], json.loads(source.read_text()))
    print(f"{source} -> {snakemake.output[0]}")
