"""Train one VGG variant of the depth study, recording the gradient flow (rule: depth_train)."""
import json
from pathlib import Path

from dlperf.data.cifar import read_cifar100
from dlperf.models.vgg_mlp import vgg_mlp_from_name
from dlperf.flops.flops import model_flops_per_step
from dlperf.provenance import Provenance
from dlperf.train.data import DeviceImages
from dlperf.train.engine import TrainConfig, seed_everything, select_device, train
from dlperf.train.grad_flow import GradFlowRecorder
from dlperf.workflow import fingerprint, limit_threads, script_logging

with script_logging(snakemake.log[0]):
    wc, p = snakemake.wildcards, snakemake.params
    cfg = p.cfg
    limit_threads(snakemake.threads)
    seed = int(wc.seed)
    train_cfg = {**cfg["train"], "optimizer": {**cfg["train"]["optimizer"], "lr": p.lr}, "select_best": "val"}
    device = select_device(p.accelerator)
    data = read_cifar100(snakemake.input.data)
    n = cfg["n_train"] or len(data.train_y)
    split = n - cfg["val_size"]
    norm = cfg["normalize"]

    def images(x, y):
        return DeviceImages(x, y, device, mean=norm["mean"], std=norm["std"])

    seed_everything(seed)
    model = vgg_mlp_from_name(wc.model, num_classes=len(data.classes), num_filters=cfg["num_filters"])
    recorder = GradFlowRecorder(model, every=cfg["grad_flow"]["every"])
    peak_flops = json.loads(Path(snakemake.input.peak).read_text())["peak_flops"]
    run = f"{wc.model}-lr{wc.lr}-s{seed}"
    params = sum(t.numel() for t in model.parameters())
    prov = Provenance({"depth": {**cfg, "run": {"model": wc.model, "lr": p.lr}}, "train": train_cfg},
                      device=str(device), peak_flops=peak_flops, study="depth", run=run, params=params)
    train_images = images(data.train_x[:split], data.train_y[:split])
    metrics = train(model, train_images,
                    {"val": images(data.train_x[split:n], data.train_y[split:n]),
                     "test": images(data.test_x, data.test_y)},
                    TrainConfig.from_config(train_cfg, seed=seed), run_dir=Path(snakemake.output.epochs).parent,
                    state_dir=Path(p.state_dir), run_name=run, after_backward=recorder,
                    flops_per_image=model_flops_per_step(model, (3, 32, 32), batch=1), peak_flops=peak_flops,
                    stateful={"grad_flow": recorder},
                    fingerprint=fingerprint(wc.model, seed, train_cfg, cfg["num_filters"], n, str(device)))
    steps_per_epoch = train_images.steps_per_epoch(train_cfg["batch_size"])
    recorder.to_frame().assign(epoch=lambda df: df.step // steps_per_epoch + 1).to_csv(snakemake.output.grad_flow,
                                                                                      index=False)
    prov.write(snakemake.output.provenance, metrics=metrics)
