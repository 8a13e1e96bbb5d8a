"""Cache a frozen backbone's pooled features of every target image, once (rule: transfer_cache)."""
import time
from pathlib import Path

import torch

from dlperf.data.imagefolder import SPLITS
from dlperf.models.backbones import FrozenFeatures
from dlperf.provenance import Provenance
from dlperf.train.engine import select_device
from dlperf.train.features import extract_features, save_cache
from dlperf.transfer.backbone import backbone_from_file
from dlperf.transfer.training import target_images
from dlperf.workflow import limit_threads, script_logging

with script_logging(snakemake.log[0]):
    p, backbone = snakemake.params, snakemake.wildcards.backbone
    limit_threads(snakemake.threads)
    entry, size = p.backbone, p.image_size
    device = select_device(p.accelerator)
    index, data = target_images(snakemake.input.data, size, device, p.normalize)
    features = FrozenFeatures(backbone_from_file(entry, snakemake.input.weights, len(index.classes)),
                              entry["arch"]).to(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    splits = {s: (extract_features(features, data[s], batch_size=100), data[s].labels) for s in SPLITS}
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    dim = splits["train"][0].shape[1]
    save_cache(snakemake.output.cache, splits, backbone=backbone, classes=index.classes, image_size=size,
               augmentation="none: one un-augmented view per image")
    Provenance({"transfer": {"backbone": entry, "image_size": size, "dataset": Path(snakemake.input.data).name}},
               device=str(device)).write(snakemake.output.provenance, cache_seconds=seconds, feature_dim=dim,
                                         images={s: len(data[s]) for s in SPLITS})
    print(f"{backbone}: {sum(len(data[s]) for s in SPLITS)} images -> {dim} features in {seconds:.2f} s")
