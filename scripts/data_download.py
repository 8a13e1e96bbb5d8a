"""Fetch one file named in config, verify its checksum, write it atomically (rule: data_download)."""
from pathlib import Path

from dlperf.data.download import fetch
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    entry = snakemake.params.entry
    fetch(entry["url"], Path(snakemake.output[0]), sha256=entry.get("sha256"), md5=entry.get("md5"),
          sha256_prefix=entry.get("sha256_prefix"), mirror=entry.get("mirror"))
