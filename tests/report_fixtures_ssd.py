"""Fixture results of the SSD study for the report test: what rules/ssd.smk writes, well-formed but made up.

``write_ssd(root, cfg)`` writes under ``root/results/ssd`` every file that ``report_ssd()`` (rules/common.smk)
names: the AP CSVs (class, ap; the last row the mAP), the provenance records the values read, and the tables and
figures the section includes. The VOC mAP is the published 0.6755, so the text says the evaluation reproduces it.
"""
import json
from pathlib import Path

import pandas as pd

from dlperf.data.voc import VOC_CLASSES
from dlperf.detection.study import ap_bars, ap_frame, comparison_bars, comparison_frame
from dlperf.detection.voc_eval import VOCResult
from conftest import FIXTURE_FIDELITY

from dlperf.report.style import save_figure
from dlperf.report.tables import write_table

VOC_MAP = 0.6755


def _provenance(config: dict, **extra) -> dict:
    return {"config": config, "git": {"commit": "0123456789abcdef0123", "dirty": False},
            "packages": {"python": "3.11.7", "dlperf": "0.1.0", "torch": "2.14.1", "torchvision": "0.29.1",
                         "snakemake": "9.27.1"},
            "device": "cpu", "cpu": "Fixture CPU", "cpu_count": 2,
            "start": "2026-01-02T10:00:00+00:00", "end": "2026-01-02T10:05:00+00:00", **extra}


def _write(path: Path, frame_or_record) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(frame_or_record, pd.DataFrame):
        frame_or_record.to_csv(path, index=False)
    else:
        path.write_text(json.dumps(frame_or_record, indent=2))


def write_ssd(root: Path, cfg: dict) -> None:
    s, out = cfg["ssd"], Path(root) / "results" / "ssd"
    classes = s["data"]["openimages"]["classes"]
    # per-class APs spread around the mean, whose mean is exactly VOC_MAP
    offsets = [(k - (len(VOC_CLASSES) - 1) / 2) / 100 for k in range(len(VOC_CLASSES))]
    voc = ap_frame(VOCResult({name: VOC_MAP + d for name, d in zip(VOC_CLASSES, offsets)}, VOC_MAP))
    _write(out / "voc" / "ap.csv", voc)
    write_table(voc.rename(columns={"ap": "AP"}), out / "tables" / "voc_ap.tex", formats={"AP": ".4f"})
    save_figure(ap_bars(voc), out / "figures" / "voc_ap.pdf", FIXTURE_FIDELITY)
    before = ap_frame(VOCResult({c: 0.01 * (k + 1) for k, c in enumerate(classes)}, 0.015))
    after = ap_frame(VOCResult({c: 0.5 + 0.1 * k for k, c in enumerate(classes)}, 0.55))
    _write(out / "openimages" / "ap_before.csv", before)
    _write(out / "openimages" / "ap_after.csv", after)
    comparison = comparison_frame(before, after)
    write_table(comparison, out / "tables" / "openimages_ap.tex")
    save_figure(comparison_bars(comparison), out / "figures" / "openimages_ap.pdf", FIXTURE_FIDELITY)
    _write(out / "voc" / "provenance.json", _provenance(
        {"ssd": {k: s[k] for k in ("model", "data", "pretrained", "eval")}}, mean_ap=VOC_MAP, test_images=4952,
        num_priors=3000))
    _write(out / "finetune" / "provenance.json", _provenance(
        {"ssd": {k: s[k] for k in ("model", "data", "pretrained", "finetune")}}, params=6601542,
        classes=["BACKGROUND", *classes], train_images=1234, dropped_boxes=0, missing_images=2))
    _write(out / "openimages" / "provenance.json", _provenance(
        {"ssd": {k: s[k] for k in ("model", "data", "finetune", "eval")}}, test_images=321, missing_images=1,
        dropped_boxes=0, map_before=0.015, map_after=0.55))
