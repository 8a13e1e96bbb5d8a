"""The OpenAPI 3 description of the server's HTTP API, served at ``GET /openapi.json``.

It is generated from the live repository so that the ``name`` and ``version`` path parameters enumerate
what is actually served: a fuzzer reading it (the tests run schemathesis against it) then reaches the
inference code with real model names instead of stopping at 404s. Every status the server can answer for a
documented operation is listed, so "undocumented status" is a finding, not noise.
"""
from __future__ import annotations

from typing import Any

from .dtypes import BY_KSERVE
from .kserve import HEADER_LENGTH
from .ort_protocol import JSON, PROTOBUF_TYPES

_BINARY = {"schema": {"type": "string", "format": "binary"}}
_INT64 = {"anyOf": [{"type": "integer"}, {"type": "string", "pattern": "^-?[0-9]+$"}]}
_FLOAT = {"anyOf": [{"type": "number"}, {"type": "string", "enum": ["NaN", "Infinity", "-Infinity"]}]}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _array(items: dict) -> dict:
    return {"type": "array", "items": items}


_SCHEMAS: dict[str, Any] = {
    "TensorProto": {
        "description": "onnx.TensorProto in protobuf's JSON mapping (lowerCamelCase, int64 as strings, "
                       "bytes as base64).",
        "type": "object",
        "properties": {
            "dims": _array(_INT64),
            "dataType": {"type": "integer", "description": "onnx.TensorProto.DataType, e.g. 1 = FLOAT"},
            "rawData": {"type": "string", "format": "byte"},
            "floatData": _array(_FLOAT),
            "int32Data": _array({"type": "integer"}),
            "int64Data": _array(_INT64),
            "doubleData": _array(_FLOAT),
            "uint64Data": _array(_INT64),
            "stringData": _array({"type": "string", "format": "byte"}),
            "dataLocation": {"anyOf": [{"type": "string", "enum": ["DEFAULT", "EXTERNAL"]}, {"type": "integer"}]},
            "name": {"type": "string"},
        },
    },
    "PredictRequest": {
        "type": "object",
        "properties": {
            "inputs": {"type": "object", "additionalProperties": _ref("TensorProto")},
            "outputFilter": _array({"type": "string"}),
        },
    },
    "PredictResponse": {
        "type": "object",
        "required": ["outputs"],
        "properties": {"outputs": {"type": "object", "additionalProperties": _ref("TensorProto")}},
    },
    "OrtError": {
        "type": "object",
        "required": ["error_code", "error_message"],
        "properties": {"error_code": {"type": "integer"}, "error_message": {"type": "string"}},
    },
    "KServeError": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
    "InferInput": {
        "type": "object",
        "required": ["name", "shape", "datatype"],
        "properties": {
            "name": {"type": "string"},
            "shape": _array({"type": "integer", "minimum": 0}),
            "datatype": {"type": "string", "enum": sorted(BY_KSERVE)},
            "parameters": {"type": "object", "properties": {"binary_data_size": {"type": "integer", "minimum": 0}}},
            "data": {"type": "array", "description": "row-major elements, flat or nested"},
        },
    },
    "InferRequest": {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "parameters": {"type": "object", "properties": {"binary_data_output": {"type": "boolean"}}},
            "inputs": _array(_ref("InferInput")),
            "outputs": _array({
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string"},
                    "parameters": {"type": "object", "properties": {"binary_data": {"type": "boolean"}}},
                },
            }),
        },
    },
    "InferResponse": {
        "type": "object",
        "required": ["model_name", "model_version", "outputs"],
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "outputs": _array(_ref("InferInput")),
        },
    },
    "TensorMetadata": {
        "type": "object",
        "required": ["name", "datatype", "shape"],
        "properties": {
            "name": {"type": "string"},
            "datatype": {"type": "string"},
            "shape": _array({"type": "integer", "minimum": -1}),
        },
    },
    "ModelMetadata": {
        "type": "object",
        "required": ["name", "versions", "platform", "inputs", "outputs"],
        "properties": {
            "name": {"type": "string"},
            "versions": _array({"type": "string"}),
            "platform": {"type": "string"},
            "inputs": _array(_ref("TensorMetadata")),
            "outputs": _array(_ref("TensorMetadata")),
        },
    },
    "ServerMetadata": {
        "type": "object",
        "required": ["name", "version", "extensions"],
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "extensions": _array({"type": "string"}),
        },
    },
    "ModelStats": {
        "type": "object",
        "required": ["model_stats"],
        "properties": {"model_stats": _array({
            "type": "object",
            "required": ["name", "version", "inference_count", "execution_count"],
            "properties": {
                "name": {"type": "string"},
                "version": {"type": "string"},
                "last_inference": {"type": "integer"},
                "inference_count": {"type": "integer", "description": "rows inferred"},
                "execution_count": {"type": "integer", "description": "onnxruntime runs (merged batches)"},
                "inference_stats": {"type": "object"},
                "batch_stats": _array({"type": "object"}),
            },
        })},
    },
}

