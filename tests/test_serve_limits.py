"""dlperf.serve under connection-level abuse and shutdown (issue 22): slow and oversized request heads, slow
bodies, more connections than allowed, a burst of 500 connections, a crowd of large JSON bodies, and SIGTERM
with requests in flight. Each of these held, reset or exhausted the hand-written ThreadingHTTPServer.

Servers run for real on 127.0.0.1, in process where only the network matters and as ``python -m dlperf.serve``
where the process's memory or exit is what is measured.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import psutil
import pytest

from dlperf.serve import KServeClient
from dlperf.serve.grpc_client import KServeGrpcClient
from dlperf.serve.protocol import DeadlineProtocol
from serve_fixtures import (Limits, ServerLimits, read_responses, running_server, server_process, tiny_ssd,
                            write_repository)

MODEL = "tiny_ssd"
READY = b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.fixture(scope="module")
def repository(tmp_path_factory) -> Path:
    return write_repository(tmp_path_factory.mktemp("models"), {MODEL: {1: tiny_ssd(seed=1)}})


def connect(server) -> socket.socket:
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=30)


def read_until_closed(conn: socket.socket) -> bytes:
    chunks = []
    while chunk := conn.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def read_answer(conn: socket.socket) -> tuple[int, bytes]:
    """One response off a kept-alive connection: its status and head."""
    status, head, _ = read_responses(conn, 1)[0]
    return status, head


def test_a_request_head_that_trickles_in_is_cut_off_at_the_header_deadline(repository):
    with running_server(repository, server_limits=ServerLimits(header_timeout=0.5)) as live:
        slow = [connect(live) for _ in range(20)]
        idle = connect(live)
        started = time.monotonic()
        for byte in b"GET":   # slowloris: a header byte every 0.1 s, then nothing
            for conn in slow:
                conn.sendall(bytes([byte]))
            time.sleep(0.1)
        answers = [read_until_closed(conn) for conn in slow + [idle]]
        elapsed = time.monotonic() - started
        assert all(a.startswith(b"HTTP/1.1 408") for a in answers), answers[0]
        assert elapsed < 3, f"slow heads held their connections {elapsed:.1f} s against a 0.5 s deadline"
        # a kept-alive connection is idle, not slow: it lives past the header deadline until its next request
        kept = connect(live)
        kept.sendall(READY)
        assert read_answer(kept)[0] == 200
        time.sleep(1.0)
        kept.sendall(READY)
        assert read_answer(kept)[0] == 200


def test_an_oversized_request_head_gets_431(repository):
    with running_server(repository, server_limits=ServerLimits(max_header_bytes=8192)) as live:
        conn = connect(live)
        conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Filler: " + b"a" * 20000 + b"\r\n\r\n")
        assert read_until_closed(conn).startswith(b"HTTP/1.1 431")
        assert KServeClient(live.url).ready()


def test_a_body_that_stalls_gets_408_and_its_connection_closed(repository):
    with running_server(repository, limits=Limits(body_timeout=0.5)) as live:
        conn = connect(live)
        started = time.monotonic()
        conn.sendall(f"POST /v2/models/{MODEL}/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n".encode()
                     + b"{" * 10)
        answer = read_until_closed(conn)
        assert answer.startswith(b"HTTP/1.1 408") and b"connection: close" in answer.lower()
        assert time.monotonic() - started < 3
        assert "10 of 1000 bytes" in json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]


def test_connections_past_the_concurrency_limit_get_503_and_the_server_recovers(repository):
    with running_server(repository, server_limits=ServerLimits(limit_concurrency=4)) as live:
        held = [connect(live) for _ in range(4)]
        time.sleep(0.2)
        extra = connect(live)
        extra.sendall(READY)
        assert read_answer(extra)[0] == 503
        for conn in held + [extra]:
            conn.close()
        time.sleep(0.2)
        assert KServeClient(live.url).ready()


async def _burst(host: str, port: int, count: int) -> list[int | str]:
    """Open ``count`` connections at once, then ask on each: every one must be accepted and answered."""
    async def connect_one():
        try:
            return await asyncio.open_connection(host, port)
        except OSError as error:
            return type(error).__name__

    async def ask(connection) -> int | str:
        if isinstance(connection, str):
            return connection
        reader, writer = connection
        try:
            writer.write(b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            await writer.drain()
            answer = await reader.read()
            return int(answer.split()[1]) if answer else "closed unanswered"
        except OSError as error:
            return type(error).__name__
        finally:
            writer.close()

    connections = await asyncio.gather(*(connect_one() for _ in range(count)))
    return await asyncio.gather(*(ask(c) for c in connections))


def test_a_burst_of_500_connections_is_answered_without_a_reset(repository):
    with running_server(repository) as live:
        host, port = live.url.removeprefix("http://").rsplit(":", 1)
        results = asyncio.run(_burst(host, int(port), 500))
    failures = [r for r in results if r != 200]
    assert not failures, f"{len(failures)} of 500 failed: {sorted(set(map(str, failures)))}"


def _rss_peak(pid: int, stop: threading.Event, peak: list[int]) -> None:
    process = psutil.Process(pid)
    while not stop.is_set():
        peak[0] = max(peak[0], process.memory_info().rss)
        time.sleep(0.01)


@contextlib.contextmanager
def crowd_posting(live, body: bytes, extra_headers: str = "", count: int = 16) -> Iterator[dict]:
    """``count`` clients posting ``body`` to the model at once, each on a connection of its own, while the server's
    peak RSS is watched. Yields a dict that, once the block and the crowd are done, holds the crowd's ``statuses``
    and the server's RSS ``growth`` in MiB over what it was before."""
    host, port = live.url.removeprefix("http://").rsplit(":", 1)
    baseline = psutil.Process(live.pid).memory_info().rss
    stop, peak, result = threading.Event(), [baseline], {"statuses": []}
    watcher = threading.Thread(target=_rss_peak, args=(live.pid, stop, peak))
    watcher.start()

    def post() -> None:
        conn = socket.create_connection((host, int(port)), timeout=120)
        conn.sendall(f"POST /v2/models/{MODEL}/infer HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
                     f"{extra_headers}Connection: close\r\n\r\n".encode() + body)
        result["statuses"].append(int(read_until_closed(conn).split()[1]))

    crowd = [threading.Thread(target=post) for _ in range(count)]
    for thread in crowd:
        thread.start()
    try:
        yield result
    finally:
        for thread in crowd:
            thread.join()
        stop.set()
        watcher.join()
    result["growth"] = (peak[0] - baseline) / 2**20


