"""KServe V2 (Open Inference Protocol) inference bodies, with Triton's binary tensor data extension.

A request or response is a JSON document, optionally followed by raw tensor bytes. The
``Inference-Header-Content-Length`` header says where the JSON ends; a tensor whose ``parameters``
carry ``binary_data_size`` takes its bytes, in order, from what follows. Binary tensors are row-major
and little-endian; BOOL is one byte per element and BYTES elements are each prefixed by a 4-byte
little-endian length. This is what ``tritonclient.http`` sends and expects.

The same functions serve both ends: the server parses requests and encodes responses, and
``dlperf.serve.client`` encodes requests and parses responses.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from .dtypes import BY_KSERVE, ElementType, element_of_array, little_endian, shaped
from .errors import ServeError

HEADER_LENGTH = "Inference-Header-Content-Length"
SERVER_NAME = "dlperf-serve"   # what server metadata calls this server, over HTTP and gRPC


@dataclass
class InferRequest:
    """A decoded inference request: input arrays, which outputs to return and how to encode them."""

    inputs: dict[str, np.ndarray]
    outputs: list[str] | None = None  # None: all of the model's outputs
    id: str | None = None
    binary_outputs: dict[str, bool] = field(default_factory=dict)  # per requested output
    binary_by_default: bool = False  # the request's ``binary_data_output`` parameter

    def wants_binary(self, output: str) -> bool:
        return self.binary_outputs.get(output, self.binary_by_default)


def split_body(body: bytes, header_length: str | None) -> tuple[Any, memoryview]:
    """The JSON document and the binary section that follows it."""
    if header_length is None:
        json_size = len(body)
    elif header_length.isascii() and header_length.isdigit() and int(header_length) <= len(body):
        json_size = int(header_length)
    else:
        raise ServeError(400, f"{HEADER_LENGTH} must be a byte count within the body, got {header_length!r}")
    try:
        document = json.loads(body[:json_size])
    except (ValueError, RecursionError) as error:
        raise ServeError(400, f"malformed JSON: {error}") from None
    if not isinstance(document, dict):
        raise ServeError(400, "the JSON body must be an object")
    return document, memoryview(body)[json_size:]


def parse_request(body: bytes, header_length: str | None) -> InferRequest:
    """An InferRequest from an ``/infer`` body, every field checked before use."""
    document, binary = split_body(body, header_length)
    items = document.get("inputs")
    if not isinstance(items, list) or not items:
        raise ServeError(400, "'inputs' must be a non-empty list of tensors")
    reader = _BinaryReader(binary)
    inputs: dict[str, np.ndarray] = {}
    for item in items:
        name, array = _input(item, reader)
        if name in inputs:
            raise ServeError(400, f"input '{name}' is given twice")
        inputs[name] = array
    reader.check_consumed()
    request = InferRequest(inputs, id=_optional(document, "id", str))
    parameters = _optional(document, "parameters", dict) or {}
    request.binary_by_default = _optional(parameters, "binary_data_output", bool) or False
    requested = _optional(document, "outputs", list)
    if requested is not None:
        request.outputs = []
        for item in requested:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise ServeError(400, "each of 'outputs' must be an object with a string 'name'")
            options = _optional(item, "parameters", dict) or {}
            if "classification" in options:
                raise ServeError(400, "the classification extension is not supported")
            binary = _optional(options, "binary_data", bool)
            if binary is not None:
                request.binary_outputs[item["name"]] = binary
            request.outputs.append(item["name"])
    return request


def encode_response(model_name: str, model_version: int, request_id: str | None,
                    outputs: Mapping[str, np.ndarray], binary: Mapping[str, bool]) -> tuple[bytes, dict[str, str]]:
    """The response body and the headers that describe it; ``binary[name]`` picks the encoding."""
    header: dict[str, Any] = {"model_name": model_name, "model_version": str(model_version)}
    if request_id is not None:
        header["id"] = request_id
    header["outputs"], chunks = _tensors(outputs, binary)
    return _with_binary(header, chunks)


def encode_request(inputs: Mapping[str, np.ndarray], outputs: list[str] | None,
                   binary: bool) -> tuple[bytes, dict[str, str]]:
    """An ``/infer`` body, for the client: inputs (and, if ``binary``, outputs) as binary tensors."""
    header: dict[str, Any] = {}
    header["inputs"], chunks = _tensors(inputs, dict.fromkeys(inputs, binary))
    if outputs is not None:
        header["outputs"] = [{"name": name, "parameters": {"binary_data": binary}} for name in outputs]
    else:
        header["parameters"] = {"binary_data_output": binary}
    return _with_binary(header, chunks)


def parse_response(body: bytes, header_length: str | None) -> dict[str, np.ndarray]:
    """The output arrays of an ``/infer`` response, for the client."""
    document, binary = split_body(body, header_length)
    reader = _BinaryReader(binary)
    arrays = dict(_input(item, reader) for item in document.get("outputs", []))
    reader.check_consumed()
    return arrays


def _with_binary(header: dict, chunks: list[bytes]) -> tuple[bytes, dict[str, str]]:
    text = json.dumps(header, separators=(",", ":"), allow_nan=False).encode()   # strict JSON: see _json_values
    if not chunks:
        return text, {"Content-Type": "application/json"}
    return text + b"".join(chunks), {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(len(text))}


def _tensors(arrays: Mapping[str, np.ndarray], binary: Mapping[str, bool]) -> tuple[list[dict], list[bytes]]:
    entries, chunks = [], []
    for name, array in arrays.items():
        element = element_of_array(array)
        if element is None:
            raise TypeError(f"tensor '{name}': numpy dtype {array.dtype} has no KServe datatype")
        entry: dict[str, Any] = {"name": name, "datatype": element.kserve, "shape": list(array.shape)}
        if binary[name]:
            data = tensor_to_bytes(array, element)
            entry["parameters"] = {"binary_data_size": len(data)}
            chunks.append(data)
        else:
            entry["data"] = [str(v) for v in array.ravel()] if element.is_string else _json_values(array.ravel())
        entries.append(entry)
    return entries, chunks


NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _json_values(flat: np.ndarray) -> list:
    """A flat tensor's values for JSON. Strict JSON has no NaN or infinity, which Python's json writes bare and strict
    parsers reject; they go as the strings "NaN", "Infinity" and "-Infinity", as protobuf's JSON mapping writes
    non-finite floats (numpy reads those strings back as floats)."""
    values = flat.tolist()
    if flat.dtype.kind == "f" and not np.isfinite(flat).all():
        values = [v if math.isfinite(v) else ("NaN" if math.isnan(v) else "Infinity" if v > 0 else "-Infinity")
                  for v in values]
    return values


def tensor_to_bytes(array: np.ndarray, element: ElementType) -> bytes:
    flat = array.ravel()
    if element.is_string:
        encoded = [str(v).encode("utf-8") for v in flat]
        return b"".join(len(v).to_bytes(4, "little") + v for v in encoded)
    return flat.astype(little_endian(element.numpy)).tobytes()


def _optional(document: dict, key: str, kind: type) -> Any:
    value = document.get(key)
    if value is not None and (not isinstance(value, kind) or (kind is not bool and isinstance(value, bool))):
        raise ServeError(400, f"'{key}' must be of JSON type {kind.__name__}")
    return value


class _BinaryReader:
    """Hands out the binary section tensor by tensor and insists that nothing is left over."""

    def __init__(self, data: memoryview):
        self._data = data
        self._offset = 0

    def take(self, size: int, name: str) -> memoryview:
        """The next ``size`` bytes, a view of the body's (a copy would double a large tensor's memory)."""
        if self._offset + size > len(self._data):
            raise ServeError(400, f"tensor '{name}': binary_data_size {size} runs past the end of the body")
        chunk = self._data[self._offset:self._offset + size]
        self._offset += size
        return chunk

    def check_consumed(self) -> None:
        if self._offset != len(self._data):
            raise ServeError(400, f"{len(self._data) - self._offset} bytes after the JSON belong to no tensor")


def _input(item: Any, reader: _BinaryReader) -> tuple[str, np.ndarray]:
    """One ``{name, shape, datatype, data | parameters.binary_data_size}`` tensor."""
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise ServeError(400, "each tensor must be an object with a string 'name'")
    name = item["name"]
    datatype = item.get("datatype")
    element = BY_KSERVE.get(datatype) if isinstance(datatype, str) else None
    if element is None:
        raise ServeError(400, f"tensor '{name}': unsupported datatype {datatype!r}; use one of {sorted(BY_KSERVE)}")
    shape = item.get("shape")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise ServeError(400, f"tensor '{name}': 'shape' must be a list of non-negative integers")
    count = math.prod(shape)
    size = _optional(_optional(item, "parameters", dict) or {}, "binary_data_size", int)
    if size is not None:
        values = tensor_from_bytes(reader.take(size, name), element, count, name)
    elif "data" in item:
        values = _from_json(item["data"], element, count, name)
    else:
        raise ServeError(400, f"tensor '{name}' has neither 'data' nor a binary_data_size parameter")
    return name, shaped(values, shape, name)


def tensor_from_bytes(data: bytes | memoryview, element: ElementType, count: int, name: str) -> np.ndarray:
    """The tensor in ``data``, a view of it where the machine's byte order is little-endian (no copy)."""
    if element.is_string:
        return _length_prefixed(bytes(data), count, name)
    if len(data) != count * element.numpy.itemsize:
        raise ServeError(400, f"tensor '{name}': {len(data)} bytes do not hold {count} {element.kserve} values")
    if element.numpy == np.bool_:
        return np.frombuffer(data, dtype=np.uint8) != 0
    return np.frombuffer(data, dtype=little_endian(element.numpy)).astype(element.numpy, copy=False)


