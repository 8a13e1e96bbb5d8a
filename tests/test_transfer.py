"""Transfer learning: frozen means frozen, the cache changes nothing but the time, three schedule drops, the
dataset description counts what is on disk, broken datasets and weights fail naming what is wrong, and Flowers102's
original files become its official splits (the full config's download of them runs in the rehearsal)."""
import hashlib
import io
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from scipy.io import savemat

from dlperf.data.download import DownloadError, fetch
from dlperf.data.errors import DatasetFormatError
from dlperf.data.flowers import flowers102_to_imagefolder
from dlperf.data.imagefolder import class_counts, scan_imagefolder
from dlperf.data.synthetic import synthesize_imagefolder
from dlperf.models.backbones import FeatureClassifier, FrozenFeatures, build_backbone, head_of, pretrained_backbone
from dlperf.train.engine import TrainConfig, train
from dlperf.train.features import DeviceFeatures, extract_features
from dlperf.train.schedule import Schedule
from dlperf.transfer.backbone import backbone_from_file
from dlperf.transfer.summary import mark_winners
from dlperf.transfer.training import new_head, target_images

from conftest import load_config
from http_fixture import serve_directory

NORMALIZE = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    root = tmp_path_factory.mktemp("transfer") / "target"
    return synthesize_imagefolder(root, n_classes=3, n_train=8, n_val=3, n_test=3, size=40, seed=1, class_offset=7)


def small_backbone(arch="resnet50", classes=3):
    torch.manual_seed(0)
    return build_backbone(arch, classes, width=4, width_mult=0.25)


# ---- models ---------------------------------------------------------------------------------------------------
def test_the_published_width_resnet50_has_torchvisions_exact_state_dict():
    ours = build_backbone("resnet50", 1000).state_dict()
    reference = __import__("torchvision").models.resnet50().state_dict()
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in reference.items()}


@pytest.mark.parametrize("arch", ["resnet50", "mobilenet_v2"])
def test_pretrained_weights_load_strictly_and_get_a_new_head_for_the_target(arch):
    source = small_backbone(arch, classes=20)
    model = pretrained_backbone(arch, source.state_dict(), "source.pt", 3, width=4, width_mult=0.25)
    assert head_of(model, arch).out_features == 3
    head = "fc." if arch == "resnet50" else "classifier."
    body = {k: v for k, v in source.state_dict().items() if not k.startswith(head)}
    assert body and all(torch.equal(v, model.state_dict()[k]) for k, v in body.items())


def test_weights_that_do_not_fit_the_backbone_fail_naming_the_file_and_keys(tmp_path):
    state = small_backbone().state_dict()
    del state["layer1.0.conv1.weight"]
    path = tmp_path / "broken.pt"
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"broken\.pt.*layer1\.0\.conv1\.weight"):
        backbone_from_file({"arch": "resnet50", "width": 4}, path, 3)


def test_another_architectures_weights_fail_naming_the_shapes_that_differ(tmp_path):
    """A ResNet-18 file under ResNet-50's name: torchvision's names half agree, the shapes do not."""
    path = tmp_path / "resnet50-00000000.pth"
    torch.save(__import__("torchvision").models.resnet18().state_dict(), path)
    with pytest.raises(ValueError, match=r"resnet50-00000000\.pth: weights do not fit the backbone: .*"
                                         r"layer1\.0\.conv1\.weight \[64, 64, 3, 3\] \(backbone: \[64, 64, 1, 1\]\)"):
        backbone_from_file({"arch": "resnet50"}, path, 3)


def test_weights_saved_before_batchnorm_counted_its_batches_still_load():
    state = {k: v for k, v in small_backbone().state_dict().items() if not k.endswith("num_batches_tracked")}
    model = pretrained_backbone("resnet50", state, "old.pth", 3, width=4)
    assert head_of(model, "resnet50").out_features == 3


