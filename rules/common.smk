# Paths and input functions shared by the rules. Nothing here runs a job.
from pathlib import Path

from dlperf.workflow import lr_label

CONDA_ENV = "../envs/dlperf.yaml"


def workflow_source(path):
    """A file of the repository (the report's LaTeX sources) by its absolute path: the working directory, where
    resources/ and results/ live, may be elsewhere (snakemake --directory)."""
    return str(Path(workflow.basedir, path))


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
    return entry.get("download") if entry["source"] == "download" else None


def download_target(dataset):
    """resources/downloads/<file name of the URL> for a downloaded dataset."""
    return download_path(download_of(dataset))


def download_path(entry):
    return f"resources/downloads/{Path(entry['url']).name}"


def all_downloads():
    """Every file the config downloads: CIFAR archives, ImageFolder originals, backbone weights."""
    entries = [d for d in map(download_of, config["data"]) if d is not None]
    for name, entry in config["data"].items():
        if entry["source"] == "download" and "downloads" in entry:
            entries += list(entry["downloads"].values())
    entries += [b["weights"] for b in config.get("transfer", {}).get("backbones", {}).values()
                if b["weights"] != "pretrain"]
    return entries


def downloads_by_file():
    return {Path(d["url"]).name: d for d in all_downloads()}


def prepare_inputs(wildcards):
    """A downloaded dataset is extracted from its archive; a synthetic one needs no input."""
    return {"archive": download_target(wildcards.dataset)} if download_of(wildcards.dataset) else {}


def imagefolder_datasets():
    """Datasets kept as ImageFolders (every data entry but the CIFAR pickles)."""
    return [name for name in config["data"] if name not in ("cifar10", "cifar100")]


def imagefolder_inputs(wildcards):
    """A downloaded ImageFolder is converted from its original files; a synthetic one needs no input."""
    entry = dataset_config(wildcards.dataset)
    if entry["source"] != "download":
        return {}
    return {role: download_path(d) for role, d in entry["downloads"].items()}


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
    if "transfer" in config:
        used["transfer.device"] = [config["transfer"]["device"]]
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
    data = [f"resources/data/{name}" for name in ("cifar10", "cifar100", "decathlon") if name in config["data"]]
    return data + transfer_outputs() + [
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
        *serve_outputs(),
        "results/compress/summary.csv",
        "results/compress/tables/summary.tex",
        "results/compress/figures/accuracy_sparsity.pdf",
        "results/compress/figures/size_accuracy.pdf",
        "results/report/report.pdf",
    ] + ssd_outputs()


# ---- FLOPs / PALEO -------------------------------------------------------------------------------------------
def training_runs():
    """Every training run of the workflow, as (study, run directory)."""
    return ([("optimus", run) for run in optimus_runs()] + [("depth", run) for run in depth_runs()]
            + [("transfer", run) for run in transfer_trained_runs()]
            + [("compress", run) for run in compress_prune_runs() + compress_distill_runs()])


# ---- Depth ---------------------------------------------------------------------------------------------------
DEPTH_RUNS = "results/depth/runs/{model}-lr{lr}-s{seed}"


def depth_runs():
    d = config["depth"]
    return [DEPTH_RUNS.format(model=r["model"], lr=lr_label(r["lr"]), seed=d["seed"]) for r in d["runs"]]


def depth_run_lr(wildcards):
    """The configured learning rate of a run (the exact float, not the label)."""
    for r in config["depth"]["runs"]:
        if r["model"] == wildcards.model and lr_label(r["lr"]) == wildcards.lr:
            return r["lr"]
    raise ValueError(f"no depth run {wildcards.model} at lr {wildcards.lr} in config depth.runs")


# ---- Transfer -----------------------------------------------------------------------------------------------
TRANSFER_RUNS = "results/transfer/runs/{mode}-{backbone}-lr{lr}"
TRANSFER_PRETRAIN = "results/transfer/pretrain/{backbone}"


