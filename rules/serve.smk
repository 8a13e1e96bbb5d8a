# Serving: the SSD study's fine-tuned MobileNetV1-SSD exported to ONNX (parity-checked against PyTorch), drawn as
# onnx's net_drawer draws it, put in a Triton-layout model repository and served by `python -m dlperf.serve`
# (ONNX Runtime Server HTTP API + KServe V2): a client demo that draws the served detections, and a benchmark.
# Inputs: the SSD study's fine-tuned detector (rules.ssd_finetune) and its Open Images test split.
SERVE = config["serve"]
SERVE_MODEL = "ssd"  # the model's name in the repository and in request URLs
SERVE_REPOSITORY = "results/serve/model_repository"
SERVE_OPENIMAGES = rules.ssd_openimages_data.output.data
# The fine-tuned SSD's architecture, from the SSD study's config.
SERVE_SSD_MODEL = {k: config["ssd"]["model"][k] for k in ("width_mult", "image_size")}
# The published MobileNetV1-SSD's architecture (pytorch-ssd's mb1-ssd, 3000 priors): the benchmark times it too, with
# random weights, unless the served SSD already is full size (config/full.yaml).
SERVE_FULL_SIZE = {"name": "ssd_full", "model": {"width_mult": 1.0, "image_size": 300}}
SERVE_FULL_SIZE_REPOSITORY = "results/serve/full_size/model_repository"
SERVE_BENCH_FULL_SIZE = SERVE_SSD_MODEL != SERVE_FULL_SIZE["model"]


SERVE_DEMO_IMAGES = [f"results/serve/annotated_{name}.png" for name in SERVE["demo"]["classes"]]


rule serve_export:
    input:
        checkpoint=rules.ssd_finetune.output.checkpoint,
        labels=rules.ssd_finetune.output.labels,
        data=SERVE_OPENIMAGES,
    output:
        onnx="results/serve/onnx/ssd.onnx",
        parity="results/serve/onnx/parity.json",
        provenance="results/serve/onnx/provenance.json",
    log:
        "logs/serve/export.log",
    benchmark:
        "benchmarks/serve/export.tsv"
    conda:
        CONDA_ENV
    threads: config["threads"]
    resources:
        gpu=0,
    params:
        model=SERVE_SSD_MODEL,
        opset=SERVE["opset"],
        parity=SERVE["parity"],
    script:
        "../scripts/serve_export.py"


rule serve_graph:
    input:
        onnx=rules.serve_export.output.onnx,
    output:
        dot="results/serve/onnx/graph.dot",
        svg=report("results/serve/onnx/graph.svg", caption="../report/captions/serve_graph.rst", category="Serving"),
        docstrings="results/serve/onnx/docstrings.md",
        provenance="results/serve/onnx/graph.provenance.json",
    log:
        "logs/serve/graph.log",
    benchmark:
        "benchmarks/serve/graph.tsv"
    conda:
        CONDA_ENV
    threads: 1
    resources:
        gpu=0,
    params:
        rankdir="LR",
    script:
        "../scripts/serve_graph.py"


rule serve_model_repository:
    input:
        onnx=rules.serve_export.output.onnx,
        parity=rules.serve_export.output.parity,
    output:
        model=f"{SERVE_REPOSITORY}/{SERVE_MODEL}/1/model.onnx",
        config=f"{SERVE_REPOSITORY}/{SERVE_MODEL}/config.pbtxt",
        provenance="results/serve/model_repository.provenance.json",
    log:
        "logs/serve/model_repository.log",
    benchmark:
        "benchmarks/serve/model_repository.tsv"
    conda:
        CONDA_ENV
    threads: 1
    resources:
        gpu=0,
    params:
        name=SERVE_MODEL,
        batching=SERVE["batching"],
    script:
        "../scripts/serve_model_repository.py"