def test_frozen_backbone_parameters_and_statistics_are_bit_identical_after_training(target, tmp_path):
    _, data = target_images(target, 32, torch.device("cpu"), NORMALIZE)
    model = small_backbone()
    features = FrozenFeatures(model, "resnet50")
    before = {k: v.clone() for k, v in features.state_dict().items()}
    classifier = FeatureClassifier(features, new_head(features.backbone.layer4[-1].conv3.out_channels, 3, 0))
    cfg = TrainConfig(epochs=2, batch_size=8, optimizer={"name": "sgd", "lr": 0.5, "momentum": 0.9,
                                                         "weight_decay": 5e-4},
                      augment={"crop_padding": 4, "flip": True})
    head_before = classifier.head.weight.detach().clone()
    train(classifier, data["train"], {"val": data["val"]}, cfg, run_dir=tmp_path / "run", state_dir=tmp_path / "s",
          run_name="frozen")
    after = features.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)   # weights and BatchNorm running statistics
    assert not torch.equal(head_before, classifier.head.weight)     # while the head did train


def test_a_head_trained_on_cached_features_matches_one_trained_through_the_frozen_backbone(target, tmp_path):
    _, data = target_images(target, 32, torch.device("cpu"), NORMALIZE)
    features = FrozenFeatures(small_backbone(), "resnet50")
    dim = features.backbone.layer4[-1].conv3.out_channels
    cfg = TrainConfig(epochs=3, batch_size=8, optimizer={"name": "sgd", "lr": 0.1, "momentum": 0.9},
                      schedule={"name": "multistep", "milestones": [1, 2]})
    through = FeatureClassifier(features, new_head(dim, 3, seed=5))
    direct = train(through, data["train"], {"val": data["val"]}, cfg, run_dir=tmp_path / "a",
                   state_dir=tmp_path / "sa", run_name="through")
    cache = {s: DeviceFeatures(extract_features(features, data[s], 5), data[s].labels, "cpu") for s in ("train", "val")}
    head = new_head(dim, 3, seed=5)
    cached = train(head, cache["train"], {"val": cache["val"]}, cfg, run_dir=tmp_path / "b",
                   state_dir=tmp_path / "sb", run_name="cached")
    torch.testing.assert_close(head.weight, through.head.weight, atol=1e-5, rtol=1e-4)
    assert cached["val_loss"] == pytest.approx(direct["val_loss"], abs=1e-5)
    assert cached["train_loss"] == pytest.approx(direct["train_loss"], abs=1e-5)


def test_cached_features_refuse_augmentation():
    data = DeviceFeatures(torch.zeros(4, 2), torch.zeros(4), "cpu")
    from dlperf.train.data import Augment
    with pytest.raises(ValueError, match="cannot be augmented"):
        next(data.batches(2, shuffle=True, augment=Augment(flip=True)))


