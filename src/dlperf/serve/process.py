"""``python -m dlperf.serve`` as a child process: started on a free port, waited for, always stopped."""
from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator

import psutil

from .client import OrtServerClient

SRC = Path(__file__).resolve().parents[2]  # the directory holding the dlperf package


@dataclass(frozen=True)
class RunningServer:
    """A started server: its base URL, its gRPC targets (``host:port``; None when off), its process id and the
    process (to signal it, or read its exit code)."""

    url: str
    pid: int
    process: subprocess.Popen | None = None
    grpc: str | None = None
    ort_grpc: str | None = None

    def cpu_seconds(self) -> float:
        """CPU time the server process has used so far, all its threads, user and system: a benchmark's
        difference of two readings over the wall time between them is the cores the server kept busy."""
        times = psutil.Process(self.pid).cpu_times()
        return times.user + times.system


@contextlib.contextmanager
def server_process(repository: str | os.PathLike, *args: str, host: str = "127.0.0.1",
                   log: IO[str] | None = None, start_timeout: float = 120) -> Iterator[RunningServer]:
    """Serve ``repository`` with ``python -m dlperf.serve --port 0 *args`` (gRPC on free ports too, unless ``args``
    say otherwise); yield it once ``GET /`` answers
    ``Healthy``. The server's output goes to ``log`` (discarded if None); it is terminated on exit (killed if
    it does not stop within 10 s), whatever happened inside the block."""
    with server_processes(repository, [list(args)], host=host, log=log, start_timeout=start_timeout) as (server,):
        yield server


@contextlib.contextmanager
def server_processes(repository: str | os.PathLike, arguments: list[list[str]], host: str = "127.0.0.1",
                     log: IO[str] | None = None, start_timeout: float = 120) -> Iterator[list[RunningServer]]:
    """:func:`server_process` for several servers of ``repository``, one for each list of ``arguments``: started
    together and yielded once every one is healthy, stopped together, so that a pair costs about the start and the
    stop of one."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
    processes: list[subprocess.Popen] = []
    try:
        for args in arguments:
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "dlperf.serve", "--model-repository", str(repository), "--host", host,
                 "--port", "0", "--grpc-port", "0", "--ort-grpc-port", "0", *args],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env))
        yield [_healthy(process, log, start_timeout) for process in processes]
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _healthy(process: subprocess.Popen, log: IO[str] | None, start_timeout: float) -> RunningServer:
    """The started server, once it listens and ``GET /`` answers ``Healthy``."""
    url, grpc_targets = _listening_url(process, log, start_timeout)
    client = OrtServerClient(url, timeout=5)
    deadline = time.monotonic() + start_timeout
    while not client.health():
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError(f"the server at {url} never answered GET / with Healthy")
        time.sleep(0.05)
    return RunningServer(url, process.pid, process, grpc_targets.get("KServe V2"), grpc_targets.get("ORT server"))


def _listening_url(process: subprocess.Popen, log: IO[str] | None, timeout: float) -> tuple[str, dict[str, str]]:
    """Read the server's output up to its ``Listening at: URL`` line, then keep draining it in a thread; the URL,
    and the ``gRPC (<protocol>) listening at: host:port`` lines before it as ``{protocol: target}``."""
    lines: list[str] = []
    timer = threading.Timer(timeout, process.kill)  # a server that hangs before listening must not hang us
    timer.start()
    try:
        for line in process.stdout:
            lines.append(line)
            if log is not None:
                log.write(line)
            if found := re.match(r"Listening at: (http://\S+)", line):
                break
        else:
            raise RuntimeError("the server exited before listening:\n" + "".join(lines[-50:]))
    finally:
        timer.cancel()

    def drain() -> None:
        for line in process.stdout:
            if log is not None:
                log.write(line)

    threading.Thread(target=drain, daemon=True).start()
    grpc_lines = (re.match(r"gRPC \((.+)\) listening at: (\S+)", line) for line in lines)
    return found[1], {match[1]: match[2] for match in grpc_lines if match}
