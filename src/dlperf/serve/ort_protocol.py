"""The ONNX Runtime Server wire format: PredictRequest/PredictResponse, content negotiation, tensors.

The messages are those of ``onnxruntime/server/protobuf/predict.proto`` (package ``onnxruntime.server``):

    message PredictRequest  { reserved 1; map<string, onnx.TensorProto> inputs = 2; repeated string output_filter = 3; }
    message PredictResponse { map<string, onnx.TensorProto> outputs = 1; }

They are built at import time from a ``FileDescriptorProto`` that depends on the ``onnx`` package's own
``onnx/onnx-ml.proto``, so no protoc step is needed and the map values *are* ``onnx.TensorProto``:
a client may ``CopyFrom`` an ``onnx.numpy_helper.from_array`` tensor straight into a request.

Tensors are decoded by hand rather than with ``onnx.numpy_helper.to_array``, because that helper follows
``data_location=EXTERNAL`` to files on the server's disk; a client must never make the server read a path.
"""
from __future__ import annotations

import json
import math

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message, message_factory
from onnx import TensorProto, onnx_ml_pb2

from .dtypes import BY_ONNX, ElementType, element_of_array, little_endian, shaped
from .errors import ServeError

JSON = "application/json"
PROTOBUF_TYPES = ("application/octet-stream", "application/x-protobuf", "application/vnd.google.protobuf")
_PACKAGE = "onnxruntime.server"


def _predict_file() -> descriptor_pb2.FileDescriptorProto:
    """predict.proto as a descriptor; map fields are repeated ``*Entry`` messages with ``map_entry`` set."""
    field = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(
        name="onnxruntime/server/protobuf/predict.proto",
        package=_PACKAGE,
        syntax="proto3",
        dependency=[onnx_ml_pb2.DESCRIPTOR.name],
    )

    def tensor_map(owner: descriptor_pb2.DescriptorProto, name: str, number: int) -> None:
        entry = owner.nested_type.add(name=name.capitalize() + "Entry")
        entry.options.map_entry = True
        entry.field.add(name="key", json_name="key", number=1, label=field.LABEL_OPTIONAL, type=field.TYPE_STRING)
        entry.field.add(name="value", json_name="value", number=2, label=field.LABEL_OPTIONAL,
                        type=field.TYPE_MESSAGE, type_name=".onnx.TensorProto")
        owner.field.add(name=name, json_name=name, number=number, label=field.LABEL_REPEATED,
                        type=field.TYPE_MESSAGE, type_name=f".{_PACKAGE}.{owner.name}.{entry.name}")

    request = file.message_type.add(name="PredictRequest")
    request.reserved_range.add(start=1, end=2)
    tensor_map(request, "inputs", 2)
    request.field.add(name="output_filter", json_name="outputFilter", number=3,
                      label=field.LABEL_REPEATED, type=field.TYPE_STRING)
    tensor_map(file.message_type.add(name="PredictResponse"), "outputs", 1)
    return file


def _message_class(pool: descriptor_pool.DescriptorPool, name: str) -> type[message.Message]:
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{name}"))


def _register() -> descriptor_pool.DescriptorPool:
    """Add predict.proto to the default pool (where onnx registered TensorProto) unless a generated
    ``predict_pb2`` imported earlier already did; both describe the same wire format."""
    pool = descriptor_pool.Default()
    try:
        pool.FindMessageTypeByName(f"{_PACKAGE}.PredictRequest")
    except KeyError:
        pool.Add(_predict_file())
    return pool


_POOL = _register()
PredictRequest = _message_class(_POOL, "PredictRequest")
PredictResponse = _message_class(_POOL, "PredictResponse")


def _media_type(header: str | None) -> str | None:
    """The media type of a Content-Type/Accept item, without parameters such as ``charset``."""
    return header.split(";", 1)[0].strip().lower() if header else None


def request_format(content_type: str | None) -> str:
    """``"json"`` or ``"protobuf"``, from the mandatory Content-Type header."""
    media = _media_type(content_type)
    if media == JSON:
        return "json"
    if media in PROTOBUF_TYPES:
        return "protobuf"
    raise ServeError(400, "Missing or unknown 'Content-Type' header field in the request")


def response_format(accept: str | None, content_type: str) -> tuple[str, str]:
    """The response's format and Content-Type.

    ``Accept`` picks JSON or protobuf (``*/*`` means protobuf, as in ORT server); the first recognised
    item of a list wins. Without ``Accept`` the answer mirrors the request, which satisfies both the 2019
    server (binary) and its later documentation ("the same type as your request").
    """
    if not accept:
        media = _media_type(content_type)
        return request_format(content_type), media
    for item in accept.split(","):
        media = _media_type(item)
        if media == JSON:
            return "json", JSON
        if media in PROTOBUF_TYPES:
            return "protobuf", media
        if media == "*/*":
            return "protobuf", PROTOBUF_TYPES[0]
    raise ServeError(400, "Unknown 'Accept' header field in the request")


def parse(message_class: type[message.Message], body: bytes, fmt: str) -> message.Message:
    """A PredictRequest (or, for a client, a PredictResponse) from a binary or JSON body; unknown JSON
    fields are ignored, as in ORT server."""
    parsed = message_class()
    if fmt == "protobuf":
        try:
            parsed.ParseFromString(body)
        except message.DecodeError:
            raise ServeError(400, "Invalid payload.") from None
        return parsed
    try:
        json_format.Parse(body.decode("utf-8"), parsed, ignore_unknown_fields=True)
    except (json_format.ParseError, UnicodeDecodeError) as error:
        raise ServeError(400, f"Invalid payload. {error}") from None
    return parsed


