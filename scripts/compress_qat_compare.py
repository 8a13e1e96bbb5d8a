"""Quantization-aware training beside post-training quantization at the same bit widths: the 8-bit QAT model beside
static INT8 PTQ, 4-bit weight-only QAT beside 4-bit weight-only PTQ (made here), each run by onnxruntime on the CPU
for top-1 on the test set, size on disk and latency (rule: compress_qat_compare)."""
from functools import partial

import torch

from dlperf.compress.evaluation import latency_images, load_classifier
from dlperf.compress.qat import export_qdq, weight_only_ptq
from dlperf.compress.quantize import (
    agreement,
    file_columns,
    initializer_bytes,
    latency_rows,
    onnx_nonzero_params,
    session,
    session_outputs,
    time_session,
    write_results,
)
from dlperf.data.cifar import read_cifar10
from dlperf.provenance import Provenance
from dlperf.timing import TimedAlone
from dlperf.train.data import DeviceImages
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    p, inp, out = snakemake.params, snakemake.input, snakemake.output
    lat = p.latency
    timed = TimedAlone(snakemake)
    prov = Provenance({"compress": {"arch": p.arch, "qat": {"weight_only_bits": p.weight_only_bits}, "latency": lat},
                       "threads": timed.threads, "source": inp.checkpoint}, device="cpu", study="compress")
    data = read_cifar10(inp.data)
    model = load_classifier(p.arch, inp.checkpoint, width=p.width)
    test = DeviceImages(data.test_x, data.test_y, "cpu")
    images = torch.cat([x for x, _ in test.batches(p.eval_batch_size, shuffle=False)])
    labels = test.labels.numpy()
    export_qdq(weight_only_ptq(model, p.weight_only_bits), images[:2], out.weight_only_ptq, tolerance=1e-3)
    with torch.inference_mode():
        reference = model(images).numpy()

    # (variant, method, file, weight bits, activation bits); weight-only files are dequantized at load
    w = p.weight_only_bits
    variants = [("ort_fp32", "baseline", inp.fp32, 32, 32), ("ort_int8_static", "quantize_static", inp.static, 8, 8),
                ("ort_int8_qat", "qat", inp.int8_qat, 8, 8),
                (f"ort_int{w}w_ptq", "ptq_weight_only", out.weight_only_ptq, w, 32),
                (f"ort_int{w}w_qat", "qat_weight_only", inp.weight_only_qat, w, 32)]
    rows, timings, nonzero = [], [], onnx_nonzero_params(inp.fp32)   # quantized rows: those of the FP32 model
    for variant, method, path, weight_bits, activation_bits in variants:
        sess = session(path, timed.threads, dequantize_at_load=activation_bits == 32 and weight_bits < 32)
        logits = session_outputs(sess, images.numpy(), p.eval_batch_size)
        rows.append({"variant": variant, "method": method, "runtime": "onnxruntime", **file_columns(path),
                     "nonzero_params": nonzero,
                     "tensor_bytes": initializer_bytes(path), "weight_bits": weight_bits,
                     "activation_bits": activation_bits, "top1": float((logits.argmax(1) == labels).mean()),
                     **agreement(logits, reference)})
        timings += latency_rows("classifier", variant, partial(time_session, sess),
                                lambda batch: latency_images(batch).numpy(), lat)
    table, latency = write_results(rows, timings, out.csv, out.latency)
    prov.write(out.provenance, timing=timed.record(), test_images=len(labels),
               onnxruntime_providers=["CPUExecutionProvider"])
    print(table.to_string(index=False))
    print(latency.to_string(index=False))
