"""make estimate: a config's cost on this machine, from a short calibration of each model it trains."""
import math
import re
import subprocess
import sys

import pytest
from conftest import ROOT

from dlperf.estimate import load_config, other_jobs_per_study, planned_runs, summary


def _full(monkeypatch) -> dict:
    monkeypatch.chdir(ROOT)
    return load_config("config/full.yaml")


def test_the_full_configs_training_jobs_are_planned_with_their_steps(monkeypatch):
    cfg = _full(monkeypatch)
    runs = planned_runs(cfg, "cuda")
    by_study = {s: [r for r in runs if r.study == s] for s in ("optimus", "depth", "transfer", "ssd", "compress")}
    o = cfg["optimus"]
    assert len(by_study["optimus"]) == (len(o["archs"]) + 1) * len(o["devices"]) * len(o["seeds"])
    assert {r.steps for r in by_study["optimus"]} == {math.ceil(50_000 / 128) * 350}
    d = cfg["depth"]
    assert len(by_study["depth"]) == len(d["runs"])
    assert {r.steps for r in by_study["depth"]} == {math.ceil((50_000 - d["val_size"]) / 100) * 100}
    assert [r.run for r in by_study["ssd"]] == ["finetune-openimages"]   # the VOC detector is downloaded
    assert {r.model.key for r in by_study["transfer"]} >= {"backbone resnet50@224", "backbone inception_v3@299"}
    compress = {r.run: r for r in by_study["compress"]}
    assert {"deep-resnet32-prune", "deep-resnet32-shared", "deep-resnet56-prune", "deep-resnet56-shared"} <= set(compress)
    cfg["compress"]["deep"]["networks"].append("vgg16")   # given ImageNet's validation images: pruned, then shared
    vgg = {r.run: r for r in planned_runs(cfg, "cuda") if r.run.startswith("deep-vgg16")}
    i = cfg["compress"]["deep"]["imagenet"]
    assert set(vgg) == {"deep-vgg16-prune", "deep-vgg16-shared"} and vgg["deep-vgg16-prune"].model.key == "imagenet vgg16@224"
    assert vgg["deep-vgg16-prune"].steps == math.ceil(i["retrain_images"] / 64) * i["prune_train"]["epochs"]


def test_other_jobs_are_counted_per_study_and_the_wall_time_divides_among_devices():
    counts = {"optimus_train": 18, "optimus_loss_fits": 1, "flops_measure": 1, "data_download": 4, "all": 1}
    assert other_jobs_per_study(counts) == {"optimus": 1, "flops": 1, "data": 4}
    import pandas as pd

    per_job = pd.DataFrame({"study": ["a", "a", "b"], "seconds": [3600.0, 3600.0, 7200.0]})
    table = summary(per_job, devices=2)
    assert table.set_index("study").estimated_device_hours.to_dict() == {"a": 2.0, "b": 2.0, "all": 4.0}
    assert table.attrs["wall_s"] == 7200.0
    assert summary(per_job, devices=8).attrs["wall_s"] == 7200.0   # never under the longest job


@pytest.mark.slow
def test_the_embedded_estimate_is_within_30_percent_of_the_measured_run(embedded_run):
    out = subprocess.run([sys.executable, "-m", "dlperf.estimate", "--compare", "benchmarks"], cwd=embedded_run,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    row = next(line for line in out.stdout.splitlines() if line.startswith("| all"))
    ratio = float(row.strip("|").split("|")[-1])
    assert 0.7 <= ratio <= 1.3, out.stdout
    assert re.search(r"wall time with \d+ training job\(s\) at once", out.stdout)
