"""Deep Compression on more networks (dlperf.compress.networks, compress.deep.networks): layer-wise pruning at Han et
al.'s rates, ImageNet's validation layout and its preprocessing, the networks' table, the claims they make
comparable, and the workflow's plan and refusals. VGG-16 at its real size runs in the rehearsal (test_rehearsal)."""
from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch
import torchvision
from PIL import Image
from torch import nn

from conftest import job_counts, load_config, snakemake, write_config
from dlperf.compress import networks
from dlperf.compress import plan as compress_plan
from dlperf.compress.pruning import make_permanent, masks, prune_layers, prunable_layers, sparsity_table
from dlperf.compress.stages import networks_frame, stages_frame, stages_table
from dlperf.data import mirror_files
from dlperf.data.errors import DatasetFormatError
from dlperf.report.claims import NOT_COMPARABLE, PASS, check_claim


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 10))


def test_layer_wise_pruning_keeps_each_layers_own_share_of_its_largest_weights():
    model = small_net()
    conv, linear = model[0].weight.detach().clone(), model[3].weight.detach().clone()
    prune_layers(model, {"0": 0.5, "3": 0.1})
    kept = masks(model)
    assert int(kept["0"].sum()) == round(0.5 * conv.numel()) and int(kept["3"].sum()) == round(0.1 * linear.numel())
    smallest_kept = linear.abs()[kept["3"].bool()].min()
    assert smallest_kept >= linear.abs()[~kept["3"].bool()].max()   # by magnitude, within the layer
    make_permanent(model)
    table = sparsity_table(model).set_index("layer")
    assert table.loc["0", "sparsity"] == pytest.approx(0.5) and table.loc["3", "sparsity"] == pytest.approx(0.9)


@pytest.mark.parametrize("keep, message", [
    ({"0": 0.5}, "missing ['3']"),
    ({"0": 0.5, "3": 0.5, "classifier.6": 0.2}, "not layers ['classifier.6']"),
    ({"0": 0.5, "3": 0.0}, "layer 3: kept fraction 0.0 outside (0, 1]"),
])
def test_layer_wise_pruning_refuses_fractions_that_do_not_name_exactly_the_layers(keep, message):
    with pytest.raises(ValueError) as error:
        prune_layers(small_net(), keep)
    assert message in str(error.value)


@pytest.mark.parametrize("arch", ["alexnet", "vgg16"])
def test_the_full_configs_rates_name_every_layer_and_keep_han_et_als_share_of_the_weights(arch):
    """Han et al. 2016: AlexNet keeps 11 % of its weights (9x), VGG-16 7.5 % (13x), by Tables 3 and 4's per-layer
    rates; the rates as printed, in whole percent, give 11.2 % and 7.6 %."""
    keep = load_config("full.yaml")["compress"]["deep"]["imagenet"]["models"][arch]["keep"]
    layers = dict(prunable_layers(networks.IMAGENET_ARCHS[arch]()))
    assert set(keep) == set(layers)
    kept = sum(keep[name] * module.weight.numel() for name, module in layers.items())
    total = sum(module.weight.numel() for module in layers.values())
    assert kept / total == pytest.approx({"alexnet": 0.11, "vgg16": 0.075}[arch], abs=0.003)
    assert set(networks.IMAGENET_ARCHS) == set(compress_plan.IMAGENET_NETWORKS)   # the plan imports no torch


@pytest.fixture(scope="module")
def imagenet_root(tmp_path_factory):
    """The mirror's copy of ImageNet's validation layout: 1,000 wnid folders of one small JPEG each."""
    return mirror_files.imagenet_val(tmp_path_factory.mktemp("imagenet"))


def test_the_validation_split_is_seeded_disjoint_and_takes_every_other_image_when_unbounded(imagenet_root):
    retrain, scored = networks.validation_split(imagenet_root, 10, 20, seed=0)
    again, _ = networks.validation_split(imagenet_root, 10, 20, seed=0)
    other, _ = networks.validation_split(imagenet_root, 10, 20, seed=1)
    assert retrain == again and retrain != other
    assert len(retrain) == 10 and len(scored) == 20 and not {p for p, _ in retrain} & {p for p, _ in scored}
    assert len(networks.validation_split(imagenet_root, 10, None, seed=0)[1]) == 990
    assert all(path.parent.name == f"n{label:08d}" for path, label in retrain + scored)   # sorted wnids are classes


