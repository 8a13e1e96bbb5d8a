"""The SSD study's rules: dry runs of both configs, bad input, and every SSD rule's files in the embedded run."""
import json
import math

import pandas as pd
import pytest
import torch

from conftest import copy_run, job_counts, load_config, snakemake, write_config
from dlperf.data.openimages import OpenImagesDataset
from dlperf.data.voc import read_label_file
from dlperf.models.mobilenet_ssd import mobilenet_v1_ssd

SSD_TARGETS = ["results/ssd/voc/ap.csv", "results/ssd/openimages/ap_before.csv", "results/ssd/openimages/ap_after.csv"]


def ssd_jobs(text):
    """The dry run's job counts of the SSD rules."""
    return {rule: n for rule, n in job_counts(text).items() if rule.startswith("ssd_")}


def ssd_config(tmp_path, base, edit):
    """config/<base> with ``edit`` applied to its ssd section, written to tmp_path/<base>."""
    cfg = load_config(base)
    edit(cfg["ssd"])
    return write_config(tmp_path / base, cfg)


def test_the_full_config_downloads_data_and_the_published_checkpoint_and_trains_only_the_fine_tune(full_plan):
    rc, text = full_plan
    assert rc == 0, text
    # two VOC tars, the class descriptions and three box files; the checkpoint; no VOC training
    assert ssd_jobs(text) == {"ssd_download": 6, "ssd_download_weights": 1, "ssd_voc_data": 1,
                                "ssd_openimages_data": 1, "ssd_eval_voc": 1, "ssd_voc_ap_figure": 1, "ssd_finetune": 1,
                                "ssd_eval_openimages": 1, "ssd_openimages_ap_figure": 1, "ssd_values": 1}
    assert "resources/weights/mobilenet-v1-ssd-mp-0_675.pth" in text
    assert "VOCtest_06-Nov-2007.tar" in text and "test-annotations-bbox.csv" in text


def test_a_local_checkpoint_path_replaces_the_download(tmp_path):
    local = tmp_path / "mobilenet-v1-ssd-mp-0_675.pth"
    local.write_bytes(b"weights")
    path = ssd_config(tmp_path, "full.yaml", lambda s: s["pretrained"].update(local_path=str(local)))
    rc, text = snakemake(*SSD_TARGETS, "-n", "--configfile", str(path))
    assert rc == 0, text
    assert "ssd_download_weights" not in ssd_jobs(text)


def test_the_default_trains_the_voc_detector_in_the_dag(default_plan):
    rc, text = default_plan
    assert rc == 0, text
    assert ssd_jobs(text) == {"ssd_voc_data": 1, "ssd_openimages_data": 1, "ssd_pretrain_voc": 1,
                                "ssd_eval_voc": 1, "ssd_voc_ap_figure": 1, "ssd_finetune": 1, "ssd_eval_openimages": 1,
                                "ssd_openimages_ap_figure": 1, "ssd_values": 1}


def test_an_undeclared_ssd_device_label_is_rejected_naming_it(tmp_path):
    path = ssd_config(tmp_path, "config.yaml", lambda s: s.update(device="a100"))
    rc, text = snakemake("-n", "--configfile", str(path))
    assert rc != 0
    assert "ssd.device: unknown device label(s) 'a100'" in text


def test_a_pretrained_source_of_train_needs_a_pretrain_section(tmp_path):
    path = ssd_config(tmp_path, "config.yaml", lambda s: s.pop("pretrain"))
    rc, text = snakemake("-n", "--configfile", str(path))
    assert rc != 0 and "'pretrain' is a required property" in text


def test_the_ssd_rules_run_for_real_and_write_the_contract_files(embedded_run, tmp_path):
    ssd_cfg = load_config(root=embedded_run)["ssd"]
    ssd = embedded_run / "results" / "ssd"

    ap = pd.read_csv(ssd / "voc" / "ap.csv")
    assert list(ap.columns[:2]) == ["class", "ap"] and len(ap) == 21 and ap["class"].iloc[-1] == "mAP"
    assert ap.ap.iloc[-1] == pytest.approx(ap.ap.iloc[:-1].mean())
    assert ap.ap.between(0, 1).all()
    for stage in ("before", "after"):
        frame = pd.read_csv(ssd / "openimages" / f"ap_{stage}.csv")
        assert frame["class"].tolist() == ["Handgun", "Shotgun", "mAP"]
        assert list(frame.columns[:2]) == ["class", "ap"]
    assert "ap\\_before" in (ssd / "tables" / "openimages_ap.tex").read_text()
    assert (ssd / "figures" / "voc_ap.png").stat().st_size > 1000

    # the contract with the ONNX/serving study
    finetune = ssd / "finetune"
    labels = read_label_file(finetune / "labels.txt")
    assert labels == ["BACKGROUND", "Handgun", "Shotgun"]
    model = mobilenet_v1_ssd(num_classes=len(labels), **ssd_cfg["model"])
    model.load_state_dict(torch.load(finetune / "checkpoint.pt", weights_only=True), strict=True)
    provenance = json.loads((finetune / "provenance.json").read_text())
    assert provenance["classes"] == labels and provenance["config"]["ssd"]["model"] == ssd_cfg["model"]
    openimages = ssd_cfg["data"]["openimages"]["synthetic"]
    assert len(OpenImagesDataset(embedded_run / "resources" / "data" / "openimages", "test", labels[1:])) == \
        openimages["n_test"]
    steps_per_epoch = math.ceil(openimages["n_train"] / ssd_cfg["finetune"]["batch_size"])
    assert len(pd.read_csv(finetune / "steps.csv")) == ssd_cfg["finetune"]["epochs"] * steps_per_epoch
    assert json.loads((ssd / "openimages" / "provenance.json").read_text())["before"].startswith("initial.pt")

    # bad input, through the rules, in a copy of the run: a missing image and a degenerate box are counted and
    # skipped ...
    work = copy_run(embedded_run, tmp_path / "run")
    ssd, finetune = work / "results" / "ssd", work / "results" / "ssd" / "finetune"
    data = work / "resources" / "data" / "openimages"
    subset = pd.read_csv(data / "sub-test-annotations-bbox.csv", dtype={"ImageID": str})
    first, last = sorted(set(subset.ImageID))[0], sorted(set(subset.ImageID))[-1]
    (data / "test" / f"{first}.jpg").unlink()
    subset.loc[subset.ImageID == last, "XMax"] = subset.loc[subset.ImageID == last, "XMin"]  # empty boxes
    subset.to_csv(data / "sub-test-annotations-bbox.csv", index=False)
    rerun = ("results/ssd/openimages/ap_after.csv", "--cores", "1", "--forcerun", "ssd_eval_openimages",
             "--allowed-rules", "ssd_eval_openimages", "--rerun-triggers", "code")
    rc, text = snakemake(*rerun, cwd=work)
    assert rc == 0, text[-5000:]
    record = json.loads((ssd / "openimages" / "provenance.json").read_text())
    assert record["missing_images"] == 1 and record["dropped_boxes"] == int((subset.ImageID == last).sum())
    assert "skipped 1 images missing" in (work / "logs" / "ssd" / "eval_openimages.log").read_text()
    # ... and a label file that does not match the checkpoint fails naming both counts
    (finetune / "labels.txt").write_text("BACKGROUND\nHandgun\nShotgun\nRifle\n")
    rc, text = snakemake(*rerun, cwd=work)
    assert rc != 0
    assert "lists 4 classes (BACKGROUND included) but the checkpoint's classification heads predict 3" in (
        work / "logs" / "ssd" / "eval_openimages.log").read_text()
