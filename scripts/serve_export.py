"""The fine-tuned SSD to one ONNX file, with each node's stack trace as its doc string; parity with PyTorch on real
test images at batch 1 and at batch N, or the job fails (rule: serve_export)."""
import json

import onnx
import torch

from dlperf.atomic import write_json
from dlperf.export.detector import load_detector, preprocessed_images
from dlperf.export.onnx_export import SSD_OUTPUT_NAMES, export_onnx, external_data_files, onnx_op_types, parity_check
from dlperf.provenance import Provenance
from dlperf.workflow import limit_threads, script_logging

with script_logging(snakemake.log[0]):
    p, out = snakemake.params, snakemake.output
    limit_threads(snakemake.threads)
    provenance = Provenance({"ssd": {"model": p.model}, "serve": {"opset": p.opset, "parity": p.parity}},
                            device="cpu")
    size = p.model["image_size"]
    model, class_names = load_detector(snakemake.input.checkpoint, snakemake.input.labels, p.model["width_mult"],
                                       size)
    exported = export_onnx(model, torch.zeros(2, 3, size, size), out.onnx, output_names=SSD_OUTPUT_NAMES,
                           opset=p.opset, doc_strings=True)
    proto, doc_strings = exported.proto, exported.doc_strings
    print(f"exported {len(proto.graph.node)} nodes; doc strings from {doc_strings}")
    if external_data_files(out.onnx):
        raise RuntimeError(f"{out.onnx} refers to external data {external_data_files(out.onnx)}: it must be one file")
    ids, batch = preprocessed_images(snakemake.input.data, class_names, p.parity["images"], size)
    result = parity_check(model, out.onnx, [batch[:1], batch], p.parity["tolerance"], snakemake.threads)
    record = {
        **result,
        "images": ids,
        "input": {"name": proto.graph.input[0].name,
                  "shape": [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]},
        "outputs": [o.name for o in proto.graph.output],
        "opset": next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")),
        "nodes": len(proto.graph.node),
        "op_types": onnx_op_types(proto),
        "doc_strings": doc_strings,
        "bytes": len(proto.SerializeToString()),
        "onnx_version": onnx.__version__,
    }
    write_json(out.parity, record)
    print(json.dumps(result))
    provenance.write(out.provenance, classes=class_names, parity=result, nodes=record["nodes"])
