"""The SSD study's datasets, prepared for its jobs: synthesized, or unpacked and fetched from the published files.

Datasets land in ``resources/data/voc2007`` (``VOCdevkit/VOC2007`` inside, the layout the VOC tars unpack
to) and ``resources/data/openimages`` (:mod:`dlperf.data.openimages`'s layout: the class descriptions, the
three V4 box files, their ``sub-*`` subsets for the chosen classes and ``{split}/{ImageID}.jpg``).
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Sequence

from dlperf.atomic import atomic_dir, atomic_write
from dlperf.data.download import extract
from dlperf.data.openimages import (
    CLASS_DESCRIPTIONS, SPLITS, box_csv_name, download_images, write_subset,
)
from dlperf.data.synthetic_detection import synthesize_openimages, synthesize_voc
from dlperf.data.voc import VOC_DIR

DOWNLOAD_REPORT = "download_report.json"

_log = logging.getLogger(__name__)


def prepare_voc(dest: str | os.PathLike, cfg: dict, archives: Sequence[str | os.PathLike] = ()) -> Path:
    """``dest/VOCdevkit/VOC2007``: synthesized (``cfg["source"] == "synthetic"``) or unpacked from the
    trainval and test tars, which both unpack into ``VOCdevkit/VOC2007``; ``dest`` appears whole or not at all."""
    dest = Path(dest)
    if cfg["source"] == "synthetic":
        s = cfg["synthetic"]
        synthesize_voc(dest, s["n_trainval"], s["n_test"], size=s["size"], seed=s["seed"],
                       max_objects=s["max_objects"], difficult_rate=s["difficult_rate"])
        return dest / VOC_DIR
    if not archives:
        raise ValueError("VOC source is 'download' but no archive was given")
    with atomic_dir(dest) as tmp:
        for k, archive in enumerate(archives):
            part = extract(archive, tmp.parent / f".{tmp.name}.part{k}")
            for path in sorted(part.rglob("*")):
                if path.is_file():
                    target = tmp / path.relative_to(part)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(path, target)
            shutil.rmtree(part)
        if not (tmp / VOC_DIR / "ImageSets" / "Main" / "test.txt").is_file():
            raise ValueError(f"the VOC archives {list(map(str, archives))} hold no {VOC_DIR}/ImageSets/Main/test.txt")
    return dest / VOC_DIR


def prepare_openimages(dest: str | os.PathLike, cfg: dict, csvs: dict[str, str | os.PathLike] | None = None,
                       *, progress: bool = True) -> dict:
    """An Open Images root for ``cfg["classes"]`` at ``dest``; returns the per-split download report.

    Synthetic: the generator writes the class descriptions, box files and images. Download: the published
    class descriptions and box files (``csvs``, keyed by file name) are linked in, filtered to the classes
    (``sub-*``), and only the subsets' images are fetched, with retries; images that still fail are counted
    and listed in ``download_report.json``, not fatal (``OpenImagesDataset`` skips them).
    """
    dest = Path(dest)
    classes = list(cfg["classes"])
    report = {}
    with atomic_dir(dest) as tmp:
        if cfg["source"] == "synthetic":
            s = cfg["synthetic"]
            shutil.rmtree(tmp)
            synthesize_openimages(tmp, classes, n_train=s["n_train"], n_validation=s["n_validation"],
                                  n_test=s["n_test"], size=s["size"], seed=s["seed"], max_objects=s["max_objects"])
        else:
            for name in [CLASS_DESCRIPTIONS, *(box_csv_name(split) for split in SPLITS)]:
                source = Path(csvs[name])
                try:
                    os.link(source, tmp / name)
                except OSError:
                    shutil.copyfile(source, tmp / name)
        for split in SPLITS:
            subset = write_subset(tmp, split, classes)
            ids = sorted(set(subset["ImageID"]))
            if cfg["source"] == "synthetic":
                report[split] = {"images": len(ids), "failed": 0, "failed_ids": []}
                continue
            d = cfg["download"]
            ok, failed = download_images(ids, split, d["images_url"], tmp, retries=d["retries"],
                                         workers=d["workers"], progress=progress)
            report[split] = {"images": len(ids), "failed": len(failed), "failed_ids": failed}
            _log.info("%s: %d of %d images downloaded, %d failed", split, len(ok), len(ids), len(failed))
        with atomic_write(tmp / DOWNLOAD_REPORT) as fh:
            json.dump(report, fh, indent=2)
    return report
