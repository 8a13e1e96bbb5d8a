"""What a run of a config will cost on this machine, before it runs: a short calibration, then device-hours.

Every training job of the config is listed from its plan (model, input size, batch, steps, evaluated images). Each
distinct model is then timed for a few training steps on this machine's device, at the config's threads: on a GPU
at the config's batch, on a CPU at a batch of at most ``CPU_CALIBRATION_BATCH`` (a CPU's time per image hardly
depends on the batch), scaled per image. A job's estimate is its steps times the time of one, plus its evaluation
(a forward pass is about a third of a training step) and a process start-up, which is also all that the other jobs
(data, fits, figures, tables) are counted as. PALEO's view of the same step, its FLOPs over the device's measured
throughput, is printed beside it: the achieved TFLOP/s of each calibrated model.

    python -m dlperf.estimate --configfile config/full.yaml [--devices K] [--compare benchmarks]

``--devices K``: the wall time with K training jobs at once (GPUs, or CPU cores at one thread each). ``--compare``:
a finished run's ``benchmarks/`` folder, whose measured job seconds are set beside the estimate, per study.
"""
from __future__ import annotations

import argparse
import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import pandas as pd
import yaml

from dlperf.compress import plan as compress_plan
from dlperf.timing import time_callable

CPU_CALIBRATION_BATCH = 16
CALIBRATION_STEPS = 3         # timed, after one untimed warm-up step
FORWARD_SHARE = 1 / 3         # a forward pass's share of a training step (backward ~ 2 forwards)
# Real datasets' sizes (training images the runs read, evaluated images per epoch), where the config names none.
CIFAR_TRAIN, CIFAR_TEST = 50_000, 10_000
VOC07_TRAINVAL, VOC07_TEST = 5_011, 4_952
FLOWERS102_TRAIN = 1_020
OPENIMAGES_GUNS_TRAIN = 1_500  # an assumption: the Handgun/Shotgun count is only known once the CSVs are read


@dataclass(frozen=True)
class Model:
    """What a calibration builds: ``key`` names it; ``build()`` returns (module, input [C, H, W], classes)."""
    key: str
    build: Callable[[], tuple]
    channels_last: bool = False


@dataclass(frozen=True)
class PlannedRun:
    study: str
    run: str
    model: Model
    batch: int
    steps: int
    eval_images: int


def _steps(images: int, batch: int, epochs: int) -> int:
    return math.ceil(images / batch) * epochs


def _classifier(key: str, build: Callable, shape: tuple, classes: int, channels_last: bool = False) -> Model:
    return Model(key, lambda: (build(), shape, classes), channels_last)


def _cifar(arch: str, width: int, classes: int = 10) -> Model:
    from dlperf.models.cifar_resnet import cifar_model

    return _classifier(f"cifar {arch}@32", lambda: cifar_model(arch, classes, width=width), (3, 32, 32), classes)


def _channels_last(train: Mapping, device: str) -> bool:
    setting = train.get("channels_last", "auto")
    return setting == "on" or (setting == "auto" and device == "cuda")


