"""A loopback HTTP file server with the faults that downloads meet in the wild.

``http.server.SimpleHTTPRequestHandler`` ignores ``Range``, so it cannot exercise resumption. This server
answers ``Range: bytes=N-`` with 206 Partial Content, can cut bodies short after announcing their full
length, can ignore ``Range`` (answering 200 with the whole file), can fail with a given status, and logs
every request it answered.
"""
from __future__ import annotations

import contextlib
import http.server
import math
import os
import re
import threading
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from dlperf.data.mirror_server import serving_in_thread


@dataclass(frozen=True)
class Served:
    """One request as the server answered it."""

    path: str
    range: str | None  # the request's Range header
    status: int
    body_bytes: int  # bytes actually sent, fewer than Content-Length when truncated


class FileServer(http.server.ThreadingHTTPServer):
    """Serves the files under ``root`` on 127.0.0.1 at an ephemeral port; ``url`` is its base URL."""

    daemon_threads = True

    def __init__(self, root: str | os.PathLike):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root = Path(root).resolve()
        self.url = f"http://127.0.0.1:{self.server_port}"
        self.ignore_range = False
        self.requests: list[Served] = []
        self._truncate_after = 0
        self._truncations_left: float = 0
        self._failure_status = 0
        self._failures_left: float = 0
        self._lock = threading.Lock()

    def truncate(self, after_bytes: int, times: float = math.inf) -> None:
        """Send only the first ``after_bytes`` of the next ``times`` bodies, then close the connection."""
        with self._lock:
            self._truncate_after, self._truncations_left = after_bytes, times

    def fail(self, status: int, times: float = math.inf) -> None:
        """Answer the next ``times`` requests with ``status`` instead of the file."""
        with self._lock:
            self._failure_status, self._failures_left = status, times

    def _take_failure(self) -> int | None:
        """The status to fail this request with, if a failure is pending."""
        with self._lock:
            if self._failures_left <= 0:
                return None
            self._failures_left -= 1
            return self._failure_status

    def _take_truncation(self) -> int | None:
        """How many body bytes to send before closing, if a truncation is pending."""
        with self._lock:
            if self._truncations_left <= 0:
                return None
            self._truncations_left -= 1
            return self._truncate_after

    def _record(self, served: Served) -> None:
        """Append to the request log; handler threads run concurrently."""
        with self._lock:
            self.requests.append(served)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: FileServer

    def do_GET(self) -> None:
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        range_header = self.headers.get("Range")
        if status := self.server._take_failure():
            self._reply(status, b"", path, range_header)
            return
        file = (self.server.root / path.lstrip("/")).resolve()
        if not file.is_relative_to(self.server.root) or not file.is_file():
            self._reply(404, b"not found", path, range_header)
            return
        data = file.read_bytes()
        wanted = re.fullmatch(r"bytes=(\d+)-", range_header or "")
        if wanted is None or self.server.ignore_range:
            self._reply(200, data, path, range_header)
            return
        start = int(wanted[1])
        if start >= len(data):
            self._reply(416, b"", path, range_header, {"Content-Range": f"bytes */{len(data)}"})
            return
        content_range = f"bytes {start}-{len(data) - 1}/{len(data)}"
        self._reply(206, data[start:], path, range_header, {"Content-Range": content_range})

    def _reply(self, status: int, body: bytes, path: str, range_header: str | None, headers=None) -> None:
        """Announce the whole ``body`` but send it cut short when a truncation is pending.

        The request is logged before anything is sent, so a client that has its answer always finds
        it in ``FileServer.requests``.
        """
        limit = self.server._take_truncation() if status in (200, 206) else None
        sent = body if limit is None else body[:limit]
        self.server._record(Served(path, range_header, status, len(sent)))
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(sent)
        self.close_connection = True

    def log_message(self, format: str, *args) -> None:
        """Keep test output clean; ``FileServer.requests`` is the log."""


@contextlib.contextmanager
def serve_directory(root: str | os.PathLike) -> Iterator[FileServer]:
    """Run a ``FileServer`` for ``root`` in a thread for the duration of the ``with`` block."""
    with serving_in_thread(FileServer(root)) as server:
        yield server
