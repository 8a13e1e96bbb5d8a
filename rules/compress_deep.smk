# Deep Compression end to end (Han et al., ICLR 2016) on the pruned model of compress.deep.sparsity: a rule per stage,
# each writing the stage's file (dlperf.compress.codec) and what it measured off it: pruned (relative indices, FP32
# values) -> shared (k-means codebooks, centroids re-trained under the masks) -> Huffman-coded; then the stages' table.

COMPRESS_DEEP = compress_plan.DEEP
COMPRESS_DEEP_SOURCE = compress_plan.prune_run(COMPRESS, COMPRESS["deep"]["sparsity"])
TRAINING_RUNS["compress"] = lambda: COMPRESS_RUNS + [f"{COMPRESS_DEEP}/shared"]  # the centroids' re-training


rule compress_deep_pruned:
    input:
        dense=f"{COMPRESS_DENSE}/checkpoint.pt",
        pruned=f"{COMPRESS_DEEP_SOURCE}/checkpoint.pt",
        data="resources/data/cifar10",
    output:
        dense=f"{COMPRESS_DEEP}/dense.pt",
        file=f"{COMPRESS_DEEP}/pruned.dlpf",
        stage=f"{COMPRESS_DEEP}/pruned.json",
    log:
        "logs/compress/deep_pruned.log",
    benchmark:
        "benchmarks/compress/deep_pruned.tsv"
    conda:
        CONDA_ENV
    threads: config["threads"]
    params:
        arch=COMPRESS["arch"],
        deep=COMPRESS["deep"],
        width=optimus_plan.imagenet_width(OPTIMUS, COMPRESS["arch"]),
        eval_batch_size=COMPRESS["quantize"]["eval_batch_size"],
    script:
        "../scripts/compress_deep_pruned.py"


rule compress_deep_shared:
    input:
        pruned=f"{COMPRESS_DEEP_SOURCE}/checkpoint.pt",
        dense=rules.compress_deep_pruned.output.dense,
        data="resources/data/cifar10",
        peak=peak_of(COMPRESS["device"]),
    output:
        file=f"{COMPRESS_DEEP}/shared.dlpf",
        stage=f"{COMPRESS_DEEP}/shared.json",
        codes=f"{COMPRESS_DEEP}/shared/codes.pt",
        steps=f"{COMPRESS_DEEP}/shared/steps.csv",
        epochs=f"{COMPRESS_DEEP}/shared/epochs.csv",
        metrics=f"{COMPRESS_DEEP}/shared/metrics.json",
        provenance=f"{COMPRESS_DEEP}/shared/provenance.json",
    log:
        "logs/compress/deep_shared.log",
    benchmark:
        "benchmarks/compress/deep_shared.tsv"
    conda:
        CONDA_ENV
    threads: config["threads"]
    resources:
        gpu=gpu_count(COMPRESS["device"]),
        slurm_partition=slurm_partition(COMPRESS["device"]),
        gpu_model=gpu_model(COMPRESS["device"]),
    params:
        arch=COMPRESS["arch"],
        seed=COMPRESS["seed"],
        deep=COMPRESS["deep"],
        width=optimus_plan.imagenet_width(OPTIMUS, COMPRESS["arch"]),
        eval_batch_size=COMPRESS["quantize"]["eval_batch_size"],
        accelerator=device_accelerator(COMPRESS["device"]),
        state_dir=f"{COMPRESS_DEEP}/shared/resume",
    script:
        "../scripts/compress_deep_shared.py"


rule compress_deep_huffman:
    input:
        pruned=f"{COMPRESS_DEEP_SOURCE}/checkpoint.pt",
        codes=rules.compress_deep_shared.output.codes,
        dense=rules.compress_deep_pruned.output.dense,
        data="resources/data/cifar10",
    output:
        file=f"{COMPRESS_DEEP}/huffman.dlpf",
        stage=f"{COMPRESS_DEEP}/huffman.json",
        formula=f"{COMPRESS_DEEP}/formula.csv",
    log:
        "logs/compress/deep_huffman.log",
    benchmark:
        "benchmarks/compress/deep_huffman.tsv"
    conda:
        CONDA_ENV
    threads: config["threads"]
    params:
        arch=COMPRESS["arch"],
        deep=COMPRESS["deep"],
        width=optimus_plan.imagenet_width(OPTIMUS, COMPRESS["arch"]),
        eval_batch_size=COMPRESS["quantize"]["eval_batch_size"],
    script:
        "../scripts/compress_deep_huffman.py"


rule compress_deep_stages:
    input:
        stages=[f"{COMPRESS_DEEP}/{stage}.json" for stage in ("pruned", "shared", "huffman")],
        formula=rules.compress_deep_huffman.output.formula,
        code=render_code("compress_deep_stages"),
    output:
        csv=f"{COMPRESS_DEEP}/stages.csv",
        table=report(
            "results/compress/tables/deep.tex", caption="../report/captions/compress_deep.rst", category="Compression"
        ),
        markdown="results/compress/tables/deep.md",
    log:
        "logs/compress/deep.log",
    benchmark:
        "benchmarks/compress/deep.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/compress_deep_stages.py"