def planned_runs(cfg: Mapping, device: str) -> list[PlannedRun]:
    """Every training job of ``cfg``'s studies that are on, with its model, steps and evaluated images."""
    runs: list[PlannedRun] = []
    data = cfg["data"]

    def cifar_sizes(name: str) -> tuple[int, int]:
        d = data[name]
        return (d["synthetic"]["n_train"], d["synthetic"]["n_test"]) if d["source"] == "synthetic" else (
            CIFAR_TRAIN, CIFAR_TEST)

    if cfg.get("optimus"):
        o = cfg["optimus"]
        n_train, n_test = cifar_sizes("cifar10")
        n = o["n_train"] or n_train
        t = o["train"]
        for arch in [*o["archs"], o["target_arch"]]:
            model = _cifar(arch, o["imagenet_width"])
            for label in o["devices"]:
                for seed in o["seeds"]:
                    runs.append(PlannedRun("optimus", f"{arch}-{label}-s{seed}", model, t["batch_size"],
                                           _steps(n, t["batch_size"], t["epochs"]), n_test * t["epochs"]))
    if cfg.get("depth"):
        from dlperf.models.vgg_mlp import vgg_mlp_from_name

        d = cfg["depth"]
        n_train, n_test = cifar_sizes("cifar100")
        n = (d["n_train"] or n_train) - d["val_size"]
        t = d["train"]
        for r in d["runs"]:
            model = _classifier(f"{r['model']}-f{d['num_filters']}@32",
                                lambda m=r["model"]: vgg_mlp_from_name(m, 100, d["num_filters"]), (3, 32, 32), 100,
                                _channels_last(t, device))
            runs.append(PlannedRun("depth", f"{r['model']}-lr{r['lr']}", model, t["batch_size"],
                                   _steps(n, t["batch_size"], t["epochs"]), (d["val_size"] + n_test) * t["epochs"]))
    if cfg.get("transfer"):
        runs += _transfer_runs(cfg)
    if cfg.get("ssd"):
        runs += _ssd_runs(cfg)
    if cfg.get("compress"):
        c = cfg["compress"]
        n_train, n_test = cifar_sizes("cifar10")
        width = cfg["optimus"]["imagenet_width"]
        p = c["prune"]
        for sparsity in compress_plan.sparsities(c):
            t = p["train"]
            runs.append(PlannedRun("compress", f"prune-{sparsity}", _cifar(c["arch"], width), t["batch_size"],
                                   _steps(p["n_train"] or n_train, t["batch_size"], t["epochs"]), n_test))
        # the centroids' re-training costs what the network's would; fake quantization's rounding is counted as free
        retrained = [("deep-shared", c["deep"])] + [(f"qat-{v}", c["qat"]) for v in compress_plan.qat_variants(c)]
        for name, section in retrained:
            t = section["train"]
            runs.append(PlannedRun("compress", name, _cifar(c["arch"], width), t["batch_size"],
                                   _steps(section["n_train"] or n_train, t["batch_size"], t["epochs"]), n_test))
        runs += _deep_network_runs(c, width, n_train, n_test)
        k = c["distill"]
        t = k["train"]
        steps = _steps(k["n_train"] or n_train, t["batch_size"], t["epochs"])
        student, teacher = _cifar(k["student"], width), _cifar(k["teacher"], width)
        runs.append(PlannedRun("compress", "distill-labels", student, t["batch_size"], steps, n_test * t["epochs"]))
        runs.append(PlannedRun("compress", "distill-kd", student, t["batch_size"], steps, n_test * t["epochs"]))
        # the soft targets: a forward pass of the teacher per step
        runs.append(PlannedRun("compress", "distill-kd teacher", teacher, t["batch_size"],
                               math.ceil(steps * FORWARD_SHARE), 0))
    return runs


def _deep_network_runs(c: Mapping, width: int, n_train: int, n_test: int) -> list[PlannedRun]:
    """Deep Compression on compress.deep.networks: a CIFAR ResNet's pruning (compress_prune at the deep sparsity) and
    centroids; an ImageNet network's pruning and centroids, each on the validation images it re-trains on, scored on
    the others."""
    from dlperf.compress.networks import IMAGENET_ARCHS

    runs, deep = [], c["deep"]
    for name in compress_plan.deep_networks(c):
        if name in compress_plan.IMAGENET_NETWORKS:
            i = deep["imagenet"]
            model = _classifier(f"imagenet {name}@{i['crop']}", IMAGENET_ARCHS[name], (3, i["crop"], i["crop"]), 1000)
            scored = i["images"] or 50_000 - i["retrain_images"]
            for stage, t in (("prune", i["prune_train"]), ("shared", i["train"])):
                runs.append(PlannedRun("compress", f"deep-{name}-{stage}", model, t["batch_size"],
                                       _steps(i["retrain_images"], t["batch_size"], t["epochs"]), scored * t["epochs"]))
            continue
        model, p = _cifar(name, width), c["prune"]["train"]
        runs.append(PlannedRun("compress", f"deep-{name}-prune", model, p["batch_size"],
                               _steps(c["prune"]["n_train"] or n_train, p["batch_size"], p["epochs"]), n_test))
        t = deep["train"]
        runs.append(PlannedRun("compress", f"deep-{name}-shared", model, t["batch_size"],
                               _steps(deep["n_train"] or n_train, t["batch_size"], t["epochs"]), n_test))
    return runs


