"""The SSD section's numbers as report macros: VOC mAP against the published one, and Open Images AP before
and after fine-tuning (see report/sections/ssd.tex).
"""
from __future__ import annotations

from typing import Mapping

import pandas as pd

from dlperf.report.latex import macro_name
from dlperf.report.values import change, count, fixed, plain, words, yes_no


PUBLISHED_VOC_MAP = 0.6755  # pytorch-ssd README: mobilenet-v1-ssd-mp-0_675.pth on VOC2007 test, VOC07 11-point


def ssd_values(*, voc_ap: pd.DataFrame, before: pd.DataFrame, after: pd.DataFrame, voc: Mapping,
               finetune: Mapping, openimages: Mapping, width_mult: float, image_size: int,
               pretrained_source: str) -> dict[str, object]:
    """Macros of the SSD section from ``results/ssd/voc/ap.csv``, ``openimages/ap_{before,after}.csv`` (class, ap;
    the last row is the mAP) and the provenance of the VOC evaluation, the fine-tune and the Open Images evaluation."""
    per_class = voc_ap.iloc[:-1]
    best, worst = per_class.loc[per_class.ap.idxmax()], per_class.loc[per_class.ap.idxmin()]
    voc_map = float(voc_ap.ap.iloc[-1])
    ft = finetune["config"]["ssd"]["finetune"]
    values = {
        "WidthMult": plain(width_mult),
        "ImageSize": image_size,
        "Priors": count(voc["num_priors"]),
        "Params": count(finetune["params"]),
        "PretrainedSource": pretrained_source,
        "VocMap": fixed(voc_map, 4),
        "VocPublishedMap": fixed(PUBLISHED_VOC_MAP, 4),
        "VocMatchesPublished": yes_no(abs(voc_map - PUBLISHED_VOC_MAP) < 5e-5),
        "VocTestImages": count(voc["test_images"]),
        "VocBestClass": best["class"], "VocBestAp": fixed(best.ap, 3),
        "VocWorstClass": worst["class"], "VocWorstAp": fixed(worst.ap, 3),
        "Classes": words(before["class"].iloc[:-1]),
        "FinetuneEpochs": ft["epochs"],
        "FinetuneBatch": ft["batch_size"],
        "FinetuneLr": plain(ft["lr"]),
        "FinetuneBaseNetLr": plain(ft["lr"] if ft.get("base_net_lr") is None else ft["base_net_lr"]),
        "FinetuneTrainImages": count(finetune["train_images"]),
        "OpenImagesTestImages": count(openimages["test_images"]),
        "OpenImagesMissingImages": count(openimages["missing_images"]),
        "MapBefore": fixed(before.ap.iloc[-1], 3),
        "MapAfter": fixed(after.ap.iloc[-1], 3),
    }
    values["MapChange"] = change(values["MapBefore"], values["MapAfter"], "rises", "falls", "stays the same,")
    for frame, stage in ((before, "before"), (after, "after")):
        for row in frame.iloc[:-1].itertuples():
            values[macro_name("Ap", stage, row[1])] = fixed(row.ap, 3)
    return {macro_name("ssd", key): value for key, value in values.items()}
