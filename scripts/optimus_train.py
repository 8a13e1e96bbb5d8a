"""Train one CIFAR classifier through the shared engine (rule: optimus_train)."""
from dlperf.data.cifar import read_cifar10
from dlperf.flops.flops import model_flops_per_step
from dlperf.models.cifar_resnet import cifar_model, zero_init_residual
from dlperf.train.data import DeviceImages
from dlperf.train.engine import TrainConfig, seed_everything, train
from dlperf.train.job import TrainingJob
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    wc, params = snakemake.wildcards, snakemake.params
    seed = int(wc.seed)
    job = TrainingJob(snakemake, "optimus", f"{wc.arch}-{wc.device}-s{seed}")
    data = read_cifar10(snakemake.input.data)
    n = params.n_train or len(data.train_y)   # the first n images: a fixed subset, the same for every run
    seed_everything(seed)
    model = cifar_model(wc.arch, num_classes=len(data.classes), width=params.width)
    if params.zero_init_residual:
        zero_init_residual(model)
    flops_per_image = model_flops_per_step(model, (3, 32, 32), batch=1)
    prov = job.provenance({"arch": wc.arch, "device_label": wc.device, "seed": seed, "train": params.train,
                           "n_train": n, "imagenet_width": params.width,
                           "zero_init_residual": params.zero_init_residual})
    metrics = train(model, DeviceImages(data.train_x[:n], data.train_y[:n], job.device),
                    {"test": DeviceImages(data.test_x, data.test_y, job.device)},
                    TrainConfig.from_config(params.train, seed=seed), flops_per_image=flops_per_image,
                    **job.engine_args())
    prov.write(snakemake.output.provenance, metrics=metrics, flops_per_image=flops_per_image)
