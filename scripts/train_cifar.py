"""Train one CIFAR classifier through the shared engine (rule: optimus_train)."""
import json
from pathlib import Path

from dlperf.data.cifar import read_cifar10
from dlperf.models import cifar_model
from dlperf.flops.flops import model_flops_per_step
from dlperf.provenance import Provenance
from dlperf.train.data import DeviceImages
from dlperf.train.engine import TrainConfig, seed_everything, select_device, train
from dlperf.workflow import fingerprint, limit_threads, script_logging

with script_logging(snakemake.log[0]):
    wc, params = snakemake.wildcards, snakemake.params
    limit_threads(snakemake.threads)
    seed = int(wc.seed)
    cfg = TrainConfig.from_config(params.train, seed=seed)
    device = select_device(params.accelerator)
    data = read_cifar10(snakemake.input.data)
    n = params.n_train or len(data.train_y)   # the first n images: a fixed subset, the same for every run
    seed_everything(seed)
    model = cifar_model(wc.arch, num_classes=len(data.classes), width=params.width)
    flops_per_image = model_flops_per_step(model, (3, 32, 32), batch=1)
    run = f"{wc.arch}-{wc.device}-s{seed}"
    peak_flops = json.loads(Path(snakemake.input.peak).read_text())["peak_flops"]
    prov = Provenance({"arch": wc.arch, "device_label": wc.device, "seed": seed, "train": params.train,
                       "n_train": n, "imagenet_width": params.width},
                      device=str(device), peak_flops=peak_flops, study="optimus", run=run)
    metrics = train(model, DeviceImages(data.train_x[:n], data.train_y[:n], device),
                    {"test": DeviceImages(data.test_x, data.test_y, device)}, cfg,
                    run_dir=Path(snakemake.output.epochs).parent, state_dir=Path(params.state_dir), run_name=run,
                    flops_per_image=flops_per_image, peak_flops=peak_flops,
                    fingerprint=fingerprint(wc.arch, seed, params.train, n, params.width, str(device)))
    prov.write(snakemake.output.provenance, metrics=metrics, flops_per_image=flops_per_image)
