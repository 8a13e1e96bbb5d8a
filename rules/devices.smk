# Device labels: each label's peak FP32 FLOP/s, measured once on the device it names (or taken from
# peak.override_tflops). Every training run's percent of peak divides by it, whichever studies are on.


rule devices_peak:
    output:
        peak=PEAK,
    log:
        "logs/devices/peak_{device}.log",
    benchmark:
        "benchmarks/devices/peak_{device}.tsv"
    priority: LONGEST_FIRST["peak"]
    conda:
        CONDA_ENV
    threads: MACHINE_CORES  # a timing job (TIMING_RULES): nothing runs beside it
    resources:
        gpu=gpu_slots,
        slurm_partition=slurm_partition_of,
        gpu_model=gpu_model_of,
    params:
        measure_threads=config["threads"],
        accelerator=accelerator_of,
        matmul_size=config["peak"]["matmul_size"],
        repeats=config["peak"]["repeats"],
        # this label's override only: another label's must not re-measure this one
        override_tflops=lambda wildcards: config["peak"]["override_tflops"].get(wildcards.device),
    script:
        "../scripts/devices_peak.py"