def check_transfer():
    """Cross-references the schema cannot express: backbone names, datasets and image sizes."""
    if "transfer" not in config:
        return
    t = config["transfer"]
    named = {"transfer.backbone": [t["backbone"]],
             "transfer.backbone_comparison.backbones": t["backbone_comparison"]["backbones"]}
    for key, names in named.items():
        unknown = [n for n in names if n not in t["backbones"]]
        if unknown:
            raise ValueError(f"config {key}: unknown backbone(s) {', '.join(map(repr, unknown))}; "
                             f"declared under transfer.backbones: {', '.join(t['backbones'])}")
    datasets = {"transfer.dataset": t["dataset"]}
    if any(b["weights"] == "pretrain" for b in t["backbones"].values()):
        if "dataset" not in t.get("pretrain", {}) or "train" not in t["pretrain"]:
            raise ValueError("config transfer.pretrain: backbones with `weights: pretrain` need "
                             "transfer.pretrain.dataset and transfer.pretrain.train")
        datasets["transfer.pretrain.dataset"] = t["pretrain"]["dataset"]
    for key, name in datasets.items():
        if name not in config["data"] or name in ("cifar10", "cifar100"):
            raise ValueError(f"config {key}: {name!r} is not an ImageFolder dataset under data "
                             f"(have: {', '.join(n for n in config['data'] if n not in ('cifar10', 'cifar100'))})")
    for name, b in t["backbones"].items():
        size = b.get("image_size") or t["image_size"]
        if b["arch"] == "inception_v3" and size < 75:
            raise ValueError(f"config transfer.backbones.{name}: inception_v3 needs image_size >= 75, got {size}")


check_transfer()


def transfer_backbone_images(backbone):
    t = config["transfer"]
    return t["backbones"][backbone].get("image_size") or t["image_size"]


def transfer_weights(backbone):
    """The weights a backbone starts from: pretrained in the DAG, or the verified ImageNet file."""
    if config["transfer"]["backbones"][backbone]["weights"] == "pretrain":
        return f"resources/weights/pretrained/{backbone}.pt"
    return f"resources/weights/imagenet/{backbone}.pth"


def transfer_weights_of(wildcards):
    return transfer_weights(wildcards.backbone)


def transfer_download_of(wildcards):
    return download_path(config["transfer"]["backbones"][wildcards.backbone]["weights"])


def transfer_run_lr(wildcards):
    """The configured learning rate of a run (the exact float, not the label)."""
    t = config["transfer"]
    lrs = t["finetune"]["lrs"] if wildcards.mode == "finetune" else (
        t["feature_extractor"]["lrs"] + t["backbone_comparison"]["lrs"])
    for lr in lrs:
        if lr_label(lr) == wildcards.lr:
            return lr
    raise ValueError(f"no {wildcards.mode} run at lr {wildcards.lr} in config transfer")


def transfer_runs(mode, backbones=None, lrs=None):
    t = config["transfer"]
    backbones = backbones or [t["backbone"]]
    lrs = lrs or (t["finetune"]["lrs"] if mode == "finetune" else t["feature_extractor"]["lrs"])
    runs = [TRANSFER_RUNS.format(mode=mode, backbone=b, lr=lr_label(lr)) for b in backbones for lr in lrs]
    return list(dict.fromkeys(runs))


def transfer_comparison_runs():
    c = config["transfer"]["backbone_comparison"]
    return transfer_runs("feature", c["backbones"], c["lrs"]) if c["backbones"] and c["lrs"] else []


def transfer_pretrained():
    t = config.get("transfer", {})
    return [b for b, entry in t.get("backbones", {}).items() if entry["weights"] == "pretrain"]


def transfer_trained_runs():
    """Runs that train a whole network with the engine (their percent of peak joins the FLOPs study's table)."""
    if "transfer" not in config:
        return []
    return transfer_runs("finetune") + [TRANSFER_PRETRAIN.format(backbone=b) for b in transfer_pretrained()]


def transfer_outputs():
    if "transfer" not in config:
        return []
    return [
        "results/transfer/dataset/classes.csv",
        "results/transfer/summary.csv",
        "results/transfer/backbones.csv",
        "results/transfer/device_timing.csv",
    ]


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


def report_depth():
    runs = [f"{run}/provenance.json" for run in depth_runs()]
    return {
        "values": {  # keyword arguments of dlperf.report.values.depth_values
            "summary": "results/depth/summary.csv",
            "grad_flow": "results/depth/grad_flow.csv",
            "runs": runs,
            "dataset": "resources/data/cifar100",
        },
        "params": {},
        "includes": [
            "results/depth/tables/summary.tex",
            "results/depth/figures/curves.pdf",
            "results/depth/figures/grad_flow.pdf",
        ],
        "provenance": runs + ["resources/data/cifar100"],
    }


