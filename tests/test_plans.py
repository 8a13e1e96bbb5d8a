"""The studies' plans: what each job reads from the config, so that editing anything else reruns nothing."""
import copy

import pytest
from snakemake.utils import validate

from conftest import ROOT, load_config
from dlperf.compress import plan as compress_plan
from dlperf.depth import plan as depth_plan
from dlperf.detection import plan as ssd_plan
from dlperf.optimus import plan as optimus_plan
from dlperf.transfer import plan as transfer_plan


def config(name="config.yaml"):
    cfg = copy.deepcopy(load_config(name))
    validate(cfg, str(ROOT / "config" / "schema.yaml"))   # with the schema's defaults, as the workflow sees it
    return cfg


def test_only_imagenet_style_resnets_read_the_imagenet_width():
    o = config()["optimus"]
    assert optimus_plan.imagenet_width(o, "resnet20") is None
    assert optimus_plan.imagenet_width(o, "resnet20", "resnet50") == o["imagenet_width"]
    assert optimus_plan.runs(o)[-1] == "results/optimus/runs/resnet50-cpu-s0"


def test_a_backbone_job_reads_its_architecture_its_width_setting_and_the_weights_checksum_not_the_url():
    t = config("full.yaml")["transfer"]
    resnet = transfer_plan.backbone_entry(t, "resnet50")
    assert set(resnet) == {"arch", "width", "weights"}
    assert set(resnet["weights"]) == {"sha256_prefix"} and "url" not in resnet["weights"]
    assert set(transfer_plan.backbone_entry(t, "mobilenet_v2")) == {"arch", "width_mult", "weights"}
    assert set(transfer_plan.backbone_entry(t, "inception_v3")) == {"arch", "weights"}


def test_a_sweep_run_knows_its_exact_learning_rate_and_an_unknown_label_is_an_error():
    t = config()["transfer"]
    assert transfer_plan.run_lr(t, "feature", "5e-3") == 0.005
    with pytest.raises(ValueError, match="no finetune run at lr 7e-1"):
        transfer_plan.run_lr(t, "finetune", "7e-1")
    d = config()["depth"]
    assert depth_plan.run_lr(d, "vgg38_bn_rc", "1e-2") == 0.01


def test_only_the_soft_target_student_reads_the_temperature_and_alpha():
    c = config()["compress"]
    assert compress_plan.soft_targets(c, "labels") is None
    assert compress_plan.soft_targets(c, "kd") == {"teacher": "resnet56", "temperature": 4.0, "alpha": 0.9}
    assert "ssd_calibration_images" not in compress_plan.quantize(c, "calibration_images")


def test_preparing_data_reads_the_settings_of_its_source_only():
    s = config()["ssd"]
    assert ssd_plan.voc_params(s) == {"source": "synthetic", "synthetic": s["data"]["voc"]["synthetic"]}
    full = config("full.yaml")["ssd"]
    assert set(ssd_plan.voc_params(full)) == {"source"}
    oi = ssd_plan.openimages_params(full)
    assert "csv_url" not in oi["download"] and "images_url" in oi["download"]
