"""The model repository: Triton's directory layout, loaded into onnxruntime sessions.

    <root>/<model_name>/config.pbtxt            optional; only ``max_batch_size`` and
                                                ``max_queue_delay_microseconds`` are read
    <root>/<model_name>/<version>/model.onnx    version: a non-negative integer; the highest is the default

Every version is loaded at start-up, so "ready" simply means "in the repository" and the first request
pays no loading time. Both protocols call ``ModelVersion.infer``, which checks a request against the
model's signature before anything is queued: a malformed request is answered 400 and can never spoil
a merged batch.
"""
from __future__ import annotations

import dataclasses
import logging
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import onnxruntime as ort

from .batching import DynamicBatcher, Tensors
from .dtypes import BY_ORT, ElementType, element_of_array
from .errors import ServeError

log = logging.getLogger(__name__)

# onnxruntime exception → (ORT status code, HTTP status), the mapping ORT server applied to Run() failures.
_ORT_FAILURES = {
    "Fail": (1, 500), "InvalidArgument": (2, 400), "NoSuchFile": (3, 400), "NoModel": (4, 400),
    "EngineError": (5, 500), "RuntimeException": (6, 500), "InvalidProtobuf": (7, 400),
    "ModelLoaded": (8, 500), "NotImplemented": (9, 500), "InvalidGraph": (10, 400), "EPFail": (11, 500),
}


@dataclass(frozen=True)
class ServingOptions:
    """How models are run; a model's config.pbtxt ``max_batch_size`` and ``dynamic_batching`` block override
    ``max_batch_size`` and ``max_delay_ms``."""

    max_batch_size: int = 8
    max_delay_ms: float = 0.0  # 0: a batch of queued requests runs as soon as a run is free (Triton's default)
    batching: bool = True
    intra_op_threads: int = 0  # 0: onnxruntime's default (all cores)
    instances: int = 1  # runs of a batching model version in flight at once (Triton's instance_group count)
    providers: tuple[str, ...] = ("CPUExecutionProvider",)


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a model; ``None`` marks a dynamic dimension."""

    name: str
    element: ElementType
    shape: tuple[int | None, ...]

    @property
    def kserve_shape(self) -> list[int]:
        return [-1 if d is None else d for d in self.shape]

    def metadata(self) -> dict:
        return {"name": self.name, "datatype": self.element.kserve, "shape": self.kserve_shape}


def _spec(arg: ort.NodeArg, path: Path) -> TensorSpec:
    element = BY_ORT.get(arg.type)
    if element is None:
        raise ValueError(f"{path}: {arg.name} has type {arg.type}, which this server cannot carry")
    shape = tuple(d if isinstance(d, int) and d >= 0 else None for d in arg.shape)
    return TensorSpec(arg.name, element, shape)


class Stats:
    """Counters in the shape of Triton's statistics extension, so tools that read Triton read these."""

    def __init__(self):
        self._lock = threading.Lock()
        self.inference_count = 0  # rows inferred
        self.execution_count = 0  # onnxruntime runs; fewer than requests when batching merged some
        self.last_inference_ms = 0
        self._success = [0, 0]  # requests, ns
        self._fail = [0, 0]
        self._batches: dict[int, list[int]] = {}  # batch size → [runs, ns]

    def record_request(self, ok: bool, ns: int) -> None:
        with self._lock:
            counter = self._success if ok else self._fail
            counter[0] += 1
            counter[1] += ns

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


