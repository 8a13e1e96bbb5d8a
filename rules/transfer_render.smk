# Two of the transfer study's render rules (dlperf.bundle.RENDER_RULES): its dataset figures and its timing table,
# drawn from the results of rules/transfer.smk (which includes this file), so that a bundle redraws them.


# A render rule (dlperf.bundle): the dataset's figures from transfer_describe's records, without the dataset.
rule transfer_render_dataset:
    input:
        classes=rules.transfer_describe.output.classes,
        samples=rules.transfer_describe.output.samples,
        dataset=dataset_record(TRANSFER["dataset"]),
        code=render_code("transfer_render_dataset"),
    output:
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
    log:
        "logs/transfer/render_dataset.log",
    benchmark:
        "benchmarks/transfer/render_dataset.tsv"
    conda:
        CONDA_ENV
    params:
        scale=config["scale"],  # the figures' fidelity
    script:
        "../scripts/transfer_render_dataset.py"


# A render rule (dlperf.bundle): the timings' table, from their CSV.
rule transfer_render_timing:
    input:
        csv=rules.transfer_timing.output.csv,
        code=render_code("transfer_render_timing"),
    output:
        table=report(
            "results/transfer/tables/device_timing.tex",
            caption="../report/captions/transfer_device_timing.rst",
            category="Transfer",
        ),
        markdown="results/transfer/tables/device_timing.md",
    log:
        "logs/transfer/render_timing.log",
    benchmark:
        "benchmarks/transfer/render_timing.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/transfer_render_timing.py"
