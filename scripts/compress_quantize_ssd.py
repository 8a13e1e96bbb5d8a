"""Quantize the SSD study's ONNX detector to INT8 (dynamic and static, calibrated on Open Images training images)
and measure mAP on the test split, size and CPU latency against FP32 onnxruntime (rule: compress_quantize_ssd)."""
import os
from pathlib import Path

import numpy as np
import pandas as pd

from dlperf.compress.quantize import (
    ArrayCalibrationReader,
    image_size,
    input_name,
    input_shape,
    onnx_nonzero_params,
    preprocess,
    quantize_dynamic_model,
    quantize_static_model,
    read_labels,
    session,
    ssd_mean_ap,
    time_session,
)
from dlperf.data.openimages import OpenImagesDataset
from dlperf.detection.predictor import preprocess as preprocess_image
from dlperf.provenance import Provenance
from dlperf.workflow import limit_threads, script_logging

with script_logging(snakemake.log[0]):
    inp, p, out = snakemake.input, snakemake.params, snakemake.output
    q, lat = p.quantize, p.latency
    threads = snakemake.threads
    limit_threads(threads)
    prov = Provenance({"compress": {"quantize": q, "latency": lat}, "threads": threads, "source": inp.onnx},
                      device="cpu", study="compress")
    classes = read_labels(inp.labels)
    size = image_size(inp.onnx)
    preprocess(inp.onnx, out.fp32)
    train = OpenImagesDataset(inp.data, "train", classes)
    count = min(q["ssd_calibration_images"], len(train))
    reader = ArrayCalibrationReader(input_name(out.fp32),
                                    (preprocess_image(train.get_image(i), size)[None].numpy() for i in range(count)))
    quantize_static_model(out.fp32, out.static, reader, quant_format=q["format"],
                          activation_type=q["activation_type"], weight_type=q["weight_type"],
                          per_channel=q["per_channel"], reduce_range=q["reduce_range"],
                          calibrate_method=q["calibrate_method"], op_types=q["ssd_op_types"])
    quantize_dynamic_model(out.fp32, out.dynamic, weight_type=q["dynamic_weight_type"], op_types=q["ssd_op_types"])

    test = OpenImagesDataset(inp.data, "test", classes)
    batch_dim = input_shape(out.fp32)[0]
    batches = [b for b in lat["batch_sizes"] if not isinstance(batch_dim, int) or b == batch_dim]
    if not batches or batches[0] != lat["batch_sizes"][0]:
        raise ValueError(f"{inp.onnx} has a fixed batch of {batch_dim}: it cannot be timed at the first configured "
                         f"batch size {lat['batch_sizes'][0]} (compress.latency.batch_sizes)")
    params = onnx_nonzero_params(out.fp32)
    rows, timings = [], []
    sample = preprocess_image(test.get_image(0), size).numpy()
    for variant, path in (("ort_fp32", out.fp32), ("ort_int8_dynamic", out.dynamic), ("ort_int8_static", out.static)):
        sess = session(path, threads)
        result = ssd_mean_ap(sess, test, size)
        rows.append({"variant": variant, "file": Path(path).name, "size_bytes": os.path.getsize(path),
                     "nonzero_params": params, "map": result.mean_ap, "test_images": len(test),
                     **{f"ap_{classes[label - 1]}": ap for label, ap in result.per_class.items()}})
        for batch in batches:
            t = time_session(sess, np.repeat(sample[None], batch, axis=0), warmup=lat["warmup"],
                             repeats=lat["repeats"])
            timings.append({"model": "ssd", "variant": variant, "batch": batch, "median_ms": 1e3 * t.median_s,
                            "p10_ms": 1e3 * t.p10_s, "p90_ms": 1e3 * t.p90_s})
    table = pd.DataFrame(rows)
    table.to_csv(out.csv, index=False)
    latency = pd.DataFrame(timings)
    latency.to_csv(out.latency, index=False)
    prov.write(out.provenance, calibration_images=reader.images, image_size=size, classes=classes)
    print(table.to_string(index=False))
    print(latency.to_string(index=False))
