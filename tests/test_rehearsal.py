"""The full-scale rehearsal as `make rehearse` runs it: config/full.yaml at real model sizes, against a loopback
mirror of every file it downloads, to the compiled report; a second run does nothing."""
import json
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from scipy.io import loadmat

from conftest import ROOT, job_counts, scratch_copy
from dlperf.bundle import RENDER_RULES
from dlperf.data import mirror_files


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def rehearse(directory: Path, port: int, *args: str):
    out = subprocess.run([sys.executable, "-m", "dlperf.data.mirror", "rehearse", "--dir", str(directory),
                          "--port", str(port), "--cores", "2", *args],
                         cwd=ROOT, capture_output=True, text=True, timeout=3000)
    return out.returncode, out.stdout + out.stderr


@pytest.mark.slow
def test_the_full_config_runs_end_to_end_on_the_mirror_at_real_model_sizes(tmp_path):
    port = free_port()
    rc, text = rehearse(tmp_path, port)
    assert rc == 0, text[-5000:]
    results, resources = tmp_path / "work" / "results", tmp_path / "work" / "resources"

    page_one = subprocess.run(["pdftotext", "-l", "1", str(results / "report" / "report.pdf"), "-"],
                              capture_output=True, text=True, check=True).stdout
    assert "Rehearsal, not results." in page_one and "scale: rehearsal" in page_one

    # Flowers102 converted from its original files: the ImageFolder is exactly what setid.mat and imagelabels.mat say
    mirror = tmp_path / "mirror" / "files" / "www.robots.ox.ac.uk" / "~vgg" / "data" / "flowers" / "102"
    labels = loadmat(mirror / "imagelabels.mat", squeeze_me=True)["labels"]
    splits = loadmat(mirror / "setid.mat", squeeze_me=True)
    for split, key in (("train", "trnid"), ("val", "valid"), ("test", "tstid")):
        on_disk = sorted(p.relative_to(resources / "data/decathlon" / split).as_posix()
                         for p in (resources / "data/decathlon" / split).rglob("*.jpg"))
        assert on_disk == sorted(f"class_{labels[n - 1]:03d}/image_{n:05d}.jpg" for n in splits[key])
    classes = pd.read_csv(results / "transfer" / "dataset" / "classes.csv")
    assert list(classes["class"]) == [f"class_{c:03d}" for c in mirror_files.FLOWERS_LABELS]

    # real model sizes, as the full config names them
    inception = json.loads((results / "transfer/cache/inception_v3.provenance.json").read_text())
    assert inception["config"]["transfer"]["image_size"] == 299 and inception["feature_dim"] == 2048
    theta = json.loads((results / "optimus" / "theta.json").read_text())
    assert "4 x 23520842 fp32 parameters" in theta["theta"]["provenance"]  # ResNet-50 at width 64, 10 classes
    voc = json.loads((results / "ssd" / "voc" / "provenance.json").read_text())
    assert voc["num_priors"] == 3000
    parity = json.loads((results / "serve" / "onnx" / "parity.json").read_text())
    assert parity["passed"] and parity["input"]["shape"] == ["batch", 3, 300, 300]
    timing = pd.read_csv(results / "flops" / "layer_timing.csv")
    assert set(timing.model) == {"vgg16", "googlenet", "resnet50"}
    assert pd.read_csv(results / "flops" / "summary.csv").set_index("model").loc["vgg16", "gmacs"] == \
        pytest.approx(15.47, rel=0.01)

    # the three device labels, each its own runs and its own measured peak
    ppp = pd.read_csv(results / "flops" / "training_ppp.csv")
    optimus = ppp[ppp.study == "optimus"]
    assert len(optimus) == 18 and {run.split("-")[1] for run in optimus.run} == {"k80", "p100", "v100"}
    assert {p.stem for p in (results / "devices" / "peak").glob("*.json")} == {"k80", "p100", "v100"}

    # the 3000-prior SSD through quantization and serving
    summary = pd.read_csv(results / "compress" / "summary.csv")
    assert {"quantize_static", "quantize_dynamic"} <= set(summary[summary.metric == "mAP"].method)
    # Deep Compression on ResNet-56 and on VGG-16 at its 138 M weights (torchvision's layout, the mirror's ImageNet)
    deep = pd.read_csv(results / "compress" / "deep" / "networks.csv")
    assert set(deep.network) == {"resnet20", "resnet56", "vgg16"}
    vgg = deep[deep.network == "vgg16"].set_index("stage")
    assert vgg.loc["dense", "size_bytes"] > 550e6 and vgg.size_bytes.is_monotonic_decreasing
    assert vgg.loc["pruned", "connection_ratio"] == pytest.approx(1 / 0.0761, rel=0.01)   # Han et al.'s layer rates
    assert vgg.loc["huffman", "ratio"] > 30   # Han et al.: 49x with trained weights; these are random
    bench = pd.read_csv(results / "serve" / "bench.csv")
    assert set(bench[bench.benchmark == "server"].clients) == {1, 4}
    detections = json.loads((results / "serve" / "detections.json").read_text())
    assert detections and all(Path(results / "serve" / f"annotated_{c}.png").stat().st_size > 1000
                              for c in ("Handgun", "Shotgun"))

    rc, text = rehearse(tmp_path, port, "-n")
    assert rc == 0 and "Nothing to be done" in text, text[-3000:]

    # the run's bundle redraws its report elsewhere with render rules only (dlperf.bundle), the full config's too
    bundle = tmp_path / "rehearsal.tar.gz"
    pack = subprocess.run([sys.executable, "-m", "dlperf.bundle", "--directory", str(tmp_path / "work"), "pack",
                           "--configfile", "config/full.yaml", str(tmp_path / "mirror" / "rehearsal.yaml"),
                           "--output", str(bundle)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert pack.returncode == 0, pack.stdout + pack.stderr
    checkout = scratch_copy(tmp_path / "checkout")
    plan = subprocess.run([sys.executable, "-m", "dlperf.bundle", "figures", str(bundle), "--dry-run"], cwd=checkout,
                          capture_output=True, text=True, timeout=600)
    assert plan.returncode == 0, (plan.stdout + plan.stderr)[-3000:]
    counts = set(job_counts(plan.stdout)) - {"total"}
    assert "report_pdf" in counts and counts <= RENDER_RULES, sorted(counts - RENDER_RULES)
    assert not (checkout / "results/optimus/theta.json").exists()   # a fit: drawn from the runs, not carried
