"""SSD training loop, transforms, dataset evaluation and data preparation (dlperf.detection.{train, transforms,
evaluate, study})."""
import io
import math
import tarfile

import numpy as np
import pandas as pd
import pytest
import torch
from http_fixture import serve_directory

from dlperf.data.errors import DatasetFormatError
from dlperf.data.openimages import CLASS_DESCRIPTIONS, SPLITS, OpenImagesDataset, box_csv_name, subset_csv_name
from dlperf.data.synthetic_detection import synthesize_openimages, synthesize_voc
from dlperf.data.voc import VOC_DIR, VOCDataset
from dlperf.detection import transforms
from dlperf.detection.evaluate import checkpoint_num_classes, load_ssd, predict_dataset
from dlperf.detection.predictor import Predictor
from dlperf.detection.datasets import prepare_openimages, prepare_voc
from dlperf.detection.study import ap_frame, comparison_frame, read_ap_csv
from dlperf.detection.train import SSDTrainConfig, TrainingSet, param_groups, schedule_factor, train_ssd
from dlperf.detection.voc_eval import VOCResult
from dlperf.models.mobilenet_ssd import mobilenet_v1_ssd

SIZE = 64  # the smallest input the SSD and the synthetic scenes both handle quickly


@pytest.fixture(scope="module")
def voc(tmp_path_factory):
    root = tmp_path_factory.mktemp("voc")
    return synthesize_voc(root, 10, 4, size=SIZE, seed=3)


def tiny_model(num_classes=21, seed=0):
    torch.manual_seed(seed)
    return mobilenet_v1_ssd(num_classes, width_mult=0.25, image_size=SIZE)


def test_mirror_flips_boxes_about_the_vertical_centre_line():
    image = np.zeros((10, 20, 3), np.float32)
    boxes = np.array([[2.0, 1.0, 5.0, 4.0]], np.float32)
    rng = np.random.default_rng(0)
    while True:  # draw until the coin says mirror (0)
        state = rng.bit_generator.state
        if rng.integers(2) == 0:
            break
    rng.bit_generator.state = state
    _, flipped = transforms._random_mirror(image, boxes, rng)
    assert flipped.tolist() == [[15.0, 1.0, 18.0, 4.0]]


def test_test_transform_resizes_normalises_and_makes_boxes_relative():
    image = np.full((40, 80, 3), 255, np.uint8)
    x, boxes, labels = transforms.TestTransform(32)(image, np.array([[8.0, 4.0, 40.0, 20.0]]), np.array([3]))
    assert x.shape == (3, 32, 32)
    assert torch.allclose(x, torch.full_like(x, (255 - 127) / 128))
    assert boxes[0].tolist() == pytest.approx([0.1, 0.1, 0.5, 0.5])
    assert labels.tolist() == [3]


def test_train_augmentation_keeps_boxes_valid_and_is_a_function_of_its_generator(voc):
    dataset = VOCDataset(voc, "trainval")
    augment = transforms.TrainAugmentation(SIZE)
    for index in range(len(dataset)):
        image, boxes, labels = dataset[index]
        x, rel, kept = augment(image, boxes, labels, np.random.default_rng([1, index]))
        again = augment(image, boxes, labels, np.random.default_rng([1, index]))
        assert x.shape == (3, SIZE, SIZE) and torch.equal(x, again[0]) and np.array_equal(rel, again[1])
        assert len(rel) == len(kept) >= min(1, len(labels))
        assert (rel >= 0).all() and (rel <= 1).all()
        assert (rel[:, 2] > rel[:, 0]).all() and (rel[:, 3] > rel[:, 1]).all()


def test_schedules_in_closed_form():
    assert schedule_factor({"name": "cosine", "t_max": 100}, 0) == 1.0
    assert schedule_factor({"name": "cosine", "t_max": 100}, 50) == pytest.approx(0.5)
    assert schedule_factor({"name": "cosine", "t_max": 100}, 100) == pytest.approx(0.0)
    multistep = {"name": "multistep", "milestones": [80, 100], "gamma": 0.1}
    assert [schedule_factor(multistep, e) for e in (79, 80, 100)] == pytest.approx([1.0, 0.1, 0.01])
    with pytest.raises(ValueError, match="unknown SSD scheduler 'step'"):
        schedule_factor({"name": "step"}, 0)


def test_param_groups_are_train_ssds_base_net_extras_and_heads_with_their_rates():
    model = tiny_model(3)
    cfg = SSDTrainConfig(epochs=1, batch_size=1, lr=0.01, base_net_lr=0.001, extra_layers_lr=0.005)
    groups = param_groups(model, cfg)
    assert [g["lr"] for g in groups] == [0.001, 0.005, 0.01]
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in model.parameters()}
    assert [g["lr"] for g in param_groups(model, SSDTrainConfig(epochs=1, batch_size=1, lr=0.02))] == [0.02] * 3


def test_unknown_training_keys_are_refused():
    with pytest.raises(ValueError, match="unknown SSD training keys \\['lr_base'\\]"):
        SSDTrainConfig.from_config({"epochs": 1, "batch_size": 1, "lr": 0.1, "lr_base": 0.1}, seed=0)


