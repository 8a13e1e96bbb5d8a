"""Bad input on the full config's download path, through the workflow against the rehearsal mirror: a truncated
archive, a wrong checksum, a mirror that answers 404 or 500, a weights file of the wrong architecture. Each fails
naming the file or URL (or, for Open Images images, is counted and skipped) and leaves nothing partial in resources/."""
import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
import torchvision
import yaml

from conftest import MIRROR_URL, ROOT, snakemake, write_config
from dlperf.data import mirror
from dlperf.data.mirror_server import serving

pytestmark = pytest.mark.slow  # each case runs Snakemake on the full config


@pytest.fixture
def served(mirror_root):
    """The suite's mirror (conftest) on a free port, its override rewritten for that port; afterwards the override
    points where it did and the broken copies are gone, as the other tests of the mirror expect."""
    counts = ROOT / "config" / "rehearsal.yaml"
    try:
        with serving(mirror_root / mirror.FILES) as server:
            mirror.write_override(mirror_root, server.url, counts_config=counts)
            yield server
    finally:
        mirror.write_override(mirror_root, MIRROR_URL, counts_config=counts)
        shutil.rmtree(mirror_root / mirror.FILES / "broken", ignore_errors=True)


def run(work: Path, root: Path, targets, extra: dict | None = None):
    """Snakemake on full.yaml + the mirror's override (+ ``extra``, a third config file) for ``targets``."""
    configs = [str(ROOT / "config" / "full.yaml"), str(root / mirror.OVERRIDE)]
    if extra:
        (work / "extra.yaml").parent.mkdir(parents=True, exist_ok=True)
        configs.append(str(write_config(work / "extra.yaml", extra)))
    rc, text = snakemake("--cores", "2", "--directory", str(work), "--configfile", *configs, "--", *targets,
                         timeout=600)
    logs = "".join(p.read_text(errors="replace") for p in sorted((work / "logs").rglob("*.log")))
    return rc, text + logs


def left_in(work: Path, folder: str) -> list[str]:
    """Everything under resources/<folder>, hidden temporaries included."""
    base = work / "resources" / folder
    return sorted(str(p.relative_to(base)) for p in base.rglob("*")) if base.exists() else []


def broken_copy(root: Path, name: str, data: bytes) -> str:
    """Serve ``data`` as ``broken/<name>`` beside the mirror's files; return its path on the server."""
    path = root / mirror.FILES / "broken" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return f"broken/{name}"


def mirrored_bytes(root: Path, name: str) -> bytes:
    manifest = json.loads((root / mirror.MANIFEST).read_text())
    [entry] = [e for u, e in manifest["files"].items() if u != "openimages" and Path(e["path"]).name == name]
    return (root / mirror.FILES / entry["path"]).read_bytes()


