"""``make bench``: training throughput of the engine's data path against a plain PyTorch loop, in one run.

Both sides train the same model (same initial weights, same optimizer, batch and augmentation) on the same
images for the same number of steps. The only difference is how batches are made:

* engine: images resident on the device as uint8, batches gathered, normalised, cropped and flipped as tensors;
* plain: a torchvision-style ``Dataset`` that turns each sample into a PIL image and applies per-sample
  ``RandomCrop(padding)``, ``RandomHorizontalFlip``, ``ToTensor``, ``Normalize``, fed by a ``DataLoader`` with
  worker processes, then copied to the device — the recipe of the PyTorch CIFAR tutorial.

Warm-up steps are excluded; the device is synchronised before each clock read. Results go to stdout and to
``results/bench/engine.csv`` with ``provenance.json`` beside it. From the engine's measured images/s the
benchmark projects the device-hours of the full Optimus study in ``config/full.yaml`` (every arch x device
label x seed for its epochs over 50,000 CIFAR-10 images; evaluation excluded) into
``results/bench/optimus_projection.csv``.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from dlperf.atomic import write_csv
from dlperf.models.cifar_resnet import cifar_model
from dlperf.flops.flops import model_flops_per_step
from dlperf.timing import synchronize
from dlperf.provenance import Provenance
from dlperf.train.data import CIFAR10_MEAN, CIFAR10_STD, Augment, DeviceImages
from dlperf.train.engine import select_device


class PilCifar(torch.utils.data.Dataset):
    """What torchvision.datasets.CIFAR10 does per sample: a PIL image, then the transform."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        from PIL import Image
        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def plain_batches(images, labels, batch_size, workers, device, epochs):
    from torchvision import transforms as T
    transform = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                           T.Normalize(CIFAR10_MEAN, CIFAR10_STD)])
    loader = torch.utils.data.DataLoader(PilCifar(images, labels, transform), batch_size=batch_size, shuffle=True,
                                         num_workers=workers, pin_memory=device.type == "cuda",
                                         persistent_workers=workers > 0, drop_last=True)
    for _ in range(epochs):
        for x, y in loader:
            yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)


def engine_batches(images, labels, batch_size, device, epochs):
    data = DeviceImages(images, labels, device)
    for epoch in range(epochs):
        yield from data.batches(batch_size, shuffle=True, augment=Augment(crop_padding=4, flip=True), seed=0,
                                epoch=epoch, drop_last=True)


def measure(batches, arch: str, device: torch.device, steps: int, warmup: int, fast_math: bool) -> float:
    """Images/s of ``steps`` training steps after ``warmup`` steps; same initial weights every call."""
    torch.manual_seed(0)
    model = cifar_model(arch).to(device)
    memory_format = torch.channels_last if fast_math else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    n_images = 0
    for i, (x, y) in enumerate(batches):
        if i == warmup:
            synchronize(device)
            t0, n_images = time.perf_counter(), 0
        with torch.autocast(device.type, torch.bfloat16, enabled=fast_math):
            loss = nn.functional.cross_entropy(model(x.contiguous(memory_format=memory_format)).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        n_images += len(y)
        if i + 1 == warmup + steps:
            break
    synchronize(device)
    return n_images / (time.perf_counter() - t0)


def main(argv=None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=None,
                        help="default: resnet20 resnet56 resnet50 on GPU; resnet20 resnet56 on CPU, where a "
                             "full-width ResNet-50 takes minutes per measurement")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default: 8 on CPU, 200 on GPU)")
    parser.add_argument("--project", type=Path, default=Path("config/full.yaml"),
                        help="config whose Optimus study is projected from the measured rates")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=Path("results/bench/engine.csv"))
    args = parser.parse_args(argv)

    device = select_device(args.device)
    archs = args.archs or (["resnet20", "resnet56", "resnet50"] if device.type == "cuda" else ["resnet20", "resnet56"])
    torch.set_num_threads(os.cpu_count() or 1)
    steps = args.steps or (200 if device.type == "cuda" else 8)
    fast_math = device.type == "cuda"   # bf16 + channels_last: what the engine uses on GPU (slower on CPU)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.images, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, args.images)
    epochs = -(-(steps + args.warmup) * args.batch_size // args.images) + 1
    prov = Provenance({"bench": vars(args) | {"out": str(args.out)}}, device=str(device))

    rows = []
    for arch in archs:
        plain = measure(plain_batches(images, labels, args.batch_size, args.workers, device, epochs), arch, device,
                        steps, args.warmup, fast_math)
        engine = measure(engine_batches(images, labels, args.batch_size, device, epochs), arch, device, steps,
                         args.warmup, fast_math)
        flops = model_flops_per_step(cifar_model(arch), (3, 32, 32), batch=1)
        rows.append({"arch": arch, "device": str(device), "batch_size": args.batch_size, "steps": steps,
                     "plain_images_per_s": plain, "engine_images_per_s": engine, "ratio": engine / plain,
                     "engine_tflops": flops * engine / 1e12})
        print(f"{arch:>9} on {device}: plain DataLoader {plain:9.1f} img/s | engine {engine:9.1f} img/s | "
              f"ratio {engine / plain:5.2f}x", flush=True)
    df = pd.DataFrame(rows)
    write_csv(args.out, df)
    projection = project_optimus(args.project, dict(zip(df.arch, df.engine_images_per_s)), str(device))
    if projection is not None:
        write_csv(args.out.with_name("optimus_projection.csv"), projection)
        print(projection.to_string(index=False))
        print(f"projected {args.project} Optimus study on {device}: "
              f"{projection.device_hours.sum():.1f} device-hours in all")
    prov.write(args.out.with_name("provenance.json"), results=rows)
    print(f"written: {args.out}")
    return df


def project_optimus(config_path: Path, images_per_s: dict[str, float], device: str) -> pd.DataFrame | None:
    """Device-hours of every Optimus run of ``config_path`` at the measured images/s of its arch."""
    import yaml
    if not config_path.exists():
        return None
    o = yaml.safe_load(config_path.read_text())["optimus"]
    n_train = o.get("n_train") or 50_000
    rows = []
    for arch in o["archs"] + [o["target_arch"]]:
        if arch not in images_per_s:
            continue
        runs = len(o["devices"]) * len(o["seeds"])
        hours = o["train"]["epochs"] * n_train / images_per_s[arch] / 3600
        rows.append({"arch": arch, "runs": runs, "epochs": o["train"]["epochs"], "measured_on": device,
                     "images_per_s": images_per_s[arch], "hours_per_run": hours, "device_hours": runs * hours})
    missing = [a for a in o["archs"] + [o["target_arch"]] if a not in images_per_s]
    if missing:
        print(f"not measured, left out of the projection: {', '.join(missing)} (add them with --archs)")
    return pd.DataFrame(rows) if rows else None


if __name__ == "__main__":
    main()