def serialize(proto: message.Message, fmt: str) -> bytes:
    """The binary encoding, or protobuf's JSON mapping (lowerCamelCase, int64 as strings, bytes as
    base64, enums by name) without whitespace, as ORT server's ``MessageToJsonString`` wrote it."""
    if fmt == "protobuf":
        return proto.SerializeToString()
    return json.dumps(json_format.MessageToDict(proto), separators=(",", ":")).encode()


def tensor_to_array(tensor: TensorProto, name: str) -> np.ndarray:
    """The numpy array a TensorProto holds, in ``raw_data`` or in its typed field.

    Every length is checked against ``dims`` before anything is allocated, so a forged ``dims`` cannot
    make the server reserve memory the body did not pay for.
    """
    if tensor.data_location == TensorProto.EXTERNAL or len(tensor.external_data):
        raise ServeError(400, f"tensor '{name}': external tensor data is not accepted")
    element = BY_ONNX.get(tensor.data_type)
    if element is None:
        raise ServeError(400, f"tensor '{name}': unsupported data_type {tensor.data_type}")
    shape = tuple(tensor.dims)
    if any(d < 0 for d in shape):
        raise ServeError(400, f"tensor '{name}': negative dimension in dims {list(shape)}")
    count = math.prod(shape)
    if element.is_string:
        values = _checked_length(tensor.string_data, count, name, "string_data")
        try:
            return shaped(np.array([v.decode("utf-8") for v in values], dtype=object), shape, name)
        except UnicodeDecodeError:
            raise ServeError(400, f"tensor '{name}': string_data is not UTF-8") from None
    if tensor.HasField("raw_data"):
        raw = tensor.raw_data
        if len(raw) != count * element.numpy.itemsize:
            raise ServeError(400, f"tensor '{name}': raw_data holds {len(raw)} bytes but dims {list(shape)} "
                                  f"of {element.ort} need {count * element.numpy.itemsize}")
        values = np.frombuffer(raw, dtype=little_endian(element.numpy)).astype(element.numpy, copy=False)
        return shaped(values, shape, name)
    values = _checked_length(getattr(tensor, element.field), count, name, element.field)
    return shaped(_typed_values(values, element, name), shape, name)


def _checked_length(values, count: int, name: str, field: str):
    if len(values) != count:
        raise ServeError(400, f"tensor '{name}': {field} holds {len(values)} values but dims say {count}")
    return values


_FIELD_DTYPES = {"float_data": np.float32, "double_data": np.float64, "int32_data": np.int32,
                 "int64_data": np.int64, "uint64_data": np.uint64}


def _typed_values(values, element: ElementType, name: str) -> np.ndarray:
    """Values of a typed field as ``element``; narrow types travel in ``int32_data`` (float16 as its bit
    pattern, bool as 0/1) and must fit the type they stand for."""
    stored = np.array(values, dtype=_FIELD_DTYPES[element.field])
    if element.numpy == stored.dtype:
        return stored
    if element.numpy == np.bool_:
        return stored != 0
    carrier = np.dtype(np.uint16) if element.numpy == np.float16 else element.numpy
    limits = np.iinfo(carrier)
    if stored.size and (stored.min() < limits.min or stored.max() > limits.max):
        raise ServeError(400, f"tensor '{name}': {element.field} holds values outside {element.ort}")
    return stored.astype(carrier).view(element.numpy)


def array_to_tensor(array: np.ndarray, raw: bool) -> TensorProto:
    """``array`` as a TensorProto: in ``raw_data`` (with ``data_location=DEFAULT``) when ``raw``, else in
    the typed field. ORT server answered raw only if every input had come raw."""
    element = element_of_array(array)
    if element is None:
        raise TypeError(f"numpy dtype {array.dtype} has no onnx.TensorProto data type here")
    tensor = TensorProto(dims=array.shape, data_type=element.onnx)
    flat = array.ravel()
    if element.is_string:
        tensor.string_data.extend(str(v).encode("utf-8") for v in flat)
    elif raw:
        tensor.raw_data = flat.astype(little_endian(element.numpy)).tobytes()
        tensor.data_location = TensorProto.DEFAULT
    elif element.numpy == np.float16:
        tensor.int32_data.extend(flat.view(np.uint16).tolist())
    else:
        getattr(tensor, element.field).extend(flat.astype(_FIELD_DTYPES[element.field]).tolist())
    return tensor


def request_inputs(request: message.Message) -> tuple[dict[str, np.ndarray], bool]:
    """The request's input arrays, and whether every one came as ``raw_data`` (which decides the
    encoding of the outputs)."""
    feeds = {name: tensor_to_array(tensor, name) for name, tensor in request.inputs.items()}
    all_raw = all(tensor.HasField("raw_data") for tensor in request.inputs.values())
    return feeds, all_raw


def build_response(outputs: dict[str, np.ndarray], raw: bool) -> message.Message:
    """A PredictResponse keyed by model output name."""
    response = PredictResponse()
    for name, array in outputs.items():
        response.outputs[name].CopyFrom(array_to_tensor(array, raw))
    return response
