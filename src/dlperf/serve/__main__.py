"""``python -m dlperf.serve``: serve a model repository until interrupted (Ctrl-C or SIGTERM).

Prints ``Listening at: http://HOST:PORT`` on stdout once the socket accepts connections, as ORT server
logged it; with ``--port 0`` that line is how a caller learns the port.
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys

from .repository import ModelRepository, ServingOptions
from .server import MAX_BODY_BYTES, InferenceServer


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m dlperf.serve", description=__doc__.splitlines()[0])
    parser.add_argument("--model-repository", required=True, help="<root>/<model>/<version>/model.onnx")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    parser.add_argument("--port", type=int, default=8001, help="0 picks a free port (default: 8001)")
    parser.add_argument("--max-batch-size", type=int, default=8,
                        help="rows per merged batch, unless a model's config.pbtxt sets max_batch_size")
    parser.add_argument("--max-delay-ms", type=float, default=0.0,
                        help="how long a batch of requests that queued while the model was busy may wait, from its "
                             "oldest request's arrival, for more to fill it, unless a model's config.pbtxt has a "
                             "dynamic_batching block (default 0; a request that finds the model idle never waits)")
    parser.add_argument("--no-batching", action="store_true", help="run every request on its own")
    parser.add_argument("--max-body-bytes", type=int, default=MAX_BODY_BYTES,
                        help="larger request bodies are answered 413 (default: 25 MiB, as ORT server)")
    parser.add_argument("--default-model", help="model served by /score and the name 'default' "
                                                "(default: the only model, if there is one)")
    parser.add_argument("--intra-op-threads", type=int, default=0,
                        help="onnxruntime threads per run (default 0: all cores)")
    parser.add_argument("--instances", type=int, default=1,
                        help="runs of one batching model version in flight at once (Triton's instance_group count)")
    parser.add_argument("--providers", default="CPUExecutionProvider",
                        help="comma-separated onnxruntime execution providers, in order of preference")
    parser.add_argument("--exit-on-error", default="true", choices=["true", "false"],
                        help="refuse to start when a model or its config.pbtxt fails to load (default); with false, "
                             "serve the others and list it as UNAVAILABLE, as Triton's --exit-on-error=false")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
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
        server = InferenceServer(repository, args.host, args.port, args.max_body_bytes)
    except OSError as error:
        repository.close()
        sys.exit(f"error: cannot listen on {args.host}:{args.port}: {error.strerror or error}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"Listening at: {server.url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        repository.close()


if __name__ == "__main__":
    main()
