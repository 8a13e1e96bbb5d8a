# Transfer learning: a pretrained backbone adapted to a Visual Decathlon target by fine-tuning every layer, and as
# a fixed feature extractor whose new head trains on cached bottleneck features; learning-rate sweeps, a backbone
# comparison and a CPU/GPU timing table. Weights come from ImageNet (full config, verified downloads) or from
# pretraining the same architecture in the DAG on a synthetic source set whose classes differ from the target's.

from dlperf.transfer import plan

TRANSFER = config["transfer"]
TRANSFER_RUNS, TRANSFER_PRETRAIN = plan.RUNS, plan.PRETRAIN
TRANSFER_DATA = f"resources/data/{TRANSFER['dataset']}"
TRANSFER_DEVICE = TRANSFER["device"]
plan.check(TRANSFER, imagefolder_datasets())
TRAINING_RUNS["transfer"] = lambda: plan.trained_runs(TRANSFER)


rule transfer_describe:
    input:
        data=TRANSFER_DATA,
    output:
        classes="results/transfer/dataset/classes.csv",
        samples="results/transfer/dataset/samples.npz",
    log:
        "logs/transfer/describe.log",
    benchmark:
        "benchmarks/transfer/describe.tsv"
    conda:
        CONDA_ENV
    params:
        image_size=TRANSFER["image_size"],
    script:
        "../scripts/transfer_describe.py"


rule transfer_pretrain:
    input:
        data=lambda wildcards: f"resources/data/{TRANSFER['pretrain']['dataset']}",
        peak=peak_of(TRANSFER_DEVICE),
    output:
        weights="resources/weights/pretrained/{backbone}.pt",
        epochs=f"{TRANSFER_PRETRAIN}/epochs.csv",
        steps=f"{TRANSFER_PRETRAIN}/steps.csv",
        metrics=f"{TRANSFER_PRETRAIN}/metrics.json",
        checkpoint=f"{TRANSFER_PRETRAIN}/checkpoint.pt",
        provenance=f"{TRANSFER_PRETRAIN}/provenance.json",
    log:
        "logs/transfer/pretrain_{backbone}.log",
    benchmark:
        "benchmarks/transfer/pretrain_{backbone}.tsv"
    wildcard_constraints:
        backbone="|".join(plan.pretrained(TRANSFER)) or "(?!)",
    conda:
        CONDA_ENV
    threads: config["threads"]
    resources:
        gpu=gpu_count(TRANSFER_DEVICE),
        slurm_partition=slurm_partition(TRANSFER_DEVICE),
        gpu_model=gpu_model(TRANSFER_DEVICE),
    params:
        backbone=lambda wildcards: plan.backbone_entry(TRANSFER, wildcards.backbone),
        image_size=lambda wildcards: plan.image_size(TRANSFER, wildcards.backbone),
        normalize=TRANSFER["normalize"],
        train=lambda wildcards: TRANSFER["pretrain"]["train"],
        seed=TRANSFER["seed"],
        accelerator=device_accelerator(TRANSFER_DEVICE),
        gpu_pack=gpu_pack(TRANSFER_DEVICE),
        state_dir=f"{TRANSFER_PRETRAIN}/resume",
    script:
        "../scripts/transfer_pretrain.py"


rule transfer_fetch_weights:
    input:
        download=lambda wildcards: download_path(TRANSFER["backbones"][wildcards.backbone]["weights"]),
    output:
        weights="resources/weights/imagenet/{backbone}.pth",
    log:
        "logs/transfer/fetch_weights_{backbone}.log",
    benchmark:
        "benchmarks/transfer/fetch_weights_{backbone}.tsv"
    conda:
        CONDA_ENV
    params:
        backbone=lambda wildcards: plan.backbone_entry(TRANSFER, wildcards.backbone),
    script:
        "../scripts/transfer_fetch_weights.py"


