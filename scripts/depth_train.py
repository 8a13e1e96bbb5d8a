"""Train one VGG variant of the depth study, recording the gradient flow (rule: depth_train)."""
from dlperf.atomic import write_csv
from dlperf.data.cifar import read_cifar100
from dlperf.flops.flops import model_flops_per_step
from dlperf.models.vgg_mlp import vgg_mlp_from_name
from dlperf.train.data import DeviceImages
from dlperf.train.engine import TrainConfig, seed_everything, train
from dlperf.train.grad_flow import GradFlowRecorder
from dlperf.train.job import TrainingJob
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    wc, p = snakemake.wildcards, snakemake.params
    seed = int(wc.seed)
    job = TrainingJob(snakemake, "depth", f"{wc.model}-lr{wc.lr}-s{seed}")
    train_cfg = {**p.train, "optimizer": {**p.train["optimizer"], "lr": p.lr}, "select_best": "val"}
    data = read_cifar100(snakemake.input.data)
    n = p.n_train or len(data.train_y)
    split = n - p.val_size

    def images(x, y):
        return DeviceImages(x, y, job.device, mean=p.normalize["mean"], std=p.normalize["std"])

    seed_everything(seed)
    model = vgg_mlp_from_name(wc.model, num_classes=len(data.classes), num_filters=p.num_filters)
    recorder = GradFlowRecorder(model, every=p.grad_every)
    settings = {"train": p.train, "num_filters": p.num_filters, "n_train": p.n_train, "val_size": p.val_size,
                "normalize": p.normalize, "grad_flow": {"every": p.grad_every},
                "run": {"model": wc.model, "lr": p.lr}}
    prov = job.provenance({"depth": settings, "train": train_cfg},
                          params=sum(t.numel() for t in model.parameters()))
    train_images = images(data.train_x[:split], data.train_y[:split])
    metrics = train(model, train_images,
                    {"val": images(data.train_x[split:n], data.train_y[split:n]),
                     "test": images(data.test_x, data.test_y)},
                    TrainConfig.from_config(train_cfg, seed=seed), after_backward=recorder,
                    flops_per_image=model_flops_per_step(model, (3, 32, 32), batch=1),
                    stateful={"grad_flow": recorder}, **job.engine_args())
    steps_per_epoch = train_images.steps_per_epoch(train_cfg["batch_size"])
    write_csv(snakemake.output.grad_flow,
              recorder.to_frame().assign(epoch=lambda df: df.step // steps_per_epoch + 1))
    prov.write(snakemake.output.provenance, metrics=metrics)
