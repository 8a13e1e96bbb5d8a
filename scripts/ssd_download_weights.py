"""The published VOC detector (rule: ssd_download_weights), kept only if it is one: fetched (unverified unless
ssd.pretrained.download.sha256 pins it; its SHA-256 is logged so that it can be pinned), then loaded strictly into
the configured MobileNetV1-SSD for the 21 VOC classes before it takes its place, so a file of another architecture
fails here, naming the URL and what does not fit, and leaves nothing in resources/weights."""
import contextlib
import logging
import os
from pathlib import Path

from dlperf.data.download import fetch, file_checksum
from dlperf.data.voc import VOCDataset
from dlperf.detection.evaluate import load_ssd
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    entry, out = snakemake.params.entry, Path(snakemake.output[0])
    staged = out.with_name(f".{out.name}.unchecked")
    fetch(entry["url"], staged, sha256=entry.get("sha256"), mirror=entry.get("mirror"),
          allow_unverified=not entry.get("sha256"))
    if not entry.get("sha256"):
        logging.getLogger("ssd_download_weights").warning(
            "%s has no published checksum; fetched unverified, sha256 %s", out.name, file_checksum(staged, "sha256"))
    try:
        load_ssd(staged, VOCDataset.class_names, **snakemake.params.model)
    except (RuntimeError, KeyError, ValueError) as error:
        with contextlib.suppress(FileNotFoundError):
            staged.unlink()
        raise ValueError(f"{entry['url']}: not a MobileNetV1-SSD checkpoint of ssd.model {snakemake.params.model} "
                         f"for the 21 VOC classes: {error}") from None
    os.replace(staged, out)
    print(f"{out}: loads strictly into MobileNetV1-SSD {snakemake.params.model}")
