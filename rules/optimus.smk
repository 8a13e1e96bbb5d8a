# Optimus (Peng et al., EuroSys 2018): ResNets on CIFAR-10, one run per (arch, device label, seed).


rule optimus_train:
    input:
        data="resources/data/cifar10",
        peak=device_peak,
    output:
        checkpoint=f"{OPTIMUS_RUNS}/checkpoint.pt",
        steps=f"{OPTIMUS_RUNS}/steps.csv",
        epochs=f"{OPTIMUS_RUNS}/epochs.csv",
        metrics=f"{OPTIMUS_RUNS}/metrics.json",
        provenance=f"{OPTIMUS_RUNS}/provenance.json",
    params:
        train=config["optimus"]["train"],
        n_train=config["optimus"].get("n_train"),
        width=config["optimus"]["imagenet_width"],
        accelerator=accelerator_of,
        # Resumable state lives beside the declared outputs: Snakemake deletes outputs, not this, before a rerun.
        state_dir=f"{OPTIMUS_RUNS}/resume",
    log:
        "logs/optimus/train_{arch}-{device}-s{seed}.log",
    benchmark:
        "benchmarks/optimus/train_{arch}-{device}-s{seed}.tsv"
    threads: config["threads"]
    resources:
        gpu=gpu_slots,
        slurm_partition=slurm_partition_of,
        gpu_model=gpu_model_of,
    conda:
        CONDA_ENV
    script:
        "../scripts/train_cifar.py"


rule optimus_learning_curves:
    input:
        epochs=optimus_run_files("epochs.csv"),
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


rule optimus_loss_fits:
    input:
        steps=optimus_run_files("steps.csv"),
    output:
        csv="results/optimus/loss_fits.csv",
        figure=report(
            "results/optimus/figures/loss_fits.pdf",
            caption="../report/captions/optimus_loss_fits.rst",
            category="Optimus",
        ),
        png="results/optimus/figures/loss_fits.png",
        table=report(
            "results/optimus/tables/loss_fits.tex",
            caption="../report/captions/optimus_loss_fits_table.rst",
            category="Optimus",
        ),
        markdown="results/optimus/tables/loss_fits.md",
        provenance="results/optimus/loss_fits.provenance.json",
    params:
        fit=config["optimus"]["fit"],
    log:
        "logs/optimus/loss_fits.log",
    benchmark:
        "benchmarks/optimus/loss_fits.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/optimus_loss_fits.py"


rule optimus_prediction:
    input:
        fits="results/optimus/loss_fits.csv",
        train_epochs=optimus_run_files("epochs.csv", config["optimus"]["archs"]),
        target_steps=optimus_target_files("steps.csv"),
        target_epochs=optimus_target_files("epochs.csv"),
    output:
        regression="results/optimus/beta_regression.csv",
        prediction="results/optimus/resnet50_prediction.csv",
        error="results/optimus/prediction_error.csv",
        figures=expand("results/optimus/figures/resnet50_prediction_{device}.pdf", device=config["optimus"]["devices"]),
        pngs=expand("results/optimus/figures/resnet50_prediction_{device}.png", device=config["optimus"]["devices"]),
        table=report(
            "results/optimus/tables/prediction_error.tex",
            caption="../report/captions/optimus_prediction_error.rst",
            category="Optimus",
        ),
        markdown="results/optimus/tables/prediction_error.md",
        provenance="results/optimus/prediction.provenance.json",
    params:
        target_arch=config["optimus"]["target_arch"],
        target_accuracy=config["optimus"]["target_accuracy"],
        form=config["optimus"]["regression_form"],
        fit=config["optimus"]["fit"],
        max_epochs=config["optimus"]["prediction_horizon_epochs"],
    log:
        "logs/optimus/prediction.log",
    benchmark:
        "benchmarks/optimus/prediction.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/optimus_prediction.py"


rule optimus_time_to_accuracy:
    input:
        error="results/optimus/prediction_error.csv",
        target_epochs=optimus_target_files("epochs.csv")[0],
    output:
        csv="results/optimus/time_to_accuracy.csv",
        theta="results/optimus/theta.json",
        figure=report(
            "results/optimus/figures/time_to_accuracy.pdf",
            caption="../report/captions/optimus_time_to_accuracy.rst",
            category="Optimus",
        ),
        png="results/optimus/figures/time_to_accuracy.png",
        provenance="results/optimus/time_to_accuracy.provenance.json",
    params:
        speed=config["optimus"]["speed_model"],
        target_arch=config["optimus"]["target_arch"],
        target_accuracy=config["optimus"]["target_accuracy"],
        width=config["optimus"]["imagenet_width"],
        n_train=optimus_n_train(),
    log:
        "logs/optimus/time_to_accuracy.log",
    benchmark:
        "benchmarks/optimus/time_to_accuracy.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/optimus_time_to_accuracy.py"
