# SSD (pytorch-ssd's MobileNetV1-SSD): VOC2007 evaluation of the VOC detector, then fine-tuning on two Open Images
# classes, AP before and after. Data flows: datasets -> VOC detector -> VOC AP; VOC detector -> fine-tune -> AP.
from dlperf.detection import plan as ssd_plan

SSD = config["ssd"]
SSD_DEVICE = SSD["device"]
SSD_DOWNLOADS, SSD_WEIGHTS = ssd_plan.DOWNLOADS, ssd_plan.WEIGHTS
SSD_VOC_CHECKPOINT = ssd_plan.voc_checkpoint(SSD)


rule ssd_download:
    output:
        f"{SSD_DOWNLOADS}/{{file}}",
    log:
        "logs/ssd/download_{file}.log",
    benchmark:
        "benchmarks/ssd/download_{file}.tsv"
    conda:
        CONDA_ENV
    threads: 1
    resources:
        downloads=1,
    params:
        entry=lambda wc: ssd_plan.downloads_by_file(SSD)[wc.file],
    script:
        "../scripts/ssd_download.py"


rule ssd_download_weights:
    output:
        f"{SSD_WEIGHTS}/{{file}}",
    log:
        "logs/ssd/download_weights_{file}.log",
    benchmark:
        "benchmarks/ssd/download_weights_{file}.tsv"
    wildcard_constraints:
        file=ssd_plan.weights_pattern(SSD),
    conda:
        CONDA_ENV
    threads: 1
    resources:
        downloads=1,
    params:
        entry=lambda wc: ssd_plan.weights_by_file(SSD)[wc.file],
        model=SSD["model"],
    script:
        "../scripts/ssd_download_weights.py"


rule ssd_voc_data:
    input:
        unpack(lambda wildcards: ssd_plan.voc_inputs(SSD)),
    output:
        data=directory("resources/data/voc2007"),
    log:
        "logs/ssd/voc_data.log",
    benchmark:
        "benchmarks/ssd/voc_data.tsv"
    priority: LONGEST_FIRST["ssd"]  # the pre-training's data: a priority does not pass to a job's inputs
    conda:
        CONDA_ENV
    threads: 1
    params:
        cfg=ssd_plan.voc_params(SSD),
    script:
        "../scripts/ssd_voc_data.py"


rule ssd_openimages_data:
    input:
        unpack(lambda wildcards: ssd_plan.openimages_inputs(SSD)),
    output:
        data=directory("resources/data/openimages"),
    log:
        "logs/ssd/openimages_data.log",
    benchmark:
        "benchmarks/ssd/openimages_data.tsv"
    conda:
        CONDA_ENV
    threads: 1
    resources:
        downloads=1,
    params:
        cfg=ssd_plan.openimages_params(SSD),
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
    log:
        "logs/ssd/pretrain_voc.log",
    benchmark:
        "benchmarks/ssd/pretrain_voc.tsv"
    priority: LONGEST_FIRST["ssd"]
    conda:
        CONDA_ENV
    threads: config["threads"]
    resources:
        gpu=gpu_count(SSD_DEVICE),
        slurm_partition=slurm_partition(SSD_DEVICE),
        gpu_model=gpu_model(SSD_DEVICE),
    params:
        model=SSD["model"],
        pretrain=lambda wildcards: SSD["pretrain"],  # present when the detector is trained here
        seed=SSD["seed"],
        accelerator=device_accelerator(SSD_DEVICE),
        gpu_pack=gpu_pack(SSD_DEVICE),
        state_dir="results/ssd/pretrain/resume",
    script:
        "../scripts/ssd_pretrain_voc.py"


rule ssd_eval_voc:
    input:
        checkpoint=SSD_VOC_CHECKPOINT,
        data="resources/data/voc2007",
    output:
        ap="results/ssd/voc/ap.csv",
        provenance="results/ssd/voc/provenance.json",
    log:
        "logs/ssd/eval_voc.log",
    benchmark:
        "benchmarks/ssd/eval_voc.tsv"
    conda:
        CONDA_ENV
    threads: config["threads"]
    resources:
        gpu=gpu_count(SSD_DEVICE),
        slurm_partition=slurm_partition(SSD_DEVICE),
        gpu_model=gpu_model(SSD_DEVICE),
    params:
        model=SSD["model"],
        eval=SSD["eval"],
        accelerator=device_accelerator(SSD_DEVICE),
    script:
        "../scripts/ssd_eval_voc.py"


