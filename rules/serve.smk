# Serving: the SSD study's fine-tuned MobileNetV1-SSD exported to ONNX (parity-checked against PyTorch), drawn as
# onnx's net_drawer draws it, put in a Triton-layout model repository and served by `python -m dlperf.serve`
# (ONNX Runtime Server HTTP API + KServe V2): a client demo that draws the served detections, and a benchmark.
# Inputs: results/ssd/finetune/{checkpoint.pt,labels.txt} and the Open Images test split (rules of the SSD study).


rule serve_export:
    input:
        checkpoint=f"{SERVE_FINETUNE}/checkpoint.pt",
        labels=f"{SERVE_FINETUNE}/labels.txt",
        data=SERVE_OPENIMAGES,
    output:
        onnx="results/ssd/onnx/ssd.onnx",
        parity="results/ssd/onnx/parity.json",
        provenance="results/ssd/onnx/provenance.json",
    params:
        model=ssd_model_of,
        opset=config["serve"]["opset"],
        parity=config["serve"]["parity"],
    log:
        "logs/serve/export.log",
    benchmark:
        "benchmarks/serve/export.tsv"
    threads: config["threads"]
    resources:
        gpu=0,
    conda:
        CONDA_ENV
    script:
        "../scripts/serve_export.py"


rule serve_graph:
    input:
        onnx="results/ssd/onnx/ssd.onnx",
    output:
        dot="results/ssd/onnx/graph.dot",
        svg=report("results/ssd/onnx/graph.svg", caption="../report/captions/serve_graph.rst", category="Serving"),
        docstrings="results/ssd/onnx/docstrings.md",
        provenance="results/ssd/onnx/graph.provenance.json",
    params:
        rankdir="LR",
    log:
        "logs/serve/graph.log",
    benchmark:
        "benchmarks/serve/graph.tsv"
    threads: 1
    resources:
        gpu=0,
    conda:
        CONDA_ENV
    script:
        "../scripts/serve_graph.py"


rule serve_model_repository:
    input:
        onnx="results/ssd/onnx/ssd.onnx",
        parity="results/ssd/onnx/parity.json",
    output:
        model=SERVE_MODEL_FILES[0],
        config=SERVE_MODEL_FILES[1],
        provenance="results/ssd/model_repository.provenance.json",
    params:
        name=SERVE_MODEL,
        batching=config["serve"]["batching"],
    log:
        "logs/serve/model_repository.log",
    benchmark:
        "benchmarks/serve/model_repository.tsv"
    threads: 1
    resources:
        gpu=0,
    conda:
        CONDA_ENV
    script:
        "../scripts/serve_model_repository.py"


rule serve_demo:
    input:
        model_files=SERVE_MODEL_FILES,
        labels=f"{SERVE_FINETUNE}/labels.txt",
        data=SERVE_OPENIMAGES,
    output:
        images=[report(path, caption="../report/captions/serve_demo.rst", category="Serving")
                for path in serve_demo_images()],
        responses=directory("results/ssd/serving/responses"),
        detections="results/ssd/serving/detections.json",
        provenance="results/ssd/serving/provenance.json",
    params:
        name=SERVE_MODEL,
        model=ssd_model_of,
        demo=config["serve"]["demo"],
        batching=config["serve"]["batching"],
    log:
        "logs/serve/demo.log",
    benchmark:
        "benchmarks/serve/demo.tsv"
    threads: config["threads"]
    resources:
        gpu=0,
    conda:
        CONDA_ENV
    script:
        "../scripts/serve_demo.py"


rule serve_bench:
    input:
        model_files=SERVE_MODEL_FILES,
        checkpoint=f"{SERVE_FINETUNE}/checkpoint.pt",
        labels=f"{SERVE_FINETUNE}/labels.txt",
    output:
        csv="results/ssd/serving/bench.csv",
        table=report(
            "results/ssd/serving/tables/bench.tex", caption="../report/captions/serve_bench.rst", category="Serving"
        ),
        markdown="results/ssd/serving/tables/bench.md",
        provenance="results/ssd/serving/bench.provenance.json",
    params:
        name=SERVE_MODEL,
        model=ssd_model_of,
        bench=config["serve"]["bench"],
        batching=config["serve"]["batching"],
    log:
        "logs/serve/bench.log",
    benchmark:
        "benchmarks/serve/bench.tsv"
    threads: config["threads"]
    resources:
        gpu=0,
    conda:
        CONDA_ENV
    script:
        "../scripts/serve_bench.py"
