"""Fine-tune the VOC detector on the Open Images classes with pytorch-ssd's recipe (rule: ssd_finetune).

Body (base net + extras) from the VOC checkpoint, both heads re-initialised for the new classes; the weights at
that point (epoch 0, what train_ssd.py --pretrained_ssd starts from) are kept as initial.pt: the "before" model."""
import torch

from dlperf.atomic import atomic_write
from dlperf.data.openimages import OpenImagesDataset
from dlperf.data.voc import VOCDataset, write_label_file
from dlperf.detection.evaluate import checkpoint_state, load_ssd
from dlperf.detection.train import SSDTrainConfig, train_ssd
from dlperf.models.mobilenet_ssd import mobilenet_v1_ssd
from dlperf.train.engine import seed_everything
from dlperf.train.job import TrainingJob
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    p = snakemake.params
    job = TrainingJob(snakemake, "ssd", "ssd-finetune")
    train_cfg = SSDTrainConfig.from_config(p.finetune, seed=p.seed)
    dataset = OpenImagesDataset(snakemake.input.data, "train", p.classes)
    load_ssd(snakemake.input.checkpoint, VOCDataset.class_names, **p.model)  # the VOC detector, checked whole
    seed_everything(p.seed)
    model = mobilenet_v1_ssd(len(dataset.class_names), **p.model)
    model.init_from_pretrained_ssd(checkpoint_state(snakemake.input.checkpoint))
    with atomic_write(snakemake.output.initial, "wb") as fh:
        torch.save(model.state_dict(), fh)
    prov = job.provenance({"ssd": {"seed": p.seed, "model": p.model, "classes": p.classes, "finetune": p.finetune}},
                          run="finetune", pretrained=snakemake.input.checkpoint,
                          params=sum(t.numel() for t in model.parameters()), classes=list(dataset.class_names),
                          train_images=len(dataset), dropped_boxes=dataset.dropped_boxes,
                          missing_images=dataset.missing_images)
    metrics = train_ssd(model, dataset, train_cfg, device=job.device, run_dir=job.run_dir, state_dir=job.state_dir,
                        run_name=job.run, fingerprint=job.fingerprint)
    write_label_file(snakemake.output.labels, dataset.class_names)
    prov.write(snakemake.output.provenance, metrics=metrics)
