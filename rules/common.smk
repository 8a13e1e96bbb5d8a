# Paths and input functions shared by the rules. Nothing here runs a job.
from pathlib import Path

CONDA_ENV = "../envs/dlperf.yaml"



wildcard_constraints:
    dataset="cifar10|cifar100",
    arch="resnet[0-9]+",
    lr="[0-9]e-?[0-9]+",
    device="[a-z][a-z0-9_]*",
    seed="[0-9]+",


def dataset_config(name):
    return config["data"][name]


def download_of(dataset):
    """The download entry of a dataset whose source is 'download', else None."""
    entry = dataset_config(dataset)
    return entry["download"] if entry["source"] == "download" else None


def download_target(dataset):
    """resources/downloads/<file name of the URL> for a downloaded dataset."""
    return f"resources/downloads/{Path(download_of(dataset)['url']).name}"


def downloads_by_file():
    return {Path(d["url"]).name: d for d in map(download_of, config["data"]) if d is not None}


def prepare_inputs(wildcards):
    """A downloaded dataset is extracted from its archive; a synthetic one needs no input."""
    return {"archive": download_target(wildcards.dataset)} if download_of(wildcards.dataset) else {}


# ---- Optimus -------------------------------------------------------------------------------------------------
OPTIMUS_RUNS = "results/optimus/runs/{arch}-{device}-s{seed}"


def optimus_runs(archs=None):
    o = config["optimus"]
    archs = archs or o["archs"] + [o["target_arch"]]
    return [OPTIMUS_RUNS.format(arch=a, device=d, seed=s) for a in archs for d in o["devices"] for s in o["seeds"]]


def optimus_run_files(name, archs=None):
    return [f"{run}/{name}" for run in optimus_runs(archs)]


def optimus_target_files(name):
    """``name`` of the target model's runs: the first seed on every device label."""
    o = config["optimus"]
    return [f"{OPTIMUS_RUNS.format(arch=o['target_arch'], device=d, seed=o['seeds'][0])}/{name}" for d in o["devices"]]


def device_peak(wildcards):
    return f"results/flops/peak/{wildcards.device}.json"


def optimus_n_train():
    """Training images per epoch of an Optimus run: the configured subset, else the whole training set."""
    o, data = config["optimus"], config["data"]["cifar10"]
    return o.get("n_train") or (data["synthetic"]["n_train"] if data["source"] == "synthetic" else 50000)


def check_device_labels():
    """Every device label a study names must be declared under `devices` (the schema cannot cross-reference)."""
    used = {"optimus.devices": config["optimus"]["devices"], "flops.measure.device": [config["flops"]["measure"]["device"]],
            "depth.device": [config["depth"]["device"]],
            "optimus.speed_model.device": [config["optimus"]["speed_model"]["device"]],
            "compress.device": [config["compress"]["device"]]}
    for key, labels in used.items():
        unknown = [label for label in labels if label not in config["devices"]]
        if unknown:
            raise ValueError(
                f"config {key}: unknown device label(s) {', '.join(map(repr, unknown))}; "
                f"declared under `devices`: {', '.join(config['devices'])}"
            )


check_device_labels()


def device_accelerator(label):
    """cpu for a CPU label; for a CUDA label, the top-level `device` (cuda, or auto to fall back to the CPU)."""
    return "cpu" if config["devices"][label]["accelerator"] == "cpu" else config["device"]


def accelerator_of(wildcards):
    return device_accelerator(wildcards.device)


def slurm_partition(label):
    """The SLURM partition of a device label (`devices.<label>.slurm_partition`); None: the cluster's default."""
    return config["devices"][label].get("slurm_partition")


def gpu_model(label):
    """The GPU type a CUDA label asks SLURM for (`--gpus=<gpu_model>:1`); None: any GPU, or none for a CPU label."""
    entry = config["devices"][label]
    return entry.get("gpu_model") if entry["accelerator"] == "cuda" else None


def slurm_partition_of(wildcards):
    return slurm_partition(wildcards.device)


def gpu_model_of(wildcards):
    return gpu_model(wildcards.device)


def gpu_count(label):
    """A GPU slot for jobs on a CUDA label (capped locally by --resources gpu=K), none on a CPU label."""
    return int(config["devices"][label]["accelerator"] == "cuda")


def gpu_slots(wildcards):
    return gpu_count(wildcards.device)