def report_transfer():
    t = config["transfer"]
    finetune = f"{transfer_runs('finetune')[0]}/provenance.json"
    values = {  # keyword arguments of dlperf.report.values.transfer_values
        "classes": "results/transfer/dataset/classes.csv",
        "summary": "results/transfer/summary.csv",
        "backbones": "results/transfer/backbones.csv",
        "timing": "results/transfer/device_timing.csv",
        "dataset": f"resources/data/{t['dataset']}",
        "finetune": finetune,
    }
    if t["backbone"] in transfer_pretrained():
        values["pretrain"] = f"{TRANSFER_PRETRAIN.format(backbone=t['backbone'])}/provenance.json"
    return {
        "values": values,
        "params": {},
        "includes": [
            "results/transfer/dataset/class_distribution.pdf",
            "results/transfer/dataset/samples.pdf",
            "results/transfer/tables/summary.tex",
            "results/transfer/figures/curves_finetune.pdf",
            "results/transfer/figures/curves_feature.pdf",
            "results/transfer/tables/backbones.tex",
            "results/transfer/tables/device_timing.tex",
        ],
        "provenance": [finetune, "results/transfer/device_timing.provenance.json", f"resources/data/{t['dataset']}"],
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


# ---- Serving -------------------------------------------------------------------------------------------------
# rules/serve.smk exports the SSD study's fine-tuned detector; its inputs are the SSD study's outputs.
SERVE_FINETUNE = "results/ssd/finetune"
SERVE_OPENIMAGES = "resources/data/openimages"
SERVE_MODEL = "ssd"  # the model's name in the repository and in request URLs
SERVE_REPOSITORY = "results/ssd/model_repository"
SERVE_MODEL_FILES = [f"{SERVE_REPOSITORY}/{SERVE_MODEL}/1/model.onnx", f"{SERVE_REPOSITORY}/{SERVE_MODEL}/config.pbtxt"]


def ssd_model_config():
    """The fine-tuned SSD's architecture, from the SSD study's config: {width_mult, image_size}."""
    try:
        model = config["ssd"]["model"]
        return {"width_mult": model["width_mult"], "image_size": model["image_size"]}
    except KeyError as error:
        raise KeyError(
            f"config ssd.model.width_mult and ssd.model.image_size are needed by the serving rules (rules/serve.smk) "
            f"to rebuild the fine-tuned SSD of {SERVE_FINETUNE}; missing: {error}"
        ) from None


def ssd_model_of(wildcards):
    return ssd_model_config()


def serve_demo_images():
    return [f"results/ssd/serving/annotated_{name}.png" for name in config["serve"]["demo"]["classes"]]


def serve_outputs():
    return [
        "results/ssd/onnx/parity.json",
        "results/ssd/onnx/graph.svg",
        "results/ssd/onnx/docstrings.md",
        *SERVE_MODEL_FILES,
        *serve_demo_images(),
        "results/ssd/serving/tables/bench.tex",
    ]


def report_serve():
    return {
        "values": {  # keyword arguments of dlperf.report.values.serving_values
            "bench": "results/ssd/serving/bench.csv",
            "parity": "results/ssd/onnx/parity.json",
            "export": "results/ssd/onnx/provenance.json",
            "detections": "results/ssd/serving/detections.json",
        },
        "params": {
            "classes": config["serve"]["demo"]["classes"],
            "batching": config["serve"]["batching"],
        },
        "includes": ["results/ssd/serving/tables/bench.tex", *serve_demo_images()],
        "provenance": ["results/ssd/onnx/provenance.json", "results/ssd/serving/provenance.json",
                       "results/ssd/serving/bench.provenance.json"],
    }


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


# ---- Report sections -----------------------------------------------------------------------------------------
# Section order of the report, as the course presents the studies: a study's key in the config -> what its section
# reads and includes (the report_<study> functions above).
REPORT_STUDIES = {
    "transfer": report_transfer,
    "flops": report_flops,
    "optimus": report_optimus,
    "depth": report_depth,
    "ssd": report_ssd,
    "serve": report_serve,
    "compress": report_compress,
}