rule transfer_finetune:
    input:
        data=TRANSFER_DATA,
        weights=lambda wildcards: plan.weights(TRANSFER, wildcards.backbone),
        peak=peak_of(TRANSFER_DEVICE),
    output:
        checkpoint=f"{TRANSFER_RUNS}/checkpoint.pt",
        steps=f"{TRANSFER_RUNS}/steps.csv",
        epochs=f"{TRANSFER_RUNS}/epochs.csv",
        metrics=f"{TRANSFER_RUNS}/metrics.json",
        provenance=f"{TRANSFER_RUNS}/provenance.json",
    log:
        "logs/transfer/{mode}-{backbone}-lr{lr}.log",
    benchmark:
        "benchmarks/transfer/{mode}-{backbone}-lr{lr}.tsv"
    wildcard_constraints:
        mode="finetune",
        backbone="[a-z0-9_]+",
    conda:
        CONDA_ENV
    threads: config["threads"]
    resources:
        gpu=gpu_count(TRANSFER_DEVICE),
        slurm_partition=slurm_partition(TRANSFER_DEVICE),
        gpu_model=gpu_model(TRANSFER_DEVICE),
    params:
        backbone=lambda wildcards: plan.backbone_entry(TRANSFER, wildcards.backbone),
        image_size=lambda wildcards: plan.image_size(TRANSFER, wildcards.backbone),
        normalize=TRANSFER["normalize"],
        train=without_lr(TRANSFER["finetune"]["train"]),
        lr=lambda wildcards: plan.run_lr(TRANSFER, wildcards.mode, wildcards.lr),
        seed=TRANSFER["seed"],
        accelerator=device_accelerator(TRANSFER_DEVICE),
        gpu_pack=gpu_pack(TRANSFER_DEVICE),
        state_dir=f"{TRANSFER_RUNS}/resume",
    script:
        "../scripts/transfer_finetune.py"


rule transfer_cache:
    input:
        data=TRANSFER_DATA,
        weights=lambda wildcards: plan.weights(TRANSFER, wildcards.backbone),
    output:
        cache="results/transfer/cache/{backbone}.pt",
        provenance="results/transfer/cache/{backbone}.provenance.json",
    log:
        "logs/transfer/cache_{backbone}.log",
    benchmark:
        "benchmarks/transfer/cache_{backbone}.tsv"
    wildcard_constraints:
        backbone="[a-z0-9_]+",
    conda:
        CONDA_ENV
    threads: config["threads"]
    resources:
        gpu=gpu_count(TRANSFER_DEVICE),
        slurm_partition=slurm_partition(TRANSFER_DEVICE),
        gpu_model=gpu_model(TRANSFER_DEVICE),
    params:
        backbone=lambda wildcards: plan.backbone_entry(TRANSFER, wildcards.backbone),
        image_size=lambda wildcards: plan.image_size(TRANSFER, wildcards.backbone),
        normalize=TRANSFER["normalize"],
        accelerator=device_accelerator(TRANSFER_DEVICE),
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
    log:
        "logs/transfer/{mode}-{backbone}-lr{lr}.log",
    benchmark:
        "benchmarks/transfer/{mode}-{backbone}-lr{lr}.tsv"
    wildcard_constraints:
        mode="feature",
        backbone="[a-z0-9_]+",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        gpu=gpu_count(TRANSFER_DEVICE),
    params:
        # features are vectors: no augmentation, no channels_last (the script sets both off)
        train=drop(without_lr(TRANSFER["feature_extractor"]["train"]), "augment", "channels_last"),
        lr=lambda wildcards: plan.run_lr(TRANSFER, wildcards.mode, wildcards.lr),
        seed=TRANSFER["seed"],
        accelerator=device_accelerator(TRANSFER_DEVICE),
        state_dir=f"{TRANSFER_RUNS}/resume",
    script:
        "../scripts/transfer_head.py"