def test_a_validation_set_without_its_thousand_class_folders_or_too_small_is_refused(imagenet_root, tmp_path):
    partial = tmp_path / "partial"
    for folder in sorted((imagenet_root / "val").iterdir())[:10]:
        (partial / "val" / folder.name).mkdir(parents=True)
        for image in folder.iterdir():
            (partial / "val" / folder.name / image.name).write_bytes(image.read_bytes())
    with pytest.raises(DatasetFormatError, match="10 class folders; ImageNet's validation set has 1000"):
        networks.validation_split(partial, 2, 2, seed=0)
    with pytest.raises(DatasetFormatError, match="1000 images, fewer than the 999 to re-train on and 2"):
        networks.validation_split(imagenet_root, 999, 2, seed=0)


def test_images_are_read_as_torchvision_evaluates_its_weights_shorter_side_then_centre_crop(tmp_path):
    """A 400 x 300 image: the shorter side to 256 gives 341 x 256, of which the centre 224 x 224 is kept; the centre
    marker survives where it was and the left edge's colour is cut away."""
    pixels = np.zeros((300, 400, 3), np.uint8)
    pixels[:, :40] = (255, 0, 0)                    # a red band at the left edge, outside the crop
    pixels[140:160, 190:210] = (0, 255, 0)          # a green square at the centre
    Image.fromarray(pixels).save(tmp_path / "a.png")
    image = networks.decode(tmp_path / "a.png", resize=256, crop=224)
    assert image.shape == (224, 224, 3)
    assert tuple(image[112, 112]) == (0, 255, 0) and image[:, :, 0].max() < 50


def test_weights_load_from_torchvisions_file_or_an_engine_checkpoint_and_a_wrong_file_is_named(tmp_path):
    net = {"name": "alexnet", "kind": "imagenet", "arch": "alexnet"}
    state = torchvision.models.alexnet().state_dict()
    torch.save(state, tmp_path / "alexnet.pth")
    torch.save({"model": state, "epoch": 1}, tmp_path / "checkpoint.pt")
    for path in (tmp_path / "alexnet.pth", tmp_path / "checkpoint.pt"):
        loaded = networks.load(net, path).state_dict()
        assert all(torch.equal(loaded[k], state[k]) for k in state)
    with pytest.raises(ValueError, match="alexnet.pth: not torchvision's vgg16"):
        networks.load({**net, "arch": "vgg16"}, tmp_path / "alexnet.pth")


def deep_config(**deep) -> dict:
    c = copy.deepcopy(load_config("full.yaml")["compress"])
    c["deep"].update(deep)
    return c


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.update(networks=["vgg16"]), "vgg16 needs ImageNet validation images, which cannot be downloaded"),
    (lambda d: (d.update(networks=["alexnet"]), d["imagenet"]["models"].pop("alexnet"), d["imagenet"].update(val="/x")),
     "alexnet needs compress.deep.imagenet.models.alexnet"),
    (lambda d: d.update(networks=["resnet20"]), "resnet20 is compress.arch, whose pipeline always runs"),
])
def test_a_network_the_pipeline_cannot_run_is_refused_naming_the_setting(edit, message):
    c = deep_config()
    edit(c["deep"])
    with pytest.raises(ValueError, match=message):
        compress_plan.check_deep_networks(c)


def stage_records(sparsity=0.9, top1=0.5):
    return [{"stage": s, "sparsity": sparsity, "bits": None if s == "pruned" else {"conv": 8, "linear": 5},
             "size_bytes": size, "ratio": 100 / size, "top1": top1, "dense_bytes": 100, "dense_top1": 0.7}
            for s, size in (("pruned", 20), ("shared", 8), ("huffman", 5))]


