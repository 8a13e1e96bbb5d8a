"""Fine-tune every layer of a pretrained backbone with a new head on the target (rule: transfer_finetune)."""
import json
from pathlib import Path

from dlperf.flops.flops import model_flops_per_step
from dlperf.provenance import Provenance
from dlperf.train.engine import TrainConfig, seed_everything, select_device, train
from dlperf.transfer import backbone_from_file, target_images
from dlperf.workflow import fingerprint, limit_threads, script_logging

with script_logging(snakemake.log[0]):
    t, p, wc = snakemake.params.cfg, snakemake.params, snakemake.wildcards
    limit_threads(snakemake.threads)
    entry = t["backbones"][wc.backbone]
    size = entry.get("image_size") or t["image_size"]
    device = select_device(p.accelerator)
    index, data = target_images(snakemake.input.data, size, device, t["normalize"])
    train_cfg = {**t["finetune"]["train"], "optimizer": {**t["finetune"]["train"]["optimizer"], "lr": p.lr},
                 "select_best": "val"}
    seed_everything(t["seed"])
    model = backbone_from_file(entry, snakemake.input.weights, len(index.classes))
    peak_flops = json.loads(Path(snakemake.input.peak).read_text())["peak_flops"]
    run = f"finetune-{wc.backbone}-lr{wc.lr}"
    prov = Provenance({"transfer": {"mode": "finetune", "backbone": entry, "lr": p.lr, "image_size": size,
                                    "dataset": t["dataset"], "weights": entry["weights"]}, "train": train_cfg},
                      device=str(device), peak_flops=peak_flops, study="transfer", run=run)
    metrics = train(model, data["train"], {"val": data["val"], "test": data["test"]},
                    TrainConfig.from_config(train_cfg, seed=t["seed"]), run_dir=Path(snakemake.output.epochs).parent,
                    state_dir=Path(p.state_dir), run_name=run,
                    flops_per_image=model_flops_per_step(model, (3, size, size), batch=1), peak_flops=peak_flops,
                    fingerprint=fingerprint(entry, size, train_cfg, len(data["train"]), str(device)))
    prov.write(snakemake.output.provenance, metrics=metrics)