def test_batches_hold_every_image_once_per_epoch_with_matched_targets(voc):
    model = tiny_model()
    data = TrainingSet(VOCDataset(voc, "trainval"), model, seed=0, augment="mirror")
    batches = list(data.batches(4, epoch=0))
    assert [b[0].shape[0] for b in batches] == [4, 4, 2]
    images, locations, labels = batches[0]
    assert images.shape == (4, 3, SIZE, SIZE)
    assert locations.shape == (4, model.priors.shape[0], 4) and labels.shape == (4, model.priors.shape[0])
    assert (labels > 0).any(dim=1).all(), "every image's objects are matched to some prior"


class Interrupt(Exception):
    pass


class KilledAfter:
    """A dataset that dies at the first image of epoch ``epoch`` (each epoch reads every image once)."""

    def __init__(self, dataset, epoch):
        self.dataset, self.limit, self.calls = dataset, epoch * len(dataset), 0

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        if self.calls == self.limit:
            raise Interrupt
        self.calls += 1
        return self.dataset[index]


def test_a_killed_run_resumes_from_its_last_epoch_and_ends_with_the_uninterrupted_weights(voc, tmp_path):
    dataset = VOCDataset(voc, "trainval")
    cfg = SSDTrainConfig(epochs=3, batch_size=4, lr=0.01, base_net_lr=0.001, scheduler={"name": "cosine", "t_max": 3},
                         augment="ssd")
    cpu = torch.device("cpu")
    straight = tiny_model()
    metrics = train_ssd(straight, dataset, cfg, device=cpu, run_dir=tmp_path / "a", state_dir=tmp_path / "a-state",
                        run_name="a")
    with pytest.raises(Interrupt):
        train_ssd(tiny_model(), KilledAfter(dataset, 2), cfg, device=cpu, run_dir=tmp_path / "b",
                  state_dir=tmp_path / "b-state", run_name="b")
    assert (tmp_path / "b-state" / "last.pt").exists() and not (tmp_path / "b").exists()
    resumed = tiny_model(seed=99)  # different initial weights: all that matters comes from the saved state
    train_ssd(resumed, dataset, cfg, device=cpu, run_dir=tmp_path / "b", state_dir=tmp_path / "b-state", run_name="b")
    for key, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
    assert not (tmp_path / "b-state").exists()
    a, b = (pd.read_csv(tmp_path / run / "steps.csv") for run in ("a", "b"))
    assert list(a.columns) == ["step", "epoch", "loss", "lr", "seconds"]
    assert len(a) == 9 and a.step.tolist() == list(range(1, 10))
    assert a.loss.tolist() == b.loss.tolist()
    epochs = pd.read_csv(tmp_path / "a" / "epochs.csv")
    assert epochs.lr.tolist() == pytest.approx([0.01, 0.01 * (1 + math.cos(math.pi / 3)) / 2,
                                                0.01 * (1 + math.cos(2 * math.pi / 3)) / 2])
    assert metrics["epoch"] == 3 and math.isfinite(metrics["train_loss"])
    state = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)
    assert set(state) == set(straight.state_dict()), "checkpoint.pt is a plain state_dict, as pytorch-ssd saves"


def test_resume_state_saved_for_another_configuration_is_ignored(voc, tmp_path):
    dataset = VOCDataset(voc, "trainval")
    cfg = SSDTrainConfig(epochs=2, batch_size=5, lr=0.01, augment="mirror")
    cpu = torch.device("cpu")
    with pytest.raises(Interrupt):
        train_ssd(tiny_model(), KilledAfter(dataset, 1), cfg, device=cpu, run_dir=tmp_path / "r",
                  state_dir=tmp_path / "s", run_name="r", fingerprint="one")
    log = io.StringIO()
    train_ssd(tiny_model(), dataset, cfg, device=cpu, run_dir=tmp_path / "r", state_dir=tmp_path / "s",
              run_name="r", fingerprint="two", log=log)
    assert "ignoring stale resume state" in log.getvalue() and "resuming" not in log.getvalue()
    assert len(pd.read_csv(tmp_path / "r" / "epochs.csv")) == 2


def test_load_ssd_refuses_a_label_file_with_another_class_count_naming_both(tmp_path):
    path = tmp_path / "voc.pth"
    torch.save(tiny_model(21).state_dict(), path)
    assert checkpoint_num_classes(torch.load(path, weights_only=True)) == 21
    with pytest.raises(DatasetFormatError, match="lists 3 classes .* predict 21"):
        load_ssd(path, ["BACKGROUND", "Handgun", "Shotgun"], width_mult=0.25, image_size=SIZE)
    model = load_ssd(path, VOCDataset.class_names, width_mult=0.25, image_size=SIZE)
    assert model.is_test


