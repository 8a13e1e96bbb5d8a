"""Seconds per epoch of fine-tuning, of the feature extractor on cached features and of the feature extractor
through the frozen backbone, on the CPU and on a GPU where one is present (rule: transfer_timing)."""
import tempfile
from pathlib import Path

import pandas as pd
import torch

from dlperf.atomic import write_csv
from dlperf.models.backbones import FeatureClassifier, FrozenFeatures
from dlperf.provenance import Provenance, device_description
from dlperf.train.engine import TrainConfig, seed_everything, train
from dlperf.train.features import DeviceFeatures, extract_features
from dlperf.transfer.backbone import backbone_from_file, head_features
from dlperf.transfer.summary import epoch_seconds
from dlperf.transfer.training import new_head, target_images
from dlperf.timing import Stopwatch, TimedAlone
from dlperf.workflow import script_logging


def timed_epochs(model, data, train_cfg, seed, name):
    """Train for 1 + timed epochs (the first pays one-time costs) and return the median of the timed ones."""
    cfg = TrainConfig.from_config({**train_cfg, "epochs": 1 + timing["epochs"], "select_best": None}, seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        train(model, data, {}, cfg, run_dir=Path(tmp) / "run", state_dir=Path(tmp) / "state", run_name=name)
        return epoch_seconds(pd.read_csv(Path(tmp) / "run" / "epochs.csv"))


with script_logging(snakemake.log[0]):
    p = snakemake.params
    timing, entry, size, seed = p.timing, p.backbone, p.image_size, p.seed
    timed = TimedAlone(snakemake)
    finetune_cfg = p.finetune
    head_cfg = {**p.feature_extractor, "augment": {}, "channels_last": "off"}
    rows, absent = [], []
    for name in timing["devices"]:
        if name == "cuda" and not torch.cuda.is_available():
            absent.append(name)
            print("cuda: no GPU on this machine, not timed")
            continue
        device = torch.device(name)
        described = device_description(name)
        device_name = described.get("gpu") or described.get("cpu")
        index, data = target_images(snakemake.input.data, size, device, p.normalize)
        n = len(data["train"])

        seed_everything(seed)
        model = backbone_from_file(entry, snakemake.input.weights, len(index.classes))
        finetune = timed_epochs(model, data["train"], finetune_cfg, seed, f"timing-finetune-{name}")

        frozen = FrozenFeatures(backbone_from_file(entry, snakemake.input.weights, len(index.classes)),
                                entry["arch"]).to(device)
        head = new_head(head_features(model, entry["arch"]), len(index.classes), seed)
        uncached = timed_epochs(FeatureClassifier(frozen, head), data["train"], head_cfg, seed,
                                f"timing-uncached-{name}")
        with Stopwatch(device) as caching:
            features = extract_features(frozen, data["train"], batch_size=100)
        cache_seconds = caching.seconds
        cached = timed_epochs(new_head(features.shape[1], len(index.classes), seed),
                              DeviceFeatures(features, data["train"].labels, device), head_cfg, seed,
                              f"timing-cached-{name}")
        for mode, seconds, once in (("finetune", finetune, 0.0), ("feature_extractor_cached", cached, cache_seconds),
                                    ("feature_extractor_uncached", uncached, 0.0)):
            rows.append({"device": name, "device_name": device_name, "mode": mode, "epoch_seconds": seconds,
                         "images_per_s": n / seconds, "one_time_seconds": once,
                         "speedup_vs_uncached": uncached / seconds})
    df = pd.DataFrame(rows)
    write_csv(snakemake.output.csv, df)
    Provenance({"transfer": {"backbone": entry, "image_size": size, "timing": timing, "finetune": finetune_cfg,
                             "feature_extractor": head_cfg}}).write(
        snakemake.output.provenance, images_per_epoch=n, devices_absent=absent, timing=timed.record())
    print(df.to_string(index=False))
