# Model compression (the deployment course): pruning, INT8 quantization, weight sharing and distillation of the
# CIFAR ResNets the Optimus study trains. The trained models are the Optimus runs of config compress.device and
# compress.seed (results/optimus/runs/<arch>-<device>-s<seed>/checkpoint.pt), reused, not retrained.


COMPRESS = config["compress"]
COMPRESS_PRUNE_RUNS = "results/compress/prune/{arch}-{device}-s{seed}-sp{sparsity}"
COMPRESS_DISTILL_RUNS = "results/compress/distill/{arch}-{mode}-{device}-s{seed}"
COMPRESS_MODES = ("labels", "kd")  # a distillation student trained on labels only, and on soft targets


def compress_source(arch, name="checkpoint"):
    """A file of the Optimus run of ``arch`` that the compress study reuses: its device label and seed."""
    return expand(rules.optimus_train.output[name], arch=arch, device=COMPRESS["device"], seed=COMPRESS["seed"])[0]


def sparsity_label(sparsity):
    """0.5 -> '0.5': a sparsity as it appears in run names."""
    return f"{sparsity:g}"


def compress_prune_runs():
    c = COMPRESS
    return [
        COMPRESS_PRUNE_RUNS.format(arch=c["arch"], device=c["device"], seed=c["seed"], sparsity=sparsity_label(s))
        for s in c["prune"]["sparsities"]
    ]


def compress_distill_runs():
    c = COMPRESS
    return [
        COMPRESS_DISTILL_RUNS.format(arch=c["distill"]["student"], mode=mode, device=c["device"], seed=c["seed"])
        for mode in COMPRESS_MODES
    ]


def soft_targets(wildcards):
    """What a distillation student learns from besides the labels: the teacher's soft targets in mode kd only."""
    d = COMPRESS["distill"]
    return {k: d[k] for k in ("teacher", "temperature", "alpha")} if wildcards.mode == "kd" else None


def compress_ssd():
    """Whether the SSD is quantized too (compress.quantize.ssd): it needs the serving study's ONNX file."""
    return COMPRESS["quantize"]["ssd"]


# The classifier's quantization settings; the SSD's add its calibration size and operator types.
QUANTIZE_KEYS = (
    "format",
    "activation_type",
    "weight_type",
    "per_channel",
    "reduce_range",
    "calibrate_method",
    "dynamic_weight_type",
)
QUANTIZE = {k: COMPRESS["quantize"][k] for k in QUANTIZE_KEYS}

TRAINING_RUNS["compress"] = lambda: compress_prune_runs() + compress_distill_runs()


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
        latency=COMPRESS["latency"],
        width=config["optimus"]["imagenet_width"],
        accelerator=accelerator_of,
        state_dir=f"{COMPRESS_PRUNE_RUNS}/resume",
    script:
        "../scripts/compress_prune.py"


rule compress_pruning:
    input:
        pruning=[f"{run}/pruning.json" for run in compress_prune_runs()],
        sparsity=[f"{run}/sparsity.csv" for run in compress_prune_runs()],
    output:
        csv="results/compress/pruning.csv",
        layers="results/compress/pruning_layers.csv",
        figure=report(
            "results/compress/figures/accuracy_sparsity.pdf",
            caption="../report/captions/compress_accuracy_sparsity.rst",
            category="Compression",
        ),
        png="results/compress/figures/accuracy_sparsity.png",
    log:
        "logs/compress/pruning.log",
    benchmark:
        "benchmarks/compress/pruning.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/compress_pruning.py"


rule compress_quantize:
    input:
        checkpoint=compress_source(COMPRESS["arch"]),
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
    threads: config["threads"]
    params:
        arch=COMPRESS["arch"],
        quantize={
            **QUANTIZE,
            **{
                k: COMPRESS["quantize"][k] for k in ("calibration_images", "calibration_batch_size", "eval_batch_size")
            },
        },
        latency=COMPRESS["latency"],
        width=config["optimus"]["imagenet_width"],
    script:
        "../scripts/compress_quantize.py"


rule compress_quantize_ssd:
    input:
        onnx=lambda wildcards: rules.serve_export.output.onnx,
        labels=lambda wildcards: rules.ssd_finetune.output.labels,
        data="resources/data/openimages",
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
    threads: config["threads"]
    params:
        quantize={**QUANTIZE, **{k: COMPRESS["quantize"][k] for k in ("ssd_calibration_images", "ssd_op_types")}},
        latency=COMPRESS["latency"],
    script:
        "../scripts/compress_quantize_ssd.py"


rule compress_share:
    input:
        checkpoint=compress_source(COMPRESS["arch"]),
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
    threads: config["threads"]
    params:
        arch=COMPRESS["arch"],
        share=COMPRESS["share"],
        latency=COMPRESS["latency"],
        width=config["optimus"]["imagenet_width"],
        eval_batch_size=COMPRESS["quantize"]["eval_batch_size"],
    script:
        "../scripts/compress_share.py"


rule compress_distill:
    input:
        teacher=compress_source(COMPRESS["distill"]["teacher"]),
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
        mode="|".join(COMPRESS_MODES),
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
        soft_targets=soft_targets,
        width=config["optimus"]["imagenet_width"],
        accelerator=accelerator_of,
        state_dir=f"{COMPRESS_DISTILL_RUNS}/resume",
    script:
        "../scripts/compress_distill.py"


rule compress_distillation:
    input:
        teacher=compress_source(COMPRESS["distill"]["teacher"]),
        teacher_metrics=compress_source(COMPRESS["distill"]["teacher"], "metrics"),
        students=[f"{run}/checkpoint.pt" for run in compress_distill_runs()],
        metrics=[f"{run}/metrics.json" for run in compress_distill_runs()],
    output:
        csv="results/compress/distill.csv",
    log:
        "logs/compress/distillation.log",
    benchmark:
        "benchmarks/compress/distillation.tsv"
    conda:
        CONDA_ENV
    threads: config["threads"]
    params:
        distill=COMPRESS["distill"],
        latency=COMPRESS["latency"],
        width=config["optimus"]["imagenet_width"],
        modes=list(COMPRESS_MODES),
    script:
        "../scripts/compress_distillation.py"


def compress_summary_inputs():
    inputs = {
        "pruning": rules.compress_pruning.output.csv,
        "classifier": rules.compress_quantize.output.csv,
        "latency": rules.compress_quantize.output.latency,
        "sharing": rules.compress_share.output.csv,
        "distill": rules.compress_distillation.output.csv,
    }
    if compress_ssd():
        inputs["ssd"] = rules.compress_quantize_ssd.output.csv
        inputs["ssd_latency"] = rules.compress_quantize_ssd.output.latency
    return inputs


rule compress_summary:
    input:
        **compress_summary_inputs(),
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
        arch=COMPRESS["arch"],
        distill=COMPRESS["distill"],
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
        quantize=rules.compress_quantize.output.provenance,
        provenance=[
            *(f"{run}/provenance.json" for run in compress_prune_runs() + compress_distill_runs()),
            rules.compress_quantize.output.provenance,
            rules.compress_share.output.provenance,
        ],
        includes=[
            rules.compress_pruning.output.figure,
            rules.compress_summary.output.figure,
            rules.compress_summary.output.table,
        ],
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
        ssd=compress_ssd(),
    script:
        "../scripts/compress_values.py"
