# What the rules share: the studies and how they depend on each other, data, device labels, training runs, the
# report's sources. Nothing here runs a job. A study's own logic (its runs, the settings each job reads) is a plan in
# its package (dlperf.<study>.plan, pure functions of its config section) that its rules/<study>.smk calls.
import re
from pathlib import Path

import dlperf.report.claims as claims_ledger
from dlperf.bundle.code import code_files
from dlperf.timing import TIMING_RULES  # threads: MACHINE_CORES, each
from dlperf.workflow import available_cores

CONDA_ENV = "../envs/dlperf.yaml"
# The cores of this machine: the threads of a job that must run alone (a benchmark); a local run caps it at --cores.
MACHINE_CORES = available_cores()

# Snakemake starts the ready job of highest priority first. The longest training runs go first, so that the short
# jobs fill the cores around them instead of leaving one long run alone at the end (longest-first scheduling).
# The device's peak first of all: every training run reads it, and as a timing job it needs every core free at once.
LONGEST_FIRST = {"peak": 100, "depth": 30, "ssd": 20, "optimus": 10}

# Every study, in the order its rules are included (a study's rules may use an earlier study's outputs).
STUDIES = ("flops", "optimus", "depth", "transfer", "ssd", "serve", "compress")
# Studies that cannot run without another: the compress study prunes, quantizes and distils the Optimus study's
# trained ResNets; the serving study exports the SSD study's fine-tuned detector.
NEEDS = {"compress": ["optimus"], "serve": ["ssd"]}


def enabled_studies():
    """The studies whose config section is present, in inclusion order."""
    return [study for study in STUDIES if study in config]


def check_studies():
    """A study that needs another fails before any job runs, naming what to add or remove."""
    for study, needed in NEEDS.items():
        for other in needed:
            if study in config and other not in config:
                raise ValueError(
                    f"config: the {study} study needs the {other} study (config section `{other}`), which is "
                    f"absent; add `{other}` or remove `{study}`"
                )
    if "compress" in config and config["compress"]["quantize"]["ssd"] and "serve" not in config:
        raise ValueError(
            "config compress.quantize.ssd: quantizing the SSD needs the serve study's ONNX export (config section "
            "`serve`), which is absent; add `serve` or set compress.quantize.ssd to false"
        )


check_studies()


def workflow_source(path):
    """A file of the repository (the report's LaTeX sources) by its absolute path: the working directory, where
    resources/ and results/ live, may be elsewhere (snakemake --directory)."""
    return str(Path(workflow.basedir, path))


def render_code(script):
    """As inputs of a render rule (dlperf.bundle.RENDER_RULES), the code it runs
    (scripts/<script>.py and every dlperf module it imports), so that an edited plotting function redraws the
    figures whose code imports it, and no other (Snakemake's modification-time trigger; Snakemake does not compare
    a script's text)."""
    return [local(path) for path in code_files(workflow_source(f"scripts/{script}.py"))]


def dataset_record(name):
    """A dataset's provenance record under results/, which data_record copies there: what a render rule reads
    of a dataset, so that a bundle of the results redraws the report without the dataset."""
    return f"results/data/{name}.provenance.json"


wildcard_constraints:
    dataset="cifar10|cifar100",
    arch="resnet[0-9]+",
    lr="[0-9]e-?[0-9]+",
    device="[a-z][a-z0-9_]*",
    seed="[0-9]+",


# ---- Data -------------------------------------------------------------------------------------------------------
def dataset_config(name):
    return config["data"][name]


def download_of(dataset):
    """The download entry of a dataset whose source is 'download', else None."""
    entry = dataset_config(dataset)
    return entry.get("download") if entry["source"] == "download" else None


def download_path(entry):
    """resources/downloads/<file name of the URL>."""
    return f"resources/downloads/{Path(entry['url']).name}"


def all_downloads():
    """Every file that rule data_download fetches (CIFAR archives, ImageFolder originals, backbone and ImageNet
    network weights)."""
    entries = [d for d in map(download_of, config["data"]) if d is not None]
    for entry in config["data"].values():
        if entry["source"] == "download" and "downloads" in entry:
            entries += list(entry["downloads"].values())
    entries += [
        b["weights"] for b in config.get("transfer", {}).get("backbones", {}).values() if b["weights"] != "pretrain"
    ]
    deep = config.get("compress", {}).get("deep", {})
    models = deep.get("imagenet", {}).get("models", {})
    entries += [  # the ImageNet networks Deep Compression runs on, unless a local copy stands in
        models[name]["weights"]
        for name in deep.get("networks", [])
        if name in models and not models[name]["local_weights"]
    ]
    return entries


def downloads_by_file():
    return {Path(d["url"]).name: d for d in all_downloads()}


def prepare_inputs(wildcards):
    """A downloaded dataset is extracted from its archive; a synthetic one needs no input."""
    entry = download_of(wildcards.dataset)
    return {"archive": download_path(entry)} if entry else {}


def imagefolder_datasets():
    """Datasets kept as ImageFolders (every data entry but the CIFAR pickles)."""
    return [name for name in config["data"] if name not in ("cifar10", "cifar100")]


