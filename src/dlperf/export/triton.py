"""A model repository in Triton's layout, with its ``config.pbtxt`` in Triton's ModelConfig text format.

    <root>/<model>/config.pbtxt
    <root>/<model>/<version>/model.onnx

The config is built as a protobuf message with the field names and numbers of Triton's ``model_config.proto``
(the subset used here: name, platform, max_batch_size, input, output, dynamic_batching) and printed with
protobuf's text format, so it parses exactly as Triton parses it. Dims leave out the batch axis, as Triton
expects when ``max_batch_size`` > 0. ``dlperf.serve`` reads ``max_batch_size`` and
``dynamic_batching.max_queue_delay_microseconds`` from the same file.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import onnx
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

from dlperf.atomic import atomic_dir

# Triton's DataType enum (model_config.proto) by ONNX element type.
TRITON_TYPES = {
    onnx.TensorProto.BOOL: "TYPE_BOOL", onnx.TensorProto.UINT8: "TYPE_UINT8", onnx.TensorProto.UINT16: "TYPE_UINT16",
    onnx.TensorProto.UINT32: "TYPE_UINT32", onnx.TensorProto.UINT64: "TYPE_UINT64",
    onnx.TensorProto.INT8: "TYPE_INT8", onnx.TensorProto.INT16: "TYPE_INT16", onnx.TensorProto.INT32: "TYPE_INT32",
    onnx.TensorProto.INT64: "TYPE_INT64", onnx.TensorProto.FLOAT16: "TYPE_FP16", onnx.TensorProto.FLOAT: "TYPE_FP32",
    onnx.TensorProto.DOUBLE: "TYPE_FP64", onnx.TensorProto.STRING: "TYPE_STRING",
    onnx.TensorProto.BFLOAT16: "TYPE_BF16",
}
_DATA_TYPES = ["TYPE_INVALID", "TYPE_BOOL", "TYPE_UINT8", "TYPE_UINT16", "TYPE_UINT32", "TYPE_UINT64", "TYPE_INT8",
               "TYPE_INT16", "TYPE_INT32", "TYPE_INT64", "TYPE_FP16", "TYPE_FP32", "TYPE_FP64", "TYPE_STRING",
               "TYPE_BF16"]  # numbers 0..14, in this order


def _build_model_config_class():
    f = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(name="dlperf/triton_model_config.proto", package="inference",
                                              syntax="proto3")
    enum = file.enum_type.add(name="DataType")
    for number, name in enumerate(_DATA_TYPES):
        enum.value.add(name=name, number=number)

    def message(name, *fields):
        m = file.message_type.add(name=name)
        for field_name, number, kind, label, type_name in fields:
            m.field.add(name=field_name, number=number, type=kind, label=label, type_name=type_name)

    one, many = f.LABEL_OPTIONAL, f.LABEL_REPEATED
    message("ModelInput", ("name", 1, f.TYPE_STRING, one, None), ("data_type", 2, f.TYPE_ENUM, one, ".inference.DataType"),
            ("dims", 4, f.TYPE_INT64, many, None))
    message("ModelOutput", ("name", 1, f.TYPE_STRING, one, None),
            ("data_type", 2, f.TYPE_ENUM, one, ".inference.DataType"), ("dims", 3, f.TYPE_INT64, many, None))
    message("ModelDynamicBatching", ("preferred_batch_size", 1, f.TYPE_INT32, many, None),
            ("max_queue_delay_microseconds", 2, f.TYPE_UINT64, one, None))
    message("ModelConfig", ("name", 1, f.TYPE_STRING, one, None), ("platform", 2, f.TYPE_STRING, one, None),
            ("max_batch_size", 4, f.TYPE_INT32, one, None),
            ("input", 5, f.TYPE_MESSAGE, many, ".inference.ModelInput"),
            ("output", 6, f.TYPE_MESSAGE, many, ".inference.ModelOutput"),
            ("dynamic_batching", 11, f.TYPE_MESSAGE, one, ".inference.ModelDynamicBatching"))
    for m in file.message_type:
        for field in m.field:
            if not field.type_name:
                field.ClearField("type_name")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("inference.ModelConfig"))


ModelConfig = _build_model_config_class()


def _dims(value_info: onnx.ValueInfoProto) -> tuple[int, list[int]]:
    tensor = value_info.type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim]
    return tensor.elem_type, dims


def model_config(model: onnx.ModelProto, name: str, max_batch_size: int, max_queue_delay_us: int) -> str:
    """The ``config.pbtxt`` text of ``model`` served as ``name``; every input and output must have a dynamic
    first (batch) axis when ``max_batch_size`` > 0 (0 turns batching off and keeps full shapes)."""
    config = ModelConfig(name=name, platform="onnxruntime_onnx", max_batch_size=max_batch_size)
    initializers = {t.name for t in model.graph.initializer}
    for kind, infos in (("input", [i for i in model.graph.input if i.name not in initializers]),
                        ("output", list(model.graph.output))):
        for info in infos:
            element, dims = _dims(info)
            if element not in TRITON_TYPES:
                raise ValueError(f"{kind} {info.name}: ONNX element type {element} has no Triton type")
            if max_batch_size > 0:
                if not dims or dims[0] != -1:
                    raise ValueError(f"{kind} {info.name} has shape {dims}: batching needs a dynamic first axis")
                dims = dims[1:]
            getattr(config, kind).add(name=info.name, data_type=TRITON_TYPES[element], dims=dims)
    if max_batch_size > 0:
        config.dynamic_batching.max_queue_delay_microseconds = max_queue_delay_us
    return text_format.MessageToString(config)


def parse_model_config(text: str):
    """A config.pbtxt as a ModelConfig message; unknown fields or bad syntax raise ``text_format.ParseError``."""
    return text_format.Parse(text, ModelConfig())


def write_model_repository(root: str | os.PathLike, name: str, version: int, onnx_path: str | os.PathLike,
                           max_batch_size: int, max_queue_delay_us: int) -> Path:
    """``root/name/version/model.onnx`` (a copy of ``onnx_path``) and ``root/name/config.pbtxt``; ``root`` is
    replaced whole, atomically."""
    model = onnx.load(str(onnx_path), load_external_data=False)
    text = model_config(model, name, max_batch_size, max_queue_delay_us)
    with atomic_dir(root) as tmp:
        (tmp / name / str(version)).mkdir(parents=True)
        shutil.copyfile(onnx_path, tmp / name / str(version) / "model.onnx")
        (tmp / name / "config.pbtxt").write_text(text)
    return Path(root)
