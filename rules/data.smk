# Datasets: synthesized in the real on-disk formats (embedded default) or downloaded and verified (full config).
# Their input functions are in rules/common.smk (the studies share them).


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
    priority: LONGEST_FIRST["depth"]  # the longest runs' data: a priority does not pass to a job's inputs
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


# A dataset's provenance record (its source, counts, checksums) copied under results/: the figures, tables and macros
# read it there, so that they can be redrawn from a bundle of results/ without the dataset (dlperf.bundle).
rule data_record:
    input:
        "resources/data/{name}",
    output:
        "results/data/{name}.provenance.json",
    log:
        "logs/data/record_{name}.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/data_record.py"