def _transfer_runs(cfg: Mapping) -> list[PlannedRun]:
    from dlperf.models.backbones import build_backbone

    tr, runs = cfg["transfer"], []
    target = cfg["data"][tr["dataset"]]

    def images(d: Mapping) -> tuple[int, int]:
        if d["source"] == "synthetic":
            s = d["synthetic"]
            return s["n_classes"] * s["n_train"], s["n_classes"] * (s["n_val"] + s["n_test"])
        return FLOWERS102_TRAIN, 0

    def backbone(name: str, classes: int) -> Model:
        entry = tr["backbones"][name]
        size = entry.get("image_size") or tr["image_size"]
        return _classifier(f"backbone {name}@{size}", lambda: build_backbone(entry["arch"], classes,
                                                                    width=entry.get("width") or 64,
                                                                    width_mult=entry.get("width_mult") or 1.0),
                           (3, size, size), classes)

    for name, entry in tr["backbones"].items():
        if entry.get("weights") == "pretrain":
            source = cfg["data"][tr["pretrain"]["dataset"]]
            n, n_eval = images(source)
            t = tr["pretrain"]["train"]
            runs.append(PlannedRun("transfer", f"pretrain-{name}", backbone(name, source["synthetic"]["n_classes"]),
                                   t["batch_size"], _steps(n, t["batch_size"], t["epochs"]), n_eval * t["epochs"]))
    n, n_eval = images(target)
    classes = target["synthetic"]["n_classes"] if target["source"] == "synthetic" else 102
    t = tr["finetune"]["train"]
    for lr in tr["finetune"]["lrs"]:
        runs.append(PlannedRun("transfer", f"finetune-{lr}", backbone(tr["backbone"], classes), t["batch_size"],
                               _steps(n, t["batch_size"], t["epochs"]), n_eval * t["epochs"]))
    for name in dict.fromkeys([tr["backbone"], *tr["backbone_comparison"]["backbones"]]):
        runs.append(PlannedRun("transfer", f"cache-{name}", backbone(name, classes), 64,
                               math.ceil((n + n_eval) / 64 * FORWARD_SHARE), 0))   # one forward pass: the features
    return runs


def _ssd_runs(cfg: Mapping) -> list[PlannedRun]:
    from dlperf.models.mobilenet_ssd import mobilenet_v1_ssd

    s, runs = cfg["ssd"], []
    size, width = s["model"]["image_size"], s["model"]["width_mult"]

    def ssd(classes: int) -> Model:
        return Model(f"mb1-ssd-{width}@{size}/{classes}",
                     lambda: (mobilenet_v1_ssd(classes, width_mult=width, image_size=size), (3, size, size), None))

    voc, oi = s["data"]["voc"], s["data"]["openimages"]
    n_voc, n_voc_test = ((voc["synthetic"]["n_trainval"], voc["synthetic"]["n_test"]) if voc["source"] == "synthetic"
                         else (VOC07_TRAINVAL, VOC07_TEST))
    if s["pretrained"]["source"] == "train":
        t = s["pretrain"]
        runs.append(PlannedRun("ssd", "pretrain-voc", ssd(21), t["batch_size"],
                               _steps(n_voc, t["batch_size"], t["epochs"]), n_voc_test))
    n_oi = oi["synthetic"]["n_train"] if oi["source"] == "synthetic" else OPENIMAGES_GUNS_TRAIN
    n_oi_test = oi["synthetic"]["n_test"] if oi["source"] == "synthetic" else 0
    t = s["finetune"]
    runs.append(PlannedRun("ssd", "finetune-openimages", ssd(len(oi["classes"]) + 1), t["batch_size"],
                           _steps(n_oi, t["batch_size"], t["epochs"]), 2 * n_oi_test + n_voc_test))
    return runs


