"""resources/data/openimages: the chosen classes' boxes (sub-*.csv) and images, synthetic or downloaded
(rule: ssd_openimages_data)."""
import json
from pathlib import Path

from dlperf.detection.datasets import prepare_openimages
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    csvs = {Path(p).name: p for p in snakemake.input.get("csvs", [])}
    report = prepare_openimages(snakemake.output[0], snakemake.params.cfg, csvs)
    print(json.dumps({split: {k: v for k, v in r.items() if k != "failed_ids"} for split, r in report.items()}))
