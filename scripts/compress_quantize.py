"""Export the trained classifier to ONNX, quantize it to INT8 (dynamic and static), and measure accuracy, size and
CPU latency of every variant against FP32 onnxruntime and PyTorch eager (rule: compress_quantize)."""
import tempfile
from functools import partial
from pathlib import Path

import torch

from dlperf.compress.evaluation import accuracy, latency_images, load_classifier, time_eager
from dlperf.compress.pruning import dense_size_bytes, nonzero_params
from dlperf.compress.quantize import (
    ArrayCalibrationReader,
    agreement,
    file_columns,
    latency_rows,
    ort_variants,
    preprocess,
    quantize_both,
    session,
    session_outputs,
    time_session,
    write_results,
)
from dlperf.data.cifar import read_cifar10
from dlperf.export.onnx_export import export_onnx
from dlperf.provenance import Provenance
from dlperf.train.data import DeviceImages
from dlperf.timing import TimedAlone
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    p, out = snakemake.params, snakemake.output
    q, lat = p.quantize, p.latency
    timed = TimedAlone(snakemake)
    threads = timed.threads
    prov = Provenance({"compress": {"arch": p.arch, "quantize": q, "latency": lat}, "threads": threads,
                       "source": snakemake.input.checkpoint}, device="cpu", study="compress")
    data = read_cifar10(snakemake.input.data)
    model = load_classifier(p.arch, snakemake.input.checkpoint, width=p.width)
    test = DeviceImages(data.test_x, data.test_y, "cpu")
    test_images = torch.cat([x for x, _ in test.batches(q["eval_batch_size"], shuffle=False)])
    labels = test.labels.numpy()
    calibration = DeviceImages(data.train_x[:q["calibration_images"]], data.train_y[:q["calibration_images"]], "cpu")

    with tempfile.TemporaryDirectory() as tmp:   # the exporter's graph; the FP32 model is its pre-processed form
        raw = export_onnx(model, test_images[:2], Path(tmp) / "classifier.onnx", tolerance=1e-3).path
        preprocess(raw, out.fp32)
    reader = ArrayCalibrationReader("input", (x.numpy() for x, _ in calibration.batches(
        q["calibration_batch_size"], shuffle=False)))
    quantize_both(out.fp32, out.static, out.dynamic, reader, q)

    with torch.inference_mode():
        reference = model(test_images).numpy()
    params = nonzero_params(model)
    rows = [{"variant": "eager_fp32", "runtime": "pytorch", "file": "", "size_bytes": dense_size_bytes(model.state_dict()),
             "nonzero_params": params, "top1": accuracy(model, test, q["eval_batch_size"]),
             **agreement(reference, reference)}]
    timings = latency_rows("classifier", "eager_fp32", partial(time_eager, model), latency_images, lat)
    images = test_images.numpy()
    for variant, path in ort_variants(out.fp32, out.dynamic, out.static):
        sess = session(path, threads)
        logits = session_outputs(sess, images, q["eval_batch_size"])
        rows.append({"variant": variant, "runtime": "onnxruntime", **file_columns(path), "nonzero_params": params,
                     "top1": float((logits.argmax(1) == labels).mean()), **agreement(logits, reference)})
        timings += latency_rows("classifier", variant, partial(time_session, sess),
                                lambda batch: latency_images(batch).numpy(), lat)
    table, latency = write_results(rows, timings, out.csv, out.latency)
    prov.write(out.provenance, timing=timed.record(), calibration_images=reader.images, test_images=len(labels),
               onnxruntime_providers=["CPUExecutionProvider"])
    print(table.to_string(index=False))
    print(latency.to_string(index=False))
