"""``python -m dlperf.serve``: serve a model repository until interrupted (Ctrl-C or SIGTERM).

Prints ``Listening at: http://HOST:PORT`` on stdout once the socket accepts connections, as ORT server
logged it; with ``--port 0`` that line is how a caller learns the port. A SIGTERM or SIGINT while the models load,
before anything is served, stops the start with exit status 0, as the drain does once the server serves.
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys

from .app import Limits
from .grpc_server import start_grpc
from .repository import ModelRepository, ServingOptions
from .server import MAX_BODY_BYTES, InferenceServer, ServerLimits


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m dlperf.serve", description=__doc__.splitlines()[0])
    parser.add_argument("--model-repository", required=True, help="<root>/<model>/<version>/model.onnx")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    parser.add_argument("--port", type=_tcp_port, default=8001, help="0 picks a free port (default: 8001)")
    parser.add_argument("--grpc-port", type=_port, default=8081,
                        help="KServe V2 over gRPC (Triton's GRPCInferenceService); 0 picks a free port, 'off' serves "
                             "none (default: 8081, KServe's)")
    parser.add_argument("--ort-grpc-port", type=_port, default=50051,
                        help="ONNX Runtime Server's PredictionService over gRPC; 0 or 'off' as above (default: 50051, "
                             "ORT server's)")
    parser.add_argument("--max-batch-size", type=int, default=8,
                        help="rows per merged batch, unless a model's config.pbtxt sets max_batch_size")
    parser.add_argument("--max-delay-ms", type=float, default=0.0,
                        help="how long a batch of requests that queued while the model was busy may wait, from its "
                             "oldest request's arrival, for more to fill it, unless a model's config.pbtxt has a "
                             "dynamic_batching block (default 0; a request that finds the model idle never waits)")
    parser.add_argument("--no-batching", action="store_true", help="run every request on its own")
    parser.add_argument("--max-body-bytes", type=int, default=MAX_BODY_BYTES,
                        help="larger request bodies are answered 413 (default: 25 MiB, as ORT server)")
    parser.add_argument("--max-json-bytes", type=int, default=Limits.max_json_bytes,
                        help="larger JSON bodies are answered 413: parsing JSON tensors costs about ten times their "
                             "size in memory (default: 8 MiB; binary bodies go to --max-body-bytes)")
    parser.add_argument("--inflight-bytes", type=int, default=Limits.inflight_bytes,
                        help="request bodies held at once, all connections together; a body that does not fit waits "
                             "up to 10 s, then gets 503 (default: 100 MiB)")
    parser.add_argument("--body-timeout", type=float, default=Limits.body_timeout,
                        help="seconds from a request's headers to the end of its body before a 408 (default: 30)")
    parser.add_argument("--header-timeout", type=float, default=ServerLimits.header_timeout,
                        help="seconds a request's headers may take to arrive before a 408 (default: 10)")
    parser.add_argument("--keep-alive", type=float, default=ServerLimits.keep_alive,
                        help="seconds an idle kept-alive connection stays open (default: 30)")
    parser.add_argument("--linger", type=float, default=ServerLimits.linger,
                        help="seconds a connection closed before its request has all come (a refused upload, an "
                             "answer before the body) reads and drops the rest, so that its client reads the answer "
                             "and not a reset (default: 5)")
    parser.add_argument("--limit-concurrency", type=int, default=ServerLimits.limit_concurrency,
                        help="connections at once; a request past it is answered 503 (default: 1000)")
    parser.add_argument("--lame-duck", type=float, default=ServerLimits.lame_duck,
                        help="on SIGTERM, seconds to go on serving with readiness false before closing the listener, "
                             "for a load balancer to notice (default: 0)")
    parser.add_argument("--drain-timeout", type=float, default=ServerLimits.drain_timeout,
                        help="on SIGTERM, seconds in-flight requests get to finish before they are cancelled "
                             "(default: 30)")
    parser.add_argument("--event-loops", type=_positive, default=ServerLimits.event_loops,
                        help="HTTP event loops that serve connections, each in its own thread; one more, the main "
                             "thread's, accepts and hands each connection to the loop with the fewest. A request "
                             "to a free model whose runs are short runs on its loop, without a hop to the thread pool "
                             f"(default: the cores this process may use, at most 8: {ServerLimits.event_loops} here)")
    parser.add_argument("--default-model", help="model served by /score and the name 'default' "
                                                "(default: the only model, if there is one)")
    parser.add_argument("--intra-op-threads", type=int, default=0,
                        help="onnxruntime threads per run (default 0: all cores)")
    parser.add_argument("--instances", type=_positive, default=1,
                        help="runs of one batching model version in flight at once (Triton's instance_group count)")
    parser.add_argument("--providers", default="CPUExecutionProvider",
                        help="comma-separated onnxruntime execution providers, in order of preference")
    parser.add_argument("--exit-on-error", default="true", choices=["true", "false"],
                        help="refuse to start when a model or its config.pbtxt fails to load (default); with false, "
                             "serve the others and list it as UNAVAILABLE, as Triton's --exit-on-error=false")
    parser.add_argument("--strict-readiness", default="true", choices=["true", "false"],
                        help="ready (/v2/health/ready, gRPC ServerReady) only while every model is (default), as "
                             "Triton's --strict-readiness; with false, ready while the server serves any model")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for stopping in (signal.SIGINT, signal.SIGTERM):   # until serve_forever puts in the drain's handlers
        signal.signal(stopping, _stop_starting)
    options = ServingOptions(
        max_batch_size=args.max_batch_size,
        max_delay_ms=args.max_delay_ms,
        batching=not args.no_batching,
        intra_op_threads=args.intra_op_threads,
        instances=args.instances,
        providers=tuple(p.strip() for p in args.providers.split(",") if p.strip()),
    )
    try:
        repository = ModelRepository(args.model_repository, options, args.default_model,
                                     exit_on_error=args.exit_on_error == "true")
    except (OSError, ValueError) as error:   # a model, its config.pbtxt or the repository itself: the file is named
        sys.exit(f"error: {error}")
    try:
        server = InferenceServer(repository, args.host, args.port, limits=_limits(args), server_limits=ServerLimits(
            limit_concurrency=args.limit_concurrency, header_timeout=args.header_timeout, keep_alive=args.keep_alive,
            linger=args.linger, lame_duck=args.lame_duck, drain_timeout=args.drain_timeout,
            event_loops=args.event_loops), strict_readiness=args.strict_readiness == "true")
    except OSError as error:
        repository.close()
        sys.exit(f"error: cannot listen on {args.host}:{args.port}: {error.strerror or error}")
    try:
        grpc = start_grpc(repository, args.host, args.grpc_port, args.ort_grpc_port,
                          ready=server.app.ready, max_message_bytes=args.max_body_bytes)
    except OSError as error:
        server.server_close()
        repository.close()
        sys.exit(f"error: {error}")
    if grpc.kserve_port is not None:
        print(f"gRPC (KServe V2) listening at: {args.host}:{grpc.kserve_port}", flush=True)
    if grpc.ort_port is not None:
        print(f"gRPC (ORT server) listening at: {args.host}:{grpc.ort_port}", flush=True)
    print(f"Listening at: {server.url}", flush=True)   # last: a caller waits for this line
    try:
        server.serve_forever()   # until SIGTERM or SIGINT, which drain it
    finally:
        grpc.stop(args.drain_timeout)
        server.server_close()
        repository.close()


def _stop_starting(signum: int, frame) -> None:
    """A stop asked for before the server serves: nothing is in flight, so it ends the start at once, with exit 0
    (a killed start-up was status -15, and Ctrl-C a KeyboardInterrupt traceback)."""
    logging.getLogger("dlperf.serve").info("stopped by %s before serving", signal.Signals(signum).name)
    raise SystemExit(0)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _tcp_port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:   # grpcio wraps a larger one round (70000 listened on 4464)
        raise argparse.ArgumentTypeError(f"a TCP port is 0 to 65535, not {value}")
    return value


def _port(text: str) -> int | None:
    return None if text == "off" else _tcp_port(text)


def _limits(args: argparse.Namespace) -> Limits:
    return Limits(max_body_bytes=args.max_body_bytes, max_json_bytes=args.max_json_bytes,
                  inflight_bytes=args.inflight_bytes, body_timeout=args.body_timeout)


if __name__ == "__main__":
    main()
