# Optimus (Peng et al., EuroSys 2018): ResNets on CIFAR-10, one run per (arch, device label, seed).
from dlperf.optimus import plan as optimus_plan

OPTIMUS = config["optimus"]
OPTIMUS_RUNS = optimus_plan.RUNS
TRAINING_RUNS["optimus"] = lambda: optimus_plan.runs(OPTIMUS)


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
    log:
        "logs/optimus/train_{arch}-{device}-s{seed}.log",
    benchmark:
        "benchmarks/optimus/train_{arch}-{device}-s{seed}.tsv"
    priority: LONGEST_FIRST["optimus"]
    conda:
        CONDA_ENV
    threads: config["threads"]
    resources:
        gpu=gpu_slots,
        slurm_partition=slurm_partition_of,
        gpu_model=gpu_model_of,
    params:
        train=OPTIMUS["train"],
        n_train=OPTIMUS["n_train"],
        width=lambda wildcards: optimus_plan.imagenet_width(OPTIMUS, wildcards.arch),
        zero_init_residual=lambda wildcards: wildcards.arch in OPTIMUS["zero_init_residual"],
        accelerator=accelerator_of,
        gpu_pack=gpu_pack_of,
        # Resumable state lives beside the declared outputs: Snakemake deletes outputs, not this, before a rerun.
        state_dir=f"{OPTIMUS_RUNS}/resume",
    script:
        "../scripts/optimus_train.py"


rule optimus_learning_curves:
    input:
        epochs=optimus_plan.files(OPTIMUS, "epochs.csv"),
        code=render_code("optimus_learning_curves"),
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
    params:
        scale=config["scale"],  # the figures' fidelity
    script:
        "../scripts/optimus_learning_curves.py"


rule optimus_loss_fits:
    input:
        steps=optimus_plan.files(OPTIMUS, "steps.csv"),
        code=render_code("optimus_loss_fits"),
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
    log:
        "logs/optimus/loss_fits.log",
    benchmark:
        "benchmarks/optimus/loss_fits.tsv"
    conda:
        CONDA_ENV
    params:
        scale=config["scale"],  # the figures' fidelity
        fit=OPTIMUS["fit"],
    script:
        "../scripts/optimus_loss_fits.py"


rule optimus_prediction:
    input:
        fits="results/optimus/loss_fits.csv",
        train_epochs=optimus_plan.files(OPTIMUS, "epochs.csv", OPTIMUS["archs"]),
        target_steps=optimus_plan.target_files(OPTIMUS, "steps.csv"),
        target_epochs=optimus_plan.target_files(OPTIMUS, "epochs.csv"),
        code=render_code("optimus_prediction"),
    output:
        regression="results/optimus/beta_regression.csv",
        prediction="results/optimus/resnet50_prediction.csv",
        error="results/optimus/prediction_error.csv",
        figures=expand("results/optimus/figures/resnet50_prediction_{device}.pdf", device=OPTIMUS["devices"]),
        pngs=expand("results/optimus/figures/resnet50_prediction_{device}.png", device=OPTIMUS["devices"]),
        table=report(
            "results/optimus/tables/prediction_error.tex",
            caption="../report/captions/optimus_prediction_error.rst",
            category="Optimus",
        ),
        markdown="results/optimus/tables/prediction_error.md",
        provenance="results/optimus/prediction.provenance.json",
    log:
        "logs/optimus/prediction.log",
    benchmark:
        "benchmarks/optimus/prediction.tsv"
    conda:
        CONDA_ENV
    params:
        scale=config["scale"],  # the figures' fidelity
        target_arch=OPTIMUS["target_arch"],
        target_accuracy=OPTIMUS["target_accuracy"],
        form=OPTIMUS["regression_form"],
        bins_per_epoch=OPTIMUS["fit"]["bins_per_epoch"],
        max_epochs=OPTIMUS["prediction_horizon_epochs"],
    script:
        "../scripts/optimus_prediction.py"


rule optimus_time_to_accuracy:
    input:
        error="results/optimus/prediction_error.csv",
        target_epochs=optimus_plan.target_files(OPTIMUS, "epochs.csv")[0],
        code=render_code("optimus_time_to_accuracy"),
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
    log:
        "logs/optimus/time_to_accuracy.log",
    benchmark:
        "benchmarks/optimus/time_to_accuracy.tsv"
    conda:
        CONDA_ENV
    params:
        scale=config["scale"],  # the figures' fidelity
        speed=OPTIMUS["speed_model"],
        target_arch=OPTIMUS["target_arch"],
        target_accuracy=OPTIMUS["target_accuracy"],
        width=optimus_plan.imagenet_width(OPTIMUS, OPTIMUS["target_arch"]),
        n_train=optimus_plan.n_train(OPTIMUS, config["data"]["cifar10"]),
    script:
        "../scripts/optimus_time_to_accuracy.py"


rule optimus_values:
    input:
        fits=rules.optimus_loss_fits.output.csv,
        regression=rules.optimus_prediction.output.regression,
        errors=rules.optimus_prediction.output.error,
        curves=rules.optimus_learning_curves.output.csv,
        time_to_accuracy=rules.optimus_time_to_accuracy.output.csv,
        theta=rules.optimus_time_to_accuracy.output.theta,
        runs=optimus_plan.files(OPTIMUS, "provenance.json"),
        dataset=dataset_record("cifar10"),
        fitting=rules.optimus_loss_fits.output.provenance,
        prediction=rules.optimus_prediction.output.provenance,
        speed=rules.optimus_time_to_accuracy.output.provenance,
        # the measurements' records: the fits' own (above) say where they were computed, which a redraw from a
        # bundle (dlperf.bundle) changes, and the report's commit, devices and date are those of the results
        provenance=[*optimus_plan.files(OPTIMUS, "provenance.json"), dataset_record("cifar10")],
        includes=[
            rules.optimus_learning_curves.output.figure,
            rules.optimus_learning_curves.output.table,
            rules.optimus_loss_fits.output.figure,
            rules.optimus_loss_fits.output.table,
            rules.optimus_prediction.output.table,
            *rules.optimus_prediction.output.figures,
            rules.optimus_time_to_accuracy.output.figure,
        ],
        code=render_code("optimus_values"),
    output:
        values="results/optimus/values.json",
    log:
        "logs/optimus/values.log",
    benchmark:
        "benchmarks/optimus/values.tsv"
    conda:
        CONDA_ENV
    params:
        horizon_epochs=OPTIMUS["prediction_horizon_epochs"],
        # the target-model prediction the report shows: on the speed model's device label
        prediction_device=OPTIMUS["speed_model"]["device"],
        prediction_figure=lambda wildcards, input: next(
            f for f in input.includes if f.endswith(f"_prediction_{OPTIMUS['speed_model']['device']}.pdf")
        ),
    script:
        "../scripts/optimus_values.py"
