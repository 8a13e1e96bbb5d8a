# Deep Compression end to end (Han et al., ICLR 2016) on the pruned model of compress.deep.sparsity: a rule per stage,
# each writing the stage's file (dlperf.compress.codec) and what it measured off it: pruned (relative indices, FP32
# values) -> shared (k-means codebooks, centroids re-trained under the masks) -> Huffman-coded; then the stages' table.
# The same chain runs on each of compress.deep.networks under results/compress/deep/<network>/: another Optimus
# ResNet, or torchvision's ImageNet AlexNet or VGG-16, pruned layer by layer as Han et al. did (compress_deep_prune).

COMPRESS_DEEP = compress_plan.DEEP
COMPRESS_DEEP_NETWORKS = compress_plan.deep_networks(COMPRESS)
COMPRESS_DEEP_IMAGENET = COMPRESS["deep"]["imagenet"]
compress_plan.check_deep_networks(COMPRESS)
TRAINING_RUNS["compress"] = (
    lambda: COMPRESS_RUNS + [f"{COMPRESS_DEEP}/shared"] + compress_plan.deep_training_runs(COMPRESS)
)
COMPRESS_DEEP_MAIN = compress_plan.deep_settings(COMPRESS, OPTIMUS, COMPRESS["arch"])
COMPRESS_DEEP_MAIN_SOURCES = compress_plan.deep_sources(COMPRESS, COMPRESS["arch"])
DEEP_NETWORK_PARAMS = {  # compress_plan.deep_settings of the {network} wildcard, one param each
    key: (lambda wildcards, key=key: compress_plan.deep_settings(COMPRESS, OPTIMUS, wildcards.network)[key])
    for key in COMPRESS_DEEP_MAIN
}


rule compress_deep_pruned:
    input:
        **COMPRESS_DEEP_MAIN_SOURCES,
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
        **COMPRESS_DEEP_MAIN,
        deep=COMPRESS["deep"],
    script:
        "../scripts/compress_deep_pruned.py"


rule compress_deep_shared:
    input:
        pruned=COMPRESS_DEEP_MAIN_SOURCES["pruned"],
        dense=rules.compress_deep_pruned.output.dense,
        data=COMPRESS_DEEP_MAIN_SOURCES["data"],
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
        **COMPRESS_DEEP_MAIN,
        run="deep-shared",
        seed=COMPRESS["seed"],
        deep=COMPRESS["deep"],
        accelerator=device_accelerator(COMPRESS["device"]),
        state_dir=f"{COMPRESS_DEEP}/shared/resume",
    script:
        "../scripts/compress_deep_shared.py"


rule compress_deep_huffman:
    input:
        pruned=COMPRESS_DEEP_MAIN_SOURCES["pruned"],
        codes=rules.compress_deep_shared.output.codes,
        dense=rules.compress_deep_pruned.output.dense,
        data=COMPRESS_DEEP_MAIN_SOURCES["data"],
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
        **COMPRESS_DEEP_MAIN,
        deep=COMPRESS["deep"],
    script:
        "../scripts/compress_deep_huffman.py"


# An ImageNet network (compress.deep.networks): torchvision's weights pruned layer by layer to Han et al.'s rates
# (compress.deep.imagenet.models.<network>.keep), scored, and re-trained with the masks fixed on validation images
# that are never scored; what compress_prune does for a CIFAR ResNet.
rule compress_deep_prune:
    input:
        weights=lambda wildcards: compress_plan.deep_imagenet_weights(COMPRESS, wildcards.network),
        data=lambda wildcards: COMPRESS_DEEP_IMAGENET["val"],
        peak=peak_of(COMPRESS["device"]),
    output:
        checkpoint=f"{COMPRESS_DEEP}/{{network}}/prune/checkpoint.pt",
        steps=f"{COMPRESS_DEEP}/{{network}}/prune/steps.csv",
        epochs=f"{COMPRESS_DEEP}/{{network}}/prune/epochs.csv",
        metrics=f"{COMPRESS_DEEP}/{{network}}/prune/metrics.json",
        sparsity=f"{COMPRESS_DEEP}/{{network}}/prune/sparsity.csv",
        pruning=f"{COMPRESS_DEEP}/{{network}}/prune/pruning.json",
        provenance=f"{COMPRESS_DEEP}/{{network}}/prune/provenance.json",
    log:
        "logs/compress/deep_{network}_prune.log",
    benchmark:
        "benchmarks/compress/deep_{network}_prune.tsv"
    wildcard_constraints:
        network="|".join(compress_plan.IMAGENET_NETWORKS),
    conda:
        CONDA_ENV
    threads: config["threads"]
    resources:
        gpu=gpu_count(COMPRESS["device"]),
        slurm_partition=slurm_partition(COMPRESS["device"]),
        gpu_model=gpu_model(COMPRESS["device"]),
    params:
        network=lambda wildcards: compress_plan.deep_settings(COMPRESS, OPTIMUS, wildcards.network)["network"],
        model=lambda wildcards: COMPRESS_DEEP_IMAGENET["models"][wildcards.network],
        train=COMPRESS_DEEP_IMAGENET["prune_train"],
        eval_batch_size=COMPRESS_DEEP_IMAGENET["eval_batch_size"],
        seed=COMPRESS["seed"],
        accelerator=device_accelerator(COMPRESS["device"]),
        state_dir=f"{COMPRESS_DEEP}/{{network}}/prune/resume",
    script:
        "../scripts/compress_deep_prune.py"


