# Model compression (the deployment course): pruning, INT8 quantization, weight sharing and distillation of the
# CIFAR ResNets the Optimus study trains. The trained models are the Optimus runs of config compress.device and
# compress.seed (results/optimus/runs/<arch>-<device>-s<seed>/checkpoint.pt), reused, not retrained.


rule compress_prune:
    input:
        checkpoint=f"{OPTIMUS_RUNS}/checkpoint.pt",
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
    params:
        prune=config["compress"]["prune"],
        latency=config["compress"]["latency"],
        width=config["optimus"]["imagenet_width"],
        accelerator=accelerator_of,
        state_dir=f"{COMPRESS_PRUNE_RUNS}/resume",
    log:
        "logs/compress/prune_{arch}-{device}-s{seed}-sp{sparsity}.log",
    benchmark:
        "benchmarks/compress/prune_{arch}-{device}-s{seed}-sp{sparsity}.tsv"
    wildcard_constraints:
        sparsity="0(\\.[0-9]+)?",
    threads: config["threads"]
    resources:
        gpu=gpu_slots,
        slurm_partition=slurm_partition_of,
        gpu_model=gpu_model_of,
    conda:
        CONDA_ENV
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
        checkpoint=f"{compress_source(config['compress']['arch'])}/checkpoint.pt",
        data="resources/data/cifar10",
    output:
        fp32="results/compress/quantize/classifier.fp32.onnx",
        dynamic="results/compress/quantize/classifier.int8_dynamic.onnx",
        static="results/compress/quantize/classifier.int8_static.onnx",
        csv="results/compress/quantize/classifier.csv",
        latency="results/compress/quantize/latency.csv",
        provenance="results/compress/quantize/provenance.json",
    params:
        arch=config["compress"]["arch"],
        quantize=config["compress"]["quantize"],
        latency=config["compress"]["latency"],
        width=config["optimus"]["imagenet_width"],
    log:
        "logs/compress/quantize.log",
    benchmark:
        "benchmarks/compress/quantize.tsv"
    threads: config["threads"]
    conda:
        CONDA_ENV
    script:
        "../scripts/compress_quantize.py"


rule compress_quantize_ssd:
    input:
        onnx="results/ssd/onnx/ssd.onnx",
        labels="results/ssd/finetune/labels.txt",
        data="resources/data/openimages",
    output:
        fp32="results/compress/quantize/ssd.fp32.onnx",
        dynamic="results/compress/quantize/ssd.int8_dynamic.onnx",
        static="results/compress/quantize/ssd.int8_static.onnx",
        csv="results/compress/quantize/ssd.csv",
        latency="results/compress/quantize/ssd_latency.csv",
        provenance="results/compress/quantize/ssd.provenance.json",
    params:
        quantize=config["compress"]["quantize"],
        latency=config["compress"]["latency"],
    log:
        "logs/compress/quantize_ssd.log",
    benchmark:
        "benchmarks/compress/quantize_ssd.tsv"
    threads: config["threads"]
    conda:
        CONDA_ENV
    script:
        "../scripts/compress_quantize_ssd.py"


rule compress_share:
    input:
        checkpoint=f"{compress_source(config['compress']['arch'])}/checkpoint.pt",
        data="resources/data/cifar10",
    output:
        csv="results/compress/share/sharing.csv",
        layers="results/compress/share/layers.csv",
        provenance="results/compress/share/provenance.json",
    params:
        arch=config["compress"]["arch"],
        share=config["compress"]["share"],
        latency=config["compress"]["latency"],
        width=config["optimus"]["imagenet_width"],
        eval_batch_size=config["compress"]["quantize"]["eval_batch_size"],
    log:
        "logs/compress/share.log",
    benchmark:
        "benchmarks/compress/share.tsv"
    threads: config["threads"]
    conda:
        CONDA_ENV
    script:
        "../scripts/compress_share.py"


rule compress_distill:
    input:
        teacher=f"{compress_source(config['compress']['distill']['teacher'])}/checkpoint.pt",
        data="resources/data/cifar10",
        peak=device_peak,
    output:
        checkpoint=f"{COMPRESS_DISTILL_RUNS}/checkpoint.pt",
        steps=f"{COMPRESS_DISTILL_RUNS}/steps.csv",
        epochs=f"{COMPRESS_DISTILL_RUNS}/epochs.csv",
        metrics=f"{COMPRESS_DISTILL_RUNS}/metrics.json",
        provenance=f"{COMPRESS_DISTILL_RUNS}/provenance.json",
    params:
        distill=config["compress"]["distill"],
        width=config["optimus"]["imagenet_width"],
        accelerator=accelerator_of,
        state_dir=f"{COMPRESS_DISTILL_RUNS}/resume",
    log:
        "logs/compress/distill_{arch}-{mode}-{device}-s{seed}.log",
    benchmark:
        "benchmarks/compress/distill_{arch}-{mode}-{device}-s{seed}.tsv"
    wildcard_constraints:
        mode="|".join(COMPRESS_MODES),
    threads: config["threads"]
    resources:
        gpu=gpu_slots,
        slurm_partition=slurm_partition_of,
        gpu_model=gpu_model_of,
    conda:
        CONDA_ENV
    script:
        "../scripts/compress_distill.py"


rule compress_distillation:
    input:
        teacher=f"{compress_source(config['compress']['distill']['teacher'])}/checkpoint.pt",
        teacher_metrics=f"{compress_source(config['compress']['distill']['teacher'])}/metrics.json",
        students=[f"{run}/checkpoint.pt" for run in compress_distill_runs()],
        metrics=[f"{run}/metrics.json" for run in compress_distill_runs()],
    output:
        csv="results/compress/distill.csv",
    params:
        distill=config["compress"]["distill"],
        latency=config["compress"]["latency"],
        width=config["optimus"]["imagenet_width"],
        modes=list(COMPRESS_MODES),
    log:
        "logs/compress/distillation.log",
    benchmark:
        "benchmarks/compress/distillation.tsv"
    threads: config["threads"]
    conda:
        CONDA_ENV
    script:
        "../scripts/compress_distillation.py"


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
    params:
        arch=config["compress"]["arch"],
        distill=config["compress"]["distill"],
    log:
        "logs/compress/summary.log",
    benchmark:
        "benchmarks/compress/summary.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/compress_summary.py"
