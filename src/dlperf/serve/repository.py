"""The model repository: Triton's directory layout, loaded into onnxruntime sessions.

    <root>/<model_name>/config.pbtxt            optional; parsed and checked against the model
                                                (dlperf.serve.model_config), which acts on
                                                ``max_batch_size`` and ``dynamic_batching``
    <root>/<model_name>/<version>/model.onnx    version: a non-negative integer; the highest is the default

Every version is loaded at start-up, so "ready" simply means "in the repository" and the first request
pays no loading time. Both protocols call ``ModelVersion.infer``, which checks a request against the
model's signature before anything is queued: a malformed request is answered 400 and can never spoil
a merged batch.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import onnxruntime as ort

from .batching import DynamicBatcher, Tensors
from .dtypes import BY_ORT, ElementType, element_of_array
from .errors import ServeError
from .model_config import TYPE_OF_KSERVE, ModelConfigError, read_model_config
from .stats import Stats, prometheus

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


class ModelLoadError(ValueError):
    """A model.onnx that onnxruntime cannot load, or whose signature this server cannot carry; names the file."""


def _spec(arg: ort.NodeArg, path: Path) -> TensorSpec:
    element = BY_ORT.get(arg.type)
    if element is None:
        raise ModelLoadError(f"{path}: {arg.name} has type {arg.type}, which this server cannot carry")
    shape = tuple(d if isinstance(d, int) and d >= 0 else None for d in arg.shape)
    return TensorSpec(arg.name, element, shape)


class ModelVersion:
    """One loaded model.onnx: its session, signature, statistics and, when it can batch, its batcher.

    A model batches when ``max_batch_size`` > 1, batching is on, and every input and output has a dynamic first
    dimension; anything else is run request by request in the caller's thread. Whether it merges requests or not,
    a model whose inputs have a dynamic first dimension and whose ``max_batch_size`` is positive takes requests of at
    most that many rows, as Triton does (0: no batch dimension, so no limit).
    """

    def __init__(self, name: str, version: int, path: Path, options: ServingOptions, max_batch_size: int):
        self.name = name
        self.version = version
        self.max_batch_size = max_batch_size
        session_options = ort.SessionOptions()
        session_options.intra_op_num_threads = options.intra_op_threads
        session_options.log_severity_level = 3  # failures reach the client and our log; skip ORT's copy
        self.session = ort.InferenceSession(str(path), session_options, providers=list(options.providers))
        self.inputs = tuple(_spec(arg, path) for arg in self.session.get_inputs())
        self.outputs = tuple(_spec(arg, path) for arg in self.session.get_outputs())
        self.stats = Stats()
        self.recent_compute_s = math.inf   # a running mean of the last runs' compute times; none yet
        self._batch_dim = max_batch_size > 0 and all(s.shape[:1] == (None,) for s in self.inputs)
        batchable = (options.batching and max_batch_size > 1 and self._batch_dim
                     and all(s.shape[:1] == (None,) for s in self.outputs))
        self._batcher = (
            DynamicBatcher(self._run, max_batch_size, options.max_delay_ms / 1000, f"{name}-{version}",
                           options.instances)
            if batchable
            else None
        )
        if self._batcher is not None:
            self._warm_up()

    def _warm_up(self) -> None:
        """Run the model once on zeros at every batch size its batcher can form, as Triton's ``model_warmup`` does,
        so that no request pays for a shape's first run (onnxruntime plans memory per shape: the full-size SSD's
        first run of a new batch size took up to 7 ms more than its next). Skipped where an input has a dynamic
        dimension besides the batch; a failure is only logged."""
        if any(None in spec.shape[1:] for spec in self.inputs):
            return
        for size in range(1, self.max_batch_size + 1):
            try:
                self.session.run(None, {spec.name: np.zeros((size, *spec.shape[1:]), spec.element.numpy)
                                        for spec in self.inputs})   # not counted in the model's statistics
            except Exception as error:   # a model's own failure, which its requests will report
                log.warning("%s version %d: warm-up at batch %d failed: %s", self.name, self.version, size, error)
                return

    def infer(self, feeds: Tensors, output_names: Sequence[str] | None = None) -> Tensors:
        """The outputs for one request (all of them unless ``output_names``), in model output order."""
        start = time.perf_counter_ns()
        try:
            names = self._check_outputs(output_names)   # a request refused here is a failure too, as in Triton
            batch_size = self._check_inputs(feeds)
            if self._batcher:
                outputs, queue_s, compute_s = self._batcher.submit_timed(feeds, batch_size)
            else:
                outputs, queue_s = self._run(feeds), 0.0
                compute_s = (time.perf_counter_ns() - start) / 1e9
        except Exception:
            self.stats.record_request(False, time.perf_counter_ns() - start)
            raise
        self.stats.record_request(True, time.perf_counter_ns() - start, int(queue_s * 1e9), int(compute_s * 1e9))
        recent = self.recent_compute_s
        self.recent_compute_s = compute_s if recent == math.inf else 0.8 * recent + 0.2 * compute_s
        return {name: outputs[name] for name in names}

    def free(self) -> bool:
        """Whether a request now would run at once, without queueing for a run (always, without batching)."""
        return self._batcher is None or self._batcher.free

    @property
    def queue_delay_s(self) -> float:
        """How long a batch formed from queued requests may wait to fill (``max_queue_delay_microseconds``)."""
        return self._batcher.max_delay_s if self._batcher else 0.0

    def metadata(self, versions: Sequence[int]) -> dict:
        """KServe V2 model metadata."""
        return {
            "name": self.name,
            "versions": [str(v) for v in versions],
            "platform": "onnxruntime_onnx",
            "inputs": [spec.metadata() for spec in self.inputs],
            "outputs": [spec.metadata() for spec in self.outputs],
        }

    def config(self) -> dict:
        """Triton's model configuration as JSON (GET /v2/models/<name>/config), from what the server runs: the
        batch limit, and the tensors without their batch dimension when the model has one."""
        def tensors(specs):
            return [{"name": spec.name, "data_type": TYPE_OF_KSERVE[spec.element.kserve],
                     "dims": spec.kserve_shape[1:] if self._batch_dim else spec.kserve_shape} for spec in specs]
        document = {"name": self.name, "platform": "onnxruntime_onnx", "backend": "onnxruntime",
                    "max_batch_size": self.max_batch_size if self._batch_dim else 0,
                    "input": tensors(self.inputs), "output": tensors(self.outputs)}
        if self._batcher is not None:
            document["dynamic_batching"] = {
                "max_queue_delay_microseconds": str(round(self._batcher.max_delay_s * 1e6))}   # uint64: a string
        return document

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
        if not self._batch_dim:
            return 1
        sizes = {feeds[name].shape[0] for name in expected}
        if len(sizes) > 1:
            raise ServeError(400, f"inputs disagree on the batch dimension: {sorted(sizes)}")
        batch_size = sizes.pop()
        if batch_size > self.max_batch_size:   # Triton's words
            raise ServeError(400, f"inference request batch-size must be <= {self.max_batch_size} for '{self.name}'")
        return batch_size

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


class ModelRepository:
    """Every version of every model under ``root``, loaded and ready.

    ``default_model`` is what ORT server's single-model routes (``/score``, and the name ``default``
    when no model is called that) serve; it defaults to the only model when there is just one.
    """

    def __init__(self, root: str | Path, options: ServingOptions = ServingOptions(),
                 default_model: str | None = None, exit_on_error: bool = True):
        self.root = Path(root)
        self.options = options
        self._models: dict[str, dict[int, ModelVersion]] = {}
        self.unavailable: dict[str, str] = {}  # model -> why it failed to load (only when not exit_on_error)
        for model_dir in sorted(p for p in self.root.iterdir() if p.is_dir()):
            versions = sorted(int(p.name) for p in model_dir.iterdir()
                              if re.fullmatch(r"[0-9]+", p.name) and (p / "model.onnx").is_file())
            if not versions:
                log.warning("%s holds no <version>/model.onnx; skipped", model_dir)
                continue
            try:
                self._models[model_dir.name] = self._load(model_dir, versions)
            except (ModelConfigError, ModelLoadError) as error:
                if exit_on_error:
                    raise
                self.unavailable[model_dir.name] = str(error)
                log.error("model %s is unavailable: %s", model_dir.name, error)
                continue
            log.info("loaded model %s, versions %s", model_dir.name, versions)
        if not self._models and not self.unavailable:
            raise ValueError(f"no model under {self.root} (expected <model>/<version>/model.onnx)")
        if default_model is not None and default_model not in self._models:
            raise ValueError(f"default model {default_model!r} is not in {sorted(self._models)}")
        self.default_model = default_model or (next(iter(self._models)) if len(self._models) == 1 else None)

    def _load(self, model_dir: Path, versions: list[int]) -> dict[int, ModelVersion]:
        """Every version of one model, its config.pbtxt read and checked against each; a failure names the file."""
        config = read_model_config(model_dir)
        options = self.options
        max_batch_size = options.max_batch_size if config.max_batch_size is None else config.max_batch_size
        if config.max_delay_ms is not None:
            options = dataclasses.replace(options, max_delay_ms=config.max_delay_ms)
        loaded: dict[int, ModelVersion] = {}
        try:
            for v in versions:
                path = model_dir / str(v) / "model.onnx"
                try:
                    loaded[v] = ModelVersion(model_dir.name, v, path, options, max_batch_size)
                except ModelLoadError:
                    raise
                except Exception as error:   # onnxruntime's own exception types: a file it cannot load
                    raise ModelLoadError(f"{path}: onnxruntime cannot load it: {error}") from None
                config.check_against(loaded[v].inputs, loaded[v].outputs, max_batch_size)
        except Exception:
            for model in loaded.values():
                model.close()
            raise
        return loaded

    def index(self) -> list[dict]:
        """Triton's repository index: every model version with its state, and the reason of an unavailable one."""
        rows = [{"name": m.name, "version": str(m.version), "state": "READY"} for m in self]
        rows += [{"name": name, "state": "UNAVAILABLE", "reason": reason} for name, reason in self.unavailable.items()]
        return sorted(rows, key=lambda row: (row["name"], row.get("version", "")))

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

    def ort_model(self, name: str = "default", version: str | None = None) -> ModelVersion:
        """A model as ORT server's routes name it: it served one model under any name, and ``default`` still names
        the repository's default model here, unless a model is called that."""
        if name == "default" and name not in self._models:
            if self.default_model is None:
                raise ServeError(404, f"no default model among {self.names}; name one in the URL "
                                      "or start the server with --default-model")
            name = self.default_model
        return self.get(name, version)

    def metrics(self) -> str:
        """Every model version's metrics in Prometheus' text format (:func:`dlperf.serve.stats.prometheus`)."""
        return prometheus({(m.name, m.version): m.stats for m in self})

    def __iter__(self) -> Iterator[ModelVersion]:
        return (model for versions in self._models.values() for model in versions.values())

    def close(self) -> None:
        for model in self:
            model.close()

    def _get_model(self, name: str) -> dict[int, ModelVersion]:
        if name in self.unavailable:
            raise ServeError(503, f"model '{name}' is unavailable: {self.unavailable[name]}")
        if name not in self._models:
            raise ServeError(404, f"unknown model '{name}'; the repository holds {self.names}")
        return self._models[name]
