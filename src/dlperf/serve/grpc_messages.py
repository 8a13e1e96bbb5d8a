"""KServe V2's gRPC messages and service, as Triton's ``grpc_service.proto`` (package ``inference``) declares them.

The messages are built at import time, like those of ``ort_protocol`` and ``model_config``, so no protoc step and no
generated stubs are needed. They are written below in ``.proto`` syntax, copied from Triton's file for the RPCs this
server answers, so a reader can hold the two side by side. A parser of just the syntax that text uses (messages,
oneofs, maps, one service) turns it into a ``FileDescriptorProto``; tests/test_serve_grpc.py checks every field
against tritonclient's generated descriptors, so the two cannot drift apart.
``ModelConfigResponse`` carries ``model_config.ModelConfigMessage``, the subset of Triton's ``ModelConfig`` this server
reads and writes; Triton's clients skip the fields it leaves out.

They live in a pool of their own: ``tritonclient.grpc`` registers the same names in protobuf's default pool, and
a process may hold both (the tests do).
"""
from __future__ import annotations

import re
from typing import Iterator

from google.protobuf import descriptor_pb2, descriptor_pool, message, message_factory

from .model_config import ModelConfigMessage

GRPC_SERVICE_PROTO = """
service GRPCInferenceService {
  rpc ServerLive(ServerLiveRequest) returns (ServerLiveResponse);
  rpc ServerReady(ServerReadyRequest) returns (ServerReadyResponse);
  rpc ModelReady(ModelReadyRequest) returns (ModelReadyResponse);
  rpc ServerMetadata(ServerMetadataRequest) returns (ServerMetadataResponse);
  rpc ModelMetadata(ModelMetadataRequest) returns (ModelMetadataResponse);
  rpc ModelInfer(ModelInferRequest) returns (ModelInferResponse);
  rpc ModelConfig(ModelConfigRequest) returns (ModelConfigResponse);
  rpc ModelStatistics(ModelStatisticsRequest) returns (ModelStatisticsResponse);
  rpc RepositoryIndex(RepositoryIndexRequest) returns (RepositoryIndexResponse);
}
message ServerLiveRequest {}
message ServerLiveResponse { bool live = 1; }
message ServerReadyRequest {}
message ServerReadyResponse { bool ready = 1; }
message ModelReadyRequest { string name = 1; string version = 2; }
message ModelReadyResponse { bool ready = 1; }
message ServerMetadataRequest {}
message ServerMetadataResponse { string name = 1; string version = 2; repeated string extensions = 3; }
message ModelMetadataRequest { string name = 1; string version = 2; }
message ModelMetadataResponse {
  message TensorMetadata { string name = 1; string datatype = 2; repeated int64 shape = 3; }
  string name = 1; repeated string versions = 2; string platform = 3;
  repeated TensorMetadata inputs = 4; repeated TensorMetadata outputs = 5;
}
message InferParameter {
  oneof parameter_choice {
    bool bool_param = 1; int64 int64_param = 2; string string_param = 3; double double_param = 4;
    uint64 uint64_param = 5;
  }
}
message InferTensorContents {
  repeated bool bool_contents = 1; repeated int32 int_contents = 2; repeated int64 int64_contents = 3;
  repeated uint32 uint_contents = 4; repeated uint64 uint64_contents = 5; repeated float fp32_contents = 6;
  repeated double fp64_contents = 7; repeated bytes bytes_contents = 8;
}
message ModelInferRequest {
  message InferInputTensor {
    string name = 1; string datatype = 2; repeated int64 shape = 3;
    map<string, InferParameter> parameters = 4; InferTensorContents contents = 5;
  }
  message InferRequestedOutputTensor { string name = 1; map<string, InferParameter> parameters = 2; }
  string model_name = 1; string model_version = 2; string id = 3; map<string, InferParameter> parameters = 4;
  repeated InferInputTensor inputs = 5; repeated InferRequestedOutputTensor outputs = 6;
  repeated bytes raw_input_contents = 7;
}
message ModelInferResponse {
  message InferOutputTensor {
    string name = 1; string datatype = 2; repeated int64 shape = 3;
    map<string, InferParameter> parameters = 4; InferTensorContents contents = 5;
  }
  string model_name = 1; string model_version = 2; string id = 3; map<string, InferParameter> parameters = 4;
  repeated InferOutputTensor outputs = 5; repeated bytes raw_output_contents = 6;
}
message ModelConfigRequest { string name = 1; string version = 2; }
message ModelConfigResponse { ModelConfig config = 1; }
message ModelStatisticsRequest { string name = 1; string version = 2; }
message StatisticDuration { uint64 count = 1; uint64 ns = 2; }
message InferStatistics {
  StatisticDuration success = 1; StatisticDuration fail = 2; StatisticDuration queue = 3;
  StatisticDuration compute_input = 4; StatisticDuration compute_infer = 5; StatisticDuration compute_output = 6;
  StatisticDuration cache_hit = 7; StatisticDuration cache_miss = 8;
}
message InferResponseStatistics {
  StatisticDuration compute_infer = 1; StatisticDuration compute_output = 2; StatisticDuration success = 3;
  StatisticDuration fail = 4; StatisticDuration empty_response = 5; StatisticDuration cancel = 6;
}
message InferBatchStatistics {
  uint64 batch_size = 1; StatisticDuration compute_input = 2; StatisticDuration compute_infer = 3;
  StatisticDuration compute_output = 4;
}
message MemoryUsage { string type = 1; int64 id = 2; uint64 byte_size = 3; }
message ModelStatistics {
  string name = 1; string version = 2; uint64 last_inference = 3; uint64 inference_count = 4;
  uint64 execution_count = 5; InferStatistics inference_stats = 6; repeated InferBatchStatistics batch_stats = 7;
  repeated MemoryUsage memory_usage = 8; map<string, InferResponseStatistics> response_stats = 9;
}
message ModelStatisticsResponse { repeated ModelStatistics model_stats = 1; }
message RepositoryIndexRequest { string repository_name = 1; bool ready = 2; }
message RepositoryIndexResponse {
  message ModelIndex { string name = 1; string version = 2; string state = 3; string reason = 4; }
  repeated ModelIndex models = 1;
}
"""