def test_a_crowd_of_large_json_bodies_takes_bounded_memory_and_a_small_request_still_gets_through(repository):
    values = ",".join(["0.123456789"] * 600_000)    # 7.2 MB of JSON: under the 8 MiB JSON limit, a wrong shape
    body = f'{{"inputs":[{{"name":"input","datatype":"FP32","shape":[1,3,200,1000],"data":[{values}]}}]}}'.encode()
    budget = 40 * 1024 * 1024
    with server_process(repository, "--inflight-bytes", str(budget)) as live:
        client = KServeClient(live.url)
        client.infer(MODEL, {"input": np.zeros((1, 3, 8, 8), np.float32)})
        with crowd_posting(live, body) as crowd:
            time.sleep(0.5)
            started = time.monotonic()
            small = client.infer(MODEL, {"input": np.zeros((1, 3, 8, 8), np.float32)})
            small_latency = time.monotonic() - started
    assert small["scores"].shape[0] == 1 and small_latency < 3, f"a small request waited {small_latency:.1f} s"
    assert sorted(set(crowd["statuses"])) == [400], crowd["statuses"]   # each parsed, then refused for its shape
    # the thread-per-connection server grew 195 MiB here, and this one 57: the budget admits what fits in 40 MiB
    assert crowd["growth"] < 120, f"RSS grew {crowd['growth']:.0f} MiB under 16 concurrent 7 MB JSON bodies"