# ---- schedule ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("config", ["config.yaml", "full.yaml"])
@pytest.mark.parametrize("mode", ["finetune", "feature_extractor"])
def test_each_configured_multistep_schedule_makes_exactly_three_drops_of_gamma(config, mode):
    train_cfg = load_config(config)["transfer"][mode]["train"]
    schedule = Schedule.from_config(train_cfg["schedule"])
    steps_per_epoch = 3
    lrs = [schedule.lr(1.0, i, steps_per_epoch) for i in range(train_cfg["epochs"] * steps_per_epoch)]
    drops = [(i // steps_per_epoch, b / a) for i, (a, b) in enumerate(zip(lrs, lrs[1:]), start=1) if b != a]
    assert [epoch for epoch, _ in drops] == list(train_cfg["schedule"]["milestones"])
    assert [ratio for _, ratio in drops] == pytest.approx([0.1] * 3)


# ---- the dataset -------------------------------------------------------------------------------------------------
def test_the_description_counts_the_files_on_disk(target):
    counts = {row["class"]: row for row in class_counts(scan_imagefolder(target))}
    for split in ("train", "val", "test"):
        for folder in (target / split).iterdir():
            assert counts[folder.name][f"n_{split}"] == len(list(folder.glob("*.png")))


def test_an_empty_class_folder_fails_naming_it(target, tmp_path):
    broken = shutil.copytree(target, tmp_path / "t")
    for f in (broken / "val" / "class_08").iterdir():
        f.unlink()
    with pytest.raises(DatasetFormatError, match=r"class_08.*val.*no images"):
        scan_imagefolder(broken)


def test_a_class_missing_from_a_split_fails_naming_it(target, tmp_path):
    broken = shutil.copytree(target, tmp_path / "t")
    shutil.rmtree(broken / "test" / "class_09")
    with pytest.raises(DatasetFormatError, match="class_09"):
        scan_imagefolder(broken)


def test_an_unreadable_image_fails_naming_the_file(target, tmp_path):
    broken = shutil.copytree(target, tmp_path / "t")
    bad = broken / "train" / "class_07" / "00001.png"
    bad.write_bytes(bad.read_bytes()[:40])
    with pytest.raises(DatasetFormatError, match=r"class_07/00001\.png: unreadable image"):
        target_images(broken, 32, torch.device("cpu"), NORMALIZE)


def test_the_winner_of_each_mode_is_marked():
    summary = pd.DataFrame({"mode": ["finetune"] * 2 + ["feature_extractor"] * 2, "best_val_acc": [0.5, 0.7, 0.6, 0.4]})
    assert list(mark_winners(summary)) == [False, True, True, False]


# ---- the full config's download path, against a loopback server -------------------------------------------------
def flowers_originals(www: Path) -> dict:
    """102flowers.tgz, imagelabels.mat and setid.mat as the VGG site serves them, for 3 classes of 4 images."""
    www.mkdir(parents=True)
    n = 12
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for i in range(1, n + 1):
            image = io.BytesIO()
            Image.fromarray(np.full((20, 24, 3), 20 * i, np.uint8)).save(image, format="JPEG")
            info = tarfile.TarInfo(f"jpg/image_{i:05d}.jpg")
            info.size = image.tell()
            image.seek(0)
            tar.addfile(info, image)
    (www / "102flowers.tgz").write_bytes(buffer.getvalue())
    labels = np.repeat([1, 2, 3], 4)
    savemat(www / "imagelabels.mat", {"labels": labels[None, :]})
    savemat(www / "setid.mat", {"trnid": np.array([[1, 5, 9, 2, 6, 10]]), "valid": np.array([[3, 7, 11]]),
                                "tstid": np.array([[4, 8, 12]])})
    return {name: hashlib.md5((www / name).read_bytes()).hexdigest()
            for name in ("102flowers.tgz", "imagelabels.mat", "setid.mat")}


def test_flowers102_originals_become_the_official_splits(tmp_path):
    digests = flowers_originals(tmp_path / "www")
    assert len(digests) == 3
    with tarfile.open(tmp_path / "www" / "102flowers.tgz") as tar:
        tar.extractall(tmp_path / "x", filter="data")
    root = flowers102_to_imagefolder(tmp_path / "x" / "jpg", tmp_path / "www" / "imagelabels.mat",
                                     tmp_path / "www" / "setid.mat", tmp_path / "flowers")
    counts = class_counts(scan_imagefolder(root))
    assert counts == [{"class": f"class_00{c}", "n_train": 2, "n_val": 1, "n_test": 1} for c in (1, 2, 3)]
    assert (root / "train" / "class_003" / "image_00009.jpg").exists()


def test_a_setid_naming_a_missing_image_fails_naming_it(tmp_path):
    flowers_originals(tmp_path / "www")
    (tmp_path / "jpg").mkdir()
    with pytest.raises(DatasetFormatError, match=r"image_00001\.jpg.*missing"):
        flowers102_to_imagefolder(tmp_path / "jpg", tmp_path / "www" / "imagelabels.mat",
                                  tmp_path / "www" / "setid.mat", tmp_path / "flowers")


def test_a_corrupt_weights_file_fails_its_checksum(tmp_path):
    www = tmp_path / "www"
    www.mkdir()
    good = io.BytesIO()
    torch.save(small_backbone().state_dict(), good)
    prefix = hashlib.sha256(good.getvalue()).hexdigest()[:8]
    (www / f"resnet50-{prefix}.pth").write_bytes(good.getvalue()[:-100] + b"x" * 100)
    with serve_directory(www) as server:
        with pytest.raises(DownloadError, match="sha256 mismatch"):
            fetch(f"{server.url}/resnet50-{prefix}.pth", tmp_path / "w.pth", sha256_prefix=prefix, timeout=10)
    assert not (tmp_path / "w.pth").exists()