_FIELD = descriptor_pb2.FieldDescriptorProto
_SCALARS = {"bool": _FIELD.TYPE_BOOL, "int32": _FIELD.TYPE_INT32, "int64": _FIELD.TYPE_INT64,
            "uint32": _FIELD.TYPE_UINT32, "uint64": _FIELD.TYPE_UINT64, "float": _FIELD.TYPE_FLOAT,
            "double": _FIELD.TYPE_DOUBLE, "string": _FIELD.TYPE_STRING, "bytes": _FIELD.TYPE_BYTES}


def _expect(token: str, wanted: str) -> None:
    if token != wanted:
        raise SyntaxError(f"GRPC_SERVICE_PROTO: expected {wanted!r}, found {token!r}")


def _add_field(owner: descriptor_pb2.DescriptorProto, kind: str, name: str, number: int,
               label: int) -> descriptor_pb2.FieldDescriptorProto:
    """A scalar field, or one of a message type named as in the .proto: the pool resolves that name from the
    field's scope outwards, as protoc does, and sets the type."""
    field = owner.field.add(name=name, number=number, label=label)
    if kind in _SCALARS:
        field.type = _SCALARS[kind]
    else:
        field.type_name = kind
    return field


def _message_body(tokens: Iterator[str], owner: descriptor_pb2.DescriptorProto, oneof: int | None = None) -> None:
    """Fields, nested messages and oneofs up to the closing brace. A ``map<K, V>`` field becomes what protoc
    makes of it: a repeated nested ``<Name>Entry`` message marked ``map_entry``, with ``key = 1`` and ``value = 2``."""
    for token in tokens:
        if token == "}":
            return
        if token == "message":
            nested = owner.nested_type.add(name=next(tokens))
            _expect(next(tokens), "{")
            _message_body(tokens, nested)
            continue
        if token == "oneof":
            owner.oneof_decl.add(name=next(tokens))
            _expect(next(tokens), "{")
            _message_body(tokens, owner, len(owner.oneof_decl) - 1)
            continue
        label = _FIELD.LABEL_REPEATED if token == "repeated" else _FIELD.LABEL_OPTIONAL
        kind = next(tokens) if token == "repeated" else token
        if kind == "map":
            _expect(next(tokens), "<")
            key = next(tokens)
            _expect(next(tokens), ",")
            value = next(tokens)
            _expect(next(tokens), ">")
            name = next(tokens)
            entry = owner.nested_type.add(name=name.title().replace("_", "") + "Entry")
            entry.options.map_entry = True
            _add_field(entry, key, "key", 1, _FIELD.LABEL_OPTIONAL)
            _add_field(entry, value, "value", 2, _FIELD.LABEL_OPTIONAL)
            kind, label = entry.name, _FIELD.LABEL_REPEATED
        else:
            name = next(tokens)
        _expect(next(tokens), "=")
        field = _add_field(owner, kind, name, int(next(tokens)), label)
        _expect(next(tokens), ";")
        if oneof is not None:
            field.oneof_index = oneof


def _service_body(tokens: Iterator[str], service: descriptor_pb2.ServiceDescriptorProto) -> None:
    """``rpc Name(Request) returns (Response);`` lines up to the closing brace."""
    for token in tokens:
        if token == "}":
            return
        _expect(token, "rpc")
        method = service.method.add(name=next(tokens))
        _expect(next(tokens), "(")
        method.input_type = next(tokens)
        _expect(next(tokens), ")")
        _expect(next(tokens), "returns")
        _expect(next(tokens), "(")
        method.output_type = next(tokens)
        _expect(next(tokens), ")")
        _expect(next(tokens), ";")


def _grpc_service_file() -> descriptor_pb2.FileDescriptorProto:
    file = descriptor_pb2.FileDescriptorProto(name="dlperf_grpc_service.proto", package="inference", syntax="proto3",
                                              dependency=[ModelConfigMessage.DESCRIPTOR.file.name])
    tokens = iter(re.findall(r"\w+|\S", GRPC_SERVICE_PROTO))
    for keyword in tokens:
        if keyword not in ("message", "service"):
            raise SyntaxError(f"GRPC_SERVICE_PROTO: expected a message or service, found {keyword!r}")
        owner = (file.message_type if keyword == "message" else file.service).add(name=next(tokens))
        _expect(next(tokens), "{")
        (_message_body if keyword == "message" else _service_body)(tokens, owner)
    return file


def _pool() -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    config_file = descriptor_pb2.FileDescriptorProto()
    ModelConfigMessage.DESCRIPTOR.file.CopyToProto(config_file)
    pool.Add(config_file)
    pool.Add(_grpc_service_file())
    return pool


DESCRIPTOR = _pool().FindFileByName("dlperf_grpc_service.proto")
SERVICE = DESCRIPTOR.services_by_name["GRPCInferenceService"]


def message_class(name: str) -> type[message.Message]:
    """The class of a top-level message of :data:`GRPC_SERVICE_PROTO`."""
    return message_factory.GetMessageClass(DESCRIPTOR.message_types_by_name[name])


ModelInferRequest = message_class("ModelInferRequest")
ModelInferResponse = message_class("ModelInferResponse")
