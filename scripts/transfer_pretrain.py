"""Pretrain a backbone on the synthetic source set: the embedded default's stand-in for ImageNet weights
(rule: transfer_pretrain)."""
import json
from pathlib import Path

from dlperf.atomic import atomic_copy
from dlperf.models.backbones import build_backbone
from dlperf.flops.flops import model_flops_per_step
from dlperf.provenance import Provenance
from dlperf.train.engine import TrainConfig, seed_everything, select_device, train
from dlperf.transfer import target_images
from dlperf.workflow import fingerprint, limit_threads, script_logging

with script_logging(snakemake.log[0]):
    t, p, backbone = snakemake.params.cfg, snakemake.params, snakemake.wildcards.backbone
    limit_threads(snakemake.threads)
    entry = t["backbones"][backbone]
    size = entry.get("image_size") or t["image_size"]
    device = select_device(p.accelerator)
    index, data = target_images(snakemake.input.data, size, device, t["normalize"])
    train_cfg = {**t["pretrain"]["train"], "select_best": "val"}
    seed_everything(t["seed"])
    model = build_backbone(entry["arch"], len(index.classes), width=entry.get("width", 64),
                           width_mult=entry.get("width_mult", 1.0))
    peak_flops = json.loads(Path(snakemake.input.peak).read_text())["peak_flops"]
    run = f"pretrain-{backbone}"
    prov = Provenance({"transfer": {"backbone": entry, "pretrain": t["pretrain"], "image_size": size}},
                      device=str(device), peak_flops=peak_flops, study="transfer", run=run,
                      source_classes=len(index.classes))
    run_dir = Path(snakemake.output.epochs).parent
    metrics = train(model, data["train"], {"val": data["val"]}, TrainConfig.from_config(train_cfg, seed=t["seed"]),
                    run_dir=run_dir, state_dir=Path(p.state_dir), run_name=run,
                    flops_per_image=model_flops_per_step(model, (3, size, size), batch=1), peak_flops=peak_flops,
                    fingerprint=fingerprint(entry, size, train_cfg, len(data["train"]), str(device)))
    # The weights file is the best-validation state_dict, source classifier included (it names the source classes).
    atomic_copy(run_dir / "checkpoint.pt", snakemake.output.weights)
    prov.write(snakemake.output.provenance, metrics=metrics)