def _length_prefixed(data: bytes, count: int, name: str) -> np.ndarray:
    values, offset = [], 0
    while offset < len(data):
        length = int.from_bytes(data[offset:offset + 4], "little")
        value = data[offset + 4:offset + 4 + length]
        if offset + 4 > len(data) or len(value) != length:
            raise ServeError(400, f"tensor '{name}': a BYTES element runs past its binary data")
        values.append(value)
        offset += 4 + length
    if len(values) != count:
        raise ServeError(400, f"tensor '{name}': {len(values)} BYTES elements where the shape says {count}")
    return utf8_strings(values, name)


def utf8_strings(values: list[bytes], name: str) -> np.ndarray:
    try:
        return np.array([v.decode("utf-8") for v in values], dtype=object)
    except UnicodeDecodeError:
        raise ServeError(400, f"tensor '{name}': BYTES elements must be UTF-8 text for onnxruntime") from None


# numpy kinds that JSON numbers may arrive as, for float and bool tensors: no numbers into BOOL.
_ACCEPTED_KINDS = {"f": "iuf", "b": "b"}


def _from_json(data: Any, element: ElementType, count: int, name: str) -> np.ndarray:
    """Row-major JSON data (flat, as the protocol says, or nested) as a flat array of ``element``."""
    try:
        values = np.array(data, dtype=object if element.is_string else None).ravel()
    except (ValueError, TypeError, RecursionError) as error:
        raise ServeError(400, f"tensor '{name}': 'data' is not a rectangular array: {error}") from None
    if values.size != count:
        raise ServeError(400, f"tensor '{name}': 'data' holds {values.size} values where the shape says {count}")
    if count == 0:
        return np.empty(0, dtype=element.numpy)
    if element.is_string:
        if not all(isinstance(v, str) for v in values):
            raise ServeError(400, f"tensor '{name}': BYTES data must be strings")
        return values
    if element.numpy.kind in "iu":
        if values.dtype.kind not in "iu":  # numpy turns ints beyond int64 into floats: look at the values
            values = np.array(data, dtype=object).ravel()
            if not all(type(v) is int for v in values):
                raise ServeError(400, f"tensor '{name}': 'data' does not hold {element.kserve} values")
        limits = np.iinfo(element.numpy)
        if values.min() < limits.min or values.max() > limits.max:
            raise ServeError(400, f"tensor '{name}': 'data' holds values outside {element.kserve}")
    elif element.numpy.kind == "f" and values.dtype.kind in "OU":   # "NaN", "Infinity", "-Infinity" among numbers
        values = np.array(data, dtype=object).ravel()
        if not all(v in NON_FINITE if isinstance(v, str) else isinstance(v, (int, float)) and not isinstance(v, bool)
                   for v in values):
            raise ServeError(400, f"tensor '{name}': 'data' does not hold {element.kserve} values")
        values = np.array([NON_FINITE.get(v, v) if isinstance(v, str) else v for v in values], dtype=np.float64)
    elif values.dtype.kind not in _ACCEPTED_KINDS[element.numpy.kind]:
        raise ServeError(400, f"tensor '{name}': 'data' does not hold {element.kserve} values")
    return values.astype(element.numpy)
