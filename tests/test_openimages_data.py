"""Open Images V4 files: class descriptions, box filtering, subsets, image downloads, the dataset, synthesis."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from http_fixture import serve_directory
from PIL import Image

from dlperf.data.errors import DatasetFormatError
from dlperf.data.openimages import (
    BOX_COLUMNS,
    OpenImagesDataset,
    download_images,
    filter_annotations,
    read_class_descriptions,
    subset_csv_name,
    write_subset,
)
from dlperf.data.synthetic_detection import synthesize_openimages, synthesize_voc
from dlperf.data.voc import VOCDataset

# Real V4 label ids of classes we do not choose, plus made-up ids for the two we do; one display name
# holds a comma, so the file must quote it.
DESCRIPTIONS = """\
/m/011k07,Tortoise
/m/synth_000,Handgun
/m/synth_001,Shotgun
/m/0120dh,"Sea turtle, green"
"""
HEADER = ",".join(BOX_COLUMNS)
# Image 0a has one Handgun, 0b one Shotgun (the only Shotgun) and a Tortoise, 0c two Handguns.
BOXES = f"""\
{HEADER}
000000000000000a,xclick,/m/synth_000,1,0.25,0.75,0.5,1.0,0,0,0,0,0
000000000000000b,xclick,/m/011k07,1,0.1,0.2,0.1,0.2,0,0,0,0,0
000000000000000b,xclick,/m/synth_001,1,0.0,0.5,0.25,0.75,1,0,0,0,0
000000000000000c,activemil,/m/synth_000,1,0.5,1.0,0.0,0.5,0,1,0,0,0
000000000000000c,xclick,/m/synth_000,1,0.0,0.25,0.0,0.25,0,0,0,0,0
"""
WIDTH, HEIGHT = 40, 20  # not square, so a swapped scale shows


def write_root(root: Path, split: str = "train", images=("0a", "0b", "0c")) -> Path:
    (root / split).mkdir(parents=True, exist_ok=True)
    (root / "class-descriptions-boxable.csv").write_text(DESCRIPTIONS)
    (root / f"{split}-annotations-bbox.csv").write_text(BOXES)
    for suffix in images:
        Image.new("RGB", (WIDTH, HEIGHT), (200, 30, 30)).save(root / split / f"00000000000000{suffix}.jpg")
    return root


def test_class_descriptions_map_display_names_to_label_ids_and_unquote_commas(tmp_path):
    path = tmp_path / "class-descriptions-boxable.csv"
    path.write_text(DESCRIPTIONS)
    assert read_class_descriptions(path) == {
        "Tortoise": "/m/011k07", "Handgun": "/m/synth_000", "Shotgun": "/m/synth_001",
        "Sea turtle, green": "/m/0120dh",
    }


def test_class_descriptions_with_a_name_given_twice_raise_naming_it(tmp_path):
    path = tmp_path / "class-descriptions-boxable.csv"
    path.write_text(DESCRIPTIONS + "/m/0abc,Handgun\n")
    with pytest.raises(DatasetFormatError, match=r"\['Handgun'\]"):
        read_class_descriptions(path)


def test_filter_annotations_keeps_only_the_chosen_classes_in_file_order_with_id_and_class_name(tmp_path):
    root = write_root(tmp_path)
    descriptions = read_class_descriptions(root / "class-descriptions-boxable.csv")
    subset = filter_annotations(root / "train-annotations-bbox.csv", ["Handgun", "Shotgun"], descriptions)
    assert list(subset.columns) == [*BOX_COLUMNS, "id", "ClassName"]
    assert list(subset["ImageID"].str[-2:]) == ["0a", "0b", "0c", "0c"]
    assert list(subset["ClassName"]) == ["Handgun", "Shotgun", "Handgun", "Handgun"]
    assert (subset["id"] == subset["LabelName"]).all()
    assert list(subset["XMin"]) == [0.25, 0.0, 0.5, 0.0]


def test_filter_annotations_of_an_unknown_class_or_a_file_without_v4_columns_raises(tmp_path):
    root = write_root(tmp_path)
    descriptions = read_class_descriptions(root / "class-descriptions-boxable.csv")
    with pytest.raises(DatasetFormatError, match=r"\['Rifle'\] are not in the class descriptions"):
        filter_annotations(root / "train-annotations-bbox.csv", ["Handgun", "Rifle"], descriptions)
    broken = tmp_path / "broken.csv"
    broken.write_text("ImageID,LabelName,XMin\n0a,/m/synth_000,0.1\n")
    with pytest.raises(DatasetFormatError, match=r"broken\.csv: missing columns \['Source'"):
        filter_annotations(broken, ["Handgun"], descriptions)


def test_write_subset_writes_pytorch_ssds_sub_file(tmp_path):
    root = write_root(tmp_path)
    returned = write_subset(root, "train", ["Handgun", "Shotgun"])
    written = pd.read_csv(root / subset_csv_name("train"), dtype={"ImageID": str})
    assert (root / "sub-train-annotations-bbox.csv").is_file()
    pd.testing.assert_frame_equal(written, returned, check_dtype=False)


def test_dataset_scales_boxes_to_pixels_and_numbers_classes_in_the_given_order(tmp_path):
    root = write_root(tmp_path)
    write_subset(root, "train", ["Shotgun", "Handgun"])
    dataset = OpenImagesDataset(root, "train", ["Shotgun", "Handgun"])
    assert dataset.class_names == ("BACKGROUND", "Shotgun", "Handgun")
    assert dataset.ids == ["000000000000000a", "000000000000000b", "000000000000000c"]

    image, boxes, labels = dataset[0]  # an image with a single box
    assert image.shape == (HEIGHT, WIDTH, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(boxes, np.array([[10, 10, 30, 20]], np.float32))
    np.testing.assert_array_equal(labels, [2])
    _, boxes, labels = dataset[1]  # the only image of Shotgun, its Tortoise filtered out
    np.testing.assert_array_equal(boxes, [[0, 5, 20, 15]])
    np.testing.assert_array_equal(labels, [1])
    image_id, (boxes, labels, difficult) = dataset.get_annotation(2)
    assert image_id == "000000000000000c"
    np.testing.assert_array_equal(boxes, [[20, 0, 40, 10], [0, 0, 10, 5]])
    np.testing.assert_array_equal(labels, [2, 2])
    np.testing.assert_array_equal(difficult, np.zeros(2, np.uint8))


def test_dataset_counts_and_skips_an_image_missing_from_disk(tmp_path, caplog):
    root = write_root(tmp_path, images=("0a", "0c"))
    write_subset(root, "train", ["Handgun", "Shotgun"])
    with caplog.at_level(logging.WARNING, logger="dlperf.data.openimages"):
        dataset = OpenImagesDataset(root, "train", ["Handgun", "Shotgun"])
    assert dataset.missing_images == 1 and len(dataset) == 2
    assert dataset.ids == ["000000000000000a", "000000000000000c"]
    assert "000000000000000b" in caplog.text


def test_dataset_drops_empty_and_out_of_image_boxes_and_counts_them(tmp_path):
    root = write_root(tmp_path)
    subset = write_subset(root, "train", ["Handgun", "Shotgun"])
    subset.loc[0, "XMax"] = subset.loc[0, "XMin"]  # image 0a's only box: empty, so the image goes too
    subset.loc[2, "YMax"] = 1.5
    subset.to_csv(root / subset_csv_name("train"), index=False)
    dataset = OpenImagesDataset(root, "train", ["Handgun", "Shotgun"])
    assert dataset.dropped_boxes == 2
    assert dataset.ids == ["000000000000000b", "000000000000000c"]
    np.testing.assert_array_equal(dataset[1][1], [[0, 0, 10, 5]])


def test_dataset_refuses_a_subset_made_for_other_classes(tmp_path):
    root = write_root(tmp_path)
    write_subset(root, "train", ["Handgun", "Shotgun"])
    with pytest.raises(DatasetFormatError, match=r"sub-train-annotations-bbox\.csv: classes \['Shotgun'\]"):
        OpenImagesDataset(root, "train", ["Handgun"])


def test_download_images_fetches_from_a_loopback_server_and_counts_a_missing_file_as_failed(tmp_path):
    served = write_root(tmp_path / "bucket", images=("0a", "0c"))
    ids = ["000000000000000a", "000000000000000b", "000000000000000c", "000000000000000a"]
    dest = tmp_path / "open_images"
    with serve_directory(served) as server:
        ok, failed = download_images(ids, "train", server.url + "/", dest, retries=1, workers=2, progress=False)
        assert ok == ["000000000000000a", "000000000000000c"] and failed == ["000000000000000b"]
        for name in ("000000000000000a.jpg", "000000000000000c.jpg"):
            assert (dest / "train" / name).read_bytes() == (served / "train" / name).read_bytes()
        assert not (dest / "train" / "000000000000000b.jpg").exists()
        assert len(server.requests) == 3  # duplicate ids are fetched once

        again = download_images(ids[:1], "train", server.url, dest, retries=1, workers=1, progress=False)
        assert again == (["000000000000000a"], []) and len(server.requests) == 3  # present: no request


def test_synthetic_open_images_is_deterministic_and_read_back_with_the_expected_counts(tmp_path):
    options = dict(n_train=10, n_validation=3, n_test=5, size=48, seed=2)
    first = synthesize_openimages(tmp_path / "a", **options)
    second = synthesize_openimages(tmp_path / "b", **options)
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert len(files) == 1 + 3 + 18
    assert all((first / f).read_bytes() == (second / f).read_bytes() for f in files)

    descriptions = read_class_descriptions(first / "class-descriptions-boxable.csv")
    assert descriptions == {"Handgun": "/m/synth_000", "Shotgun": "/m/synth_001"}
    for split, count in (("train", 10), ("validation", 3), ("test", 5)):
        boxes = pd.read_csv(first / f"{split}-annotations-bbox.csv", dtype={"ImageID": str})
        assert list(boxes.columns) == list(BOX_COLUMNS)
        assert list(boxes["ImageID"]) == sorted(boxes["ImageID"])
        assert boxes["ImageID"].str.fullmatch("[0-9a-f]{16}").all()
        write_subset(first, split, ["Handgun", "Shotgun"])
        dataset = OpenImagesDataset(first, split, ["Handgun", "Shotgun"])
        assert len(dataset) == count and dataset.missing_images == dataset.dropped_boxes == 0
        assert sum(len(dataset.get_annotation(i)[1][0]) for i in range(count)) == len(boxes)


def test_synthetic_open_images_objects_are_nearer_their_own_class_than_any_voc_class(tmp_path):
    """The fine-tuning task is new to a VOC-pretrained detector: its classes are not VOC classes again."""
    voc = VOCDataset(synthesize_voc(tmp_path / "voc", n_trainval=80, n_test=1, size=96, seed=0), "trainval")
    root = synthesize_openimages(tmp_path / "oi", n_train=40, n_validation=1, n_test=1, size=96, seed=0)
    write_subset(root, "train", ["Handgun", "Shotgun"])
    open_images = OpenImagesDataset(root, "train", ["Handgun", "Shotgun"])

    def crops(dataset, label_offset):
        pixels, labels = [], []
        for image, boxes, classes in (dataset[i] for i in range(len(dataset))):
            for (x1, y1, x2, y2), c in zip(boxes.astype(int), classes):
                crop = Image.fromarray(image[y1:y2, x1:x2]).resize((12, 12))
                pixels.append(np.asarray(crop, np.float32).ravel())
                labels.append(c + label_offset)
        return pixels, labels

    voc_x, voc_y = crops(voc, 0)
    oi_x, oi_y = crops(open_images, 20)
    x, y = np.array(voc_x + oi_x), np.array(voc_y + oi_y)
    classes = np.unique(y)
    means = np.stack([x[y == c].mean(0) for c in classes])
    nearest = classes[np.argmin(((np.array(oi_x)[:, None] - means[None]) ** 2).sum(-1), axis=1)]
    assert (nearest > 20).mean() > 0.9
