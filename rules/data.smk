# Datasets: synthesized in the real on-disk formats (embedded default) or downloaded and verified (full config).


rule download:
    output:
        "resources/downloads/{file}",
    params:
        entry=lambda wc: downloads_by_file()[wc.file],
    log:
        "logs/data/download_{file}.log",
    benchmark:
        "benchmarks/data/download_{file}.tsv"
    conda:
        CONDA_ENV
    resources:
        downloads=1,
    script:
        "../scripts/data_download.py"


rule prepare_cifar:
    input:
        unpack(prepare_inputs),
    output:
        directory("resources/data/{dataset}"),
    params:
        entry=lambda wc: dataset_config(wc.dataset),
    log:
        "logs/data/prepare_{dataset}.log",
    benchmark:
        "benchmarks/data/prepare_{dataset}.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/data_prepare_cifar.py"


rule synthesize_decathlon:
    output:
        directory("resources/data/decathlon"),
    params:
        entry=config["data"].get("decathlon", {}).get("synthetic", {}),
    log:
        "logs/data/synthesize_decathlon.log",
    benchmark:
        "benchmarks/data/synthesize_decathlon.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/data_synthesize_imagefolder.py"
