# Transfer learning: a pretrained backbone adapted to a Visual Decathlon target by fine-tuning every layer, and as
# a fixed feature extractor whose new head trains on cached bottleneck features; learning-rate sweeps, a backbone
# comparison and a CPU/GPU timing table. Weights come from ImageNet (full config, verified downloads) or from
# pretraining the same architecture in the DAG on a synthetic source set whose classes differ from the target's.

TRANSFER = config.get("transfer", {})


rule transfer_describe:
    input:
        data=f"resources/data/{TRANSFER.get('dataset', 'decathlon')}",
    output:
        classes="results/transfer/dataset/classes.csv",
        distribution=report(
            "results/transfer/dataset/class_distribution.pdf",
            caption="../report/captions/transfer_class_distribution.rst",
            category="Transfer",
        ),
        distribution_png="results/transfer/dataset/class_distribution.png",
        samples=report(
            "results/transfer/dataset/samples.pdf",
            caption="../report/captions/transfer_samples.rst",
            category="Transfer",
        ),
        samples_png="results/transfer/dataset/samples.png",
    params:
        image_size=TRANSFER.get("image_size"),
    log:
        "logs/transfer/describe.log",
    benchmark:
        "benchmarks/transfer/describe.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/transfer_describe.py"


rule transfer_pretrain:
    input:
        data=f"resources/data/{TRANSFER.get('pretrain', {}).get('dataset', 'transfer_source')}",
        peak=f"results/flops/peak/{TRANSFER.get('device', 'cpu')}.json",
    output:
        weights="resources/weights/pretrained/{backbone}.pt",
        epochs=f"{TRANSFER_PRETRAIN}/epochs.csv",
        steps=f"{TRANSFER_PRETRAIN}/steps.csv",
        metrics=f"{TRANSFER_PRETRAIN}/metrics.json",
        checkpoint=f"{TRANSFER_PRETRAIN}/checkpoint.pt",
        provenance=f"{TRANSFER_PRETRAIN}/provenance.json",
    params:
        cfg=TRANSFER,
        accelerator=device_accelerator(TRANSFER.get("device", "cpu")) if TRANSFER else "cpu",
        state_dir=f"{TRANSFER_PRETRAIN}/resume",
    log:
        "logs/transfer/pretrain_{backbone}.log",
    benchmark:
        "benchmarks/transfer/pretrain_{backbone}.tsv"
    wildcard_constraints:
        backbone="|".join(transfer_pretrained()) or "no-pretrained-backbone",
    threads: config["threads"]
    resources:
        gpu=gpu_count(TRANSFER.get("device", "cpu")),
        slurm_partition=slurm_partition(TRANSFER.get("device", "cpu")),
        gpu_model=gpu_model(TRANSFER.get("device", "cpu")),
    conda:
        CONDA_ENV
    script:
        "../scripts/transfer_pretrain.py"


rule transfer_fetch_weights:
    input:
        download=transfer_download_of,
    output:
        weights="resources/weights/imagenet/{backbone}.pth",
    params:
        cfg=TRANSFER,
    log:
        "logs/transfer/fetch_weights_{backbone}.log",
    benchmark:
        "benchmarks/transfer/fetch_weights_{backbone}.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/transfer_fetch_weights.py"


rule transfer_finetune:
    input:
        data=f"resources/data/{TRANSFER.get('dataset', 'decathlon')}",
        weights=transfer_weights_of,
        peak=f"results/flops/peak/{TRANSFER.get('device', 'cpu')}.json",
    output:
        checkpoint=f"{TRANSFER_RUNS}/checkpoint.pt",
        steps=f"{TRANSFER_RUNS}/steps.csv",
        epochs=f"{TRANSFER_RUNS}/epochs.csv",
        metrics=f"{TRANSFER_RUNS}/metrics.json",
        provenance=f"{TRANSFER_RUNS}/provenance.json",
    params:
        cfg=TRANSFER,
        lr=transfer_run_lr,
        accelerator=device_accelerator(TRANSFER.get("device", "cpu")) if TRANSFER else "cpu",
        state_dir=f"{TRANSFER_RUNS}/resume",
    log:
        "logs/transfer/{mode}-{backbone}-lr{lr}.log",
    benchmark:
        "benchmarks/transfer/{mode}-{backbone}-lr{lr}.tsv"
    wildcard_constraints:
        mode="finetune",
        backbone="[a-z0-9_]+",
    threads: config["threads"]
    resources:
        gpu=gpu_count(TRANSFER.get("device", "cpu")),
        slurm_partition=slurm_partition(TRANSFER.get("device", "cpu")),
        gpu_model=gpu_model(TRANSFER.get("device", "cpu")),
    conda:
        CONDA_ENV
    script:
        "../scripts/transfer_finetune.py"