rule serve_demo:
    input:
        model_files=[rules.serve_model_repository.output.model, rules.serve_model_repository.output.config],
        labels=rules.ssd_finetune.output.labels,
        data=SERVE_OPENIMAGES,
    output:
        images=[
            report(path, caption="../report/captions/serve_demo.rst", category="Serving") for path in SERVE_DEMO_IMAGES
        ],
        responses=directory("results/serve/responses"),
        detections="results/serve/detections.json",
        provenance="results/serve/provenance.json",
    log:
        "logs/serve/demo.log",
    benchmark:
        "benchmarks/serve/demo.tsv"
    conda:
        CONDA_ENV
    threads: config["threads"]
    resources:
        gpu=0,
    params:
        scale=config["scale"],  # the figures' fidelity
        name=SERVE_MODEL,
        image_size=SERVE_SSD_MODEL["image_size"],
        demo=SERVE["demo"],
    script:
        "../scripts/serve_demo.py"


rule serve_full_size_model:
    input:
        labels=rules.ssd_finetune.output.labels,
    output:
        model=f"{SERVE_FULL_SIZE_REPOSITORY}/{SERVE_FULL_SIZE['name']}/1/model.onnx",
        config=f"{SERVE_FULL_SIZE_REPOSITORY}/{SERVE_FULL_SIZE['name']}/config.pbtxt",
        provenance="results/serve/full_size/provenance.json",
    log:
        "logs/serve/full_size_model.log",
    benchmark:
        "benchmarks/serve/full_size_model.tsv"
    conda:
        CONDA_ENV
    threads: config["threads"]
    resources:
        gpu=0,
    params:
        name=SERVE_FULL_SIZE["name"],
        model=SERVE_FULL_SIZE["model"],
        seed=config["ssd"]["seed"],
        opset=SERVE["opset"],
        batching=SERVE["batching"],
    script:
        "../scripts/serve_full_size_model.py"


rule serve_bench:
    input:
        model_files=[rules.serve_model_repository.output.model, rules.serve_model_repository.output.config],
        full_size=(
            [rules.serve_full_size_model.output.model, rules.serve_full_size_model.output.config]
            if SERVE_BENCH_FULL_SIZE
            else []
        ),
        checkpoint=rules.ssd_finetune.output.checkpoint,
        labels=rules.ssd_finetune.output.labels,
    output:
        csv="results/serve/bench.csv",
        provenance="results/serve/bench.provenance.json",
    log:
        "logs/serve/bench.log",
    benchmark:
        "benchmarks/serve/bench.tsv"
    conda:
        CONDA_ENV
    # every core (Snakemake caps it at --cores): the load test runs alone, so no other job takes cores from one server
    # and not the other
    threads: MACHINE_CORES
    resources:
        gpu=0,
    params:
        name=SERVE_MODEL,
        model=SERVE_SSD_MODEL,
        full_size=SERVE_FULL_SIZE,
        direct_threads=config["threads"],  # ORT against eager in process, at a training job's threads
        bench=SERVE["bench"],
    script:
        "../scripts/serve_bench.py"


# A render rule (dlperf.bundle): the load tests' table, from their CSV.
rule serve_bench_table:
    input:
        csv=rules.serve_bench.output.csv,
        code=render_code("serve_bench_table"),
    output:
        table=report("results/serve/tables/bench.tex", caption="../report/captions/serve_bench.rst", category="Serving"),
        markdown="results/serve/tables/bench.md",
    log:
        "logs/serve/bench_table.log",
    benchmark:
        "benchmarks/serve/bench_table.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/serve_bench_table.py"


UNREPORTED += [
    rules.serve_graph.output.svg,
    rules.serve_graph.output.docstrings,
    rules.serve_model_repository.output.model,
    rules.serve_model_repository.output.config,
]


rule serve_values:
    input:
        bench=rules.serve_bench.output.csv,
        parity=rules.serve_export.output.parity,
        export=rules.serve_export.output.provenance,
        detections=rules.serve_demo.output.detections,
        provenance=[
            rules.serve_export.output.provenance,
            rules.serve_demo.output.provenance,
            rules.serve_bench.output.provenance,
        ],
        # the demo figure's panels are named by macros (the graph and the repository, which the report omits, are
        # rule all's)
        includes=[*rules.serve_demo.output.images, rules.serve_bench_table.output.table],
        code=render_code("serve_values"),
    output:
        values="results/serve/values.json",
    log:
        "logs/serve/values.log",
    benchmark:
        "benchmarks/serve/values.tsv"
    conda:
        CONDA_ENV
    params:
        classes=SERVE["demo"]["classes"],
        batching=SERVE["batching"],
    script:
        "../scripts/serve_values.py"
