"""Train a distillation student, on the teacher's soft targets (mode kd) or on labels only (mode labels), with the
same config and seed either way (rule: compress_distill)."""
import json
from pathlib import Path

from dlperf.compress.distill import DistillationLoss
from dlperf.compress.evaluation import load_classifier
from dlperf.data.cifar import read_cifar10
from dlperf.models import cifar_model
from dlperf.flops.flops import model_flops_per_step
from dlperf.provenance import Provenance
from dlperf.train.data import DeviceImages
from dlperf.train.engine import TrainConfig, seed_everything, select_device, train
from dlperf.workflow import fingerprint, limit_threads, script_logging

with script_logging(snakemake.log[0]):
    wc, p = snakemake.wildcards, snakemake.params
    d = p.distill
    limit_threads(snakemake.threads)
    seed = int(wc.seed)
    cfg = TrainConfig.from_config(d["train"], seed=seed)
    device = select_device(p.accelerator)
    data = read_cifar10(snakemake.input.data)
    n = d["n_train"] or len(data.train_y)
    loss_fn = None
    if wc.mode == "kd":
        teacher = load_classifier(d["teacher"], snakemake.input.teacher, width=p.width, device=device)
        loss_fn = DistillationLoss(teacher, temperature=d["temperature"], alpha=d["alpha"])
    seed_everything(seed)   # the same initial student in both modes
    model = cifar_model(wc.arch, width=p.width)
    flops_per_image = model_flops_per_step(model, (3, 32, 32), batch=1)
    run = f"{wc.arch}-{wc.mode}-{wc.device}-s{seed}"
    peak_flops = json.loads(Path(snakemake.input.peak).read_text())["peak_flops"]
    soft = {"teacher": d["teacher"], "temperature": d["temperature"], "alpha": d["alpha"]} if loss_fn else None
    prov = Provenance({"compress": {"student": wc.arch, "mode": wc.mode, "seed": seed, "n_train": n,
                                    "train": d["train"], "soft_targets": soft}, "teacher_checkpoint": snakemake.input.teacher},
                      device=str(device), peak_flops=peak_flops, study="compress", run=run)
    metrics = train(model, DeviceImages(data.train_x[:n], data.train_y[:n], device),
                    {"test": DeviceImages(data.test_x, data.test_y, device)}, cfg,
                    run_dir=Path(snakemake.output.epochs).parent, state_dir=Path(p.state_dir), run_name=run,
                    flops_per_image=flops_per_image, peak_flops=peak_flops, loss_fn=loss_fn,
                    fingerprint=fingerprint(wc.arch, wc.mode, seed, d["train"], n, soft, str(device)))
    prov.write(snakemake.output.provenance, metrics=metrics, flops_per_image=flops_per_image)