# The chain on each of compress.deep.networks, under results/compress/deep/<network>/: the rules above, on its files.
use rule compress_deep_pruned as compress_deep_network_pruned with:
    input:
        unpack(lambda wildcards: compress_plan.deep_sources(COMPRESS, wildcards.network)),
    output:
        dense=f"{COMPRESS_DEEP}/{{network}}/dense.pt",
        file=f"{COMPRESS_DEEP}/{{network}}/pruned.dlpf",
        stage=f"{COMPRESS_DEEP}/{{network}}/pruned.json",
    log:
        "logs/compress/deep_{network}_pruned.log",
    benchmark:
        "benchmarks/compress/deep_{network}_pruned.tsv"
    wildcard_constraints:
        network="resnet[0-9]+|" + "|".join(compress_plan.IMAGENET_NETWORKS),
    params:
        **DEEP_NETWORK_PARAMS,
        deep=COMPRESS["deep"],


use rule compress_deep_shared as compress_deep_network_shared with:
    input:
        pruned=lambda wildcards: compress_plan.deep_sources(COMPRESS, wildcards.network)["pruned"],
        dense=f"{COMPRESS_DEEP}/{{network}}/dense.pt",
        data=lambda wildcards: compress_plan.deep_sources(COMPRESS, wildcards.network)["data"],
        peak=peak_of(COMPRESS["device"]),
    output:
        file=f"{COMPRESS_DEEP}/{{network}}/shared.dlpf",
        stage=f"{COMPRESS_DEEP}/{{network}}/shared.json",
        codes=f"{COMPRESS_DEEP}/{{network}}/shared/codes.pt",
        steps=f"{COMPRESS_DEEP}/{{network}}/shared/steps.csv",
        epochs=f"{COMPRESS_DEEP}/{{network}}/shared/epochs.csv",
        metrics=f"{COMPRESS_DEEP}/{{network}}/shared/metrics.json",
        provenance=f"{COMPRESS_DEEP}/{{network}}/shared/provenance.json",
    log:
        "logs/compress/deep_{network}_shared.log",
    benchmark:
        "benchmarks/compress/deep_{network}_shared.tsv"
    wildcard_constraints:
        network="resnet[0-9]+|" + "|".join(compress_plan.IMAGENET_NETWORKS),
    params:
        **DEEP_NETWORK_PARAMS,
        run=lambda wildcards: f"deep-{wildcards.network}-shared",
        seed=COMPRESS["seed"],
        deep=COMPRESS["deep"],
        accelerator=device_accelerator(COMPRESS["device"]),
        state_dir=f"{COMPRESS_DEEP}/{{network}}/shared/resume",


use rule compress_deep_huffman as compress_deep_network_huffman with:
    input:
        pruned=lambda wildcards: compress_plan.deep_sources(COMPRESS, wildcards.network)["pruned"],
        codes=f"{COMPRESS_DEEP}/{{network}}/shared/codes.pt",
        dense=f"{COMPRESS_DEEP}/{{network}}/dense.pt",
        data=lambda wildcards: compress_plan.deep_sources(COMPRESS, wildcards.network)["data"],
    output:
        file=f"{COMPRESS_DEEP}/{{network}}/huffman.dlpf",
        stage=f"{COMPRESS_DEEP}/{{network}}/huffman.json",
        formula=f"{COMPRESS_DEEP}/{{network}}/formula.csv",
    log:
        "logs/compress/deep_{network}_huffman.log",
    benchmark:
        "benchmarks/compress/deep_{network}_huffman.tsv"
    wildcard_constraints:
        network="resnet[0-9]+|" + "|".join(compress_plan.IMAGENET_NETWORKS),
    params:
        **DEEP_NETWORK_PARAMS,
        deep=COMPRESS["deep"],


rule compress_deep_stages:
    input:
        stages=[f"{COMPRESS_DEEP}/{stage}.json" for stage in ("pruned", "shared", "huffman")],
        formula=rules.compress_deep_huffman.output.formula,
        networks=[
            f"{COMPRESS_DEEP}/{name}/{stage}.json"
            for name in COMPRESS_DEEP_NETWORKS
            for stage in ("pruned", "shared", "huffman")
        ],
        network_formulas=[f"{COMPRESS_DEEP}/{name}/formula.csv" for name in COMPRESS_DEEP_NETWORKS],
        code=render_code("compress_deep_stages"),
    output:
        csv=f"{COMPRESS_DEEP}/stages.csv",
        networks=f"{COMPRESS_DEEP}/networks.csv",
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
    params:
        arch=COMPRESS["arch"],
        networks=COMPRESS_DEEP_NETWORKS,
    script:
        "../scripts/compress_deep_stages.py"