def all_outputs():
    data = [f"resources/data/{name}" for name in ("cifar10", "cifar100") if name in config["data"]]
    if "decathlon" in config["data"]:
        data.append("resources/data/decathlon")
    return data + [
        "results/optimus/figures/learning_curves.pdf",
        "results/optimus/tables/learning_curves.tex",
        "results/optimus/tables/loss_fits.tex",
        "results/optimus/tables/prediction_error.tex",
        "results/optimus/figures/time_to_accuracy.pdf",
        "results/flops/summary.csv",
        "results/flops/tables/peak_time.tex",
        "results/flops/tables/layer_timing.tex",
        "results/flops/figures/ppp.pdf",
        "results/flops/training_ppp.csv",
        "results/depth/tables/summary.tex",
        "results/depth/figures/grad_flow.pdf",
        "results/depth/figures/curves.pdf",
        "results/compress/summary.csv",
        "results/compress/tables/summary.tex",
        "results/compress/figures/accuracy_sparsity.pdf",
        "results/compress/figures/size_accuracy.pdf",
        "results/report/report.pdf",
    ]


# ---- FLOPs / PALEO -------------------------------------------------------------------------------------------
def training_runs():
    """Every training run of the workflow, as (study, run directory)."""
    return [("optimus", run) for run in optimus_runs()] + [("depth", run) for run in depth_runs()] + [
        ("compress", run) for run in compress_prune_runs() + compress_distill_runs()]


# ---- Depth ---------------------------------------------------------------------------------------------------
DEPTH_RUNS = "results/depth/runs/{model}-lr{lr}-s{seed}"


def lr_label(lr):
    """1e-3 -> '1e-3': the learning rate as it appears in run names."""
    mantissa, exponent = f"{lr:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def depth_runs():
    d = config["depth"]
    return [DEPTH_RUNS.format(model=r["model"], lr=lr_label(r["lr"]), seed=d["seed"]) for r in d["runs"]]


def depth_run_lr(wildcards):
    """The configured learning rate of a run (the exact float, not the label)."""
    for r in config["depth"]["runs"]:
        if r["model"] == wildcards.model and lr_label(r["lr"]) == wildcards.lr:
            return r["lr"]
    raise ValueError(f"no depth run {wildcards.model} at lr {wildcards.lr} in config depth.runs")


# ---- Report --------------------------------------------------------------------------------------------------
# A study's report section (report/sections/<study>.tex) quotes values computed from some of its results (the
# keyword arguments of its function in dlperf.report.values.STUDIES) and includes others (tables, figures). It is
# reported when its key is in the config.
def report_optimus():
    o = config["optimus"]
    device = o["speed_model"]["device"]  # the target-model prediction shown is on the speed model's device label
    prediction_figure = f"results/optimus/figures/resnet50_prediction_{device}.pdf"
    runs = optimus_run_files("provenance.json")
    results = [f"results/optimus/{name}.provenance.json" for name in ("loss_fits", "prediction", "time_to_accuracy")]
    return {
        "values": {  # keyword arguments of dlperf.report.values.optimus_values
            "fits": "results/optimus/loss_fits.csv",
            "regression": "results/optimus/beta_regression.csv",
            "errors": "results/optimus/prediction_error.csv",
            "curves": "results/optimus/learning_curves.csv",
            "time_to_accuracy": "results/optimus/time_to_accuracy.csv",
            "theta": "results/optimus/theta.json",
            "runs": runs,
            "dataset": "resources/data/cifar10",
            "prediction": "results/optimus/prediction.provenance.json",
            "speed": "results/optimus/time_to_accuracy.provenance.json",
        },
        "params": {
            "horizon_epochs": o["prediction_horizon_epochs"],
            "prediction_device": device,
            "prediction_figure": prediction_figure,
        },
        "includes": [
            "results/optimus/figures/learning_curves.pdf",
            "results/optimus/tables/learning_curves.tex",
            "results/optimus/figures/loss_fits.pdf",
            "results/optimus/tables/loss_fits.tex",
            "results/optimus/tables/prediction_error.tex",
            prediction_figure,
            "results/optimus/figures/time_to_accuracy.pdf",
        ],
        "provenance": runs + results + ["resources/data/cifar10"],
    }


