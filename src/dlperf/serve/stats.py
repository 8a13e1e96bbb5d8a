"""Per model version statistics: Triton's statistics extension (GET /v2/models/<name>/stats) and Prometheus metrics
(GET /metrics), from the same counters.
"""
from __future__ import annotations

import threading
import time
from typing import Mapping

# Prometheus metrics (GET /metrics): Triton's names where Triton has the metric, cumulative counters in µs.
METRICS = {
    "nv_inference_request_success": ("counter", "Number of successful inference requests, all batch sizes"),
    "nv_inference_request_failure": ("counter", "Number of failed inference requests, all batch sizes"),
    "nv_inference_count": ("counter", "Number of inferences performed (rows, not requests)"),
    "nv_inference_exec_count": ("counter", "Number of model executions performed (merged batches count once)"),
    "nv_inference_request_duration_us": ("counter", "Cumulative inference request duration in microseconds, "
                                                    "from the model's receipt of the request to its answer"),
    "nv_inference_queue_duration_us": ("counter", "Cumulative time requests spent queued before their run, in "
                                                  "microseconds"),
    "nv_inference_compute_infer_duration_us": ("counter", "Cumulative model execution time charged to requests "
                                                          "(a merged run's to each request in it), in microseconds"),
    "dlperf_inference_batch_size": ("histogram", "Rows per model execution"),
}
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


def _bucket(batch: int) -> int | None:
    return next((size for size in BATCH_BUCKETS if batch <= size), None)


class Stats:
    """Counters in the shape of Triton's statistics extension, so tools that read Triton read these."""

    def __init__(self):
        self._lock = threading.Lock()
        self.inference_count = 0  # rows inferred
        self.execution_count = 0  # onnxruntime runs; fewer than requests when batching merged some
        self.last_inference_ms = 0
        self._success = [0, 0]  # requests, ns
        self._fail = [0, 0]
        self._queue_ns = 0  # summed over successful requests: waiting for a run, and that run's time
        self._compute_ns = 0
        self._batches: dict[int, list[int]] = {}  # batch size → [runs, ns]

    def record_request(self, ok: bool, ns: int, queue_ns: int = 0, compute_ns: int = 0) -> None:
        with self._lock:
            counter = self._success if ok else self._fail
            counter[0] += 1
            counter[1] += ns
            if ok:
                self._queue_ns += queue_ns
                self._compute_ns += compute_ns

    def prometheus(self, labels: str) -> dict[str, list[str]]:
        """This model version's samples of each metric (:data:`METRICS`), ``labels`` already rendered."""
        with self._lock:
            values = {
                "nv_inference_request_success": self._success[0],
                "nv_inference_request_failure": self._fail[0],
                "nv_inference_count": self.inference_count,
                "nv_inference_exec_count": self.execution_count,
                "nv_inference_request_duration_us": (self._success[1] + self._fail[1]) // 1000,
                "nv_inference_queue_duration_us": self._queue_ns // 1000,
                "nv_inference_compute_infer_duration_us": self._compute_ns // 1000,
            }
            samples = {name: [f"{name}{{{labels}}} {value}"] for name, value in values.items()}
            cumulative, lines = 0, []
            for size in BATCH_BUCKETS:
                cumulative += sum(runs for batch, (runs, _) in self._batches.items() if _bucket(batch) == size)
                lines.append(f'dlperf_inference_batch_size_bucket{{{labels},le="{size}"}} {cumulative}')
            total = sum(runs for runs, _ in self._batches.values())
            rows = sum(batch * runs for batch, (runs, _) in self._batches.items())
            lines += [f'dlperf_inference_batch_size_bucket{{{labels},le="+Inf"}} {total}',
                      f"dlperf_inference_batch_size_sum{{{labels}}} {rows}",
                      f"dlperf_inference_batch_size_count{{{labels}}} {total}"]
            samples["dlperf_inference_batch_size"] = lines
        return samples

    def record_execution(self, batch_size: int, ns: int) -> None:
        with self._lock:
            self.inference_count += batch_size
            self.execution_count += 1
            self.last_inference_ms = int(time.time() * 1000)
            runs = self._batches.setdefault(batch_size, [0, 0])
            runs[0] += 1
            runs[1] += ns

    def snapshot(self, name: str, version: int) -> dict:
        with self._lock:
            return {
                "name": name,
                "version": str(version),
                "last_inference": self.last_inference_ms,
                "inference_count": self.inference_count,
                "execution_count": self.execution_count,
                "inference_stats": {
                    "success": {"count": self._success[0], "ns": self._success[1]},
                    "fail": {"count": self._fail[0], "ns": self._fail[1]},
                },
                "batch_stats": [
                    {"batch_size": size, "compute_infer": {"count": runs, "ns": ns}}
                    for size, (runs, ns) in sorted(self._batches.items())
                ],
            }


def prometheus(stats: Mapping[tuple[str, int], "Stats"]) -> str:
    """Every model version's :data:`METRICS` in Prometheus' text exposition format (version 0.0.4)."""
    per_model = [s.prometheus(f'model="{name}",version="{version}"') for (name, version), s in stats.items()]
    lines = []
    for name, (kind, help_text) in METRICS.items():
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        lines += [line for samples in per_model for line in samples[name]]
    return "\n".join(lines) + "\n"
