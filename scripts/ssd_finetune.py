"""Fine-tune the VOC detector on the Open Images classes with pytorch-ssd's recipe (rule: ssd_finetune).

Body (base net + extras) from the VOC checkpoint, both heads re-initialised for the new classes; the weights at
that point (epoch 0, what train_ssd.py --pretrained_ssd starts from) are kept as initial.pt: the "before" model."""
from pathlib import Path

import torch

from dlperf.atomic import atomic_write
from dlperf.data.openimages import OpenImagesDataset
from dlperf.data.voc import VOCDataset, write_label_file
from dlperf.detection.evaluate import checkpoint_state, load_ssd
from dlperf.detection.train import SSDTrainConfig, train_ssd
from dlperf.models.mobilenet_ssd import mobilenet_v1_ssd
from dlperf.provenance import Provenance
from dlperf.train.engine import seed_everything, select_device
from dlperf.workflow import fingerprint, limit_threads, script_logging

with script_logging(snakemake.log[0]):
    cfg, p = snakemake.params.cfg, snakemake.params
    limit_threads(snakemake.threads)
    device = select_device(p.accelerator)
    classes = cfg["data"]["openimages"]["classes"]
    train_cfg = SSDTrainConfig.from_config(cfg["finetune"], seed=cfg["seed"])
    dataset = OpenImagesDataset(snakemake.input.data, "train", classes)
    load_ssd(snakemake.input.checkpoint, VOCDataset.class_names, **cfg["model"])  # the VOC detector, checked whole
    seed_everything(cfg["seed"])
    model = mobilenet_v1_ssd(len(dataset.class_names), **cfg["model"])
    model.init_from_pretrained_ssd(checkpoint_state(snakemake.input.checkpoint))
    with atomic_write(snakemake.output.initial, "wb") as fh:
        torch.save(model.state_dict(), fh)
    prov = Provenance({"ssd": {k: cfg[k] for k in ("seed", "model", "data", "pretrained", "finetune")}},
                      device=str(device), study="ssd", run="finetune", pretrained=snakemake.input.checkpoint,
                      params=sum(t.numel() for t in model.parameters()), classes=list(dataset.class_names),
                      train_images=len(dataset), dropped_boxes=dataset.dropped_boxes,
                      missing_images=dataset.missing_images)
    metrics = train_ssd(model, dataset, train_cfg, device=device, run_dir=Path(snakemake.output.checkpoint).parent,
                        state_dir=Path(p.state_dir), run_name="ssd-finetune",
                        fingerprint=fingerprint(cfg["model"], cfg["finetune"], cfg["seed"], cfg["data"]["openimages"],
                                                str(Path(snakemake.input.checkpoint).stat().st_size), str(device)))
    write_label_file(snakemake.output.labels, dataset.class_names)
    prov.write(snakemake.output.provenance, metrics=metrics)