FORMULA = pd.DataFrame({"layer": ["a"], "kind": ["conv"], "weights": [10], "nonzero": [1], "index_bits": [8],
                        "gaps": [1], "gap_bits": [8], "codebook": [256], "dense_bits": [320], "pruned_bits": [40],
                        "shared_bits": [16], "huffman_bits": [10]})


def test_the_networks_table_holds_each_networks_stages_and_counts_connections_as_han_et_al_do(monkeypatch):
    monkeypatch.setattr("dlperf.compress.codec.formula_ratio", lambda formula, stage: 1.0)
    frames = {"resnet20": stages_frame(stage_records(0.9), FORMULA), "vgg16": stages_frame(stage_records(0.925), FORMULA)}
    table = networks_frame(frames)
    assert list(table.network) == ["resnet20"] * 4 + ["vgg16"] * 4
    vgg = table[table.network == "vgg16"].set_index("stage")
    assert vgg.loc["pruned", "connection_ratio"] == pytest.approx(1 / 0.075) and vgg.loc["dense", "connection_ratio"] == 1
    assert list(stages_table(table).columns)[0] == "network" and "network" not in stages_table(frames["vgg16"])


def claim(**overrides):
    base = {"id": "c", "claim": "c", "published": 49.0, "unit": "x", "check": "within", "tolerance": {"relative": 0.15},
            "source": "s", "protocol": "p", "comparable_when": {"scale": "full", "compress.deep.networks": "vgg16"},
            "result": {"file": "results/compress/deep/networks.csv", "row": {"network": "vgg16", "stage": "huffman"},
                       "column": "ratio", "reduce": "one", "factor": 1}}
    return {**base, **overrides}


@pytest.mark.parametrize("networks_set, status", [(["resnet56", "vgg16"], PASS), (["resnet56"], NOT_COMPARABLE)])
def test_a_vgg16_claim_is_compared_when_the_networks_list_holds_vgg16(networks_set, status):
    frame = pd.DataFrame({"network": ["vgg16", "resnet56"], "stage": ["huffman", "huffman"], "ratio": [47.0, 20.0]})
    if "vgg16" not in networks_set:
        frame = frame[frame.network != "vgg16"]
    row = check_claim(claim(), {"scale": "full", "compress.deep.networks": networks_set},
                      {"results/compress/deep/networks.csv": frame})
    assert row["status"] == status
    if status == NOT_COMPARABLE:
        assert "compress.deep.networks is ['resnet56'], the protocol needs 'vgg16'" in row["note"]


def test_the_full_config_runs_the_chain_on_its_networks_and_vgg16_once_given_the_validation_images(tmp_path):
    rc, text = snakemake("-n", "--configfile", "config/full.yaml", "--", "results/compress/deep/networks.csv",
                         timeout=300)
    assert rc == 0, text[-3000:]
    counts = job_counts(text)
    assert counts["compress_deep_network_huffman"] == 2   # resnet32 and resnet56, each pruned to 0.9 as resnet20 is
    assert counts["compress_prune"] == 3
    assert "compress_deep_prune" not in counts
    val = tmp_path / "imagenet"
    (val / "val").mkdir(parents=True)
    extra = write_config(tmp_path / "vgg.yaml", {"compress": {"deep": {"networks": ["vgg16"],
                                                                       "imagenet": {"val": str(val)}}}})
    rc, text = snakemake("-n", "--configfile", "config/full.yaml", str(extra), "--",
                         "results/compress/deep/networks.csv", timeout=300)
    assert rc == 0, text[-3000:]
    counts = job_counts(text)
    assert counts["compress_deep_prune"] == 1 and counts["compress_deep_network_huffman"] == 1
    assert "resources/downloads/vgg16-397923af.pth" in text   # torchvision's weights, verified on download


def test_vgg16_without_the_validation_images_is_refused_before_any_job(tmp_path):
    extra = write_config(tmp_path / "vgg.yaml", {"compress": {"deep": {"networks": ["vgg16"]}}})
    rc, text = snakemake("-n", "--configfile", "config/full.yaml", str(extra), timeout=300)
    assert rc != 0 and "set compress.deep.imagenet.val to a local ImageNet root" in text, text[-2000:]
    assert "Job stats" not in text