rule transfer_timing:
    input:
        data=TRANSFER_DATA,
        weights=plan.weights(TRANSFER, TRANSFER["backbone"]),
    output:
        csv="results/transfer/device_timing.csv",
        provenance="results/transfer/device_timing.provenance.json",
    log:
        "logs/transfer/timing.log",
    benchmark:
        "benchmarks/transfer/timing.tsv"
    conda:
        CONDA_ENV
    threads: MACHINE_CORES  # a timing job (TIMING_RULES): nothing runs beside it
    resources:
        gpu=gpu_count(TRANSFER_DEVICE),
        slurm_partition=slurm_partition(TRANSFER_DEVICE),
        gpu_model=gpu_model(TRANSFER_DEVICE),
    params:
        measure_threads=config["threads"],
        backbone=plan.backbone_entry(TRANSFER, TRANSFER["backbone"]),
        image_size=plan.image_size(TRANSFER, TRANSFER["backbone"]),
        normalize=TRANSFER["normalize"],
        # timed epochs, no evaluation: the sections' epochs and eval batch size are not read
        finetune=drop(TRANSFER["finetune"]["train"], "epochs", "eval_batch_size"),
        feature_extractor=drop(
            TRANSFER["feature_extractor"]["train"], "epochs", "eval_batch_size", "augment", "channels_last"
        ),
        timing=TRANSFER["timing"],
        seed=TRANSFER["seed"],
    script:
        "../scripts/transfer_timing.py"


rule transfer_summary:
    input:
        finetune=[f"{run}/metrics.json" for run in plan.runs(TRANSFER, "finetune")],
        feature=[f"{run}/metrics.json" for run in plan.runs(TRANSFER, "feature")],
        comparison=[f"{run}/metrics.json" for run in plan.comparison_runs(TRANSFER)],
        # read beside each metrics.json
        runs=[
            f"{run}/{name}"
            for run in plan.runs(TRANSFER, "finetune")
            + plan.runs(TRANSFER, "feature")
            + plan.comparison_runs(TRANSFER)
            for name in ("provenance.json", "epochs.csv")
        ],
        caches=expand(
            "results/transfer/cache/{backbone}.provenance.json", backbone=TRANSFER["backbone_comparison"]["backbones"]
        ),
        classes=rules.transfer_describe.output.classes,
        code=render_code("transfer_summary"),
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
    params:
        scale=config["scale"],  # the figures' fidelity
    script:
        "../scripts/transfer_summary.py"


include: "transfer_render.smk"


# What the transfer section quotes: a fine-tuning run's provenance, and the in-DAG pretraining run's when the
# backbone was pretrained here.
TRANSFER_FINETUNE_PROVENANCE = f"{plan.runs(TRANSFER, 'finetune')[0]}/provenance.json"
TRANSFER_PRETRAIN_PROVENANCE = (
    {"pretrain": f"{TRANSFER_PRETRAIN.format(backbone=TRANSFER['backbone'])}/provenance.json"}
    if TRANSFER["backbone"] in plan.pretrained(TRANSFER)
    else {}
)


rule transfer_values:
    input:
        **TRANSFER_PRETRAIN_PROVENANCE,
        finetune=TRANSFER_FINETUNE_PROVENANCE,
        provenance=[
            TRANSFER_FINETUNE_PROVENANCE,
            rules.transfer_timing.output.provenance,
            dataset_record(TRANSFER["dataset"]),
        ],
        classes=rules.transfer_describe.output.classes,
        summary=rules.transfer_summary.output.summary,
        backbones=rules.transfer_summary.output.backbones,
        timing=rules.transfer_timing.output.csv,
        dataset=dataset_record(TRANSFER["dataset"]),
        includes=[
            rules.transfer_render_dataset.output.distribution,
            rules.transfer_render_dataset.output.samples,
            rules.transfer_summary.output.table,
            rules.transfer_summary.output.finetune_curves,
            rules.transfer_summary.output.feature_curves,
            rules.transfer_summary.output.backbones_table,
            rules.transfer_render_timing.output.table,
        ],
        code=render_code("transfer_values"),
    output:
        values="results/transfer/values.json",
    log:
        "logs/transfer/values.log",
    benchmark:
        "benchmarks/transfer/values.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/transfer_values.py"