_REQUEST_ID = {"x-ms-request-id": {"schema": {"type": "string", "format": "uuid"},
                                   "description": "a new UUID for every response"}}


_SCHEMAS["ModelConfig"] = {"type": "object", "required": ["name", "platform", "max_batch_size", "input", "output"]}
_SCHEMAS["RepositoryIndex"] = _array({"type": "object", "required": ["name", "state"], "properties": {
    "name": {"type": "string"}, "version": {"type": "string"},
    "state": {"type": "string", "enum": ["READY", "UNAVAILABLE"]}, "reason": {"type": "string"}}})


def _json(schema: str, description: str) -> dict:
    return {"description": description, "headers": _REQUEST_ID, "content": {JSON: {"schema": _ref(schema)}}}


def _path_parameters(names: list[str], versions: list[str] | None) -> list[dict]:
    parameters = [{"name": "name", "in": "path", "required": True, "schema": {"type": "string", "enum": names}}]
    if versions is not None:
        parameters.append({"name": "version", "in": "path", "required": True,
                           "schema": {"type": "string", "enum": versions}})
    return parameters


def _predict(summary: str, parameters: list[dict]) -> dict:
    client_id = {"name": "x-ms-client-request-id", "in": "header", "required": False,
                 "schema": {"type": "string"}, "description": "echoed in the response"}
    binary_response = {media: _BINARY for media in PROTOBUF_TYPES}
    return {"post": {
        "summary": summary,
        "description": "ONNX Runtime Server predict. The request Content-Type picks JSON or binary "
                       "protobuf; Accept picks the response's (*/* means protobuf; absent means the "
                       "request's). `:classify` and `:regress` are accepted as aliases of `:predict`.",
        "parameters": parameters + [client_id],
        "requestBody": {"required": True, "content": {JSON: {"schema": _ref("PredictRequest")},
                                                      **{media: _BINARY for media in PROTOBUF_TYPES}}},
        "responses": {
            "200": {"description": "the outputs", "headers": _REQUEST_ID,
                    "content": {JSON: {"schema": _ref("PredictResponse")}, **binary_response}},
            "400": _json("OrtError", "malformed body, wrong inputs, or a missing/unknown Content-Type or Accept"),
            "404": _json("OrtError", "unknown model or version"),
            "413": _json("OrtError", "body larger than the server's limit"),
        },
    }}


def _v2_get(summary: str, parameters: list[dict], schema: str | None) -> dict:
    responses = {"200": _json(schema, summary) if schema else {"description": summary, "headers": _REQUEST_ID}}
    if parameters:
        responses["404"] = _json("KServeError", "unknown model or version")
    return {"get": {"summary": summary, "parameters": parameters, "responses": responses}}