def test_batched_dataset_prediction_equals_the_predictor_image_by_image(voc):
    model = tiny_model(seed=5).eval()
    test = VOCDataset(voc, "test", keep_difficult=True)
    batched = predict_dataset(model, test, torch.device("cpu"), batch_size=3, prob_threshold=0.05)
    predictor = Predictor(model, prob_threshold=0.05)
    assert list(batched) == test.ids
    for index, image_id in enumerate(test.ids):
        single = predictor.predict(test.get_image(index))
        assert torch.equal(batched[image_id].labels, single.labels)
        assert torch.allclose(batched[image_id].boxes, single.boxes, atol=1e-4)
        assert torch.allclose(batched[image_id].probs, single.probs, atol=1e-6)


def test_prepare_voc_merges_the_trainval_and_test_tars_into_one_devkit(voc, tmp_path):
    archives = []
    for split, keep in (("trainval", "test"), ("test", "trainval")):
        archive = tmp_path / f"VOC{split}.tar"
        with tarfile.open(archive, "w") as tar:
            ids = set((voc / "ImageSets" / "Main" / f"{split}.txt").read_text().split())
            for path in sorted(voc.rglob("*")):
                if path.is_file() and path.name != f"{keep}.txt" and (path.stem in ids or path.suffix == ".txt"):
                    tar.add(path, arcname=str(VOC_DIR / path.relative_to(voc)))
        archives.append(archive)
    root = prepare_voc(tmp_path / "voc2007", {"source": "download"}, archives)
    assert root == tmp_path / "voc2007" / VOC_DIR
    assert len(VOCDataset(root, "trainval")) == 10 and len(VOCDataset(root, "test")) == 4
    assert not list(tmp_path.glob(".voc2007*")), "no staging directories are left behind"


def test_prepare_synthetic_openimages_writes_the_subsets_and_a_download_report(tmp_path):
    cfg = {"source": "synthetic", "classes": ["Handgun", "Shotgun"],
           "synthetic": {"n_train": 4, "n_validation": 1, "n_test": 3, "size": SIZE, "seed": 1, "max_objects": 2}}
    report = prepare_openimages(tmp_path / "oi", cfg)
    assert report["test"] == {"images": 3, "failed": 0, "failed_ids": []}
    subset = pd.read_csv(tmp_path / "oi" / subset_csv_name("train"))
    assert set(subset.ClassName) <= {"Handgun", "Shotgun"} and {"id", "ClassName"} <= set(subset.columns)
    assert len(OpenImagesDataset(tmp_path / "oi", "test", ["Handgun", "Shotgun"])) == 3


def test_ap_csv_has_class_and_ap_then_the_map_row_and_comparisons_line_up(tmp_path):
    before = ap_frame(VOCResult({"Handgun": 0.1, "Shotgun": 0.3}, 0.2))
    after = ap_frame(VOCResult({"Handgun": 0.5, "Shotgun": 0.9}, 0.7))
    before.to_csv(tmp_path / "b.csv", index=False)
    assert read_ap_csv(tmp_path / "b.csv").values.tolist() == [["Handgun", 0.1], ["Shotgun", 0.3], ["mAP", 0.2]]
    comparison = comparison_frame(before, after)
    assert list(comparison.columns) == ["class", "ap_before", "ap_after", "change"]
    assert comparison.change.tolist() == pytest.approx([0.4, 0.6, 0.5])
    with pytest.raises(ValueError, match="different classes"):
        comparison_frame(before, ap_frame(VOCResult({"Handgun": 0.5, "Rifle": 0.9}, 0.7)))


def test_prepare_downloaded_openimages_filters_the_csvs_fetches_only_their_images_and_counts_failures(tmp_path):
    bucket = synthesize_openimages(tmp_path / "bucket", ["Handgun", "Shotgun", "Rifle"], n_train=6, n_validation=2,
                                   n_test=4, size=SIZE, seed=4)
    boxes = pd.read_csv(bucket / box_csv_name("test"), dtype={"ImageID": str})
    is_rifle = boxes.LabelName == "/m/synth_002"
    rifle = set(boxes.ImageID[is_rifle]) - set(boxes.ImageID[~is_rifle])
    assert rifle, "the fixture has an image with only the third class"
    kept = sorted(set(boxes.ImageID) - rifle)
    (bucket / "test" / f"{kept[0]}.jpg").unlink()  # gone upstream
    csvs = {name: bucket / name for name in [CLASS_DESCRIPTIONS, *(box_csv_name(s) for s in SPLITS)]}
    with serve_directory(bucket) as server:
        cfg = {"source": "download", "classes": ["Handgun", "Shotgun"],
               "download": {"images_url": server.url, "retries": 0, "workers": 2}}
        report = prepare_openimages(tmp_path / "oi", cfg, csvs, progress=False)
        fetched = {r.path for r in server.requests if r.status == 200}
    assert report["test"] == {"images": len(kept), "failed": 1, "failed_ids": [kept[0]]}
    assert not any(f"/test/{image_id}.jpg" in fetched for image_id in rifle), "images of other classes stay upstream"
    test = OpenImagesDataset(tmp_path / "oi", "test", ["Handgun", "Shotgun"])
    assert test.missing_images == 1 and len(test) == len(kept) - 1
