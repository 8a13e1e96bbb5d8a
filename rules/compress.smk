# Model compression (the deployment course): pruning, INT8 quantization, weight sharing and distillation of the
# CIFAR ResNets the Optimus study trains. The trained models are the Optimus runs of config compress.device and
# compress.seed (results/optimus/runs/<arch>-<device>-s<seed>/checkpoint.pt), reused, not retrained.


from dlperf.compress import plan as compress_plan

COMPRESS = config["compress"]
COMPRESS_PRUNE_RUNS, COMPRESS_DISTILL_RUNS = compress_plan.PRUNE_RUNS, compress_plan.DISTILL_RUNS
COMPRESS_RUNS = (
    compress_plan.prune_runs(COMPRESS) + compress_plan.distill_runs(COMPRESS) + compress_plan.qat_runs(COMPRESS)
)
TRAINING_RUNS["compress"] = lambda: COMPRESS_RUNS
# The Optimus runs the study reuses (its device label and seed): the model compressed and the distillation teacher.
COMPRESS_DENSE = OPTIMUS_RUNS.format(arch=COMPRESS["arch"], device=COMPRESS["device"], seed=COMPRESS["seed"])
COMPRESS_TEACHER = OPTIMUS_RUNS.format(
    arch=COMPRESS["distill"]["teacher"], device=COMPRESS["device"], seed=COMPRESS["seed"]
)
COMPRESS_DISTILL_WIDTH = optimus_plan.imagenet_width(
    OPTIMUS, COMPRESS["distill"]["student"], COMPRESS["distill"]["teacher"]
)


rule compress_prune:
    input:
        checkpoint=rules.optimus_train.output.checkpoint,
        data="resources/data/cifar10",
        peak=device_peak,
    output:
        checkpoint=f"{COMPRESS_PRUNE_RUNS}/checkpoint.pt",
        steps=f"{COMPRESS_PRUNE_RUNS}/steps.csv",
        epochs=f"{COMPRESS_PRUNE_RUNS}/epochs.csv",
        metrics=f"{COMPRESS_PRUNE_RUNS}/metrics.json",
        sparsity=f"{COMPRESS_PRUNE_RUNS}/sparsity.csv",
        pruning=f"{COMPRESS_PRUNE_RUNS}/pruning.json",
        provenance=f"{COMPRESS_PRUNE_RUNS}/provenance.json",
    log:
        "logs/compress/prune_{arch}-{device}-s{seed}-sp{sparsity}.log",
    benchmark:
        "benchmarks/compress/prune_{arch}-{device}-s{seed}-sp{sparsity}.tsv"
    wildcard_constraints:
        sparsity="0(\\.[0-9]+)?",
    conda:
        CONDA_ENV
    threads: config["threads"]
    resources:
        gpu=gpu_slots,
        slurm_partition=slurm_partition_of,
        gpu_model=gpu_model_of,
    params:
        n_train=COMPRESS["prune"]["n_train"],
        train=COMPRESS["prune"]["train"],
        width=lambda wildcards: optimus_plan.imagenet_width(OPTIMUS, wildcards.arch),
        accelerator=accelerator_of,
        state_dir=f"{COMPRESS_PRUNE_RUNS}/resume",
    script:
        "../scripts/compress_prune.py"


rule compress_pruning:
    input:
        pruning=[f"{run}/pruning.json" for run in compress_plan.prune_runs(COMPRESS)],
        sparsity=[f"{run}/sparsity.csv" for run in compress_plan.prune_runs(COMPRESS)],
        checkpoints=[f"{run}/checkpoint.pt" for run in compress_plan.prune_runs(COMPRESS)],
        dense=f"{COMPRESS_DENSE}/checkpoint.pt",
    output:
        csv="results/compress/pruning.csv",
        layers="results/compress/pruning_layers.csv",
        provenance="results/compress/pruning.provenance.json",
    log:
        "logs/compress/pruning.log",
    benchmark:
        "benchmarks/compress/pruning.tsv"
    conda:
        CONDA_ENV
    threads: MACHINE_CORES  # a timing job (TIMING_RULES): nothing runs beside it
    params:
        measure_threads=config["threads"],
        arch=COMPRESS["arch"],
        width=optimus_plan.imagenet_width(OPTIMUS, COMPRESS["arch"]),
        latency={**COMPRESS["latency"], "batch_sizes": COMPRESS["latency"]["batch_sizes"][:1]},  # timed at the first
    script:
        "../scripts/compress_pruning.py"


