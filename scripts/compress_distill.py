"""Train a distillation student, on the teacher's soft targets (mode kd) or on labels only (mode labels), with the
same config and seed either way (rule: compress_distill)."""

from dlperf.compress.distill import DistillationLoss
from dlperf.compress.evaluation import load_classifier
from dlperf.data.cifar import read_cifar10
from dlperf.models.cifar_resnet import cifar_model
from dlperf.flops.flops import model_flops_per_step
from dlperf.train.data import DeviceImages
from dlperf.train.engine import TrainConfig, seed_everything, train
from dlperf.train.job import TrainingJob
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    wc, p = snakemake.wildcards, snakemake.params
    seed = int(wc.seed)
    job = TrainingJob(snakemake, "compress", f"{wc.arch}-{wc.mode}-{wc.device}-s{seed}")
    device = job.device
    cfg = TrainConfig.from_config(p.train, seed=seed)
    data = read_cifar10(snakemake.input.data)
    n = p.n_train or len(data.train_y)
    soft = p.soft_targets   # the teacher, temperature and alpha of mode kd; None for mode labels
    loss_fn = None
    if soft:
        teacher = load_classifier(soft["teacher"], snakemake.input.teacher, width=p.width, device=device)
        loss_fn = DistillationLoss(teacher, temperature=soft["temperature"], alpha=soft["alpha"])
    seed_everything(seed)   # the same initial student in both modes
    model = cifar_model(wc.arch, width=p.width)
    flops_per_image = model_flops_per_step(model, (3, 32, 32), batch=1)
    prov = job.provenance({"compress": {"student": wc.arch, "mode": wc.mode, "seed": seed, "n_train": n,
                                        "train": p.train, "soft_targets": soft},
                           "teacher_checkpoint": snakemake.input.get("teacher")})
    metrics = train(model, DeviceImages(data.train_x[:n], data.train_y[:n], device),
                    {"test": DeviceImages(data.test_x, data.test_y, device)}, cfg,
                    flops_per_image=flops_per_image, loss_fn=loss_fn, **job.engine_args())
    prov.write(snakemake.output.provenance, metrics=metrics, flops_per_image=flops_per_image)
