"""PASCAL VOC2007 on disk: annotation parsing, split files, pytorch-ssd's VOCDataset, label files, synthesis."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dlperf.data.errors import DatasetFormatError
from dlperf.data.synthetic_detection import synthesize_voc
from dlperf.data.voc import (
    VOC_CLASSES,
    VOC_DIR,
    VOCDataset,
    check_label_count,
    parse_annotation,
    read_label_file,
    read_split,
    write_label_file,
)

# A 200x120 image holding a dog, a difficult person, a car spelled " Car " (names are lower-cased and
# stripped), an empty box (xmin = xmax) and a box reaching past the right edge (xmax > width).
ANNOTATION_XML = """\
<annotation>
  <folder>VOC2007</folder>
  <filename>{image_id}.jpg</filename>
  <size><width>200</width><height>120</height><depth>3</depth></size>
  <object><name>dog</name><pose>Left</pose><truncated>0</truncated><difficult>0</difficult>
    <bndbox><xmin>11</xmin><ymin>21</ymin><xmax>101</xmax><ymax>81</ymax></bndbox></object>
  <object><name>person</name><difficult>1</difficult>
    <bndbox><xmin>1</xmin><ymin>1</ymin><xmax>200</xmax><ymax>120</ymax></bndbox></object>
  <object><name>bottle</name><difficult>0</difficult>
    <bndbox><xmin>50</xmin><ymin>10</ymin><xmax>50</xmax><ymax>30</ymax></bndbox></object>
  <object><name>cat</name><difficult>0</difficult>
    <bndbox><xmin>150</xmin><ymin>10</ymin><xmax>201</xmax><ymax>30</ymax></bndbox></object>
  <object><name> Car </name>
    <bndbox><xmin>121</xmin><ymin>61</ymin><xmax>161</xmax><ymax>101</ymax></bndbox></object>