class ModelVersion:
    """One loaded model.onnx: its session, signature, statistics and, when it can batch, its batcher.

    A model batches when ``max_batch_size`` > 1 and every input and output has a dynamic first
    dimension; anything else is run request by request in the caller's thread.
    """

    def __init__(self, name: str, version: int, path: Path, options: ServingOptions, max_batch_size: int):
        self.name = name
        self.version = version
        session_options = ort.SessionOptions()
        session_options.intra_op_num_threads = options.intra_op_threads
        session_options.log_severity_level = 3  # failures reach the client and our log; skip ORT's copy
        self.session = ort.InferenceSession(str(path), session_options, providers=list(options.providers))
        self.inputs = tuple(_spec(arg, path) for arg in self.session.get_inputs())
        self.outputs = tuple(_spec(arg, path) for arg in self.session.get_outputs())
        self.stats = Stats()
        batchable = max_batch_size > 1 and all(s.shape[:1] == (None,) for s in self.inputs + self.outputs)
        self._batcher = (
            DynamicBatcher(self._run, max_batch_size, options.max_delay_ms / 1000, f"{name}-{version}",
                           options.instances)
            if batchable
            else None
        )

    def infer(self, feeds: Tensors, output_names: Sequence[str] | None = None) -> Tensors:
        """The outputs for one request (all of them unless ``output_names``), in model output order."""
        names = self._check_outputs(output_names)
        batch_size = self._check_inputs(feeds)
        start = time.perf_counter_ns()
        try:
            outputs = self._batcher.submit(feeds, batch_size) if self._batcher else self._run(feeds)
        except Exception:
            self.stats.record_request(False, time.perf_counter_ns() - start)
            raise
        self.stats.record_request(True, time.perf_counter_ns() - start)
        return {name: outputs[name] for name in names}

    def metadata(self, versions: Sequence[int]) -> dict:
        """KServe V2 model metadata."""
        return {
            "name": self.name,
            "versions": [str(v) for v in versions],
            "platform": "onnxruntime_onnx",
            "inputs": [spec.metadata() for spec in self.inputs],
            "outputs": [spec.metadata() for spec in self.outputs],
        }

    def close(self) -> None:
        if self._batcher is not None:
            self._batcher.close()

    def _check_outputs(self, output_names: Sequence[str] | None) -> list[str]:
        known = [spec.name for spec in self.outputs]
        if not output_names:
            return known
        unknown = [name for name in output_names if name not in known]
        if unknown:
            raise ServeError(400, f"unknown output(s) {unknown} of model '{self.name}'; it has {known}")
        return [name for name in known if name in output_names]

    def _check_inputs(self, feeds: Tensors) -> int:
        """The request's batch size, after checking names, element types and shapes."""
        expected = [spec.name for spec in self.inputs]
        unknown = sorted(set(feeds) - set(expected))
        missing = [name for name in expected if name not in feeds]
        if unknown or missing:
            raise ServeError(400, f"model '{self.name}' takes inputs {expected}; "
                                  f"unknown: {unknown}, missing: {missing}")
        for spec in self.inputs:
            array = feeds[spec.name]
            if array.dtype != spec.element.numpy:
                element = element_of_array(array)
                got = element.ort if element else str(array.dtype)
                raise ServeError(400, f"input '{spec.name}': expected {spec.element.ort}, got {got}")
            if array.ndim != len(spec.shape) or any(d not in (None, n) for d, n in zip(spec.shape, array.shape)):
                raise ServeError(400, f"input '{spec.name}': shape {list(array.shape)} does not match "
                                      f"the model's {spec.kserve_shape} (-1: any size)")
            if array.size == 0:
                raise ServeError(400, f"input '{spec.name}': the tensor has no elements")
        if self._batcher is None:
            return 1
        sizes = {feeds[name].shape[0] for name in expected}
        if len(sizes) > 1:
            raise ServeError(400, f"inputs disagree on the batch dimension: {sorted(sizes)}")
        return sizes.pop()

    def _run(self, feeds: Tensors) -> Tensors:
        start = time.perf_counter_ns()
        try:
            values = self.session.run(None, feeds)
        except Exception as error:
            code, status = _ORT_FAILURES.get(type(error).__name__, (1, 500))
            raise ServeError(status, f"ONNX Runtime Status Code: {code}. Run() failed: {error}") from error
        batch_size = next(iter(feeds.values())).shape[0] if self._batcher else 1
        self.stats.record_execution(batch_size, time.perf_counter_ns() - start)
        return {spec.name: value for spec, value in zip(self.outputs, values)}


