"""The element types a served tensor may have, under each of the names the two protocols use.

A tensor crosses four vocabularies on its way through the server: ``onnx.TensorProto.DataType`` (the ORT
server's wire format), KServe V2's ``datatype`` strings, onnxruntime's ``NodeArg.type`` strings and numpy
dtypes. One table keeps them in step; a type missing here (bfloat16, the float8 family, sequences, maps)
is refused with a 400 instead of being half-supported.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from onnx import TensorProto

from .errors import ServeError


@dataclass(frozen=True)
class ElementType:
    """One element type: its ONNX enum value, numpy dtype, KServe and onnxruntime names, and the
    ``TensorProto`` field that carries it when ``raw_data`` is not used."""

    onnx: int
    numpy: np.dtype
    kserve: str
    ort: str
    field: str

    @property
    def is_string(self) -> bool:
        return self.onnx == TensorProto.STRING


ELEMENT_TYPES = (
    ElementType(TensorProto.FLOAT, np.dtype(np.float32), "FP32", "tensor(float)", "float_data"),
    ElementType(TensorProto.UINT8, np.dtype(np.uint8), "UINT8", "tensor(uint8)", "int32_data"),
    ElementType(TensorProto.INT8, np.dtype(np.int8), "INT8", "tensor(int8)", "int32_data"),
    ElementType(TensorProto.UINT16, np.dtype(np.uint16), "UINT16", "tensor(uint16)", "int32_data"),
    ElementType(TensorProto.INT16, np.dtype(np.int16), "INT16", "tensor(int16)", "int32_data"),
    ElementType(TensorProto.INT32, np.dtype(np.int32), "INT32", "tensor(int32)", "int32_data"),
    ElementType(TensorProto.INT64, np.dtype(np.int64), "INT64", "tensor(int64)", "int64_data"),
    ElementType(TensorProto.STRING, np.dtype(object), "BYTES", "tensor(string)", "string_data"),
    ElementType(TensorProto.BOOL, np.dtype(np.bool_), "BOOL", "tensor(bool)", "int32_data"),
    ElementType(TensorProto.FLOAT16, np.dtype(np.float16), "FP16", "tensor(float16)", "int32_data"),
    ElementType(TensorProto.DOUBLE, np.dtype(np.float64), "FP64", "tensor(double)", "double_data"),
    ElementType(TensorProto.UINT32, np.dtype(np.uint32), "UINT32", "tensor(uint32)", "uint64_data"),
    ElementType(TensorProto.UINT64, np.dtype(np.uint64), "UINT64", "tensor(uint64)", "uint64_data"),
)

BY_ONNX = {t.onnx: t for t in ELEMENT_TYPES}
BY_KSERVE = {t.kserve: t for t in ELEMENT_TYPES}
BY_ORT = {t.ort: t for t in ELEMENT_TYPES}


def element_of_array(array: np.ndarray) -> ElementType | None:
    """The element type of a numpy array, or None for dtypes no protocol here can carry."""
    if array.dtype == object:
        return BY_ONNX[TensorProto.STRING]
    return next((t for t in ELEMENT_TYPES if t.numpy == array.dtype), None)


def little_endian(dtype: np.dtype) -> np.dtype:
    """Both wire formats are little-endian whatever the host is."""
    return dtype.newbyteorder("<")


def shaped(values: np.ndarray, shape: Sequence[int], name: str) -> np.ndarray:
    """``values`` reshaped to a client-given shape whose element count was already checked; numpy still
    refuses some (a zero-sized tensor with a dimension beyond its index range), and that is the client's
    error too."""
    try:
        return values.reshape(tuple(shape))
    except ValueError as error:
        raise ServeError(400, f"input '{name}': cannot use shape {list(shape)}: {error}") from None