def imagefolder_inputs(wildcards):
    """A downloaded ImageFolder is converted from its original files; a synthetic one needs no input."""
    entry = dataset_config(wildcards.dataset)
    if entry["source"] != "download":
        return {}
    return {role: download_path(d) for role, d in entry["downloads"].items()}


def preparation_params(wildcards):
    """What preparing a dataset reads: its source and generator settings (or format). The download entries are
    left out: the archive is an input, identified by its checksum, and a mirror's URL must not redo the work."""
    entry = dataset_config(wildcards.dataset)
    return {"source": entry["source"], **({"synthetic": entry["synthetic"]} if entry["source"] == "synthetic" else {})}


# ---- Device labels --------------------------------------------------------------------------------------------
# The device label(s) each study runs on, by config key.
STUDY_DEVICE_KEYS = {
    "optimus": lambda s: {"optimus.devices": s["devices"], "optimus.speed_model.device": [s["speed_model"]["device"]]},
    "flops": lambda s: {"flops.measure.device": [s["measure"]["device"]]},
    "depth": lambda s: {"depth.device": [s["device"]]},
    "transfer": lambda s: {"transfer.device": [s["device"]]},
    "ssd": lambda s: {"ssd.device": [s["device"]]},
    "compress": lambda s: {"compress.device": [s["device"]]},
}


def check_device_labels():
    """Every device label a study names must be declared under `devices` (the schema cannot cross-reference)."""
    for study in enabled_studies():
        for key, labels in STUDY_DEVICE_KEYS.get(study, lambda s: {})(config[study]).items():
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


def gpu_pack(label):
    """How many training jobs share one GPU of a CUDA label (`devices.<label>.pack`); 1 on a CPU label."""
    entry = config["devices"][label]
    return entry.get("pack", 1) if entry["accelerator"] == "cuda" else 1


def gpu_pack_of(wildcards):
    return gpu_pack(wildcards.device)


PEAK = "results/devices/peak/{device}.json"  # rule devices_peak


def peak_of(label):
    """The measured peak FLOP/s of a device label (rule devices_peak), against which a training run's percent of
    peak is computed."""
    return PEAK.format(device=label)


def device_peak(wildcards):
    return peak_of(wildcards.device)


# ---- Params ---------------------------------------------------------------------------------------------------
def drop(mapping, *keys):
    """``mapping`` without ``keys``: a config section minus what its job does not read (so that editing one of
    those keys does not rerun the job)."""
    return {k: v for k, v in mapping.items() if k not in keys}


def without_lr(train):
    """A train section for runs whose learning rate is their own (a wildcard of a sweep), not optimizer.lr."""
    return {**train, "optimizer": drop(train["optimizer"], "lr")}


# ---- Training runs --------------------------------------------------------------------------------------------
# Each study that trains with the engine adds a function listing its run directories; the FLOPs study's table of
# training percent of peak reads every run listed here.
TRAINING_RUNS = {}


def training_runs():
    """Every training run of the enabled studies, as (study, run directory)."""
    return [(study, run) for study, runs in TRAINING_RUNS.items() for run in runs()]


# ---- Report ---------------------------------------------------------------------------------------------------
# Each study's last rule, <study>_values, writes results/<study>/values.json: the macros its report section quotes,
# with every other final result of the study among its inputs. The report gathers these files.
# Results a study makes that the report omits (the ONNX graph, the model repository): rule all's, beside the report.
UNREPORTED = []

REPORT_ORDER = ("transfer", "flops", "optimus", "depth", "ssd", "serve", "compress")


def reported_studies():
    return [study for study in REPORT_ORDER if study in config]


def report_sections():
    return [f"report/sections/{study}.tex" for study in reported_studies()]


def report_includes():
    """Every result the report includes, each once: what the LaTeX sources name, and what a macro names (a figure
    per device label, the demo's panels), which its study's values rule lists."""
    named = [path for source in ["report/report.tex", *report_sections()] for path in tex_results(source)]
    built = [path for study in reported_studies() for path in getattr(rules, f"{study}_values").input.includes]
    return list(dict.fromkeys(named + built))


# The claims ledger (config/claims.yaml): validated here, before any job runs; rule report_claims checks it.
CLAIMS = claims_ledger.load_ledger(
    workflow_source("config/claims.yaml"), workflow_source("config/claims.schema.yaml"), config
)
CLAIM_SETTINGS = claims_ledger.settings_read(CLAIMS, config)


def claim_inputs():
    """The result files the claims of the studies that are on read, each once."""
    files = [
        path
        for claim in CLAIMS
        if claims_ledger.study_of(claim) in config
        for path in claims_ledger.claim_files(claim, CLAIM_SETTINGS)
    ]
    return list(dict.fromkeys(files))


def tex_results(source):
    """The results a LaTeX source includes: every brace argument that is a path under results/, comments left out.
    The report's generated files (results/report/) are rule report_values' outputs and are not listed."""
    text = re.sub(r"(?<!\\)%.*", "", Path(workflow_source(source)).read_text())
    names = re.findall(r"\{(results/[^{}\\\s]+)\}", text)
    return list(dict.fromkeys(n for n in names if not n.startswith("results/report/")))