# A render rule (dlperf.bundle): accuracy and latency against sparsity, from compress_pruning's CSV.
rule compress_pruning_figure:
    input:
        csv=rules.compress_pruning.output.csv,
        provenance=[
            rules.compress_pruning.output.provenance,
            f"{COMPRESS_DENSE}/provenance.json",
            *(f"{run}/provenance.json" for run in compress_plan.prune_runs(COMPRESS)),
        ],
        code=render_code("compress_pruning_figure"),
    output:
        figure=report(
            "results/compress/figures/accuracy_sparsity.pdf",
            caption="../report/captions/compress_accuracy_sparsity.rst",
            category="Compression",
        ),
        png="results/compress/figures/accuracy_sparsity.png",
    log:
        "logs/compress/pruning_figure.log",
    benchmark:
        "benchmarks/compress/pruning_figure.tsv"
    conda:
        CONDA_ENV
    params:
        scale=config["scale"],  # the figures' fidelity
    script:
        "../scripts/compress_pruning_figure.py"


rule compress_quantize:
    input:
        checkpoint=f"{COMPRESS_DENSE}/checkpoint.pt",
        data="resources/data/cifar10",
    output:
        fp32="results/compress/quantize/classifier.fp32.onnx",
        dynamic="results/compress/quantize/classifier.int8_dynamic.onnx",
        static="results/compress/quantize/classifier.int8_static.onnx",
        csv="results/compress/quantize/classifier.csv",
        latency="results/compress/quantize/latency.csv",
        provenance="results/compress/quantize/provenance.json",
    log:
        "logs/compress/quantize.log",
    benchmark:
        "benchmarks/compress/quantize.tsv"
    conda:
        CONDA_ENV
    threads: MACHINE_CORES  # a timing job (TIMING_RULES): nothing runs beside it
    params:
        measure_threads=config["threads"],
        arch=COMPRESS["arch"],
        quantize=compress_plan.quantize(COMPRESS, "calibration_images", "calibration_batch_size", "eval_batch_size"),
        latency=COMPRESS["latency"],
        width=optimus_plan.imagenet_width(OPTIMUS, COMPRESS["arch"]),
    script:
        "../scripts/compress_quantize.py"


rule compress_quantize_ssd:
    input:
        onnx=lambda wildcards: rules.serve_export.output.onnx,
        labels=lambda wildcards: rules.ssd_finetune.output.labels,
        data=lambda wildcards: rules.ssd_openimages_data.output.data,
    output:
        fp32="results/compress/quantize/ssd.fp32.onnx",
        dynamic="results/compress/quantize/ssd.int8_dynamic.onnx",
        static="results/compress/quantize/ssd.int8_static.onnx",
        csv="results/compress/quantize/ssd.csv",
        latency="results/compress/quantize/ssd_latency.csv",
        provenance="results/compress/quantize/ssd.provenance.json",
    log:
        "logs/compress/quantize_ssd.log",
    benchmark:
        "benchmarks/compress/quantize_ssd.tsv"
    conda:
        CONDA_ENV
    threads: MACHINE_CORES  # a timing job (TIMING_RULES): nothing runs beside it
    params:
        measure_threads=config["threads"],
        quantize=compress_plan.quantize(COMPRESS, "ssd_calibration_images", "ssd_op_types"),
        latency=COMPRESS["latency"],
    script:
        "../scripts/compress_quantize_ssd.py"


rule compress_share:
    input:
        checkpoint=f"{COMPRESS_DENSE}/checkpoint.pt",
        data="resources/data/cifar10",
    output:
        csv="results/compress/share/sharing.csv",
        layers="results/compress/share/layers.csv",
        provenance="results/compress/share/provenance.json",
    log:
        "logs/compress/share.log",
    benchmark:
        "benchmarks/compress/share.tsv"
    conda:
        CONDA_ENV
    threads: MACHINE_CORES  # a timing job (TIMING_RULES): nothing runs beside it
    params:
        measure_threads=config["threads"],
        arch=COMPRESS["arch"],
        share=COMPRESS["share"],
        latency={**COMPRESS["latency"], "batch_sizes": COMPRESS["latency"]["batch_sizes"][:1]},  # timed at the first
        width=optimus_plan.imagenet_width(OPTIMUS, COMPRESS["arch"]),
        eval_batch_size=COMPRESS["quantize"]["eval_batch_size"],
    script:
        "../scripts/compress_share.py"


rule compress_distill:
    input:
        teacher=f"{COMPRESS_TEACHER}/checkpoint.pt",
        data="resources/data/cifar10",
        peak=device_peak,
    output:
        checkpoint=f"{COMPRESS_DISTILL_RUNS}/checkpoint.pt",
        steps=f"{COMPRESS_DISTILL_RUNS}/steps.csv",
        epochs=f"{COMPRESS_DISTILL_RUNS}/epochs.csv",
        metrics=f"{COMPRESS_DISTILL_RUNS}/metrics.json",
        provenance=f"{COMPRESS_DISTILL_RUNS}/provenance.json",
    log:
        "logs/compress/distill_{arch}-{mode}-{device}-s{seed}.log",
    benchmark:
        "benchmarks/compress/distill_{arch}-{mode}-{device}-s{seed}.tsv"
    wildcard_constraints:
        mode="|".join(compress_plan.MODES),
    conda:
        CONDA_ENV
    threads: config["threads"]
    resources:
        gpu=gpu_slots,
        slurm_partition=slurm_partition_of,
        gpu_model=gpu_model_of,
    params:
        n_train=COMPRESS["distill"]["n_train"],
        train=COMPRESS["distill"]["train"],
        soft_targets=lambda wildcards: compress_plan.soft_targets(COMPRESS, wildcards.mode),
        width=COMPRESS_DISTILL_WIDTH,
        accelerator=accelerator_of,
        gpu_pack=gpu_pack_of,
        state_dir=f"{COMPRESS_DISTILL_RUNS}/resume",
    script:
        "../scripts/compress_distill.py"


