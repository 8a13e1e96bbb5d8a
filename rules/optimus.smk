# Optimus (Peng et al., EuroSys 2018): ResNets on CIFAR-10, one run per (arch, device label, seed).


rule optimus_train:
    input:
        data="resources/data/cifar10",
    output:
        checkpoint=f"{OPTIMUS_RUNS}/checkpoint.pt",
        steps=f"{OPTIMUS_RUNS}/steps.csv",
        epochs=f"{OPTIMUS_RUNS}/epochs.csv",
        metrics=f"{OPTIMUS_RUNS}/metrics.json",
        provenance=f"{OPTIMUS_RUNS}/provenance.json",
    params:
        train=config["optimus"]["train"],
        accelerator=optimus_accelerator,
        # Resumable state lives beside the declared outputs: Snakemake deletes outputs, not this, before a rerun.
        state_dir=f"{OPTIMUS_RUNS}/resume",
    log:
        "logs/optimus/train_{arch}-{device}-s{seed}.log",
    benchmark:
        "benchmarks/optimus/train_{arch}-{device}-s{seed}.tsv"
    threads: config["threads"]
    resources:
        gpu=lambda wc: torch_job_resources(optimus_accelerator(wc)).get("gpu", 0),
    conda:
        CONDA_ENV
    script:
        "../scripts/train_cifar.py"


rule optimus_learning_curves:
    input:
        epochs=expand("{run}/epochs.csv", run=optimus_runs()),
    output:
        figure=report(
            "results/optimus/figures/learning_curves.pdf",
            caption="../report/captions/optimus_learning_curves.rst",
            category="Optimus",
        ),
        png="results/optimus/figures/learning_curves.png",
        csv="results/optimus/learning_curves.csv",
        table=report(
            "results/optimus/tables/learning_curves.tex",
            caption="../report/captions/optimus_learning_curves_table.rst",
            category="Optimus",
        ),
        markdown="results/optimus/tables/learning_curves.md",
    log:
        "logs/optimus/learning_curves.log",
    benchmark:
        "benchmarks/optimus/learning_curves.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/optimus_learning_curves.py"
