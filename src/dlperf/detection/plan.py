"""The SSD study's plan, from its config section: what it downloads, where the VOC detector comes from, and the
settings its data jobs read. Pure functions of the config; the rules (rules/ssd.smk) call them."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

DOWNLOADS = "resources/downloads_ssd"  # not under resources/downloads: rule data_download matches any path there
WEIGHTS = "resources/weights"
CSV_NAMES = ["class-descriptions-boxable.csv"] + [f"{s}-annotations-bbox.csv" for s in ("train", "validation", "test")]


def downloads_by_file(s: Mapping) -> dict[str, dict]:
    """The VOC tars and Open Images CSVs the study downloads, by file name."""
    entries = {}
    voc, oi = s["data"]["voc"], s["data"]["openimages"]
    if voc["source"] == "download":
        entries.update({Path(d["url"]).name: d for d in voc["downloads"]})
    if oi["source"] == "download":
        base = oi["download"]["csv_url"].rstrip("/")
        entries["class-descriptions-boxable.csv"] = {"url": f"{base}/class-descriptions-boxable.csv"}
        for split in ("train", "validation", "test"):
            entries[f"{split}-annotations-bbox.csv"] = {"url": f"{base}/{split}/{split}-annotations-bbox.csv"}
    return entries


def weights_by_file(s: Mapping) -> dict[str, dict]:
    """The published checkpoint to download, by file name (none when trained in the DAG or given locally)."""
    pretrained = s["pretrained"]
    if pretrained["source"] == "download" and not pretrained.get("local_path"):
        return {Path(pretrained["download"]["url"]).name: pretrained["download"]}
    return {}


def weights_pattern(s: Mapping) -> str:
    """A wildcard constraint matching exactly the SSD weights files, so other studies' weights are not claimed."""
    return "|".join(map(re.escape, weights_by_file(s))) or "(?!)"


def voc_inputs(s: Mapping) -> dict:
    voc = s["data"]["voc"]
    if voc["source"] != "download":
        return {}
    return {"archives": [f"{DOWNLOADS}/{Path(d['url']).name}" for d in voc["downloads"]]}


def openimages_inputs(s: Mapping) -> dict:
    if s["data"]["openimages"]["source"] != "download":
        return {}
    return {"csvs": [f"{DOWNLOADS}/{name}" for name in CSV_NAMES]}


def voc_params(s: Mapping) -> dict:
    """What preparing VOC reads: its source and, when synthetic, the generator settings (archives are inputs)."""
    voc = s["data"]["voc"]
    return {k: v for k, v in voc.items() if k in ("source", voc["source"])}


def openimages_params(s: Mapping) -> dict:
    """What preparing the Open Images root reads: the classes and the settings of its source (the CSVs are
    inputs: of the download settings, only those of the images, which the job fetches)."""
    oi = s["data"]["openimages"]
    if oi["source"] == "synthetic":
        return {k: oi[k] for k in ("source", "classes", "synthetic")}
    return {"source": "download", "classes": oi["classes"],
            "download": {k: v for k, v in oi["download"].items() if k != "csv_url"}}


def voc_checkpoint(s: Mapping) -> str:
    """The VOC-trained SSD: trained in the DAG, the published checkpoint (downloaded), or a local copy."""
    pretrained = s["pretrained"]
    if pretrained["source"] == "train":
        return "results/ssd/pretrain/checkpoint.pt"
    return pretrained.get("local_path") or f"{WEIGHTS}/{Path(pretrained['download']['url']).name}"