rule compress_distillation:
    input:
        teacher=f"{COMPRESS_TEACHER}/checkpoint.pt",
        teacher_metrics=f"{COMPRESS_TEACHER}/metrics.json",
        students=[f"{run}/checkpoint.pt" for run in compress_plan.distill_runs(COMPRESS)],
        metrics=[f"{run}/metrics.json" for run in compress_plan.distill_runs(COMPRESS)],
    output:
        csv="results/compress/distill.csv",
    log:
        "logs/compress/distillation.log",
    benchmark:
        "benchmarks/compress/distillation.tsv"
    conda:
        CONDA_ENV
    threads: MACHINE_CORES  # a timing job (TIMING_RULES): nothing runs beside it
    params:
        measure_threads=config["threads"],
        teacher=COMPRESS["distill"]["teacher"],
        student=COMPRESS["distill"]["student"],
        latency={**COMPRESS["latency"], "batch_sizes": COMPRESS["latency"]["batch_sizes"][:1]},  # timed at the first
        width=COMPRESS_DISTILL_WIDTH,
        modes=list(compress_plan.MODES),
    script:
        "../scripts/compress_distillation.py"


include: "compress_deep.smk"
include: "compress_qat.smk"


rule compress_summary:
    input:
        **(
            {"ssd": rules.compress_quantize_ssd.output.csv, "ssd_latency": rules.compress_quantize_ssd.output.latency}
            if COMPRESS["quantize"]["ssd"]
            else {}
        ),
        pruning=rules.compress_pruning.output.csv,
        classifier=rules.compress_quantize.output.csv,
        latency=rules.compress_quantize.output.latency,
        sharing=rules.compress_share.output.csv,
        distill=rules.compress_distillation.output.csv,
        deep=rules.compress_deep_stages.output.csv,
        qat=rules.compress_qat_compare.output.csv,
        qat_latency=rules.compress_qat_compare.output.latency,
        # the SSD's rows, when compress.quantize.ssd
        code=render_code("compress_summary"),
    output:
        csv="results/compress/summary.csv",
        table=report(
            "results/compress/tables/summary.tex",
            caption="../report/captions/compress_summary.rst",
            category="Compression",
        ),
        markdown="results/compress/tables/summary.md",
        figure=report(
            "results/compress/figures/size_accuracy.pdf",
            caption="../report/captions/compress_size_accuracy.rst",
            category="Compression",
        ),
        png="results/compress/figures/size_accuracy.png",
    log:
        "logs/compress/summary.log",
    benchmark:
        "benchmarks/compress/summary.tsv"
    conda:
        CONDA_ENV
    params:
        scale=config["scale"],  # the figures' fidelity
        arch=COMPRESS["arch"],
        temperature=COMPRESS["distill"]["temperature"],
        alpha=COMPRESS["distill"]["alpha"],
    script:
        "../scripts/compress_summary.py"


rule compress_values:
    input:
        summary=rules.compress_summary.output.csv,
        pruning=rules.compress_pruning.output.csv,
        classifier=rules.compress_quantize.output.csv,
        latency=rules.compress_quantize.output.latency,
        sharing=rules.compress_share.output.csv,
        distill=rules.compress_distillation.output.csv,
        deep=rules.compress_deep_stages.output.csv,
        qat=rules.compress_qat_compare.output.csv,
        quantize=rules.compress_quantize.output.provenance,
        provenance=[
            *(
                f"{run}/provenance.json"
                for run in compress_plan.prune_runs(COMPRESS) + compress_plan.distill_runs(COMPRESS)
            ),
            rules.compress_quantize.output.provenance,
            rules.compress_share.output.provenance,
            rules.compress_deep_shared.output.provenance,
            rules.compress_qat_compare.output.provenance,
            *(f"{run}/provenance.json" for run in compress_plan.qat_runs(COMPRESS)),
        ],
        includes=[
            rules.compress_pruning_figure.output.figure,
            rules.compress_summary.output.figure,
            rules.compress_summary.output.table,
            rules.compress_deep_stages.output.table,
        ],
        code=render_code("compress_values"),
    output:
        values="results/compress/values.json",
    log:
        "logs/compress/values.log",
    benchmark:
        "benchmarks/compress/values.tsv"
    conda:
        CONDA_ENV
    params:
        settings=COMPRESS,
        ssd=COMPRESS["quantize"]["ssd"],
    script:
        "../scripts/compress_values.py"
