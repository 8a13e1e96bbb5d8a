"""The published MobileNetV1-SSD architecture (width 1.0, 300 px, 3000 priors) with random weights, exported to ONNX in
a Triton-layout model repository of its own, so that the serving benchmark times a full-size detector too (rule:
serve_full_size_model). Random weights cost what trained ones cost: the file is for timing, its detections are
meaningless."""
import tempfile
from pathlib import Path

import torch

from dlperf.data.voc import read_label_file
from dlperf.export.onnx_export import SSD_OUTPUT_NAMES, export_onnx
from dlperf.export.triton import write_model_repository
from dlperf.models.mobilenet_ssd import mobilenet_v1_ssd
from dlperf.provenance import Provenance
from dlperf.workflow import limit_threads, script_logging

with script_logging(snakemake.log[0]):
    p, out = snakemake.params, snakemake.output
    limit_threads(snakemake.threads)
    provenance = Provenance({"ssd": {"seed": p.seed}, "serve": {"opset": p.opset, "batching": p.batching}},
                            device="cpu")
    classes = read_label_file(snakemake.input.labels)
    torch.manual_seed(p.seed)
    model = mobilenet_v1_ssd(len(classes), width_mult=p.model["width_mult"], image_size=p.model["image_size"],
                             is_test=True)
    root = Path(out.config).parents[1]  # <root>/<name>/config.pbtxt
    with tempfile.TemporaryDirectory(dir=root.parent) as scratch:
        onnx_path = Path(scratch) / "model.onnx"
        size = p.model["image_size"]
        proto = export_onnx(model, torch.zeros(2, 3, size, size), onnx_path, output_names=SSD_OUTPUT_NAMES,
                            opset=p.opset, doc_strings=True).proto
        write_model_repository(root, p.name, 1, onnx_path, p.batching["max_batch_size"],
                               round(1000 * p.batching["max_delay_ms"]))
    print(f"{p.name}: {len(proto.graph.node)} nodes, {model.priors.shape[0]} priors, {len(classes)} classes")
    provenance.write(out.provenance, model={"name": p.name, **p.model, "classes": classes, "priors": len(model.priors),
                                            "weights": f"random (torch.manual_seed({p.seed})): for timing only"},
                     repository=str(root), nodes=len(proto.graph.node))