rule transfer_cache:
    input:
        data=f"resources/data/{TRANSFER.get('dataset', 'decathlon')}",
        weights=transfer_weights_of,
    output:
        cache="results/transfer/cache/{backbone}.pt",
        provenance="results/transfer/cache/{backbone}.provenance.json",
    params:
        cfg=TRANSFER,
        accelerator=device_accelerator(TRANSFER.get("device", "cpu")) if TRANSFER else "cpu",
    log:
        "logs/transfer/cache_{backbone}.log",
    benchmark:
        "benchmarks/transfer/cache_{backbone}.tsv"
    wildcard_constraints:
        backbone="[a-z0-9_]+",
    threads: config["threads"]
    resources:
        gpu=gpu_count(TRANSFER.get("device", "cpu")),
        slurm_partition=slurm_partition(TRANSFER.get("device", "cpu")),
        gpu_model=gpu_model(TRANSFER.get("device", "cpu")),
    conda:
        CONDA_ENV
    script:
        "../scripts/transfer_cache.py"


rule transfer_head:
    input:
        cache="results/transfer/cache/{backbone}.pt",
    output:
        checkpoint=f"{TRANSFER_RUNS}/checkpoint.pt",
        steps=f"{TRANSFER_RUNS}/steps.csv",
        epochs=f"{TRANSFER_RUNS}/epochs.csv",
        metrics=f"{TRANSFER_RUNS}/metrics.json",
        provenance=f"{TRANSFER_RUNS}/provenance.json",
    params:
        cfg=TRANSFER,
        lr=transfer_run_lr,
        accelerator=device_accelerator(TRANSFER.get("device", "cpu")) if TRANSFER else "cpu",
        state_dir=f"{TRANSFER_RUNS}/resume",
    log:
        "logs/transfer/{mode}-{backbone}-lr{lr}.log",
    benchmark:
        "benchmarks/transfer/{mode}-{backbone}-lr{lr}.tsv"
    wildcard_constraints:
        mode="feature",
        backbone="[a-z0-9_]+",
    threads: 1
    conda:
        CONDA_ENV
    script:
        "../scripts/transfer_head.py"


rule transfer_timing:
    input:
        data=f"resources/data/{TRANSFER.get('dataset', 'decathlon')}",
        weights=transfer_weights(TRANSFER["backbone"]) if TRANSFER else [],
    output:
        csv="results/transfer/device_timing.csv",
        table=report(
            "results/transfer/tables/device_timing.tex",
            caption="../report/captions/transfer_device_timing.rst",
            category="Transfer",
        ),
        markdown="results/transfer/tables/device_timing.md",
        provenance="results/transfer/device_timing.provenance.json",
    params:
        cfg=TRANSFER,
    log:
        "logs/transfer/timing.log",
    benchmark:
        "benchmarks/transfer/timing.tsv"
    threads: config["threads"]
    resources:
        gpu=gpu_count(TRANSFER.get("device", "cpu")),
        slurm_partition=slurm_partition(TRANSFER.get("device", "cpu")),
        gpu_model=gpu_model(TRANSFER.get("device", "cpu")),
    conda:
        CONDA_ENV
    script:
        "../scripts/transfer_timing.py"


rule transfer_summary:
    input:
        finetune=[f"{run}/metrics.json" for run in transfer_runs("finetune")] if TRANSFER else [],
        feature=[f"{run}/metrics.json" for run in transfer_runs("feature")] if TRANSFER else [],
        comparison=[f"{run}/metrics.json" for run in transfer_comparison_runs()] if TRANSFER else [],
        caches=expand("results/transfer/cache/{backbone}.provenance.json",
                      backbone=TRANSFER.get("backbone_comparison", {}).get("backbones", [])),
    output:
        summary="results/transfer/summary.csv",
        table=report(
            "results/transfer/tables/summary.tex",
            caption="../report/captions/transfer_summary.rst",
            category="Transfer",
        ),
        markdown="results/transfer/tables/summary.md",
        backbones="results/transfer/backbones.csv",
        backbones_table=report(
            "results/transfer/tables/backbones.tex",
            caption="../report/captions/transfer_backbones.rst",
            category="Transfer",
        ),
        backbones_markdown="results/transfer/tables/backbones.md",
        finetune_curves=report(
            "results/transfer/figures/curves_finetune.pdf",
            caption="../report/captions/transfer_curves.rst",
            category="Transfer",
        ),
        finetune_png="results/transfer/figures/curves_finetune.png",
        feature_curves=report(
            "results/transfer/figures/curves_feature.pdf",
            caption="../report/captions/transfer_curves.rst",
            category="Transfer",
        ),
        feature_png="results/transfer/figures/curves_feature.png",
    log:
        "logs/transfer/summary.log",
    benchmark:
        "benchmarks/transfer/summary.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/transfer_summary.py"