def test_a_truncated_archive_fails_extraction_naming_it_and_leaves_no_dataset(served, mirror_root, tmp_path):
    data = mirrored_bytes(mirror_root, "cifar-10-python.tar.gz")
    cut = data[: len(data) // 2]  # a mirror that holds half the archive, checksum and all
    path = broken_copy(mirror_root, "cifar-10-python.tar.gz", cut)
    extra = {"data": {"cifar10": {"download": {"url": f"{served.url}/{path}", "md5": hashlib.md5(cut).hexdigest()}}}}
    rc, text = run(tmp_path, mirror_root, ["resources/data/cifar10"], extra)
    assert rc != 0
    assert "resources/downloads/cifar-10-python.tar.gz: cannot extract" in text
    assert left_in(tmp_path, "data") == []


def test_a_wrong_checksum_fails_naming_the_url_and_both_digests_and_keeps_no_file(served, mirror_root, tmp_path):
    override = yaml.safe_load((mirror_root / mirror.OVERRIDE).read_text())
    voc = override["ssd"]["data"]["voc"]["downloads"]
    voc[1]["md5"] = "0" * 32
    rc, text = run(tmp_path, mirror_root, ["resources/data/voc2007"], {"ssd": {"data": {"voc": {"downloads": voc}}}})
    assert rc != 0
    assert f"{voc[1]['url']}: md5 mismatch: expected {'0' * 32}, got " in text
    assert "VOCtest_06-Nov-2007.tar" not in " ".join(left_in(tmp_path, "downloads_ssd"))
    assert left_in(tmp_path, "data") == []


def test_open_images_images_that_fail_are_counted_and_skipped(served, mirror_root, tmp_path):
    manifest = json.loads((mirror_root / mirror.MANIFEST).read_text())
    images = manifest["files"]["openimages"]["images_path"]
    rc, text = run(tmp_path, mirror_root, ["resources/data/openimages"])
    assert rc == 0, text[-3000:]
    test_ids = sorted(p.stem for p in (tmp_path / "resources/data/openimages/test").glob("*.jpg"))
    train_ids = sorted(p.stem for p in (tmp_path / "resources/data/openimages/train").glob("*.jpg"))

    work = tmp_path / "faulty"
    served.failures.update({f"/{images}/test/{test_ids[0]}.jpg": 404, f"/{images}/train/{train_ids[1]}.jpg": 500})
    rc, text = run(work, mirror_root, ["resources/data/openimages"],
                   {"ssd": {"data": {"openimages": {"download": {"retries": 1}}}}})
    assert rc == 0, text[-3000:]
    report = json.loads((work / "resources/data/openimages/download_report.json").read_text())
    assert (report["test"]["failed"], report["test"]["failed_ids"]) == (1, [test_ids[0]])
    assert (report["train"]["failed"], report["train"]["failed_ids"]) == (1, [train_ids[1]])
    assert not (work / f"resources/data/openimages/test/{test_ids[0]}.jpg").exists()
    assert "HTTP 500" in text and "retrying" in text  # a 500 is retried before the image is given up


@pytest.mark.parametrize("status", [404, 500])
def test_a_failing_file_elsewhere_fails_the_download_naming_its_url(served, mirror_root, tmp_path, status):
    override = yaml.safe_load((mirror_root / mirror.OVERRIDE).read_text())
    url = override["data"]["decathlon"]["downloads"]["splits"]["url"]
    served.failures[url.removeprefix(served.url)] = status
    rc, text = run(tmp_path, mirror_root, ["resources/data/decathlon"])
    assert rc != 0
    assert f"{url}: " in text and f"HTTP {status}" in text
    assert left_in(tmp_path, "data") == [] and "setid.mat" not in " ".join(left_in(tmp_path, "downloads"))


def test_torchvision_weights_of_another_architecture_fail_naming_the_keys(served, mirror_root, tmp_path):
    buffer = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), buffer)
    data = buffer.read_bytes()
    prefix = hashlib.sha256(data).hexdigest()[:8]
    path = broken_copy(mirror_root, f"resnet50-{prefix}.pth", data)  # named as the ResNet-50 file, holding a ResNet-18
    extra = {"transfer": {"backbones": {"resnet50": {"weights": {"url": f"{served.url}/{path}",
                                                                   "sha256_prefix": prefix}}}}}
    rc, text = run(tmp_path / "work", mirror_root, ["resources/weights/imagenet/resnet50.pth"], extra)
    assert rc != 0
    assert f"resources/downloads/resnet50-{prefix}.pth: weights do not fit the backbone" in text
    assert left_in(tmp_path / "work", "weights") == []


def test_an_ssd_checkpoint_of_another_architecture_fails_at_its_download(served, mirror_root, tmp_path):
    from dlperf.models.mobilenet_ssd import mobilenet_v1_ssd

    data_path = tmp_path / "narrow.pth"
    torch.save(mobilenet_v1_ssd(21, width_mult=0.5).state_dict(), data_path)
    path = broken_copy(mirror_root, "mobilenet-v1-ssd-mp-0_675.pth", data_path.read_bytes())
    extra = {"ssd": {"pretrained": {"download": {"url": f"{served.url}/{path}", "sha256": None}}}}
    rc, text = run(tmp_path / "work", mirror_root, ["resources/weights/mobilenet-v1-ssd-mp-0_675.pth"], extra)
    assert rc != 0
    assert f"{served.url}/{path}: not a MobileNetV1-SSD checkpoint" in text and "size mismatch" in text
    assert left_in(tmp_path / "work", "weights") == []