</annotation>
"""
COLOUR = (40, 160, 220)  # a flat image survives JPEG within a grey level or two


def label(name: str) -> int:
    return VOC_CLASSES.index(name) + 1


def write_voc(root: Path, splits: dict[str, list[str]], xml: str = ANNOTATION_XML) -> Path:
    """A VOC2007 tree whose every image is ``xml`` over a flat 200x120 JPEG."""
    for folder in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for split, ids in splits.items():
        (root / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
        for image_id in ids:
            (root / "Annotations" / f"{image_id}.xml").write_text(xml.format(image_id=image_id))
            Image.new("RGB", (200, 120), COLOUR).save(root / "JPEGImages" / f"{image_id}.jpg", quality=95)
    return root


def test_voc_classes_are_pytorch_ssds_twenty_in_its_order():
    assert len(VOC_CLASSES) == 20
    assert VOC_CLASSES[:3] == ("aeroplane", "bicycle", "bird") and VOC_CLASSES[-1] == "tvmonitor"
    assert VOCDataset.class_names == ("BACKGROUND", *VOC_CLASSES)


def test_parse_annotation_subtracts_one_keeps_difficult_and_drops_bad_boxes_with_a_warning(tmp_path, caplog):
    xml_path = tmp_path / "000005.xml"
    xml_path.write_text(ANNOTATION_XML.format(image_id="000005"))
    with caplog.at_level(logging.WARNING, logger="dlperf.data.voc"):
        annotation = parse_annotation(xml_path)

    assert (annotation.image_id, annotation.width, annotation.height) == ("000005", 200, 120)
    np.testing.assert_array_equal(
        annotation.boxes, np.array([[10, 20, 100, 80], [0, 0, 199, 119], [120, 60, 160, 100]], np.float32)
    )
    assert annotation.boxes.dtype == np.float32
    np.testing.assert_array_equal(annotation.labels, [label("dog"), label("person"), label("car")])
    assert annotation.labels.dtype == np.int64
    np.testing.assert_array_equal(annotation.difficult, [False, True, False])
    assert annotation.dropped_boxes == 2
    assert str(xml_path) in caplog.text and "dropped 2" in caplog.text
    assert "bottle" in caplog.text and "cat" in caplog.text


def test_parse_annotation_of_an_image_without_objects_gives_empty_arrays(tmp_path):
    xml_path = tmp_path / "000001.xml"
    xml_path.write_text("<annotation><size><width>8</width><height>6</height></size></annotation>")
    annotation = parse_annotation(xml_path)
    assert annotation.boxes.shape == (0, 4) and annotation.labels.shape == (0,)
    assert annotation.dropped_boxes == 0


def test_unknown_class_raises_naming_the_file_and_the_class(tmp_path):
    xml_path = tmp_path / "000007.xml"
    xml_path.write_text(ANNOTATION_XML.replace("<name>dog</name>", "<name>giraffe</name>"))
    with pytest.raises(DatasetFormatError, match=r"000007\.xml.*'giraffe'"):
        parse_annotation(xml_path)


def test_read_split_returns_ids_in_file_order_skipping_blank_lines(tmp_path):
    (tmp_path / "ImageSets" / "Main").mkdir(parents=True)
    (tmp_path / "ImageSets" / "Main" / "trainval.txt").write_text("000012\n000005\n\n000009\n")
    assert read_split(tmp_path, "trainval") == ["000012", "000005", "000009"]


def test_read_split_of_a_missing_split_raises_naming_the_file(tmp_path):
    with pytest.raises(DatasetFormatError, match=r"ImageSets/Main/test\.txt.*'test'"):
        read_split(tmp_path, "test")


def test_dataset_drops_difficult_objects_unless_asked_to_keep_them(tmp_path):
    root = write_voc(tmp_path, {"trainval": ["000002", "000005"]})

    image, boxes, labels = VOCDataset(root, "trainval")[1]
    assert image.shape == (120, 200, 3) and image.dtype == np.uint8
    assert np.abs(image.astype(int) - COLOUR).max() <= 3
    np.testing.assert_array_equal(boxes, [[10, 20, 100, 80], [120, 60, 160, 100]])
    np.testing.assert_array_equal(labels, [label("dog"), label("car")])

    _, boxes, labels = VOCDataset(root, "trainval", keep_difficult=True)[1]
    np.testing.assert_array_equal(boxes, [[10, 20, 100, 80], [0, 0, 199, 119], [120, 60, 160, 100]])
    np.testing.assert_array_equal(labels, [label("dog"), label("person"), label("car")])


def test_dataset_counts_dropped_boxes_and_gives_evaluation_every_object_with_its_flag(tmp_path):
    dataset = VOCDataset(write_voc(tmp_path, {"test": ["000003", "000004"]}), "test")
    assert len(dataset) == 2 and dataset.ids == ["000003", "000004"]
    assert dataset.dropped_boxes == 4
    image_id, (boxes, labels, difficult) = dataset.get_annotation(0)
    assert image_id == "000003" and len(boxes) == 3
    np.testing.assert_array_equal(difficult, np.array([0, 1, 0], np.uint8))


def test_dataset_applies_the_transform_to_copies_so_editing_in_place_leaves_the_dataset_intact(tmp_path):
    def shift(image, boxes, labels):
        boxes += 5
        return image, boxes, labels

    dataset = VOCDataset(write_voc(tmp_path, {"trainval": ["000001"]}), "trainval", transform=shift)
    dataset[0]
    _, boxes, _ = dataset[0]
    np.testing.assert_array_equal(boxes, [[15, 25, 105, 85], [125, 65, 165, 105]])
    np.testing.assert_array_equal(dataset.get_annotation(0)[1][0][0], [10, 20, 100, 80])


def test_dataset_with_a_missing_image_raises_naming_it(tmp_path):
    root = write_voc(tmp_path, {"trainval": ["000001", "000002"]})
    (root / "JPEGImages" / "000002.jpg").unlink()
    with pytest.raises(DatasetFormatError, match=r"JPEGImages/000002\.jpg.*missing"):
        VOCDataset(root, "trainval")


def test_dataset_with_an_unknown_class_raises_naming_the_file_and_class(tmp_path):
    xml = ANNOTATION_XML.replace("<name>dog</name>", "<name>zebra</name>")
    root = write_voc(tmp_path, {"trainval": ["000001"]}, xml)
    with pytest.raises(DatasetFormatError, match=r"Annotations/000001\.xml.*'zebra'"):
        VOCDataset(root, "trainval")


def test_label_file_round_trips_with_background_first(tmp_path):
    path = write_label_file(tmp_path / "voc-model-labels.txt", VOCDataset.class_names)
    assert path.read_text().splitlines()[:2] == ["BACKGROUND", "aeroplane"]
    assert read_label_file(path) == ["BACKGROUND", *VOC_CLASSES]


def test_label_file_reader_ignores_blank_lines_and_refuses_a_missing_background(tmp_path):
    path = tmp_path / "open-images-model-labels.txt"
    path.write_text("BACKGROUND\nHandgun\nShotgun\n\n")
    assert read_label_file(path) == ["BACKGROUND", "Handgun", "Shotgun"]
    path.write_text("Handgun\nShotgun\n")
    with pytest.raises(DatasetFormatError, match="not 'BACKGROUND'"):
        read_label_file(path)
    with pytest.raises(ValueError, match="must start with 'BACKGROUND'"):
        write_label_file(path, ["Handgun", "Shotgun"])


def test_label_count_mismatch_names_both_counts():
    check_label_count(["BACKGROUND", *VOC_CLASSES], 21)
    with pytest.raises(DatasetFormatError, match=r"lists 20 classes.*predict 21"):
        check_label_count(list(VOC_CLASSES), 21)


def test_synthetic_voc_is_deterministic_and_read_back_with_the_expected_counts(tmp_path):
    first = synthesize_voc(tmp_path / "a", n_trainval=12, n_test=6, size=64, seed=5, difficult_rate=0.3)
    second = synthesize_voc(tmp_path / "b", n_trainval=12, n_test=6, size=64, seed=5, difficult_rate=0.3)
    assert first == tmp_path / "a" / VOC_DIR
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert len(files) == 2 * 18 + 2
    assert all((first / f).read_bytes() == (second / f).read_bytes() for f in files)

    trainval, test = VOCDataset(first, "trainval", keep_difficult=True), VOCDataset(first, "test")
    assert len(trainval) == 12 and len(test) == 6
    assert set(trainval.ids).isdisjoint(test.ids)
    assert trainval.dropped_boxes == test.dropped_boxes == 0
    image, boxes, labels = trainval[0]
    assert image.shape == (64, 64, 3)
    assert len(boxes) >= 1 and ((boxes >= 0) & (boxes <= 63)).all()
    assert ((labels >= 1) & (labels <= 20)).all()
    difficult = np.concatenate([trainval.get_annotation(i)[1][2] for i in range(len(trainval))])
    assert 0 < difficult.sum() < len(difficult)


def test_synthetic_voc_objects_are_recognisable_by_a_nearest_class_mean_on_their_crops(tmp_path):
    root = synthesize_voc(tmp_path, n_trainval=150, n_test=60, size=96, seed=3)

    def crops(split):
        dataset = VOCDataset(root, split)
        pixels, labels = [], []
        for image, boxes, classes in (dataset[i] for i in range(len(dataset))):
            for (x1, y1, x2, y2), c in zip(boxes.astype(int), classes):
                crop = Image.fromarray(image[y1:y2 + 1, x1:x2 + 1]).resize((12, 12))
                pixels.append(np.asarray(crop, np.float32).ravel())
                labels.append(c)
        return np.array(pixels), np.array(labels)

    train_x, train_y = crops("trainval")
    test_x, test_y = crops("test")
    means = np.stack([train_x[train_y == c].mean(0) for c in range(1, 21)])
    predicted = 1 + np.argmin(((test_x[:, None] - means[None]) ** 2).sum(-1), axis=1)
    assert (predicted == test_y).mean() > 0.8  # chance is 0.05
