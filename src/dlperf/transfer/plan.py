"""The transfer study's plan, from its config section: which backbones are pretrained here, which runs exist, the
settings each job reads, and the cross-references the schema cannot check. Pure functions of the config."""
from __future__ import annotations

from typing import Mapping

from dlperf.models.archs import MIN_IMAGE_SIZE
from dlperf.workflow import lr_label

RUNS = "results/transfer/runs/{mode}-{backbone}-lr{lr}"
PRETRAIN = "results/transfer/pretrain/{backbone}"


def check(t: Mapping, imagefolders: list[str]) -> None:
    """Backbone names, datasets (``imagefolders``: the ImageFolder datasets under `data`) and image sizes."""
    named = {"transfer.backbone": [t["backbone"]],
             "transfer.backbone_comparison.backbones": t["backbone_comparison"]["backbones"]}
    for key, names in named.items():
        unknown = [n for n in names if n not in t["backbones"]]
        if unknown:
            raise ValueError(f"config {key}: unknown backbone(s) {', '.join(map(repr, unknown))}; "
                             f"declared under transfer.backbones: {', '.join(t['backbones'])}")
    datasets = {"transfer.dataset": t["dataset"]}
    if pretrained(t):
        if "dataset" not in t.get("pretrain", {}) or "train" not in t["pretrain"]:
            raise ValueError("config transfer.pretrain: backbones with `weights: pretrain` need "
                             "transfer.pretrain.dataset and transfer.pretrain.train")
        datasets["transfer.pretrain.dataset"] = t["pretrain"]["dataset"]
    for key, name in datasets.items():
        if name not in imagefolders:
            raise ValueError(f"config {key}: {name!r} is not an ImageFolder dataset under data "
                             f"(have: {', '.join(imagefolders)})")
    for name, b in t["backbones"].items():
        if image_size(t, name) < MIN_IMAGE_SIZE[b["arch"]]:
            raise ValueError(f"config transfer.backbones.{name}: {b['arch']} needs image_size >= "
                             f"{MIN_IMAGE_SIZE[b['arch']]}, got {image_size(t, name)}")


def pretrained(t: Mapping) -> list[str]:
    """Backbones whose weights are pretrained in the DAG (`weights: pretrain`)."""
    return [b for b, entry in t["backbones"].items() if entry["weights"] == "pretrain"]


def image_size(t: Mapping, backbone: str) -> int:
    return t["backbones"][backbone].get("image_size") or t["image_size"]


WIDTH_KEYS = {"resnet": "width", "mobilenet": "width_mult"}   # the width setting an architecture family reads


def backbone_entry(t: Mapping, backbone: str) -> dict:
    """A backbone's entry as its jobs read it: the architecture, the width setting that architecture has (none for
    Inception-v3), and downloaded weights by their checksum, not their URL (the file is an input; a mirror's URL
    must not redo the work). The image size is a setting of its own (:func:`image_size`)."""
    entry = t["backbones"][backbone]
    trimmed = {"arch": entry["arch"]}
    trimmed |= {key: entry[key] for family, key in WIDTH_KEYS.items() if entry["arch"].startswith(family)}
    weights = entry["weights"]
    trimmed["weights"] = weights if weights == "pretrain" else {
        k: v for k, v in weights.items() if k in ("sha256", "sha256_prefix", "md5") and v}
    return trimmed


def weights(t: Mapping, backbone: str) -> str:
    """The weights a backbone starts from: pretrained in the DAG, or the verified ImageNet file."""
    if t["backbones"][backbone]["weights"] == "pretrain":
        return f"resources/weights/pretrained/{backbone}.pt"
    return f"resources/weights/imagenet/{backbone}.pth"


def run_lr(t: Mapping, mode: str, label: str) -> float:
    """The configured learning rate of a run (the exact float, not its label)."""
    lrs = t["finetune"]["lrs"] if mode == "finetune" else t["feature_extractor"]["lrs"] + t["backbone_comparison"]["lrs"]
    for lr in lrs:
        if lr_label(lr) == label:
            return lr
    raise ValueError(f"no {mode} run at lr {label} in config transfer")


def runs(t: Mapping, mode: str, backbones=None, lrs=None) -> list[str]:
    backbones = backbones or [t["backbone"]]
    lrs = lrs or (t["finetune"]["lrs"] if mode == "finetune" else t["feature_extractor"]["lrs"])
    return list(dict.fromkeys(RUNS.format(mode=mode, backbone=b, lr=lr_label(lr)) for b in backbones for lr in lrs))


def comparison_runs(t: Mapping) -> list[str]:
    c = t["backbone_comparison"]
    return runs(t, "feature", c["backbones"], c["lrs"]) if c["backbones"] and c["lrs"] else []


def trained_runs(t: Mapping) -> list[str]:
    """Runs that train a whole network with the engine (their percent of peak joins the FLOPs study's table)."""
    return runs(t, "finetune") + [PRETRAIN.format(backbone=b) for b in pretrained(t)]
