"""What the serving rules write, fake but well formed, for the report tests (tests/test_report.py's ``built``):
``write_serve(root, cfg)`` after ``write_optimus``/``write_flops``.

With these numbers the text reads: ONNX Runtime 1.20 ms against PyTorch eager 12.0 ms (10.0x), and at the most
clients 300 requests/s with dynamic batching against 150 without (2.00x).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from conftest import FIXTURE_FIDELITY
from PIL import Image

from dlperf.report.tables import write_table


def _json(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2))


def _provenance(config: dict) -> dict:
    return {"config": config, "git": {"commit": "0123456789abcdef0123", "dirty": False},
            "packages": {"python": "3.11.7", "dlperf": "0.1.0", "torch": "2.14.1", "torchvision": "0.29.1",
                         "snakemake": "9.27.1"},
            "device": "cpu", "cpu": "Fixture CPU", "cpu_count": 2, "peak_flops": None,
            "start": "2026-01-02T10:00:00+00:00", "end": "2026-01-02T10:05:00+00:00"}


def write_serve(root: Path, cfg: dict) -> None:
    s = cfg["serve"]
    model = cfg.get("ssd", {}).get("model", {"width_mult": 0.25, "image_size": 160})
    onnx_dir, serving = root / "results/serve/onnx", root / "results/serve"
    rows = []
    for name, scale in (("ssd", 1.0), ("ssd_full", 0.1)):  # the served model, and the full-size one
        for batching, rate in (("off", 150.0 * scale), ("dynamic", 300.0 * scale)):
            for clients in s["bench"]["clients"]:
                rows.append({"benchmark": "server", "model": name, "runtime": "onnxruntime", "batching": batching,
                             "clients": clients, "batch_size": 1,
                             "requests": clients * s["bench"]["requests_per_client"], "throughput_rps": rate,
                             "p50_ms": 3.5 * clients / scale, "p99_ms": 8.0 * clients / scale,
                             "mean_batch": 1.0 if batching == "off" else min(clients, 4.0), "cpu_cores": 1.9,
                             "speedup": 2.0 if batching == "dynamic" else 1.0})
    rows += [{"benchmark": "direct", "model": "ssd", "runtime": runtime, "batching": "off", "clients": 1,
              "batch_size": 1, "requests": s["bench"]["repeats"], "throughput_rps": 1000 / ms, "p50_ms": ms,
              "p99_ms": 2 * ms, "mean_batch": 1.0, "cpu_cores": 1.0, "speedup": 12.0 / ms}
             for runtime, ms in (("pytorch_eager", 12.0), ("onnxruntime", 1.2))]
    bench = pd.DataFrame(rows)
    serving.mkdir(parents=True, exist_ok=True)
    bench.to_csv(serving / "bench.csv", index=False)
    write_table(bench, serving / "tables" / "bench.tex", formats={"throughput_rps": ".1f", "p50_ms": ".2f",
                                                                  "p99_ms": ".2f", "mean_batch": ".2f",
                                                                  "speedup": ".2f"})
    _json(onnx_dir / "parity.json", {
        "tolerance": s["parity"]["tolerance"], "batch_sizes": [1, 4],
        "max_abs_diff": {"scores": 2.98e-08, "boxes": 1.19e-07}, "passed": True,
        "images": ["0e826654f2ebe2a6", "2027861835c9e451", "6c482dcbfb9b30d3", "a5e5d323b30e4625"],
        "input": {"name": "input", "shape": ["batch", 3, model["image_size"], model["image_size"]]},
        "outputs": ["scores", "boxes"], "opset": 20, "nodes": 124,
        "op_types": {"Conv": 47, "Relu": 35, "Reshape": 12, "Transpose": 12, "Concat": 4, "Mul": 4, "Slice": 4,
                     "Add": 2, "Div": 1, "Exp": 1, "Softmax": 1, "Sub": 1},
        "doc_strings": {"stack_trace": 124, "namespace": 0, "none": 0}, "bytes": 2733664, "onnx_version": "1.23.2"})
    _json(onnx_dir / "provenance.json", _provenance({"ssd": {"model": model},
                                                     "serve": {"opset": s["opset"], "parity": s["parity"]}}))
    _json(serving / "provenance.json", _provenance({"serve": {"demo": s["demo"], "batching": s["batching"]}}))
    _json(serving / "bench.provenance.json", _provenance({"serve": {"bench": s["bench"],
                                                                    "batching": s["batching"]}}))
    detections = {}
    for k, name in enumerate(s["demo"]["classes"]):
        picture = np.full((160, 160, 3), 60 + 40 * k, np.uint8)
        picture[40:120, 50:110] = (200, 30, 30)
        Image.fromarray(picture).save(serving / f"annotated_{name}.png",
                                      pnginfo=FIXTURE_FIDELITY.png_info(f"annotated_{name}"))
        detections[name] = {"image_id": f"{k:016x}", "format": "protobuf", "response": f"responses/{name}.pb",
                            "response_bytes": 23575, "ground_truth": 2,
                            "detections": [{"class": name, "prob": 0.9, "box": [50.0, 40.0, 110.0, 120.0]}]}
    _json(serving / "detections.json", detections)
    # results the report does not show, but the serve study's values rule collects
    for path, text in (("onnx/graph.svg", "<svg/>"), ("onnx/docstrings.md", "# Doc strings\n"),
                       ("model_repository/ssd/1/model.onnx", "onnx"), ("model_repository/ssd/config.pbtxt", "")):
        (serving / path).parent.mkdir(parents=True, exist_ok=True)
        (serving / path).write_text(text)
