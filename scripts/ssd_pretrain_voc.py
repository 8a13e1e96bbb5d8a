"""Train the VOC detector on resources/data/voc2007 trainval (rule: ssd_pretrain_voc; the embedded default's
stand-in for the published mobilenet-v1-ssd-mp-0_675.pth)."""
from pathlib import Path

from dlperf.data.voc import VOC_DIR, VOCDataset, write_label_file
from dlperf.detection.train import SSDTrainConfig, train_ssd
from dlperf.models.mobilenet_ssd import mobilenet_v1_ssd
from dlperf.train.engine import seed_everything
from dlperf.train.job import TrainingJob
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    p = snakemake.params
    job = TrainingJob(snakemake, "ssd", "ssd-pretrain")
    train_cfg = SSDTrainConfig.from_config(p.pretrain, seed=p.seed)
    dataset = VOCDataset(Path(snakemake.input.data) / VOC_DIR, "trainval")  # difficult objects left out
    seed_everything(p.seed)
    model = mobilenet_v1_ssd(len(VOCDataset.class_names), **p.model)
    prov = job.provenance({"ssd": {"seed": p.seed, "model": p.model, "pretrain": p.pretrain}}, run="pretrain",
                          params=sum(t.numel() for t in model.parameters()), train_images=len(dataset),
                          dropped_boxes=dataset.dropped_boxes)
    metrics = train_ssd(model, dataset, train_cfg, device=job.device, run_dir=job.run_dir, state_dir=job.state_dir,
                        run_name=job.run, fingerprint=job.fingerprint)
    write_label_file(snakemake.output.labels, VOCDataset.class_names)
    prov.write(snakemake.output.provenance, metrics=metrics)
