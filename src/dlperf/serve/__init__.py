"""An inference server on onnxruntime that existing clients can talk to, and a client for it.

It serves a Triton-layout model repository (``<root>/<model>/<version>/model.onnx``) over two HTTP
protocols at once (uvicorn, ``server.py`` and ``app.py``), and both again over gRPC on ports of their own
(``grpc_server.py``):

* the ONNX Runtime Server API (``GET /``, ``POST /v1/models/{name}[/versions/{n}]:predict``,
  ``POST /score``; PredictRequest/PredictResponse as binary protobuf or JSON), which the onnx tutorials'
  client code speaks;
* KServe V2 / the Open Inference Protocol (``/v2/...``, JSON tensors and Triton's binary tensor
  extension), which ``tritonclient.http`` speaks;

with dynamic batching of concurrent requests and an OpenAPI description at ``GET /openapi.json``.
Start it with ``python -m dlperf.serve --model-repository PATH``.
"""
from .client import KServeClient, OrtServerClient, ServerError
from .errors import ServeError
from .repository import ModelRepository, ModelVersion, ServingOptions
from .server import MAX_BODY_BYTES, InferenceServer

__all__ = [
    "InferenceServer",
    "KServeClient",
    "MAX_BODY_BYTES",
    "ModelRepository",
    "ModelVersion",
    "OrtServerClient",
    "ServeError",
    "ServerError",
    "ServingOptions",
]
