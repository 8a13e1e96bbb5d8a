"""The rehearsal mirror: every file config/full.yaml downloads, in its real layout as other readers see it, and an
override that points the full config at it; the mirror's server with Range and chosen failures."""
import json
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torchvision
import yaml
from jsonschema import Draft202012Validator

from conftest import MIRROR_URL, load_config
from dlperf.data import mirror, mirror_files
from dlperf.data.cifar import read_cifar10, read_cifar100
from dlperf.data.download import extract, file_checksum
from dlperf.data.mirror_server import serving
from dlperf.models.mobilenet_ssd import mobilenet_v1_ssd
from dlperf.transfer.backbone import backbone_from_file

FULL = load_config("full.yaml")


@pytest.fixture(scope="module")
def built(mirror_root):
    """The suite's mirror (conftest) and its manifest."""
    return mirror_root, json.loads((mirror_root / mirror.MANIFEST).read_text())


def mirrored(built, name):
    root, manifest = built
    [entry] = [e for url, e in manifest["files"].items() if url != "openimages" and Path(e["path"]).name == name]
    return root / mirror.FILES / entry["path"]


def test_every_download_of_the_full_config_is_mirrored_at_its_upstream_path(built):
    root, manifest = built
    urls = {u.url for u in mirror.upstreams(FULL)}
    # CIFAR x2, Flowers x3, torchvision weights x5 (three backbones; AlexNet and VGG-16), VOC x2, the SSD checkpoint
    assert len(urls) == 13
    assert urls <= set(manifest["files"])
    for url, entry in manifest["files"].items():
        if url == "openimages":
            continue
        path = root / mirror.FILES / entry["path"]
        assert path.is_file() and entry["md5"] == file_checksum(path, "md5")
        if "download.pytorch.org" not in url:  # torchvision weights carry their own digest in their names
            assert entry["path"] == url.split("://", 1)[1]


def test_the_cifar_archives_hold_the_published_layout(built, tmp_path):
    with tarfile.open(mirrored(built, "cifar-10-python.tar.gz")) as tar:
        names = sorted(tar.getnames())
    assert names == ["cifar-10-batches-py", *(f"cifar-10-batches-py/{n}" for n in (
        "batches.meta", "data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
        "readme.html", "test_batch"))]
    data = read_cifar10(extract(mirrored(built, "cifar-10-python.tar.gz"), tmp_path / "c10"))
    assert data.train_x.shape == (500, 32, 32, 3) and data.classes[0] == "airplane"
    hundred = read_cifar100(extract(mirrored(built, "cifar-100-python.tar.gz"), tmp_path / "c100"), label="coarse")
    assert len(hundred.classes) == 20 and len(np.unique(hundred.train_y)) == 20


def test_torchvision_reads_the_flowers_files_and_the_voc_tars(built, tmp_path, monkeypatch):
    """torchvision's own readers, not ours, accept the mirror's Flowers102 and VOC2007 (md5 checks aside)."""
    flowers = tmp_path / "flowers-102"
    extract(mirrored(built, "102flowers.tgz"), flowers)
    for name in ("imagelabels.mat", "setid.mat"):
        (flowers / name).write_bytes(mirrored(built, name).read_bytes())
    monkeypatch.setattr(torchvision.datasets.Flowers102, "_check_integrity", lambda self: True)
    splits = {split: torchvision.datasets.Flowers102(tmp_path, split=split) for split in ("train", "val", "test")}
    assert {split: len(d) for split, d in splits.items()} == {"train": 20, "val": 10, "test": 10}
    assert sorted(set(splits["train"]._labels)) == [label - 1 for label in mirror_files.FLOWERS_LABELS]
    assert mirror_files.FLOWERS_LABELS[0] == 1 and mirror_files.FLOWERS_LABELS[-1] == 102
    image, _ = splits["test"][0]
    assert image.size[0] != image.size[1]  # the originals are not square

    voc = tmp_path / "voc"
    for name in ("VOCtrainval_06-Nov-2007.tar", "VOCtest_06-Nov-2007.tar"):
        with tarfile.open(mirrored(built, name)) as tar:
            tar.extractall(voc, filter="data")
    test = torchvision.datasets.VOCDetection(voc, year="2007", image_set="test")
    trainval = torchvision.datasets.VOCDetection(voc, year="2007", image_set="trainval")
    assert (len(trainval), len(test)) == mirror_files.VOC_COUNTS
    assert not set(trainval.images) & set(test.images)
    _, target = test[0]
    assert target["annotation"]["object"][0]["name"] in mirror_files.VOC_CLASSES


def test_the_open_images_csvs_hold_other_classes_and_every_boxed_image_is_there(built):
    root, manifest = built
    entry = manifest["files"]["openimages"]
    csvs, images = root / mirror.FILES / entry["csv_path"], root / mirror.FILES / entry["images_path"]
    descriptions = pd.read_csv(csvs / "class-descriptions-boxable.csv", header=None, names=["id", "name"])
    assert {"Handgun", "Shotgun", "Person"} <= set(descriptions.name)
    for split in ("train", "validation", "test"):
        boxes = pd.read_csv(csvs / split / f"{split}-annotations-bbox.csv")
        assert list(boxes.columns[:4]) == ["ImageID", "Source", "LabelName", "Confidence"]
        assert all((images / split / f"{i}.jpg").is_file() for i in boxes.ImageID)
        assert boxes.LabelName.nunique() > 2


