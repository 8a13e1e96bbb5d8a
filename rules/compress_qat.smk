# Quantization-aware training beside post-training quantization at the same bit widths (dlperf.compress.qat): the
# Optimus model fine-tuned under fake quantization, INT8 (beside static PTQ) and weight-only at
# compress.qat.weight_only_bits (beside weight-only PTQ), each exported as a QDQ ONNX model that onnxruntime runs.

COMPRESS_QAT_RUNS = compress_plan.QAT_RUNS
COMPRESS_QAT_VARIANTS = compress_plan.qat_variants(COMPRESS)
COMPRESS_QAT_WEIGHT_ONLY = next(v for v, bits in COMPRESS_QAT_VARIANTS.items() if bits["activation_bits"] is None)


COMPRESS_QAT_ONNX = {
    variant: f"{run}/model.qdq.onnx" for variant, run in zip(COMPRESS_QAT_VARIANTS, compress_plan.qat_runs(COMPRESS))
}


rule compress_qat_train:
    input:
        checkpoint=rules.optimus_train.output.checkpoint,
        data="resources/data/cifar10",
        peak=device_peak,
    output:
        steps=f"{COMPRESS_QAT_RUNS}/steps.csv",
        epochs=f"{COMPRESS_QAT_RUNS}/epochs.csv",
        metrics=f"{COMPRESS_QAT_RUNS}/metrics.json",
        provenance=f"{COMPRESS_QAT_RUNS}/provenance.json",
        onnx=f"{COMPRESS_QAT_RUNS}/model.qdq.onnx",
    log:
        "logs/compress/qat_{arch}-{device}-s{seed}-{variant}.log",
    benchmark:
        "benchmarks/compress/qat_{arch}-{device}-s{seed}-{variant}.tsv"
    wildcard_constraints:
        variant="int[0-9]+w?",
    conda:
        CONDA_ENV
    threads: config["threads"]
    resources:
        gpu=gpu_slots,
        slurm_partition=slurm_partition_of,
        gpu_model=gpu_model_of,
    params:
        n_train=COMPRESS["qat"]["n_train"],
        train=COMPRESS["qat"]["train"],
        bits=lambda wildcards: COMPRESS_QAT_VARIANTS[wildcards.variant],
        quantize={k: COMPRESS["quantize"][k] for k in ("per_channel", "reduce_range")},
        width=lambda wildcards: optimus_plan.imagenet_width(OPTIMUS, wildcards.arch),
        accelerator=accelerator_of,
        state_dir=f"{COMPRESS_QAT_RUNS}/resume",
    script:
        "../scripts/compress_qat_train.py"


rule compress_qat_compare:
    input:
        checkpoint=f"{COMPRESS_DENSE}/checkpoint.pt",
        data="resources/data/cifar10",
        fp32=rules.compress_quantize.output.fp32,
        static=rules.compress_quantize.output.static,
        int8_qat=COMPRESS_QAT_ONNX["int8"],
        weight_only_qat=COMPRESS_QAT_ONNX[COMPRESS_QAT_WEIGHT_ONLY],
    output:
        weight_only_ptq="results/compress/qat/classifier.weight_only_ptq.onnx",
        csv="results/compress/qat/classifier.csv",
        latency="results/compress/qat/latency.csv",
        provenance="results/compress/qat/provenance.json",
    log:
        "logs/compress/qat_compare.log",
    benchmark:
        "benchmarks/compress/qat_compare.tsv"
    conda:
        CONDA_ENV
    threads: MACHINE_CORES  # a timing job (TIMING_RULES): nothing runs beside it
    params:
        measure_threads=config["threads"],
        arch=COMPRESS["arch"],
        width=optimus_plan.imagenet_width(OPTIMUS, COMPRESS["arch"]),
        weight_only_bits=COMPRESS["qat"]["weight_only_bits"],
        eval_batch_size=COMPRESS["quantize"]["eval_batch_size"],
        latency={**COMPRESS["latency"], "batch_sizes": COMPRESS["latency"]["batch_sizes"][:1]},  # timed at the first
    script:
        "../scripts/compress_qat_compare.py"
