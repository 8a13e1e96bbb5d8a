# SSD (pytorch-ssd's MobileNetV1-SSD): VOC2007 evaluation of the VOC detector, then fine-tuning on two Open Images
# classes, AP before and after. Data flows: datasets -> VOC detector -> VOC AP; VOC detector -> fine-tune -> AP.
SSD = config.get("ssd", {})
SSD_DEVICE = SSD.get("device", next(iter(config["devices"])))  # any declared label when the study is off


rule ssd_download:
    output:
        f"{SSD_DOWNLOADS}/{{file}}",
    params:
        entry=lambda wc: ssd_downloads_by_file()[wc.file],
    log:
        "logs/ssd/download_{file}.log",
    benchmark:
        "benchmarks/ssd/download_{file}.tsv"
    threads: 1
    conda:
        CONDA_ENV
    resources:
        downloads=1,
    script:
        "../scripts/ssd_download.py"


rule ssd_download_weights:
    output:
        f"{SSD_WEIGHTS}/{{file}}",
    params:
        entry=lambda wc: ssd_weights_by_file()[wc.file],
        model=SSD.get("model"),
    log:
        "logs/ssd/download_weights_{file}.log",
    benchmark:
        "benchmarks/ssd/download_weights_{file}.tsv"
    wildcard_constraints:
        file=ssd_weights_pattern() if SSD else "(?!)",
    threads: 1
    conda:
        CONDA_ENV
    resources:
        downloads=1,
    script:
        "../scripts/ssd_download_weights.py"


rule ssd_voc_data:
    input:
        unpack(ssd_voc_inputs),
    output:
        directory("resources/data/voc2007"),
    params:
        cfg=SSD.get("data", {}).get("voc"),
    log:
        "logs/ssd/voc_data.log",
    benchmark:
        "benchmarks/ssd/voc_data.tsv"
    threads: 1
    conda:
        CONDA_ENV
    script:
        "../scripts/ssd_voc_data.py"


rule ssd_openimages_data:
    input:
        unpack(ssd_openimages_inputs),
    output:
        directory("resources/data/openimages"),
    params:
        cfg=SSD.get("data", {}).get("openimages"),
    log:
        "logs/ssd/openimages_data.log",
    benchmark:
        "benchmarks/ssd/openimages_data.tsv"
    threads: 1
    resources:
        downloads=1,
    conda:
        CONDA_ENV
    script:
        "../scripts/ssd_openimages_data.py"


rule ssd_pretrain_voc:
    input:
        data="resources/data/voc2007",
    output:
        checkpoint="results/ssd/pretrain/checkpoint.pt",
        labels="results/ssd/pretrain/labels.txt",
        steps="results/ssd/pretrain/steps.csv",
        epochs="results/ssd/pretrain/epochs.csv",
        metrics="results/ssd/pretrain/metrics.json",
        provenance="results/ssd/pretrain/provenance.json",
    params:
        cfg=SSD,
        accelerator=device_accelerator(SSD_DEVICE),
        state_dir="results/ssd/pretrain/resume",
    log:
        "logs/ssd/pretrain_voc.log",
    benchmark:
        "benchmarks/ssd/pretrain_voc.tsv"
    threads: config["threads"]
    resources:
        gpu=gpu_count(SSD_DEVICE),
        slurm_partition=slurm_partition(SSD_DEVICE),
        gpu_model=gpu_model(SSD_DEVICE),
    conda:
        CONDA_ENV
    script:
        "../scripts/ssd_pretrain_voc.py"


rule ssd_eval_voc:
    input:
        checkpoint=ssd_voc_checkpoint(),
        data="resources/data/voc2007",
    output:
        ap="results/ssd/voc/ap.csv",
        provenance="results/ssd/voc/provenance.json",
        table=report("results/ssd/tables/voc_ap.tex", caption="../report/captions/ssd_voc_ap.rst", category="SSD"),
        markdown="results/ssd/tables/voc_ap.md",
        figure=report("results/ssd/figures/voc_ap.pdf", caption="../report/captions/ssd_voc_ap.rst", category="SSD"),
        png="results/ssd/figures/voc_ap.png",
    params:
        cfg=SSD,
        accelerator=device_accelerator(SSD_DEVICE),
    log:
        "logs/ssd/eval_voc.log",
    benchmark:
        "benchmarks/ssd/eval_voc.tsv"
    threads: config["threads"]
    resources:
        gpu=gpu_count(SSD_DEVICE),
        slurm_partition=slurm_partition(SSD_DEVICE),
        gpu_model=gpu_model(SSD_DEVICE),
    conda:
        CONDA_ENV
    script:
        "../scripts/ssd_eval_voc.py"


rule ssd_finetune:
    input:
        checkpoint=ssd_voc_checkpoint(),
        data="resources/data/openimages",
    output:
        initial="results/ssd/finetune/initial.pt",
        checkpoint="results/ssd/finetune/checkpoint.pt",
        labels="results/ssd/finetune/labels.txt",
        steps="results/ssd/finetune/steps.csv",
        epochs="results/ssd/finetune/epochs.csv",
        metrics="results/ssd/finetune/metrics.json",
        provenance="results/ssd/finetune/provenance.json",
    params:
        cfg=SSD,
        accelerator=device_accelerator(SSD_DEVICE),
        state_dir="results/ssd/finetune/resume",
    log:
        "logs/ssd/finetune.log",
    benchmark:
        "benchmarks/ssd/finetune.tsv"
    threads: config["threads"]
    resources:
        gpu=gpu_count(SSD_DEVICE),
        slurm_partition=slurm_partition(SSD_DEVICE),
        gpu_model=gpu_model(SSD_DEVICE),
    conda:
        CONDA_ENV
    script:
        "../scripts/ssd_finetune.py"


rule ssd_eval_openimages:
    input:
        initial="results/ssd/finetune/initial.pt",
        checkpoint="results/ssd/finetune/checkpoint.pt",
        labels="results/ssd/finetune/labels.txt",
        data="resources/data/openimages",
    output:
        before="results/ssd/openimages/ap_before.csv",
        after="results/ssd/openimages/ap_after.csv",
        provenance="results/ssd/openimages/provenance.json",
        table=report(
            "results/ssd/tables/openimages_ap.tex",
            caption="../report/captions/ssd_openimages_ap.rst",
            category="SSD",
        ),
        markdown="results/ssd/tables/openimages_ap.md",
        figure=report(
            "results/ssd/figures/openimages_ap.pdf",
            caption="../report/captions/ssd_openimages_ap.rst",
            category="SSD",
        ),
        png="results/ssd/figures/openimages_ap.png",
    params:
        cfg=SSD,
        accelerator=device_accelerator(SSD_DEVICE),
    log:
        "logs/ssd/eval_openimages.log",
    benchmark:
        "benchmarks/ssd/eval_openimages.tsv"
    threads: config["threads"]
    resources:
        gpu=gpu_count(SSD_DEVICE),
        slurm_partition=slurm_partition(SSD_DEVICE),
        gpu_model=gpu_model(SSD_DEVICE),
    conda:
        CONDA_ENV
    script:
        "../scripts/ssd_eval_openimages.py"
