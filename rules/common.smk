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
            "optimus.speed_model.device": [config["optimus"]["speed_model"]["device"]]}
    if "ssd" in config:
        used["ssd.device"] = [config["ssd"]["device"]]
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
        "results/report/report.pdf",
    ] + ssd_outputs()


# ---- FLOPs / PALEO -------------------------------------------------------------------------------------------
def training_runs():
    """Every training run of the workflow, as (study, run directory)."""
    return [("optimus", run) for run in optimus_runs()] + [("depth", run) for run in depth_runs()]


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


# ---- SSD -----------------------------------------------------------------------------------------------------
SSD_DOWNLOADS = "resources/downloads_ssd"  # not under resources/downloads: rule download matches any path there
SSD_WEIGHTS = "resources/weights"


def ssd_downloads_by_file():
    """The VOC tars and Open Images CSVs the SSD study downloads, by file name."""
    s = config["ssd"]
    entries = {}
    voc = s["data"]["voc"]
    if voc["source"] == "download":
        entries.update({Path(d["url"]).name: d for d in voc["downloads"]})
    oi = s["data"]["openimages"]
    if oi["source"] == "download":
        base = oi["download"]["csv_url"].rstrip("/")
        entries["class-descriptions-boxable.csv"] = {"url": f"{base}/class-descriptions-boxable.csv"}
        for split in ("train", "validation", "test"):
            entries[f"{split}-annotations-bbox.csv"] = {"url": f"{base}/{split}/{split}-annotations-bbox.csv"}
    return entries


def ssd_weights_by_file():
    """The published checkpoint to download, by file name (none when trained in the DAG or given locally)."""
    pretrained = config["ssd"]["pretrained"]
    if pretrained["source"] == "download" and not pretrained.get("local_path"):
        return {Path(pretrained["download"]["url"]).name: pretrained["download"]}
    return {}


def ssd_weights_pattern():
    """A wildcard constraint matching exactly the SSD weights files, so other studies' weights are not claimed."""
    import re

    return "|".join(map(re.escape, ssd_weights_by_file())) or "(?!)"


def ssd_voc_inputs(wildcards):
    voc = config["ssd"]["data"]["voc"]
    if voc["source"] != "download":
        return {}
    return {"archives": [f"{SSD_DOWNLOADS}/{Path(d['url']).name}" for d in voc["downloads"]]}


def ssd_openimages_inputs(wildcards):
    if config["ssd"]["data"]["openimages"]["source"] != "download":
        return {}
    names = ["class-descriptions-boxable.csv"] + [f"{s}-annotations-bbox.csv" for s in ("train", "validation", "test")]
    return {"csvs": [f"{SSD_DOWNLOADS}/{name}" for name in names]}


def ssd_voc_checkpoint():
    """The VOC-trained SSD: trained in the DAG, the published checkpoint (downloaded), or a local copy."""
    pretrained = config["ssd"]["pretrained"]
    if pretrained["source"] == "train":
        return "results/ssd/pretrain/checkpoint.pt"
    return pretrained.get("local_path") or f"{SSD_WEIGHTS}/{Path(pretrained['download']['url']).name}"


def ssd_outputs():
    if "ssd" not in config:
        return []
    return [
        "results/ssd/voc/ap.csv",
        "results/ssd/tables/voc_ap.tex",
        "results/ssd/figures/voc_ap.pdf",
        "results/ssd/openimages/ap_before.csv",
        "results/ssd/openimages/ap_after.csv",
        "results/ssd/tables/openimages_ap.tex",
        "results/ssd/figures/openimages_ap.pdf",
    ]


def report_ssd():
    s = config["ssd"]
    return {
        "values": {  # keyword arguments of dlperf.report.values.ssd_values
            "voc_ap": "results/ssd/voc/ap.csv",
            "before": "results/ssd/openimages/ap_before.csv",
            "after": "results/ssd/openimages/ap_after.csv",
            "voc": "results/ssd/voc/provenance.json",
            "finetune": "results/ssd/finetune/provenance.json",
            "openimages": "results/ssd/openimages/provenance.json",
        },
        "params": {
            "width_mult": s["model"]["width_mult"],
            "image_size": s["model"]["image_size"],
            "pretrained_source": s["pretrained"]["source"],
        },
        "includes": [
            "results/ssd/tables/voc_ap.tex",
            "results/ssd/figures/voc_ap.pdf",
            "results/ssd/tables/openimages_ap.tex",
            "results/ssd/figures/openimages_ap.pdf",
        ],
        "provenance": [f"results/ssd/{name}/provenance.json" for name in ("voc", "finetune", "openimages")],
    }


REPORT_STUDIES["ssd"] = report_ssd  # after flops and optimus in the report
