# Depth (Edinburgh MLP coursework 2): VGG_08 vs VGG_38 on CIFAR-100, vanishing gradients, BatchNorm and residual
# connections as fixes. One run per (model, lr) of config depth.runs.


rule depth_train:
    input:
        data="resources/data/cifar100",
        peak=f"results/flops/peak/{config['depth']['device']}.json",
    output:
        checkpoint=f"{DEPTH_RUNS}/checkpoint.pt",
        steps=f"{DEPTH_RUNS}/steps.csv",
        epochs=f"{DEPTH_RUNS}/epochs.csv",
        metrics=f"{DEPTH_RUNS}/metrics.json",
        grad_flow=f"{DEPTH_RUNS}/grad_flow.csv",
        provenance=f"{DEPTH_RUNS}/provenance.json",
    params:
        cfg=config["depth"],
        lr=depth_run_lr,
        accelerator=device_accelerator(config["depth"]["device"]),
        state_dir=f"{DEPTH_RUNS}/resume",
    log:
        "logs/depth/train_{model}-lr{lr}-s{seed}.log",
    benchmark:
        "benchmarks/depth/train_{model}-lr{lr}-s{seed}.tsv"
    wildcard_constraints:
        model="vgg[0-9]+(_bn)?(_rc)?",
    threads: config["threads"]
    resources:
        gpu=gpu_count(config["depth"]["device"]),
        slurm_partition=slurm_partition(config["depth"]["device"]),
        gpu_model=gpu_model(config["depth"]["device"]),
    conda:
        CONDA_ENV
    script:
        "../scripts/depth_train.py"


rule depth_summary:
    input:
        metrics=[f"{run}/metrics.json" for run in depth_runs()],
        epochs=[f"{run}/epochs.csv" for run in depth_runs()],
        provenance=[f"{run}/provenance.json" for run in depth_runs()],
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
    script:
        "../scripts/depth_summary.py"


rule depth_grad_flow:
    input:
        grad_flow=[f"{run}/grad_flow.csv" for run in depth_runs()],
    output:
        csv="results/depth/grad_flow.csv",
        figure=report(
            "results/depth/figures/grad_flow.pdf",
            caption="../report/captions/depth_grad_flow.rst",
            category="Depth",
        ),
        png="results/depth/figures/grad_flow.png",
    params:
        epochs=config["depth"]["grad_flow"]["epochs"],
    log:
        "logs/depth/grad_flow.log",
    benchmark:
        "benchmarks/depth/grad_flow.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/depth_grad_flow.py"
