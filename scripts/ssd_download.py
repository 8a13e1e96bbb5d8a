"""Fetch one file of the SSD study's datasets (a VOC tar, an Open Images CSV) (rule: ssd_download).

Files without a published checksum (the Open Images CSVs) are fetched unverified; their SHA-256 is logged so that it
can be pinned in the config."""
import logging
from pathlib import Path

from dlperf.data.download import fetch, file_checksum
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    entry = snakemake.params.entry
    unverified = not (entry.get("sha256") or entry.get("md5"))
    path = fetch(entry["url"], Path(snakemake.output[0]), sha256=entry.get("sha256"), md5=entry.get("md5"),
                 mirror=entry.get("mirror"), allow_unverified=unverified)
    if unverified:
        logging.getLogger("ssd_download").warning("%s has no published checksum; fetched unverified, sha256 %s",
                                                  path.name, file_checksum(path, "sha256"))
