"""Train the VOC detector on resources/data/voc2007 trainval (rule: ssd_pretrain_voc; the embedded default's
stand-in for the published mobilenet-v1-ssd-mp-0_675.pth)."""
from pathlib import Path

from dlperf.data.voc import VOC_DIR, VOCDataset, write_label_file
from dlperf.detection.train import SSDTrainConfig, train_ssd
from dlperf.models.mobilenet_ssd import mobilenet_v1_ssd
from dlperf.provenance import Provenance
from dlperf.train.engine import seed_everything, select_device
from dlperf.workflow import fingerprint, limit_threads, script_logging

with script_logging(snakemake.log[0]):
    cfg, p = snakemake.params.cfg, snakemake.params
    limit_threads(snakemake.threads)
    device = select_device(p.accelerator)
    train_cfg = SSDTrainConfig.from_config(cfg["pretrain"], seed=cfg["seed"])
    dataset = VOCDataset(Path(snakemake.input.data) / VOC_DIR, "trainval")  # difficult objects left out
    seed_everything(cfg["seed"])
    model = mobilenet_v1_ssd(len(VOCDataset.class_names), **cfg["model"])
    prov = Provenance({"ssd": {k: cfg[k] for k in ("seed", "model", "data", "pretrain")}}, device=str(device),
                      study="ssd", run="pretrain", params=sum(t.numel() for t in model.parameters()),
                      train_images=len(dataset), dropped_boxes=dataset.dropped_boxes)
    metrics = train_ssd(model, dataset, train_cfg, device=device, run_dir=Path(snakemake.output.checkpoint).parent,
                        state_dir=Path(p.state_dir), run_name="ssd-pretrain",
                        fingerprint=fingerprint(cfg["model"], cfg["pretrain"], cfg["seed"], cfg["data"]["voc"],
                                                str(device)))
    write_label_file(snakemake.output.labels, VOCDataset.class_names)
    prov.write(snakemake.output.provenance, metrics=metrics)
