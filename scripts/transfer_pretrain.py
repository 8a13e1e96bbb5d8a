"""Pretrain a backbone on the synthetic source set: the embedded default's stand-in for ImageNet weights
(rule: transfer_pretrain)."""
from dlperf.atomic import atomic_copy
from dlperf.flops.flops import model_flops_per_step
from dlperf.models.backbones import build_backbone
from dlperf.train.engine import TrainConfig, seed_everything, train
from dlperf.train.job import TrainingJob
from dlperf.transfer.training import target_images
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    p, backbone = snakemake.params, snakemake.wildcards.backbone
    entry, size = p.backbone, p.image_size
    job = TrainingJob(snakemake, "transfer", f"pretrain-{backbone}")
    index, data = target_images(snakemake.input.data, size, job.device, p.normalize)
    train_cfg = {**p.train, "select_best": "val"}
    seed_everything(p.seed)
    model = build_backbone(entry["arch"], len(index.classes), width=entry.get("width", 64),
                           width_mult=entry.get("width_mult", 1.0))
    prov = job.provenance({"transfer": {"backbone": entry, "pretrain": {"train": p.train}, "image_size": size}},
                          source_classes=len(index.classes))
    metrics = train(model, data["train"], {"val": data["val"]}, TrainConfig.from_config(train_cfg, seed=p.seed),
                    flops_per_image=model_flops_per_step(model, (3, size, size), batch=1), **job.engine_args())
    # The weights file is the best-validation state_dict, source classifier included (it names the source classes).
    atomic_copy(job.run_dir / "checkpoint.pt", snakemake.output.weights)
    prov.write(snakemake.output.provenance, metrics=metrics)