# A render rule (dlperf.bundle): the VOC evaluation's table and figure, from its CSV.
rule ssd_voc_ap_figure:
    input:
        ap=rules.ssd_eval_voc.output.ap,
        provenance=rules.ssd_eval_voc.output.provenance,
        code=render_code("ssd_voc_ap_figure"),
    output:
        table=report("results/ssd/tables/voc_ap.tex", caption="../report/captions/ssd_voc_ap.rst", category="SSD"),
        markdown="results/ssd/tables/voc_ap.md",
        figure=report("results/ssd/figures/voc_ap.pdf", caption="../report/captions/ssd_voc_ap.rst", category="SSD"),
        png="results/ssd/figures/voc_ap.png",
    log:
        "logs/ssd/voc_ap_figure.log",
    benchmark:
        "benchmarks/ssd/voc_ap_figure.tsv"
    conda:
        CONDA_ENV
    params:
        scale=config["scale"],  # the figures' fidelity
    script:
        "../scripts/ssd_voc_ap_figure.py"


rule ssd_finetune:
    input:
        checkpoint=SSD_VOC_CHECKPOINT,
        data="resources/data/openimages",
    output:
        initial="results/ssd/finetune/initial.pt",
        checkpoint="results/ssd/finetune/checkpoint.pt",
        labels="results/ssd/finetune/labels.txt",
        steps="results/ssd/finetune/steps.csv",
        epochs="results/ssd/finetune/epochs.csv",
        metrics="results/ssd/finetune/metrics.json",
        provenance="results/ssd/finetune/provenance.json",
    log:
        "logs/ssd/finetune.log",
    benchmark:
        "benchmarks/ssd/finetune.tsv"
    conda:
        CONDA_ENV
    threads: config["threads"]
    resources:
        gpu=gpu_count(SSD_DEVICE),
        slurm_partition=slurm_partition(SSD_DEVICE),
        gpu_model=gpu_model(SSD_DEVICE),
    params:
        model=SSD["model"],
        finetune=SSD["finetune"],
        seed=SSD["seed"],
        classes=SSD["data"]["openimages"]["classes"],
        accelerator=device_accelerator(SSD_DEVICE),
        gpu_pack=gpu_pack(SSD_DEVICE),
        state_dir="results/ssd/finetune/resume",
    script:
        "../scripts/ssd_finetune.py"


rule ssd_eval_openimages:
    input:
        initial=rules.ssd_finetune.output.initial,
        checkpoint=rules.ssd_finetune.output.checkpoint,
        labels=rules.ssd_finetune.output.labels,
        data="resources/data/openimages",
    output:
        before="results/ssd/openimages/ap_before.csv",
        after="results/ssd/openimages/ap_after.csv",
        provenance="results/ssd/openimages/provenance.json",
    log:
        "logs/ssd/eval_openimages.log",
    benchmark:
        "benchmarks/ssd/eval_openimages.tsv"
    conda:
        CONDA_ENV
    threads: config["threads"]
    resources:
        gpu=gpu_count(SSD_DEVICE),
        slurm_partition=slurm_partition(SSD_DEVICE),
        gpu_model=gpu_model(SSD_DEVICE),
    params:
        model=SSD["model"],
        eval=SSD["eval"],
        accelerator=device_accelerator(SSD_DEVICE),
    script:
        "../scripts/ssd_eval_openimages.py"


# A render rule (dlperf.bundle): the Open Images evaluation's table and figure, from its CSVs.
rule ssd_openimages_ap_figure:
    input:
        before=rules.ssd_eval_openimages.output.before,
        after=rules.ssd_eval_openimages.output.after,
        provenance=rules.ssd_eval_openimages.output.provenance,
        code=render_code("ssd_openimages_ap_figure"),
    output:
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
    log:
        "logs/ssd/openimages_ap_figure.log",
    benchmark:
        "benchmarks/ssd/openimages_ap_figure.tsv"
    conda:
        CONDA_ENV
    params:
        scale=config["scale"],  # the figures' fidelity
    script:
        "../scripts/ssd_openimages_ap_figure.py"


rule ssd_values:
    input:
        voc_ap=rules.ssd_eval_voc.output.ap,
        before=rules.ssd_eval_openimages.output.before,
        after=rules.ssd_eval_openimages.output.after,
        voc=rules.ssd_eval_voc.output.provenance,
        finetune=rules.ssd_finetune.output.provenance,
        openimages=rules.ssd_eval_openimages.output.provenance,
        provenance=[
            rules.ssd_eval_voc.output.provenance,
            rules.ssd_finetune.output.provenance,
            rules.ssd_eval_openimages.output.provenance,
        ],
        includes=[
            rules.ssd_voc_ap_figure.output.table,
            rules.ssd_voc_ap_figure.output.figure,
            rules.ssd_openimages_ap_figure.output.table,
            rules.ssd_openimages_ap_figure.output.figure,
        ],
        code=render_code("ssd_values"),
    output:
        values="results/ssd/values.json",
    log:
        "logs/ssd/values.log",
    benchmark:
        "benchmarks/ssd/values.tsv"
    conda:
        CONDA_ENV
    params:
        width_mult=SSD["model"]["width_mult"],
        image_size=SSD["model"]["image_size"],
        pretrained_source=SSD["pretrained"]["source"],
    script:
        "../scripts/ssd_values.py"