def test_weight_files_are_torchvisions_architectures_named_by_their_own_digest(built):
    for url, entry in built[1]["files"].items():
        if "download.pytorch.org" not in url:
            continue
        path = built[0] / mirror.FILES / entry["path"]
        assert path.stem.rsplit("-", 1)[1] == file_checksum(path, "sha256")[:8]
    state = torch.load(mirrored(built, next(p for p in _names(built) if p.startswith("resnet50-"))), weights_only=True)
    torchvision.models.resnet50().load_state_dict(state)  # strict
    inception = mirrored(built, next(p for p in _names(built) if p.startswith("inception_v3_google-")))
    model = backbone_from_file({"arch": "inception_v3"}, inception, num_classes=102)
    assert model.fc.out_features == 102


def test_the_ssd_checkpoint_has_pytorch_ssds_keys_and_loads_strictly(built):
    state = torch.load(mirrored(built, "mobilenet-v1-ssd-mp-0_675.pth"), weights_only=True)
    assert list(state) == list(json.loads(mirror_files.SSD_KEYS.read_text()))
    model = mobilenet_v1_ssd(21)
    model.load_state_dict(state)  # strict
    with torch.no_grad():
        scores, boxes = model.eval().detect(torch.zeros(1, 3, 300, 300))
    assert scores.shape == (1, 3000, 21) and torch.isfinite(scores).all()


@pytest.mark.parametrize("name", ["cifar-10-python.tar.gz", "setid.mat", "imagelabels.mat", "102flowers.tgz",
                                  "VOCtest_06-Nov-2007.tar"])
def test_a_rebuilt_file_has_the_same_bytes(built, tmp_path, name):
    """The checksums are in the downloads' params: a rebuilt mirror with other bytes would rerun the workflow."""
    assert mirror_files.ARCHIVES[name](tmp_path).read_bytes() == mirrored(built, name).read_bytes()


def test_the_override_points_every_download_at_the_mirror_and_the_merged_config_is_valid(built):
    root, _ = built
    override = yaml.safe_load((root / mirror.OVERRIDE).read_text())
    merged = _merge(FULL, override)
    for upstream in mirror.upstreams(merged):
        assert upstream.url.startswith(f"{MIRROR_URL}/"), upstream
    assert merged["ssd"]["data"]["openimages"]["download"]["images_url"].startswith(f"{MIRROR_URL}/")
    assert merged["scale"] == "rehearsal" and {d["accelerator"] for d in merged["devices"].values()} == {"cpu"}
    # real model sizes are untouched
    assert merged["optimus"]["imagenet_width"] == 64 and merged["ssd"]["model"] == {"width_mult": 1.0, "image_size": 300}
    assert merged["transfer"]["backbones"]["inception_v3"]["image_size"] == 299
    schema = load_config("schema.yaml")
    Draft202012Validator(schema).validate(merged)
    voc = merged["ssd"]["data"]["voc"]["downloads"]
    assert [Path(d["url"]).name for d in voc] == ["VOCtrainval_06-Nov-2007.tar", "VOCtest_06-Nov-2007.tar"]
    # ImageNet's validation images cannot be downloaded: the mirror makes a local copy, and VGG-16 runs on it
    deep = merged["compress"]["deep"]
    assert "vgg16" in deep["networks"] and Path(deep["imagenet"]["val"]).is_absolute()
    assert len(list((Path(deep["imagenet"]["val"]) / "val").iterdir())) == 1000


def test_the_server_resumes_with_range_and_fails_chosen_paths(tmp_path):
    (tmp_path / "host" / "a").mkdir(parents=True)
    (tmp_path / "host" / "a" / "file.bin").write_bytes(bytes(range(200)))
    with serving(tmp_path, failures={"/host/a/gone.jpg": 404, "/host/a/flaky.jpg": 500}) as server:
        request = urllib.request.Request(f"{server.url}/host/a/file.bin", headers={"Range": "bytes=150-"})
        with urllib.request.urlopen(request) as response:
            assert response.status == 206 and response.read() == bytes(range(150, 200))
            assert response.headers["Content-Range"] == "bytes 150-199/200"
        for name, status in (("gone.jpg", 404), ("flaky.jpg", 500), ("absent.bin", 404), ("../../etc/passwd", 404)):
            with pytest.raises(urllib.error.HTTPError) as error:
                urllib.request.urlopen(f"{server.url}/host/a/{name}")
            assert error.value.code == status
    assert server.served[0] == ("/host/a/file.bin", 206)


def _names(built):
    return [Path(e["path"]).name for url, e in built[1]["files"].items() if url != "openimages"]


def _merge(base, override):
    """Snakemake's merge of a second --configfile: nested mappings merged, everything else replaced."""
    merged = dict(base)
    for key, value in override.items():
        merged[key] = _merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return merged