def calibrate(model: Model, batch: int, device: str, threads: int) -> dict:
    """Seconds per image of a training step (SGD, cross-entropy or the sum of a detector's outputs) on ``device``,
    and the achieved TFLOP/s of that step by PALEO's count."""
    import torch

    from dlperf.flops.flops import model_flops_per_step

    torch.set_num_threads(threads)
    module, shape, classes = model.build()
    memory_format = torch.channels_last if model.channels_last else torch.contiguous_format
    module = module.to(device=device, memory_format=memory_format).train()
    b = batch if device == "cuda" else min(batch, CPU_CALIBRATION_BATCH)
    x = torch.randn(b, *shape, device=device).contiguous(memory_format=memory_format)
    y = torch.randint(0, classes or 1, (b,), device=device)
    opt = torch.optim.SGD(module.parameters(), lr=1e-3, momentum=0.9, foreach=True)  # as the engine steps

    def step():
        out = module(x)
        if isinstance(out, tuple):   # a detector: (scores, boxes); inception's (logits, aux)
            loss = out[0].float().pow(2).mean() + out[1].float().pow(2).mean() if classes is None else \
                torch.nn.functional.cross_entropy(out[0], y)
        else:
            loss = torch.nn.functional.cross_entropy(out, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    per_image = time_callable(step, warmup=1, repeats=CALIBRATION_STEPS, device=device).median_s / b
    try:
        flops = model_flops_per_step(module, shape, batch=1)
    except Exception:   # a model the counter cannot trace: no PALEO view, the time still stands
        flops = float("nan")
    return {"model": model.key, "calibration_batch": b, "seconds_per_image": per_image,
            "tflops_achieved": flops / per_image / 1e12}


JOB_IMPORTS = "import snakemake.script, torch, torchvision, pandas, matplotlib.pyplot, dlperf.workflow"


def startup_seconds() -> float:
    """A job's start-up: a fresh interpreter importing what a workflow job imports (Snakemake's script glue, torch,
    torchvision, pandas, matplotlib), median of 3. Many small jobs cost little more than this."""
    return time_callable(lambda: subprocess.run([sys.executable, "-c", JOB_IMPORTS], check=True), warmup=0,
                         repeats=3).median_s


def estimate(cfg: Mapping, device: str, threads: int, other_jobs: Mapping[str, int]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-run estimate, per-model calibration). ``other_jobs``: study -> how many non-training jobs it runs."""
    runs = planned_runs(cfg, device)
    models = {r.model.key: (r.model, r.batch) for r in runs}
    calibration = pd.DataFrame([calibrate(m, b, device, threads) for m, b in models.values()])
    per_image = dict(zip(calibration.model, calibration.seconds_per_image))
    start = startup_seconds()
    rows = [{"study": r.study, "job": r.run, "model": r.model.key, "steps": r.steps,
             "seconds": start + r.steps * r.batch * per_image[r.model.key]
             + r.eval_images * per_image[r.model.key] * FORWARD_SHARE} for r in runs]
    for study, count in other_jobs.items():
        rows.append({"study": study, "job": f"{count} other jobs (start-up each)", "model": "", "steps": 0,
                     "seconds": count * start})
    return pd.DataFrame(rows), calibration


def job_counts(configfile: str | None, directory: str = ".") -> dict[str, int]:
    """{rule: jobs} of a whole run of the config, from Snakemake's dry run of everything (``--forceall``)."""
    args = [sys.executable, "-m", "snakemake", "-n", "--forceall", "--quiet", "rules", "--cores", "1"]
    if configfile:
        args += ["--configfile", configfile]
    return job_stats(subprocess.run(args, cwd=directory, capture_output=True, text=True, check=True).stdout)


def job_stats(text: str) -> dict[str, int]:
    """A dry run's (first) 'Job stats' table as {rule: count}."""
    counts = {}
    for line in text.split("Job stats:")[1].splitlines()[3:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit() or parts[0] == "total":
            break
        counts[parts[0]] = int(parts[1])
    return counts


TRAINING_RULES = ("optimus_train", "depth_train", "transfer_pretrain", "transfer_finetune", "transfer_cache",
                  "ssd_pretrain_voc", "ssd_finetune", "compress_prune", "compress_distill", "compress_deep_shared",
                  "compress_qat_train")


def other_jobs_per_study(counts: Mapping[str, int]) -> dict[str, int]:
    """Non-training jobs per study (the rule's prefix; data_*, devices_*, report_* as their own)."""
    out: dict[str, int] = {}
    for rule, n in counts.items():
        if rule in TRAINING_RULES or rule == "all":
            continue
        study = rule.split("_")[0]
        out[study] = out.get(study, 0) + n
    return out


def summary(per_job: pd.DataFrame, devices: int, measured: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per study and in total: estimated device-hours, and the measured ones where a run's benchmarks are given."""
    table = per_job.groupby("study", as_index=False).seconds.sum().rename(columns={"seconds": "estimated_s"})
    table.loc[len(table)] = {"study": "all", "estimated_s": per_job.seconds.sum()}
    table["estimated_device_hours"] = table.estimated_s / 3600
    if measured is not None:
        by_study = measured.groupby("study").seconds.sum()
        table["measured_s"] = [by_study.sum() if s == "all" else by_study.get(s, float("nan")) for s in table.study]
        table["estimated_over_measured"] = table.estimated_s / table.measured_s
    longest = per_job.seconds.max()
    table.attrs["wall_s"] = max(per_job.seconds.sum() / devices, longest)
    table.attrs["devices"] = devices
    return table


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(prog="python -m dlperf.estimate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--configfile", default=None, help="the config to estimate (default: config/config.yaml)")
    parser.add_argument("--devices", type=int, default=None,
                        help="training jobs at once (GPUs, or CPU cores at one thread each); default: this machine's")
    parser.add_argument("--compare", default=None, help="a finished run's benchmarks/ folder, to set beside")
    args = parser.parse_args(argv)
    from dlperf.workflow import available_cores

    cfg = load_config(args.configfile)
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    threads = int(cfg.get("threads", 1))
    devices = args.devices or (torch.cuda.device_count() if device == "cuda" else max(1, available_cores() // threads))
    counts = job_counts(args.configfile)
    per_job, calibration = estimate(cfg, device, threads, other_jobs_per_study(counts))
    measured = None
    if args.compare:
        from dlperf.report.benchmarks import job_seconds

        measured = job_seconds(args.compare)
    table = summary(per_job, devices, measured)
    print(f"calibrated on this machine's {device} ({threads} thread(s) a job):")
    print(calibration.to_markdown(index=False, floatfmt=".4g"))
    print()
    print(table.to_markdown(index=False, floatfmt=".3g"))
    print(f"\n{sum(counts.values())} jobs; wall time with {devices} training job(s) at once: about "
          f"{table.attrs['wall_s'] / 3600:.2f} h ({table.attrs['wall_s']:.0f} s)")
    return table


def load_config(configfile: str | None = None) -> dict:
    """The config a run would use: ``configfile`` alone (the embedded default without one), with the schema's
    defaults filled in, as the Snakefile does."""
    from snakemake.utils import validate

    cfg = yaml.safe_load(Path(configfile or "config/config.yaml").read_text())
    validate(cfg, "config/schema.yaml")
    return cfg


if __name__ == "__main__":
    main()
