"""Quantize the SSD study's ONNX detector to INT8 (dynamic and static, calibrated on Open Images training images)
and measure mAP on the test split, size and CPU latency against FP32 onnxruntime (rule: compress_quantize_ssd)."""
from functools import partial

import numpy as np

from dlperf.compress.quantize import (
    ArrayCalibrationReader,
    file_columns,
    image_size,
    input_name,
    input_shape,
    latency_rows,
    onnx_nonzero_params,
    ort_variants,
    preprocess,
    quantize_both,
    read_labels,
    session,
    ssd_mean_ap,
    time_session,
    write_results,
)
from dlperf.data.openimages import OpenImagesDataset
from dlperf.detection.predictor import preprocess as preprocess_image
from dlperf.provenance import Provenance
from dlperf.timing import TimedAlone
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    inp, p, out = snakemake.input, snakemake.params, snakemake.output
    q, lat = p.quantize, p.latency
    timed = TimedAlone(snakemake)
    threads = timed.threads
    prov = Provenance({"compress": {"quantize": q, "latency": lat}, "threads": threads, "source": inp.onnx},
                      device="cpu", study="compress")
    classes = read_labels(inp.labels)
    size = image_size(inp.onnx)
    preprocess(inp.onnx, out.fp32)
    train = OpenImagesDataset(inp.data, "train", classes)
    count = min(q["ssd_calibration_images"], len(train))
    reader = ArrayCalibrationReader(input_name(out.fp32),
                                    (preprocess_image(train.get_image(i), size)[None].numpy() for i in range(count)))
    quantize_both(out.fp32, out.static, out.dynamic, reader, q, op_types=q["ssd_op_types"])

    test = OpenImagesDataset(inp.data, "test", classes)
    batch_dim = input_shape(out.fp32)[0]
    batches = [b for b in lat["batch_sizes"] if not isinstance(batch_dim, int) or b == batch_dim]
    if not batches or batches[0] != lat["batch_sizes"][0]:
        raise ValueError(f"{inp.onnx} has a fixed batch of {batch_dim}: it cannot be timed at the first configured "
                         f"batch size {lat['batch_sizes'][0]} (compress.latency.batch_sizes)")
    params = onnx_nonzero_params(out.fp32)
    rows, timings = [], []
    sample = preprocess_image(test.get_image(0), size).numpy()
    for variant, path in ort_variants(out.fp32, out.dynamic, out.static):
        sess = session(path, threads)
        result = ssd_mean_ap(sess, test, size)
        rows.append({"variant": variant, **file_columns(path), "nonzero_params": params, "map": result.mean_ap,
                     "test_images": len(test),
                     **{f"ap_{classes[label - 1]}": ap for label, ap in result.per_class.items()}})
        timings += latency_rows("ssd", variant, partial(time_session, sess),
                                lambda batch: np.repeat(sample[None], batch, axis=0), lat, batches)
    table, latency = write_results(rows, timings, out.csv, out.latency)
    prov.write(out.provenance, timing=timed.record(), calibration_images=reader.images, image_size=size, classes=classes)
    print(table.to_string(index=False))
    print(latency.to_string(index=False))
