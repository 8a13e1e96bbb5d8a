"""Fine-tune every layer of a pretrained backbone with a new head on the target (rule: transfer_finetune)."""
from pathlib import Path

from dlperf.flops.flops import model_flops_per_step
from dlperf.train.engine import TrainConfig, seed_everything, train
from dlperf.train.job import TrainingJob
from dlperf.transfer.backbone import backbone_from_file
from dlperf.transfer.training import target_images
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    p, wc = snakemake.params, snakemake.wildcards
    entry, size = p.backbone, p.image_size
    job = TrainingJob(snakemake, "transfer", f"finetune-{wc.backbone}-lr{wc.lr}")
    index, data = target_images(snakemake.input.data, size, job.device, p.normalize)
    train_cfg = {**p.train, "optimizer": {**p.train["optimizer"], "lr": p.lr}, "select_best": "val"}
    seed_everything(p.seed)
    model = backbone_from_file(entry, snakemake.input.weights, len(index.classes))
    prov = job.provenance({"transfer": {"mode": "finetune", "backbone_name": wc.backbone, "backbone": entry,
                                        "lr": p.lr, "image_size": size,
                                        "dataset": Path(snakemake.input.data).name, "weights": entry["weights"]}, "train": train_cfg})
    metrics = train(model, data["train"], {"val": data["val"], "test": data["test"]},
                    TrainConfig.from_config(train_cfg, seed=p.seed),
                    flops_per_image=model_flops_per_step(model, (3, size, size), batch=1), **job.engine_args())
    prov.write(snakemake.output.provenance, metrics=metrics)
