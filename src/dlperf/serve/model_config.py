"""A model's Triton ``config.pbtxt``: parsed as protobuf text format, checked, and checked against its model.

Triton reads the file into its ``inference.ModelConfig`` message and refuses a model whose file does not parse, or
that contradicts the model it configures. The message here is the part of ``model_config.proto`` this server acts
on or can check against an ONNX graph (field numbers as Triton's): ``name``, ``platform``, ``backend``,
``max_batch_size``, ``input`` and ``output`` (name, data type, dims), ``dynamic_batching`` and ``instance_group``.
Fields outside it (``optimization``, ``parameters``, …) are Triton's to act on and are skipped, as long as the file
parses.

Every failure is a :class:`ModelConfigError` whose message starts with the file's path.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

_PACKAGE = "inference"

# Triton's DataType enum (model_config.proto) against the KServe V2 names of dlperf.serve.dtypes.
DATA_TYPES = {"TYPE_INVALID": 0, "TYPE_BOOL": 1, "TYPE_UINT8": 2, "TYPE_UINT16": 3, "TYPE_UINT32": 4,
              "TYPE_UINT64": 5, "TYPE_INT8": 6, "TYPE_INT16": 7, "TYPE_INT32": 8, "TYPE_INT64": 9, "TYPE_FP16": 10,
              "TYPE_FP32": 11, "TYPE_FP64": 12, "TYPE_STRING": 13, "TYPE_BF16": 14}
KSERVE_OF_TYPE = {value: ("BYTES" if name == "TYPE_STRING" else name.removeprefix("TYPE_"))
                  for name, value in DATA_TYPES.items()}
TYPE_OF_KSERVE = {KSERVE_OF_TYPE[value]: name for name, value in DATA_TYPES.items()}


class ModelConfigError(ValueError):
    """A config.pbtxt that Triton would refuse; the message names the file."""


def _model_config_file() -> descriptor_pb2.FileDescriptorProto:
    field = descriptor_pb2.FieldDescriptorProto
    # proto2, as Triton's own file: a field set to 0 (max_batch_size: 0) is still set
    file = descriptor_pb2.FileDescriptorProto(name="dlperf_model_config.proto", package=_PACKAGE, syntax="proto2")
    file.enum_type.add(name="DataType").value.extend(
        descriptor_pb2.EnumValueDescriptorProto(name=name, number=number) for name, number in DATA_TYPES.items())

    def add(owner, name, number, kind, label=field.LABEL_OPTIONAL, type_name=None):
        owner.field.add(name=name, number=number, type=kind, label=label,
                        **({"type_name": f".{_PACKAGE}.{type_name}"} if type_name else {}))

    for message, dims_number in (("ModelInput", 4), ("ModelOutput", 3)):
        tensor = file.message_type.add(name=message)
        add(tensor, "name", 1, field.TYPE_STRING)
        add(tensor, "data_type", 2, field.TYPE_ENUM, type_name="DataType")
        add(tensor, "dims", dims_number, field.TYPE_INT64, field.LABEL_REPEATED)
    batching = file.message_type.add(name="ModelDynamicBatching")
    add(batching, "preferred_batch_size", 1, field.TYPE_INT32, field.LABEL_REPEATED)
    add(batching, "max_queue_delay_microseconds", 2, field.TYPE_UINT64)
    add(batching, "preserve_ordering", 3, field.TYPE_BOOL)
    kinds = file.enum_type.add(name="Kind")
    kinds.value.extend(descriptor_pb2.EnumValueDescriptorProto(name=name, number=number)
                       for number, name in enumerate(["KIND_AUTO", "KIND_GPU", "KIND_CPU", "KIND_MODEL"]))
    group = file.message_type.add(name="ModelInstanceGroup")   # read for the count's check; a list, so modelled
    add(group, "name", 1, field.TYPE_STRING)
    add(group, "count", 2, field.TYPE_INT32)
    add(group, "gpus", 3, field.TYPE_INT32, field.LABEL_REPEATED)
    add(group, "kind", 4, field.TYPE_ENUM, type_name="Kind")
    config = file.message_type.add(name="ModelConfig")
    add(config, "name", 1, field.TYPE_STRING)
    add(config, "platform", 2, field.TYPE_STRING)
    add(config, "max_batch_size", 4, field.TYPE_INT32)
    add(config, "input", 5, field.TYPE_MESSAGE, field.LABEL_REPEATED, "ModelInput")
    add(config, "output", 6, field.TYPE_MESSAGE, field.LABEL_REPEATED, "ModelOutput")
    add(config, "instance_group", 7, field.TYPE_MESSAGE, field.LABEL_REPEATED, "ModelInstanceGroup")
    add(config, "dynamic_batching", 11, field.TYPE_MESSAGE, type_name="ModelDynamicBatching")
    add(config, "backend", 17, field.TYPE_STRING)
    return file


_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(_model_config_file())
ModelConfigMessage = message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"{_PACKAGE}.ModelConfig"))

ONNX_PLATFORMS = {"", "onnxruntime_onnx"}
ONNX_BACKENDS = {"", "onnxruntime"}


@dataclass(frozen=True)
class TensorConfig:
    name: str
    kserve: str | None  # None: the file leaves the data type out
    dims: tuple[int, ...] | None  # None: the file leaves the dims out; -1: any size


@dataclass(frozen=True)
class ModelConfig:
    """What the server acts on: ``max_batch_size`` (None: the file leaves it to the server's option), the delay of a
    ``dynamic_batching`` block (None: no block), and the tensors the file declares, to check against the model."""

    path: Path | None
    max_batch_size: int | None = None
    max_delay_ms: float | None = None
    inputs: tuple[TensorConfig, ...] = ()
    outputs: tuple[TensorConfig, ...] = ()

    def check_against(self, inputs: Sequence, outputs: Sequence, max_batch_size: int) -> None:
        """Raise :class:`ModelConfigError` where the file's tensors contradict the model's (``TensorSpec``s with
        ``name``, ``element.kserve`` and ``shape``, None for a dynamic dimension). With a positive
        ``max_batch_size`` the file's dims leave out the batch dimension, as in Triton."""
        for kind, declared, actual in (("input", self.inputs, inputs), ("output", self.outputs, outputs)):
            by_name = {spec.name: spec for spec in actual}
            for tensor in declared:
                spec = by_name.get(tensor.name)
                if spec is None:
                    raise ModelConfigError(f"{self.path}: {kind} '{tensor.name}' is not one of the model's "
                                           f"{kind}s {sorted(by_name)}")
                if tensor.kserve is not None and tensor.kserve != spec.element.kserve:
                    raise ModelConfigError(f"{self.path}: {kind} '{tensor.name}' is {tensor.kserve} here but "
                                           f"{spec.element.kserve} in the model")
                shape = spec.shape[1:] if max_batch_size > 0 else spec.shape
                if tensor.dims is not None and not _dims_agree(tensor.dims, shape):
                    model_dims = [-1 if d is None else d for d in shape]
                    batch = " (without the batch dimension)" if max_batch_size > 0 else ""
                    raise ModelConfigError(f"{self.path}: {kind} '{tensor.name}' has dims {list(tensor.dims)} "
                                           f"here but {model_dims} in the model{batch}")


def _dims_agree(declared: Sequence[int], shape: Sequence[int | None]) -> bool:
    return len(declared) == len(shape) and all(d == -1 or s is None or d == s for d, s in zip(declared, shape))


def read_model_config(model_dir: Path) -> ModelConfig:
    """``model_dir/config.pbtxt`` parsed and checked on its own (``ModelConfig(None)`` when there is none)."""
    path = model_dir / "config.pbtxt"
    if not path.is_file():
        return ModelConfig(None)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ModelConfigError(f"{path}: not UTF-8 text (byte {error.start}: {raw[error.start]:#04x})") from None
    message = ModelConfigMessage()
    try:
        text_format.Parse(text, message, allow_unknown_field=True)
    except text_format.ParseError as error:
        hint = (" (a list-valued field this server does not model, such as model_warmup, needs its own entry in "
                "dlperf.serve.model_config)" if 'Expected "{"' in str(error) else "")
        raise ModelConfigError(f"{path}: not a model configuration in protobuf text format: {error}{hint}") from None
    if message.name and message.name != model_dir.name:
        raise ModelConfigError(f"{path}: name '{message.name}' differs from the model's directory '{model_dir.name}'")
    if message.platform not in ONNX_PLATFORMS or message.backend not in ONNX_BACKENDS:
        raise ModelConfigError(f"{path}: platform '{message.platform}' / backend '{message.backend}': this server "
                               "runs ONNX models only (onnxruntime_onnx / onnxruntime)")
    if message.max_batch_size < 0:
        raise ModelConfigError(f"{path}: max_batch_size must be >= 0, got {message.max_batch_size}")
    batching = message.dynamic_batching if message.HasField("dynamic_batching") else None
    if any(group.count < 0 for group in message.instance_group):
        raise ModelConfigError(f"{path}: instance_group count must be >= 0")
    if batching is not None and any(size < 1 for size in batching.preferred_batch_size):
        raise ModelConfigError(f"{path}: preferred_batch_size must be positive, got "
                               f"{list(batching.preferred_batch_size)}")

    def tensors(items) -> tuple[TensorConfig, ...]:
        out = []
        for item in items:
            if not item.name:
                raise ModelConfigError(f"{path}: an input or output without a name")
            if any(d < -1 or d == 0 for d in item.dims):
                raise ModelConfigError(f"{path}: '{item.name}' has dims {list(item.dims)}: each is -1 or positive")
            out.append(TensorConfig(item.name, KSERVE_OF_TYPE[item.data_type] if item.data_type else None,
                                    tuple(item.dims) if item.dims else None))
        return tuple(out)

    return ModelConfig(
        path,
        max_batch_size=message.max_batch_size if message.HasField("max_batch_size") else None,
        max_delay_ms=None if batching is None else batching.max_queue_delay_microseconds / 1000,
        inputs=tensors(message.input),
        outputs=tensors(message.output),
    )

