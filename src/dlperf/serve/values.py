"""The serving section's numbers as report macros: the ONNX export, the server under load with and without
dynamic batching, and the demo's detections (see report/sections/serve.tex).
"""
from __future__ import annotations

from typing import Mapping

import pandas as pd

from dlperf.report.latex import Latex, macro_name
from dlperf.report.values import fixed, plain, scientific, significant, words, yes_no


def serving_values(*, bench: pd.DataFrame, parity: Mapping, export: Mapping, detections: Mapping,
                   classes: list[str], batching: Mapping) -> dict[str, object]:
    """Macros of the serving section: the export (graph size, parity), the server under load with and without
    dynamic batching, ORT against PyTorch eager at batch 1, and the demo's detections.

    ``parity`` is results/serve/onnx/parity.json, ``export`` the export's provenance, ``detections`` the demo's
    detections.json; ``bench`` is results/serve/bench.csv.
    """
    server = bench[bench.benchmark == "server"]
    most = int(server.clients.max())
    at_most = server[server.clients == most].set_index("batching")
    single = server[(server.clients == server.clients.min()) & (server.batching == "off")].iloc[0]
    direct = bench[bench.benchmark == "direct"].set_index("runtime")
    ort_speedup = direct.loc["onnxruntime", "speedup"]
    batching_speedup = at_most.loc["dynamic", "speedup"]
    model = export["config"]["ssd"]["model"]
    values = {
        "WidthMult": plain(model["width_mult"]),
        "ImageSize": model["image_size"],
        "Opset": parity["opset"],
        "Nodes": parity["nodes"],
        "OpTypes": len(parity["op_types"]),
        "ConvNodes": parity["op_types"].get("Conv", 0),
        "DocStringNodes": parity["doc_strings"]["stack_trace"],
        "ModelMegabytes": significant(parity["bytes"] / 2**20),
        "ParityImages": len(parity["images"]),
        "ParityBatches": words(parity["batch_sizes"]),
        "ParityTolerance": scientific(parity["tolerance"], 1),
        "ParityScoresDiff": scientific(parity["max_abs_diff"]["scores"]),
        "ParityBoxesDiff": scientific(parity["max_abs_diff"]["boxes"]),
        "MaxBatchSize": batching["max_batch_size"],
        "MaxDelayMs": plain(batching["max_delay_ms"]),
        "Clients": words(sorted(server.clients.unique())),
        "ClientsMax": most,
        "RequestsPerClient": int(server.requests.iloc[0] // server.clients.iloc[0]),
        "SingleClientPFiftyMs": significant(single.p50_ms),
        "SingleClientPNinetyNineMs": significant(single.p99_ms),
        "ThroughputOffMax": significant(at_most.loc["off", "throughput_rps"]),
        "ThroughputDynamicMax": significant(at_most.loc["dynamic", "throughput_rps"]),
        "PNinetyNineOffMax": significant(at_most.loc["off", "p99_ms"]),
        "PNinetyNineDynamicMax": significant(at_most.loc["dynamic", "p99_ms"]),
        "MeanBatchMax": fixed(at_most.loc["dynamic", "mean_batch"], 1),
        "BatchingSpeedup": fixed(batching_speedup, 2),
        "BatchingGoalMet": yes_no(batching_speedup >= 2),
        "EagerMs": significant(direct.loc["pytorch_eager", "p50_ms"]),
        "OrtMs": significant(direct.loc["onnxruntime", "p50_ms"]),
        "OrtSpeedup": fixed(ort_speedup, 1),
        "OrtGoalMet": yes_no(ort_speedup >= 2),
        "DemoClasses": words(classes),
        # the demo figure: one panel per class, side by side, and what each shows
        "DemoPanels": Latex(r"\hfill".join(
            rf"\includegraphics[width={0.96 / len(classes):.2f}\linewidth]{{results/serve/annotated_{name}.png}}"
            for name in classes)),
        "DemoPanelCaptions": words(
            f"{name} ({len(detections[name]['detections'])} detected, {detections[name]['ground_truth']} present)"
            for name in classes),
    }
    return {macro_name("serve", key): value for key, value in values.items()}
