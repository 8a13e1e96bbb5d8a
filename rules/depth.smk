# Depth (Edinburgh MLP coursework 2): VGG_08 vs VGG_38 on CIFAR-100, vanishing gradients, BatchNorm and residual
# connections as fixes. One run per (model, lr) of config depth.runs.
from dlperf.depth import plan as depth_plan

DEPTH = config["depth"]
DEPTH_RUNS = depth_plan.RUNS
TRAINING_RUNS["depth"] = lambda: depth_plan.runs(DEPTH)


rule depth_train:
    input:
        data="resources/data/cifar100",
        peak=peak_of(DEPTH["device"]),
    output:
        checkpoint=f"{DEPTH_RUNS}/checkpoint.pt",
        steps=f"{DEPTH_RUNS}/steps.csv",
        epochs=f"{DEPTH_RUNS}/epochs.csv",
        metrics=f"{DEPTH_RUNS}/metrics.json",
        grad_flow=f"{DEPTH_RUNS}/grad_flow.csv",
        provenance=f"{DEPTH_RUNS}/provenance.json",
    log:
        "logs/depth/train_{model}-lr{lr}-s{seed}.log",
    benchmark:
        "benchmarks/depth/train_{model}-lr{lr}-s{seed}.tsv"
    wildcard_constraints:
        model="vgg[0-9]+(_bn)?(_rc)?",
    priority: LONGEST_FIRST["depth"]
    conda:
        CONDA_ENV
    threads: config["threads"]
    resources:
        gpu=gpu_count(DEPTH["device"]),
        slurm_partition=slurm_partition(DEPTH["device"]),
        gpu_model=gpu_model(DEPTH["device"]),
    params:
        train=without_lr(DEPTH["train"]),
        lr=lambda wildcards: depth_plan.run_lr(DEPTH, wildcards.model, wildcards.lr),
        num_filters=DEPTH["num_filters"],
        n_train=DEPTH["n_train"],
        val_size=DEPTH["val_size"],
        normalize=DEPTH["normalize"],
        grad_every=DEPTH["grad_flow"]["every"],
        accelerator=device_accelerator(DEPTH["device"]),
        gpu_pack=gpu_pack(DEPTH["device"]),
        state_dir=f"{DEPTH_RUNS}/resume",
    script:
        "../scripts/depth_train.py"


rule depth_summary:
    input:
        metrics=[f"{run}/metrics.json" for run in depth_plan.runs(DEPTH)],
        epochs=[f"{run}/epochs.csv" for run in depth_plan.runs(DEPTH)],
        provenance=[f"{run}/provenance.json" for run in depth_plan.runs(DEPTH)],
        code=render_code("depth_summary"),
    output:
        csv="results/depth/summary.csv",
        table=report(
            "results/depth/tables/summary.tex",
            caption="../report/captions/depth_summary.rst",
            category="Depth",
        ),
        markdown="results/depth/tables/summary.md",
        figure=report(
            "results/depth/figures/curves.pdf",
            caption="../report/captions/depth_curves.rst",
            category="Depth",
        ),
        png="results/depth/figures/curves.png",
    log:
        "logs/depth/summary.log",
    benchmark:
        "benchmarks/depth/summary.tsv"
    conda:
        CONDA_ENV
    params:
        scale=config["scale"],  # the figures' fidelity
    script:
        "../scripts/depth_summary.py"


rule depth_grad_flow:
    input:
        grad_flow=[f"{run}/grad_flow.csv" for run in depth_plan.runs(DEPTH)],
        provenance=[f"{run}/provenance.json" for run in depth_plan.runs(DEPTH)],
        code=render_code("depth_grad_flow"),
    output:
        csv="results/depth/grad_flow.csv",
        ratios="results/depth/grad_ratio.csv",
        figure=report(
            "results/depth/figures/grad_flow.pdf",
            caption="../report/captions/depth_grad_flow.rst",
            category="Depth",
        ),
        png="results/depth/figures/grad_flow.png",
    log:
        "logs/depth/grad_flow.log",
    benchmark:
        "benchmarks/depth/grad_flow.tsv"
    conda:
        CONDA_ENV
    params:
        scale=config["scale"],  # the figures' fidelity
        epochs=DEPTH["grad_flow"]["epochs"],
    script:
        "../scripts/depth_grad_flow.py"


rule depth_values:
    input:
        summary=rules.depth_summary.output.csv,
        grad_ratio=rules.depth_grad_flow.output.ratios,
        runs=[f"{run}/provenance.json" for run in depth_plan.runs(DEPTH)],
        dataset=dataset_record("cifar100"),
        provenance=[*(f"{run}/provenance.json" for run in depth_plan.runs(DEPTH)), dataset_record("cifar100")],
        includes=[
            rules.depth_summary.output.table,
            rules.depth_summary.output.figure,
            rules.depth_grad_flow.output.figure,
        ],
        code=render_code("depth_values"),
    output:
        values="results/depth/values.json",
    log:
        "logs/depth/values.log",
    benchmark:
        "benchmarks/depth/values.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/depth_values.py"
