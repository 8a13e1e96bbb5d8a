"""The serving section's numbers as report macros: the ONNX export, the server under load with and without
dynamic batching (for the served SSD and, when it is not full size itself, the full-size SSD), and the demo's
detections (see report/sections/serve.tex).
"""
from __future__ import annotations

from typing import Mapping

import pandas as pd

from dlperf.report.latex import Latex, macro_name
from dlperf.report.values import fixed, plain, scientific, significant, words, yes_no
from dlperf.serve.bench import BATCHING_GOAL, batching_goal_met


def _under_load(server: pd.DataFrame) -> dict[str, object]:
    """One model's load test at its most clients, without batching and with it: throughput, p99 latency, the cores
    the server kept busy, the mean batch merged, and batching's speedup with its 95 % interval (``BatchingInterval``,
    empty without one) and whether it meets :data:`BATCHING_GOAL` as printed (a reader who sees 1.00 sees no loss;
    :func:`dlperf.serve.bench.batching_goal_met`); and the same speedup at the fewest clients, where it measures only
    the benchmark's noise."""
    at_most = server[server.clients == server.clients.max()].set_index("batching")
    fewest = server[server.clients == server.clients.min()].set_index("batching")
    single = fewest.loc["off"]
    speedup = fixed(at_most.loc["dynamic", "speedup"], 2)
    low, high = (fixed(at_most.loc["dynamic", end], 2) for end in ("speedup_low", "speedup_high"))
    has_interval = pd.notna(at_most.loc["dynamic", "speedup_high"])
    return {
        "RequestsPerClient": int(single.requests // single.clients),
        "SingleClientPFiftyMs": significant(single.p50_ms),
        "SingleClientPNinetyNineMs": significant(single.p99_ms),
        **{f"{quantity}{mode.capitalize()}Max": significant(at_most.loc[mode, column]) for mode in ("off", "dynamic")
           for quantity, column in (("Throughput", "throughput_rps"), ("PNinetyNine", "p99_ms"))},
        **{f"Cores{mode.capitalize()}Max": fixed(at_most.loc[mode, "cpu_cores"], 1) for mode in ("off", "dynamic")},
        "MeanBatchMax": fixed(at_most.loc["dynamic", "mean_batch"], 1),
        "BatchingSpeedup": speedup,
        "BatchingInterval": Latex(rf" (95\,\% interval {low}--{high})" if has_interval else ""),
        "BatchingGoalMet": yes_no(batching_goal_met(float(speedup), float(high) if has_interval else float("nan"))),
        # at one client the two servers do the same work (nothing queues, so nothing merges): how far their ratio
        # is from 1 is the benchmark's own noise, the yardstick for the ratio at the most clients
        "SingleClientSpeedup": fixed(fewest.loc["dynamic", "speedup"], 2),
    }


def _grpc_over_http(http: pd.DataFrame, grpc: pd.DataFrame) -> dict[str, object]:
    """KServe V2 over gRPC against ORT server's HTTP API, batching on, at the most clients: throughput and ratio."""
    if grpc.empty:
        return {"GrpcBenched": yes_no(False)}
    pick = {name: rows[(rows.clients == rows.clients.max()) & (rows.batching == "dynamic")].iloc[0]
            for name, rows in (("http", http), ("grpc", grpc))}
    return {"GrpcBenched": yes_no(True), "GrpcThroughputDynamicMax": significant(pick["grpc"].throughput_rps),
            "GrpcOverHttp": fixed(pick["grpc"].throughput_rps / pick["http"].throughput_rps, 2)}


def serving_values(*, bench: pd.DataFrame, parity: Mapping, export: Mapping, detections: Mapping,
                   classes: list[str], batching: Mapping) -> dict[str, object]:
    """Macros of the serving section: the export (graph size, parity), the server under load with and without
    dynamic batching for each model, ORT against PyTorch eager at batch 1, and the demo's detections.

    ``parity`` is results/serve/onnx/parity.json, ``export`` the export's provenance, ``detections`` the demo's
    detections.json; ``bench`` is results/serve/bench.csv, whose direct rows time the served model and whose server
    rows of any other model are the full-size SSD's (``FullSize…`` macros; ``FullSizeBenched`` says if there are);
    the load-test macros read the HTTP rows (ORT server's API), ``Grpc…`` compares KServe V2 over gRPC with them.
    """
    server = bench[(bench.benchmark == "server") & (bench.protocol == "http")]
    direct = bench[bench.benchmark == "direct"].set_index("runtime")
    served = direct.model.iloc[0]
    full_size = server[server.model != served]
    over_grpc = bench[(bench.benchmark == "server") & (bench.protocol == "grpc") & (bench.model == served)]
    ort_speedup = direct.loc["onnxruntime", "speedup"]
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
        "BatchingGoal": plain(BATCHING_GOAL),
        "Clients": words(sorted(server.clients.unique())),
        "ClientsMax": int(server.clients.max()),
        **_under_load(server[server.model == served]),
        **_grpc_over_http(server[server.model == served], over_grpc),
        "FullSizeBenched": yes_no(not full_size.empty),
        **({f"FullSize{key}": value for key, value in _under_load(full_size).items()} if not full_size.empty else {}),
        "EagerMs": significant(direct.loc["pytorch_eager", "p50_ms"]),
        "OrtMs": significant(direct.loc["onnxruntime", "p50_ms"]),
        "OrtSpeedup": fixed(ort_speedup, 1),
        "OrtGoalMet": yes_no(ort_speedup >= 2),
        "DemoClasses": words(classes),
        # the demo figure: one panel per class, side by side, and what each shows
        "DemoPanels": Latex(rf"\resultfrom{{results/serve/annotated_{classes[0]}.png}}" + r"\hfill".join(
            rf"\includegraphics[width={0.96 / len(classes):.2f}\linewidth]{{results/serve/annotated_{name}.png}}"
            for name in classes)),
        "DemoPanelCaptions": words(
            f"{name} ({len(detections[name]['detections'])} detected, {detections[name]['ground_truth']} present)"
            for name in classes),
    }
    return {macro_name("serve", key): value for key, value in values.items()}
