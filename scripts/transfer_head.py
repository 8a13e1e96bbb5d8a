"""Train a new linear head on cached features of the frozen backbone (rule: transfer_head)."""
from dlperf.train.engine import TrainConfig, train
from dlperf.train.features import load_cache
from dlperf.train.job import TrainingJob
from dlperf.transfer.training import new_head
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    p, wc = snakemake.params, snakemake.wildcards
    job = TrainingJob(snakemake, "transfer", f"feature-{wc.backbone}-lr{wc.lr}")
    data, meta = load_cache(snakemake.input.cache, job.device)
    # Features are vectors: no augmentation, and no channels_last layout.
    train_cfg = {**p.train, "augment": {}, "channels_last": "off",
                 "optimizer": {**p.train["optimizer"], "lr": p.lr}, "select_best": "val"}
    head = new_head(data["train"].features.shape[1], len(meta["classes"]), p.seed)
    prov = job.provenance({"transfer": {"mode": "feature_extractor", "backbone_name": wc.backbone,
                                        "lr": p.lr,
                                        "cache": meta}, "train": train_cfg})
    metrics = train(head, data["train"], {"val": data["val"], "test": data["test"]},
                    TrainConfig.from_config(train_cfg, seed=p.seed), **job.engine_args())
    prov.write(snakemake.output.provenance, metrics=metrics)
