"""The compress study's plan, from its config section: its pruning and distillation runs and what each reads."""
from __future__ import annotations

from pathlib import PurePosixPath
from typing import Mapping

from dlperf.optimus import plan as optimus_plan

PRUNE_RUNS = "results/compress/prune/{arch}-{device}-s{seed}-sp{sparsity}"
DEEP = "results/compress/deep"   # Deep Compression's stage files, one rule each
QAT_RUNS = "results/compress/qat/runs/{arch}-{device}-s{seed}-{variant}"
DISTILL_RUNS = "results/compress/distill/{arch}-{mode}-{device}-s{seed}"
MODES = ("labels", "kd")  # a distillation student trained on labels only, and on soft targets
# The classifier's quantization settings; the SSD's add its calibration size and operator types.
QUANTIZE_KEYS = ("format", "activation_type", "weight_type", "per_channel", "reduce_range", "calibrate_method",
                 "dynamic_weight_type")


def sparsity_label(sparsity: float) -> str:
    """0.5 -> '0.5': a sparsity as it appears in run names."""
    return f"{sparsity:g}"


def sparsities(c: Mapping) -> list[float]:
    """Every pruned model trained: the pruning curve's, and the one Deep Compression compresses."""
    return sorted({*c["prune"]["sparsities"], c["deep"]["sparsity"]})


def prune_runs(c: Mapping) -> list[str]:
    return [prune_run(c, s) for s in sparsities(c)]


def prune_run(c: Mapping, sparsity: float) -> str:
    return PRUNE_RUNS.format(arch=c["arch"], device=c["device"], seed=c["seed"], sparsity=sparsity_label(sparsity))


def distill_runs(c: Mapping) -> list[str]:
    return [DISTILL_RUNS.format(arch=c["distill"]["student"], mode=mode, device=c["device"], seed=c["seed"])
            for mode in MODES]


def soft_targets(c: Mapping, mode: str) -> dict | None:
    """What a student learns from besides the labels: the teacher's soft targets, in mode kd only."""
    d = c["distill"]
    return {k: d[k] for k in ("teacher", "temperature", "alpha")} if mode == "kd" else None


def quantize(c: Mapping, *extra: str) -> dict:
    """The quantization settings a job reads: the shared ones and ``extra`` keys."""
    q = c["quantize"]
    return {k: q[k] for k in (*QUANTIZE_KEYS, *extra)}


def qat_variants(c: Mapping) -> dict[str, dict]:
    """Quantization-aware training's runs, by name: INT8 weights and activations (beside static PTQ), and weight-only
    at ``qat.weight_only_bits`` (beside weight-only PTQ at the same width)."""
    bits = c["qat"]["weight_only_bits"]
    return {"int8": {"weight_bits": 8, "activation_bits": 8}, f"int{bits}w": {"weight_bits": bits, "activation_bits": None}}


def qat_runs(c: Mapping) -> list[str]:
    return [QAT_RUNS.format(arch=c["arch"], device=c["device"], seed=c["seed"], variant=v) for v in qat_variants(c)]


IMAGENET_NETWORKS = ("alexnet", "vgg16")   # torchvision's ImageNet classifiers (dlperf.compress.networks)


def deep_networks(c: Mapping) -> list[str]:
    """The networks Deep Compression runs on besides ``compress.arch`` (results/compress/deep/<network>/)."""
    return list(c["deep"]["networks"])


def check_deep_networks(c: Mapping) -> None:
    """A ValueError, naming the setting, for a network the pipeline cannot run: an ImageNet one without its model
    entry or without the validation images, which no config can download; or ``compress.arch`` itself."""
    imagenet = c["deep"]["imagenet"]
    for name in deep_networks(c):
        if name == c["arch"]:
            raise ValueError(f"config compress.deep.networks: {name} is compress.arch, whose pipeline always runs "
                             "(results/compress/deep/); list only other networks")
        if name in IMAGENET_NETWORKS:
            if name not in imagenet["models"]:
                raise ValueError(f"config compress.deep.networks: {name} needs compress.deep.imagenet.models.{name} "
                                 "(its weights and the fraction of each layer's weights it keeps)")
            if not imagenet["val"]:
                raise ValueError(f"config compress.deep.networks: {name} needs ImageNet validation images, which "
                                 "cannot be downloaded: set compress.deep.imagenet.val to a local ImageNet root "
                                 "holding val/<wnid>/*.JPEG (the 1,000 class folders)")


def deep_network(c: Mapping, name: str, width: int | None = None) -> dict:
    """The network ``name`` as the pipeline's scripts take it (:mod:`dlperf.compress.networks`): a CIFAR ResNet of
    the Optimus study at ``width``, or an ImageNet classifier with its validation split."""
    if name not in IMAGENET_NETWORKS:
        return {"name": name, "kind": "cifar", "arch": name, "width": width}
    i = c["deep"]["imagenet"]
    return {"name": name, "kind": "imagenet", "arch": name, "resize": i["resize"], "crop": i["crop"],
            "images": i["images"], "retrain_images": i["retrain_images"], "seed": c["seed"]}


def deep_imagenet_weights(c: Mapping, name: str) -> str:
    """An ImageNet network's weights: its local copy, or the verified download (rule data_download's file)."""
    model = c["deep"]["imagenet"]["models"][name]
    return model["local_weights"] or f"resources/downloads/{PurePosixPath(model['weights']['url']).name}"


def deep_sources(c: Mapping, name: str) -> dict[str, str]:
    """What the chain of network ``name`` reads: its dense weights, its pruned model and its data."""
    if name in IMAGENET_NETWORKS:
        return {"dense": deep_imagenet_weights(c, name), "pruned": f"{DEEP}/{name}/prune/checkpoint.pt",
                "data": c["deep"]["imagenet"]["val"]}
    dense = optimus_plan.RUNS.format(arch=name, device=c["device"], seed=c["seed"])
    pruned = prune_run({**c, "arch": name}, c["deep"]["sparsity"])
    return {"dense": f"{dense}/checkpoint.pt", "pruned": f"{pruned}/checkpoint.pt", "data": "resources/data/cifar10"}


def deep_settings(c: Mapping, o: Mapping, name: str) -> dict:
    """The params of network ``name``'s chain (``o``: the optimus section): the network
    (:mod:`dlperf.compress.networks`), its pruned sparsity (None: measured, for layer-wise pruning), its evaluation
    batch, and the centroids' re-training."""
    if name in IMAGENET_NETWORKS:
        i = c["deep"]["imagenet"]
        return {"network": deep_network(c, name), "sparsity": None, "eval_batch_size": i["eval_batch_size"],
                "train": i["train"], "n_train": None}
    return {"network": deep_network(c, name, optimus_plan.imagenet_width(o, name)), "sparsity": c["deep"]["sparsity"],
            "eval_batch_size": c["quantize"]["eval_batch_size"], "train": c["deep"]["train"],
            "n_train": c["deep"]["n_train"]}


def deep_training_runs(c: Mapping) -> list[str]:
    """The training runs of compress.deep.networks: each one's pruning and its centroids' re-training."""
    return [run for name in deep_networks(c)
            for run in (str(PurePosixPath(deep_sources(c, name)["pruned"]).parent), f"{DEEP}/{name}/shared")]