def report_flops():
    f = config["flops"]
    return {
        "values": {  # keyword arguments of dlperf.report.values.flops_values
            "summary": "results/flops/summary.csv",
            "layers": expand("results/flops/{model}_layers.csv", model=f["models"]),
            "peak_time": "results/flops/peak_time.csv",
            "timing": "results/flops/layer_timing.csv",
            "ppp": "results/flops/ppp.csv",
            "training_ppp": "results/flops/training_ppp.csv",
            "peak": f"results/flops/peak/{f['measure']['device']}.json",
            "measure": "results/flops/measure.provenance.json",
        },
        "params": {"image_size": f["image_size"], "flop_per_mac": f["flop_per_mac"]},
        "includes": [
            "results/flops/tables/summary.tex",
            "results/flops/vgg16_layers.tex",
            "results/flops/tables/peak_time.tex",
            "results/flops/tables/layer_timing.tex",
            "results/flops/figures/ppp.pdf",
            "results/flops/tables/training_ppp.tex",
        ],
        "provenance": ["results/flops/measure.provenance.json"],
    }


# Section order of the report: a study's key in the config -> what its section reads and includes.
REPORT_STUDIES = {
    "optimus": report_optimus,
    "flops": report_flops,
}


def reported_studies():
    return {study: spec() for study, spec in REPORT_STUDIES.items() if study in config}


def report_section_files():
    return [f"report/sections/{study}.tex" for study in reported_studies()]


def report_value_inputs():
    return {f"{study}__{name}": files for study, spec in reported_studies().items()
            for name, files in spec["values"].items()}


def report_provenance():
    return list(dict.fromkeys(p for spec in reported_studies().values() for p in spec["provenance"]))


def report_includes():
    return [path for spec in reported_studies().values() for path in spec["includes"]]


# ---- Compress ------------------------------------------------------------------------------------------------
COMPRESS_PRUNE_RUNS = "results/compress/prune/{arch}-{device}-s{seed}-sp{sparsity}"
COMPRESS_DISTILL_RUNS = "results/compress/distill/{arch}-{mode}-{device}-s{seed}"
COMPRESS_MODES = ("labels", "kd")  # a distillation student trained on labels only, and on soft targets


def compress_source(arch):
    """The Optimus run of ``arch`` that the compress study reuses: its device label and seed."""
    c = config["compress"]
    return OPTIMUS_RUNS.format(arch=arch, device=c["device"], seed=c["seed"])


def sparsity_label(sparsity):
    """0.5 -> '0.5': a sparsity as it appears in run names."""
    return f"{sparsity:g}"


def compress_prune_runs():
    c = config["compress"]
    return [COMPRESS_PRUNE_RUNS.format(arch=c["arch"], device=c["device"], seed=c["seed"],
                                       sparsity=sparsity_label(s)) for s in c["prune"]["sparsities"]]


def compress_distill_runs():
    c = config["compress"]
    return [COMPRESS_DISTILL_RUNS.format(arch=c["distill"]["student"], mode=mode, device=c["device"], seed=c["seed"])
            for mode in COMPRESS_MODES]


def compress_ssd():
    """Whether the SSD is quantized too (compress.quantize.ssd): it needs the SSD study's ONNX file."""
    return config["compress"]["quantize"]["ssd"]


def compress_summary_inputs():
    inputs = {
        "pruning": "results/compress/pruning.csv",
        "classifier": "results/compress/quantize/classifier.csv",
        "latency": "results/compress/quantize/latency.csv",
        "sharing": "results/compress/share/sharing.csv",
        "distill": "results/compress/distill.csv",
    }
    if compress_ssd():
        inputs["ssd"] = "results/compress/quantize/ssd.csv"
        inputs["ssd_latency"] = "results/compress/quantize/ssd_latency.csv"
    return inputs


def report_compress():
    c = config["compress"]
    return {
        "values": {  # keyword arguments of dlperf.report.values.compress_values
            "summary": "results/compress/summary.csv",
            "pruning": "results/compress/pruning.csv",
            "classifier": "results/compress/quantize/classifier.csv",
            "latency": "results/compress/quantize/latency.csv",
            "sharing": "results/compress/share/sharing.csv",
            "distill": "results/compress/distill.csv",
            "quantize": "results/compress/quantize/provenance.json",
        },
        "params": {"settings": c, "ssd": compress_ssd()},
        "includes": [
            "results/compress/figures/accuracy_sparsity.pdf",
            "results/compress/figures/size_accuracy.pdf",
            "results/compress/tables/summary.tex",
        ],
        "provenance": [f"{run}/provenance.json" for run in compress_prune_runs() + compress_distill_runs()] + [
            "results/compress/quantize/provenance.json",
            "results/compress/share/provenance.json",
        ],
    }


REPORT_STUDIES["compress"] = report_compress
