"""The rehearsal mirror's HTTP server: files under a root on 127.0.0.1, with ``Range`` and chosen failures.

``http.server.SimpleHTTPRequestHandler`` would do but for two things the rehearsal needs: resuming (``Range:
bytes=N-`` answered with 206, as the real hosts do) and failing chosen paths with a status (404 for an image gone
from the bucket, 500 for a flaky one), so that the workflow's failure paths run against a real server too.
"""
from __future__ import annotations

import contextlib
import http.server
import re
import threading
import urllib.parse
from pathlib import Path
from typing import Mapping

CHUNK = 1 << 20


class MirrorServer(http.server.ThreadingHTTPServer):
    """Serves ``root`` at ``host:port`` (port 0: any free one; ``url`` says which); ``failures`` maps request paths
    (``/host/path``) to the status to answer them with, and may be changed while serving."""

    daemon_threads = True

    def __init__(self, root: str | Path, host: str = "127.0.0.1", port: int = 0,
                 failures: Mapping[str, int] | None = None):
        super().__init__((host, port), _Handler)
        self.root = Path(root).resolve()
        self.failures = dict(failures or {})
        self.url = f"http://{host}:{self.server_port}"
        self.served: list[tuple[str, int]] = []  # (path, status) of every request, in order
        self._lock = threading.Lock()

    def record(self, path: str, status: int) -> None:
        with self._lock:
            self.served.append((path, status))


class _Handler(http.server.BaseHTTPRequestHandler):
    server: MirrorServer

    def do_GET(self) -> None:
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        if status := self.server.failures.get(path):
            return self._status(path, status)
        file = (self.server.root / path.lstrip("/")).resolve()
        if not file.is_relative_to(self.server.root) or not file.is_file():
            return self._status(path, 404)
        size = file.stat().st_size
        start = 0
        wanted = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if wanted:
            start = int(wanted[1])
            if start >= size:
                return self._status(path, 416, {"Content-Range": f"bytes */{size}"})
        self.server.record(path, 206 if wanted else 200)
        self.send_response(206 if wanted else 200)
        if wanted:
            self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        self.send_header("Content-Length", str(size - start))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        with open(file, "rb") as fh:
            fh.seek(start)
            while chunk := fh.read(CHUNK):
                self.wfile.write(chunk)

    def _status(self, path: str, status: int, headers: Mapping[str, str] | None = None) -> None:
        self.server.record(path, status)
        body = f"{status} {path}\n".encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:
        """Quiet: ``MirrorServer.served`` is the log."""


@contextlib.contextmanager
def serving_in_thread(server):
    """Run ``server`` (a socketserver) in a thread for the duration of the ``with`` block, then close it."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def serving(root: str | Path, failures: Mapping[str, int] | None = None, port: int = 0):
    """A ``MirrorServer`` of ``root`` in a thread for the duration of the ``with`` block."""
    return serving_in_thread(MirrorServer(root, port=port, failures=failures))


def serve_forever(root: str | Path, url: str, failures: Mapping[str, int] | None = None) -> None:
    """Serve ``root`` at the host and port of ``url`` until interrupted."""
    parts = urllib.parse.urlsplit(url)
    server = MirrorServer(root, parts.hostname or "127.0.0.1", parts.port or 80, failures)
    print(f"serving {root} at {server.url}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    server.server_close()
