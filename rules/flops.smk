# FLOPs and PALEO (Qi et al. 2017; Lu et al. 2017): per-layer FLOP tables, the peak-throughput model, measured
# percent of peak, and the percent of peak of every training run of the workflow.


rule flops_layers:
    input:
        code=render_code("flops_layers"),
    output:
        csv="results/flops/{model}_layers.csv",
        table="results/flops/{model}_layers.tex",
        markdown="results/flops/{model}_layers.md",
    log:
        "logs/flops/layers_{model}.log",
    benchmark:
        "benchmarks/flops/layers_{model}.tsv"
    wildcard_constraints:
        model="vgg16|vgg19|googlenet|resnet50",
    conda:
        CONDA_ENV
    params:
        image_size=config["flops"]["image_size"],
        flop_per_mac=config["flops"]["flop_per_mac"],
    script:
        "../scripts/flops_layers.py"


rule flops_summary:
    input:
        layers=expand("results/flops/{model}_layers.csv", model=config["flops"]["models"]),
        code=render_code("flops_summary"),
    output:
        csv="results/flops/summary.csv",
        table=report(
            "results/flops/tables/summary.tex",
            caption="../report/captions/flops_summary.rst",
            category="FLOPs",
        ),
        markdown="results/flops/tables/summary.md",
    log:
        "logs/flops/summary.log",
    benchmark:
        "benchmarks/flops/summary.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/flops_summary.py"


rule flops_census:
    input:
        code=render_code("flops_census"),
    output:
        csv="results/flops/census.csv",
        table=report(
            "results/flops/tables/census.tex",
            caption="../report/captions/flops_census.rst",
            category="FLOPs",
        ),
        markdown="results/flops/tables/census.md",
    log:
        "logs/flops/census.log",
    benchmark:
        "benchmarks/flops/census.tsv"
    conda:
        CONDA_ENV
    params:
        flop_per_mac=config["flops"]["flop_per_mac"],
    script:
        "../scripts/flops_census.py"


rule flops_peak_time:
    input:
        summary="results/flops/summary.csv",
        code=render_code("flops_peak_time"),
    output:
        csv="results/flops/peak_time.csv",
        table=report(
            "results/flops/tables/peak_time.tex",
            caption="../report/captions/flops_peak_time.rst",
            category="FLOPs",
        ),
        markdown="results/flops/tables/peak_time.md",
    log:
        "logs/flops/peak_time.log",
    benchmark:
        "benchmarks/flops/peak_time.tsv"
    conda:
        CONDA_ENV
    params:
        peak_model=config["flops"]["peak_model"],
    script:
        "../scripts/flops_peak_time.py"


rule flops_measure:
    input:
        peak=peak_of(config["flops"]["measure"]["device"]),
    output:
        timing="results/flops/layer_timing.csv",
        ppp="results/flops/ppp.csv",
        provenance="results/flops/measure.provenance.json",
    log:
        "logs/flops/measure.log",
    benchmark:
        "benchmarks/flops/measure.tsv"
    conda:
        CONDA_ENV
    threads: MACHINE_CORES  # a timing job (TIMING_RULES): nothing runs beside it
    resources:
        gpu=gpu_count(config["flops"]["measure"]["device"]),
        slurm_partition=slurm_partition(config["flops"]["measure"]["device"]),
        gpu_model=gpu_model(config["flops"]["measure"]["device"]),
    params:
        measure_threads=config["threads"],
        measure=drop(config["flops"]["measure"], "device"),  # the device is the peak input's and accelerator
        flop_per_mac=config["flops"]["flop_per_mac"],
        accelerator=device_accelerator(config["flops"]["measure"]["device"]),
    script:
        "../scripts/flops_measure.py"


# What flops_measure timed, drawn: a render rule (dlperf.bundle), so a bundle of a finished run redraws it.
rule flops_ppp_figure:
    input:
        timing=rules.flops_measure.output.timing,
        ppp=rules.flops_measure.output.ppp,
        provenance=rules.flops_measure.output.provenance,
        peak=peak_of(config["flops"]["measure"]["device"]),
        code=render_code("flops_ppp_figure"),
    output:
        table=report(
            "results/flops/tables/layer_timing.tex",
            caption="../report/captions/flops_layer_timing.rst",
            category="FLOPs",
        ),
        markdown="results/flops/tables/layer_timing.md",
        figure=report(
            "results/flops/figures/ppp.pdf",
            caption="../report/captions/flops_ppp.rst",
            category="FLOPs",
        ),
        png="results/flops/figures/ppp.png",
    log:
        "logs/flops/ppp_figure.log",
    benchmark:
        "benchmarks/flops/ppp_figure.tsv"
    conda:
        CONDA_ENV
    params:
        scale=config["scale"],  # the figures' fidelity
    script:
        "../scripts/flops_ppp_figure.py"


rule flops_training_ppp:
    input:
        # functions: the studies that train are included after this one
        epochs=lambda wildcards: [f"{run}/epochs.csv" for _, run in training_runs()],
        provenance=lambda wildcards: [f"{run}/provenance.json" for _, run in training_runs()],
        code=render_code("flops_training_ppp"),
    output:
        csv="results/flops/training_ppp.csv",
        table=report(
            "results/flops/tables/training_ppp.tex",
            caption="../report/captions/flops_training_ppp.rst",
            category="FLOPs",
        ),
        markdown="results/flops/tables/training_ppp.md",
    log:
        "logs/flops/training_ppp.log",
    benchmark:
        "benchmarks/flops/training_ppp.tsv"
    conda:
        CONDA_ENV
    params:
        studies=lambda wildcards: [study for study, _ in training_runs()],
    script:
        "../scripts/flops_training_ppp.py"


rule flops_values:
    input:
        summary=rules.flops_summary.output.csv,
        layers=expand("results/flops/{model}_layers.csv", model=config["flops"]["models"]),
        peak_time=rules.flops_peak_time.output.csv,
        timing=rules.flops_measure.output.timing,
        ppp=rules.flops_measure.output.ppp,
        training_ppp=rules.flops_training_ppp.output.csv,
        peak=peak_of(config["flops"]["measure"]["device"]),
        measure=rules.flops_measure.output.provenance,
        provenance=[rules.flops_measure.output.provenance],
        includes=[
            rules.flops_summary.output.table,
            rules.flops_census.output.table,
            *expand("results/flops/{model}_layers.tex", model=config["flops"]["models"]),
            rules.flops_peak_time.output.table,
            rules.flops_ppp_figure.output.table,
            rules.flops_ppp_figure.output.figure,
            rules.flops_training_ppp.output.table,
        ],
        code=render_code("flops_values"),
    output:
        values="results/flops/values.json",
    log:
        "logs/flops/values.log",
    benchmark:
        "benchmarks/flops/values.tsv"
    conda:
        CONDA_ENV
    params:
        image_size=config["flops"]["image_size"],
        flop_per_mac=config["flops"]["flop_per_mac"],
    script:
        "../scripts/flops_values.py"
