# Datasets: synthesized in the real on-disk formats (embedded default) or downloaded and verified (full config).


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
    """Every file rule download fetches: CIFAR archives, ImageFolder originals, backbone weights."""
    entries = [d for d in map(download_of, config["data"]) if d is not None]
    for entry in config["data"].values():
        if entry["source"] == "download" and "downloads" in entry:
            entries += list(entry["downloads"].values())
    entries += [
        b["weights"] for b in config.get("transfer", {}).get("backbones", {}).values() if b["weights"] != "pretrain"
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
    return {key: value for key, value in entry.items() if key not in ("download", "downloads")}


rule data_download:
    output:
        "resources/downloads/{file}",
    log:
        "logs/data/download_{file}.log",
    benchmark:
        "benchmarks/data/download_{file}.tsv"
    conda:
        CONDA_ENV
    resources:
        downloads=1,
    params:
        entry=lambda wc: downloads_by_file()[wc.file],
    script:
        "../scripts/data_download.py"


rule data_prepare_cifar:
    input:
        unpack(prepare_inputs),
    output:
        directory("resources/data/{dataset}"),
    log:
        "logs/data/prepare_{dataset}.log",
    benchmark:
        "benchmarks/data/prepare_{dataset}.tsv"
    conda:
        CONDA_ENV
    params:
        entry=preparation_params,
    script:
        "../scripts/data_prepare_cifar.py"


rule data_prepare_imagefolder:
    input:
        unpack(imagefolder_inputs),
    output:
        directory("resources/data/{dataset}"),
    log:
        "logs/data/prepare_{dataset}.log",
    benchmark:
        "benchmarks/data/prepare_{dataset}.tsv"
    wildcard_constraints:
        dataset="|".join(imagefolder_datasets()) or "no-imagefolder-dataset",
    conda:
        CONDA_ENV
    params:
        entry=preparation_params,
    script:
        "../scripts/data_prepare_imagefolder.py"
