"""Train a new linear head on cached features of the frozen backbone (rule: transfer_head)."""
from pathlib import Path

from dlperf.provenance import Provenance
from dlperf.train.engine import TrainConfig, select_device, train
from dlperf.train.features import load_cache
from dlperf.transfer import new_head
from dlperf.workflow import fingerprint, limit_threads, script_logging

with script_logging(snakemake.log[0]):
    t, p, wc = snakemake.params.cfg, snakemake.params, snakemake.wildcards
    limit_threads(snakemake.threads)
    device = select_device(p.accelerator)
    data, meta = load_cache(snakemake.input.cache, device)
    # Features are vectors: no augmentation, and no channels_last layout.
    train_cfg = {**t["feature_extractor"]["train"], "augment": {}, "channels_last": "off",
                 "optimizer": {**t["feature_extractor"]["train"]["optimizer"], "lr": p.lr}, "select_best": "val"}
    head = new_head(data["train"].features.shape[1], len(meta["classes"]), t["seed"])
    run = f"feature-{wc.backbone}-lr{wc.lr}"
    prov = Provenance({"transfer": {"mode": "feature_extractor", "backbone": t["backbones"][wc.backbone],
                                    "lr": p.lr, "cache": meta}, "train": train_cfg},
                      device=str(device), study="transfer", run=run)
    metrics = train(head, data["train"], {"val": data["val"], "test": data["test"]},
                    TrainConfig.from_config(train_cfg, seed=t["seed"]), run_dir=Path(snakemake.output.epochs).parent,
                    state_dir=Path(p.state_dir), run_name=run,
                    fingerprint=fingerprint(meta, train_cfg, len(data["train"]), str(device)))
    prov.write(snakemake.output.provenance, metrics=metrics)