def _v2_infer(parameters: list[dict]) -> dict:
    header_length = {"name": HEADER_LENGTH, "in": "header", "required": False,
                     "schema": {"type": "integer", "minimum": 0},
                     "description": "length of the JSON part when binary tensors follow it"}
    return {"post": {
        "summary": "KServe V2 inference (JSON tensors or the binary tensor data extension)",
        "parameters": parameters + [header_length],
        "requestBody": {"required": True, "content": {JSON: {"schema": _ref("InferRequest")},
                                                      "application/octet-stream": _BINARY}},
        "responses": {
            "200": {"description": "the outputs; binary ones follow the JSON part", "headers": _REQUEST_ID,
                    "content": {JSON: {"schema": _ref("InferResponse")}, "application/octet-stream": _BINARY}},
            "400": _json("KServeError", "malformed body or wrong inputs"),
            "404": _json("KServeError", "unknown model or version"),
            "413": _json("KServeError", "body larger than the server's limit"),
        },
    }}


def openapi_document(models: dict[str, list[int]], default_model: str | None) -> dict:
    """The API description for a server whose repository holds ``models`` (name → versions)."""
    names = list(models)
    versions = sorted({str(v) for model_versions in models.values() for v in model_versions}, key=int)
    ort_names = names + (["default"] if default_model and "default" not in names else [])
    paths: dict[str, Any] = {
        "/": {"get": {"summary": "ONNX Runtime Server liveness probe",
                      "responses": {"200": {"description": "alive", "headers": _REQUEST_ID,
                                            "content": {"text/plain": {"schema": {"type": "string",
                                                                                  "enum": ["Healthy"]}}}}}}},
        "/score": _predict(f"predict with the default model ({default_model or 'none: several models'})", []),
        "/v1/models/{name}:predict": _predict("predict with the highest version",
                                              _path_parameters(ort_names, None)),
        "/v1/models/{name}/versions/{version}:predict": _predict("predict with one version",
                                                                 _path_parameters(ort_names, versions)),
        "/openapi.json": {"get": {"summary": "this document", "responses": {
            "200": {"description": "OpenAPI 3 document", "content": {JSON: {"schema": {"type": "object"}}}}}}},
        "/v2": _v2_get("server metadata", [], "ServerMetadata"),
        "/v2/health/live": _v2_get("the server is live", [], None),
        "/v2/health/ready": _v2_get("every model is loaded", [], None),
    }
    for prefix, with_version in (("/v2/models/{name}", False), ("/v2/models/{name}/versions/{version}", True)):
        parameters = _path_parameters(names, versions if with_version else None)
        paths[prefix] = _v2_get("model metadata", parameters, "ModelMetadata")
        paths[prefix + "/ready"] = _v2_get("the model is ready", parameters, None)
        paths[prefix + "/stats"] = _v2_get("inference statistics (Triton's statistics extension)",
                                           parameters, "ModelStats")
        paths[prefix + "/config"] = _v2_get("the model's configuration (Triton's JSON form)", parameters,
                                            "ModelConfig")
        paths[prefix + "/infer"] = _v2_infer(parameters)
    text = {"text/plain": {"schema": {"type": "string"}}}
    paths["/metrics"] = {"get": {"summary": "Prometheus metrics per model version (Triton's names)", "responses": {
        "200": {"description": "text exposition format 0.0.4", "content": text}}}}
    paths["/v2/repository/index"] = {"post": {
        "summary": "every model version and its state (Triton's repository extension); the body is ignored",
        "responses": {"200": _json("RepositoryIndex", "READY models, and UNAVAILABLE ones with the reason")}}}
    return {
        "openapi": "3.0.3",
        "info": {"title": "dlperf.serve", "version": "1",
                 "description": "ONNX Runtime Server HTTP API and KServe V2 inference protocol on onnxruntime."},
        "paths": paths,
        "components": {"schemas": _SCHEMAS},
    }