def _config_max_batch_size(model_dir: Path) -> int | None:
    """``max_batch_size`` from a Triton config.pbtxt (protobuf text format), if the file sets it."""
    return _config_integer(model_dir, "max_batch_size")


def _config_max_delay_ms(model_dir: Path) -> float | None:
    """``dynamic_batching { max_queue_delay_microseconds }`` of a Triton config.pbtxt in ms, if the file has a
    ``dynamic_batching`` block; a block without the field means 0, as in Triton (and protobuf's text format
    leaves a zero out)."""
    config = model_dir / "config.pbtxt"
    if not config.is_file() or re.search(r"^\s*dynamic_batching\b", config.read_text(), re.MULTILINE) is None:
        return None
    return (_config_integer(model_dir, "max_queue_delay_microseconds") or 0) / 1000


def _config_integer(model_dir: Path, field: str) -> int | None:
    config = model_dir / "config.pbtxt"
    if not config.is_file():
        return None
    found = re.search(rf"^\s*{field}\s*:\s*(\d+)", config.read_text(), re.MULTILINE)
    return int(found[1]) if found else None


class ModelRepository:
    """Every version of every model under ``root``, loaded and ready.

    ``default_model`` is what ORT server's single-model routes (``/score``, and the name ``default``
    when no model is called that) serve; it defaults to the only model when there is just one.
    """

    def __init__(self, root: str | Path, options: ServingOptions = ServingOptions(),
                 default_model: str | None = None):
        self.root = Path(root)
        self.options = options
        self._models: dict[str, dict[int, ModelVersion]] = {}
        for model_dir in sorted(p for p in self.root.iterdir() if p.is_dir()):
            versions = sorted(int(p.name) for p in model_dir.iterdir()
                              if re.fullmatch(r"[0-9]+", p.name) and (p / "model.onnx").is_file())
            if not versions:
                log.warning("%s holds no <version>/model.onnx; skipped", model_dir)
                continue
            cap = _config_max_batch_size(model_dir)
            max_batch_size = (options.max_batch_size if cap is None else cap) if options.batching else 0
            delay = _config_max_delay_ms(model_dir)
            model_options = options if delay is None else dataclasses.replace(options, max_delay_ms=delay)
            self._models[model_dir.name] = {
                v: ModelVersion(model_dir.name, v, model_dir / str(v) / "model.onnx", model_options, max_batch_size)
                for v in versions
            }
            log.info("loaded model %s, versions %s", model_dir.name, versions)
        if not self._models:
            raise ValueError(f"no model under {self.root} (expected <model>/<version>/model.onnx)")
        if default_model is not None and default_model not in self._models:
            raise ValueError(f"default model {default_model!r} is not in {sorted(self._models)}")
        self.default_model = default_model or (next(iter(self._models)) if len(self._models) == 1 else None)

    @property
    def names(self) -> list[str]:
        return list(self._models)

    def versions(self, name: str) -> list[int]:
        return list(self._get_model(name))

    def get(self, name: str, version: str | None = None) -> ModelVersion:
        """A model version by name; the highest version when ``version`` is None. Unknown → 404."""
        versions = self._get_model(name)
        if version is None:
            return versions[max(versions)]
        if re.fullmatch(r"[0-9]+", version) is None or int(version) not in versions:
            raise ServeError(404, f"model '{name}' has no version '{version}'; it has {list(versions)}")
        return versions[int(version)]

    def __iter__(self) -> Iterator[ModelVersion]:
        return (model for versions in self._models.values() for model in versions.values())

    def close(self) -> None:
        for model in self:
            model.close()

    def _get_model(self, name: str) -> dict[int, ModelVersion]:
        if name not in self._models:
            raise ServeError(404, f"unknown model '{name}'; the repository holds {self.names}")
        return self._models[name]