def test_sigterm_drains_readiness_goes_false_in_flight_requests_are_answered_and_the_exit_is_0(repository):
    x = np.zeros((1, 3, 8, 8), np.float32).tolist()
    body = json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3, 8, 8], "data": x}]}).encode()
    head = f"POST /v2/models/{MODEL}/infer HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    with server_process(repository, "--lame-duck", "1", "--drain-timeout", "10") as live:
        watcher, idle = connect(live), connect(live)
        for conn in (watcher, idle):
            conn.sendall(READY)
            assert read_answer(conn)[0] == 200
        in_flight = [connect(live) for _ in range(30)]
        for conn in in_flight:
            conn.sendall(head + body[: len(body) // 2])
        signalled = time.monotonic()
        live.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        watcher.sendall(READY)
        assert read_answer(watcher)[0] == 503, "readiness must turn false as soon as the drain starts"
        with KServeGrpcClient(live.grpc) as over_grpc:
            assert over_grpc.live() and not over_grpc.ready(), "and over gRPC too"
        time.sleep(1.2)   # past the lame duck: the listener is closed, and these are still mid-body
        for conn in in_flight:
            conn.sendall(body[len(body) // 2:])
        answers = [read_until_closed(conn) for conn in in_flight]
        assert read_until_closed(idle) == b"", "an idle kept-alive connection is closed by the drain"
        code = live.process.wait(timeout=15)
        elapsed = time.monotonic() - signalled
    assert code == 0
    assert all(a.startswith(b"HTTP/1.1 200") and b"connection: close" in a.lower() for a in answers), \
        [a[:60] for a in answers if not a.startswith(b"HTTP/1.1 200")]
    assert 1 <= elapsed < 12, f"exit {elapsed:.1f} s after SIGTERM with a 1 s lame duck and a 10 s drain"


@pytest.mark.parametrize("path, content_type", [("/v1/models/tiny_ssd:predict", "application/json"),
                                                (f"/v2/models/{MODEL}/infer", "application/json")])
def test_a_json_body_past_the_json_limit_is_refused_unparsed(repository, path, content_type):
    """ORT server's JSON parser took 38 s of CPU over a 24 MB body before its 400; binary bodies keep the 25 MiB
    limit."""
    body = b'{"inputs": {"input": {"floatData": [' + b"0.5," * 2_400_000 + b"0.5]}}}"
    with running_server(repository, limits=Limits(max_json_bytes=8 * 2**20)) as live:
        conn = connect(live)
        conn.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
                     f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        assert read_answer(conn)[0] == 413   # parsed, it would have been a 400 for its shape


def test_a_body_still_coming_after_its_answer_is_dropped_and_its_connection_closed(repository):
    """A GET sent a body is answered at once; uvicorn then read the rest of the body for the kept-alive connection,
    and a client that trickled it, a byte a second, held the connection past every deadline. Now the answer says
    Connection: close, and the server drops what still comes for at most ``linger`` seconds, then closes."""
    with running_server(repository, server_limits=ServerLimits(keep_alive=1.0, linger=1.0)) as live:
        conn = connect(live)
        conn.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
        status, head = read_answer(conn)
        assert status == 200 and b"connection: close" in head.lower()
        started = time.monotonic()
        with pytest.raises(OSError):   # the server closed: a send after its reset fails
            while time.monotonic() - started < 6:
                conn.sendall(b"x")
                time.sleep(0.1)
        assert time.monotonic() - started < 4, "a trickled body held its connection past the 1 s linger"
        assert KServeClient(live.url).ready()


@pytest.mark.parametrize("connection", ["close", "keep-alive"])
def test_a_refused_upload_reaches_a_client_that_sends_all_of_it_before_reading(repository, connection):
    """A 413 for a body over the limit, to a client that writes its whole body first: closed with unread data, the
    socket reset the connection and a client that had said Connection: close never read its 413 (8 resets in 8)."""
    body = b"0" * (3 * 2**20)
    with running_server(repository, limits=Limits(max_body_bytes=2**20)) as live:
        for _ in range(3):
            conn = connect(live)
            conn.sendall(f"POST /v2/models/{MODEL}/infer HTTP/1.1\r\nHost: x\r\nConnection: {connection}\r\n"
                         f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
            answer = read_until_closed(conn)
            assert answer.startswith(b"HTTP/1.1 413") and b"connection: close" in answer.lower(), answer[:200]


def test_a_request_cut_off_by_the_drain_deadline_gets_503_and_no_traceback(repository, tmp_path):
    """uvicorn cancels what is left at --drain-timeout; the cancelled request was answered 500 with an ERROR
    traceback, as if the server had failed, and not that it was going away."""
    log_path = tmp_path / "server.log"
    with open(log_path, "w") as log, server_process(repository, "--drain-timeout", "1", log=log) as live:
        conn = connect(live)
        conn.sendall(f"POST /v2/models/{MODEL}/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{{".encode())
        time.sleep(0.3)   # its body will never end; the body deadline (30 s) is far past the drain's
        live.process.send_signal(signal.SIGTERM)
        answer = read_until_closed(conn)
        assert live.process.wait(timeout=15) == 0
    assert answer.startswith(b"HTTP/1.1 503") and b"connection: close" in answer.lower(), answer[:200]
    text = log_path.read_text()
    assert "Exception in ASGI application" not in text and "Traceback" not in text, text


def test_a_client_that_declares_a_large_body_and_sends_nothing_keeps_no_small_request_waiting(repository):
    """Two connections that declared 13 MB of JSON each and sent nothing held the whole body budget until their
    body deadline: every other request, however small, waited 10 s for a 503. Large requests now hold at most
    seven eighths of the budget and small ones never queue behind them; large ones still wait their turn."""
    limits = Limits(max_body_bytes=4 * 2**20, max_json_bytes=4 * 2**20, inflight_bytes=8 * 2**20,
                    admission_timeout=1.0, body_timeout=20.0)
    head = (f"POST /v2/models/{MODEL}/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {4 * 2**20}\r\n\r\n").encode()
    with running_server(repository, limits=limits) as live:
        squatters = [connect(live) for _ in range(2)]
        for conn in squatters:
            conn.sendall(head)   # and nothing more: 16 MiB of cost each, the budget's largest share at most
        time.sleep(0.3)
        client = KServeClient(live.url)
        started = time.monotonic()
        for _ in range(5):
            assert client.infer(MODEL, {"input": np.zeros((1, 3, 8, 8), np.float32)})["scores"].shape[0] == 1
        assert time.monotonic() - started < 2, "small requests waited behind large bodies that never came"
        late = connect(live)
        late.sendall(head)   # another large one queues behind the first: the budget still bounds large bodies
        assert read_answer(late)[0] == 503
        for conn in squatters + [late]:   # gone, so that the server need not wait out their body deadline to stop
            conn.close()


def test_a_json_body_declared_past_the_json_limit_is_refused_before_it_is_sent(repository):
    with running_server(repository, limits=Limits(max_json_bytes=2**20)) as live:
        conn = connect(live)
        conn.sendall(f"POST /v2/models/{MODEL}/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {2 * 2**20}\r\n\r\n".encode())   # headers only: the body never comes
        status, head = read_answer(conn)
        assert status == 413 and b"connection: close" in head.lower()


def test_a_crowd_of_large_binary_bodies_takes_about_the_budget_in_memory(repository):
    """Binary tensors were held four times over (the body's chunks, their join, a copy of the tensor's bytes and a
    copy in its dtype): 16 bodies of 8 MiB grew the server by 93-98 MiB against a 32 MiB budget; now 44-46."""
    budget, tensor = 32 * 2**20, np.zeros(8 * 2**20 // 4, np.float32)
    header = json.dumps({"inputs": [{"name": "input", "shape": [1, tensor.size], "datatype": "FP32",
                                     "parameters": {"binary_data_size": tensor.nbytes}}]}).encode()
    body = header + tensor.tobytes()
    with server_process(repository, "--inflight-bytes", str(budget)) as live:
        KServeClient(live.url).infer(MODEL, {"input": np.zeros((1, 3, 8, 8), np.float32)})
        with crowd_posting(live, body, f"Inference-Header-Content-Length: {len(header)}\r\n") as crowd:
            pass
    assert sorted(set(crowd["statuses"])) == [400], crowd["statuses"]   # each parsed, then refused for its shape
    growth = crowd["growth"]
    assert growth < 2 * budget / 2**20, f"RSS grew {growth:.0f} MiB under a {budget >> 20} MiB body budget"


@pytest.mark.parametrize("parts", [[b"abcde"], [b"", b"ab", b"", b"cd", b"e"], [b"a", b"bcde"]])
def test_a_body_is_read_whole_in_one_buffer_and_a_one_chunk_body_is_its_chunk(parts):
    from dlperf.serve.budget import read_body

    messages = [{"type": "http.request", "body": part, "more_body": i < len(parts) - 1} for i, part in enumerate(parts)]

    async def receive():
        return messages.pop(0)

    body = asyncio.run(read_body(receive, 5, True, 100, 5))
    assert bytes(body) == b"abcde"
    assert (body is parts[0]) if len(parts) == 1 else isinstance(body, bytearray)


def test_the_rest_of_a_large_body_is_read_straight_into_the_apps_buffer_past_the_parser(repository, monkeypatch):
    """Through ASGI's ``receive``, each chunk of a body was copied five times in the server, with the GIL held (a
    1 MB body: the full-size SSD's); once the app reads, the rest goes from the socket into its buffer, past
    httptools (``protocol.BodySink``, ``BufferedFront``), and a new parser takes the connection's next request. The
    body is a JSON request padded past 2 MB, sent in pieces, and its answer must be the model's: a byte out of place
    would break the JSON or change the tensor at its end. A request pipelined right behind it is answered too."""
    parsed = []
    data_received = DeadlineProtocol.data_received
    monkeypatch.setattr(DeadlineProtocol, "data_received", lambda self, data: (parsed.append(len(data)),
                                                                              data_received(self, data))[1])
    image = np.random.default_rng(5).standard_normal((1, 3, 8, 8)).astype(np.float32)
    tensor = {"name": "input", "shape": list(image.shape), "datatype": "FP32", "data": image.ravel().tolist()}
    body = ('{"inputs":' + " " * (2 << 20) + json.dumps([tensor]) + "}").encode()
    with running_server(repository) as live:
        expected = KServeClient(live.url).infer(MODEL, {"input": image})
        parsed.clear()
        conn = connect(live)
        conn.sendall(f"POST /v2/models/{MODEL}/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(body)}\r\n\r\n".encode())
        pieces = [body[start:start + 256 * 1024] for start in range(0, len(body), 256 * 1024)]
        for piece in pieces[:-1]:
            conn.sendall(piece)
            time.sleep(0.01)
        conn.sendall(pieces[-1] + READY)
        (status, _, answer), (ready, _, _) = read_responses(conn, 2)
    assert status == 200, answer
    outputs = {output["name"]: np.array(output["data"], np.float32).reshape(output["shape"])
               for output in json.loads(answer)["outputs"]}
    assert outputs.keys() == expected.keys()
    for name, array in expected.items():
        np.testing.assert_allclose(outputs[name], array, rtol=1e-6)
    assert ready == 200
    assert 0 < sum(parsed) < len(body) // 4, (sum(parsed), len(body))


def test_a_client_that_leaves_midway_through_a_large_body_costs_nothing_and_the_server_serves_on(repository):
    """The rest of a large body goes straight into the app's buffer (``protocol.BodySink``); a client gone halfway
    ends that wait with no answer, its bytes go back to the budget, and the next request is served."""
    with running_server(repository) as live:
        conn = connect(live)
        conn.sendall(f"POST /v2/models/{MODEL}/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {4 << 20}\r\n\r\n".encode() + b" " * (1 << 20))
        time.sleep(0.3)
        conn.close()
        budget = live.app._budget
        deadline = time.monotonic() + 10
        while budget.used and time.monotonic() < deadline:
            time.sleep(0.02)
        assert budget.used == 0
        answer = KServeClient(live.url).infer(MODEL, {"input": np.zeros((1, 3, 8, 8), np.float32)})
    assert answer
