"""The HTTP front's fast path (issue 22's "performance doesn't regress"): several event loops share the port, a small
request to a free, quick model runs on its loop without a hop to the thread pool, each response leaves in one write,
and the body budget is shared by the loops. Servers run for real on 127.0.0.1.
"""
from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import resource
import signal
import socket
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from dlperf.serve import KServeClient, OrtServerClient, ServeError
from dlperf.serve import app
from dlperf.serve.__main__ import parse_args
from dlperf.serve.budget import ByteBudget
from dlperf.serve.process import server_process
from dlperf.serve.protocol import OneWrite
from serve_fixtures import ServerLimits, read_responses, running_server, tiny_ssd, write_repository

MODEL = "tiny_ssd"
ONE_LOOP = ServerLimits(event_loops=1)   # where a test is about the quick rule alone: no loop to spare for long runs
IMAGE = {"input": np.zeros((1, 3, 8, 8), np.float32)}


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    return write_repository(tmp_path_factory.mktemp("models"), {MODEL: {1: tiny_ssd(seed=3)}})


def connections_per_loop(live) -> list[int]:
    return [len(server.server_state.connections) for server in live._acceptor.loops]


def wait_for(condition, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def threads_that_ran(model, ask, times: int, quick: bool = False, watch=lambda: None) -> set[str]:
    """The names of the threads that ran ``model``'s onnxruntime session for ``times`` calls of ``ask``; ``quick``:
    with the model's recent runs taken as quick before each call (a loaded machine can slow one past the limit).
    ``watch`` is called as each run starts."""
    names, run = set(), model._run

    def recording(feeds):
        names.add(threading.current_thread().name)
        watch()
        return run(feeds)

    model._run = recording
    if model._batcher is not None:
        model._batcher._run = recording
    try:
        for _ in range(times):
            if quick:
                model.recent_compute_s = 0.0
            ask()
    finally:
        model._run = run
        if model._batcher is not None:
            model._batcher._run = run
    return names


def end_the_run_once_queued(batcher, after: float) -> None:
    """In a thread: once a request has queued behind the (pretended) run in flight, and ``after`` seconds have
    passed, end that run, which hands it to the queued request."""
    def end() -> None:
        started = time.monotonic()
        while batcher.queued < 1 or time.monotonic() - started < after:
            assert time.monotonic() - started < 30, "no request queued"
            time.sleep(0.01)
        batcher._release()

    threading.Thread(target=end, daemon=True).start()


@pytest.mark.parametrize("batching", [True, False])
def test_a_small_request_to_a_quick_idle_model_runs_on_its_event_loop_not_the_pool(repository, batching):
    with running_server(repository, batching=batching, server_limits=ONE_LOOP) as live:
        model = live.repository.get(MODEL)
        client = KServeClient(live.url)
        assert threads_that_ran(model, lambda: client.infer(MODEL, IMAGE), 1) <= {
            f"serve_{i}" for i in range(64)}, "a model with no runs yet is not known to be quick: the pool runs it"
        assert model.recent_compute_s < 1
        model.recent_compute_s = 0.0   # quick (a first run can be slow, and the mean forgets it over a few runs)
        ran = threads_that_ran(model, lambda: client.infer(MODEL, IMAGE), 5, quick=True)
        assert not any(name.startswith("serve") for name in ran), ran
        ort = OrtServerClient(live.url)
        ran = threads_that_ran(model, lambda: ort.predict(MODEL, IMAGE), 3, quick=True)
        assert not any(name.startswith("serve") for name in ran), ran


def test_a_slow_model_or_a_large_json_body_goes_to_the_pool(repository, monkeypatch):
    with running_server(repository, server_limits=ONE_LOOP) as live:
        model = live.repository.get(MODEL)
        client = KServeClient(live.url)
        client.infer(MODEL, IMAGE)
        model.recent_compute_s = 1.0   # as if its runs took a second: the loop would stall its other connections
        ran = threads_that_ran(model, lambda: client.infer(MODEL, IMAGE), 1)
        assert all(name.startswith("serve") for name in ran), ran
        model.recent_compute_s = 0.0
        assert not any(name.startswith("serve") for name in threads_that_ran(
            model, lambda: client.infer(MODEL, IMAGE), 1, quick=True))
        monkeypatch.setattr(app, "INLINE_BODY_BYTES", 512)   # the image's 768 bytes are now a large body
        ran = threads_that_ran(model, lambda: client.infer(MODEL, IMAGE), 1, quick=True)
        assert not any(name.startswith("serve") for name in ran), "binary, quick to parse: a short run, on the loop"
        ran = threads_that_ran(model, lambda: client.infer(MODEL, IMAGE, binary=False), 1, quick=True)
        assert all(name.startswith("serve") for name in ran), ran


def test_a_quick_request_that_finds_every_run_busy_waits_on_its_loop_and_is_handed_the_next_run(repository):
    with running_server(repository) as live:
        model = live.repository.get(MODEL)
        client = KServeClient(live.url)
        client.infer(MODEL, IMAGE)
        model.recent_compute_s = 0.0
        model._batcher._free = 0   # every run taken: the request queues, on its loop, not on a pool thread
        end_the_run_once_queued(model._batcher, after=0.3)
        started = time.monotonic()
        ran = threads_that_ran(model, lambda: client.infer(MODEL, IMAGE), 1, quick=True)
        assert time.monotonic() - started >= 0.25 and not any(name.startswith("serve") for name in ran), ran
        assert model._batcher.free


def test_a_quick_request_that_would_wait_out_a_long_batch_delay_goes_to_the_pool(tmp_path):
    config = "max_batch_size: 8\ndynamic_batching {\n  max_queue_delay_microseconds: 50000\n}\n"
    root = write_repository(tmp_path, {MODEL: {1: tiny_ssd(seed=3)}}, {MODEL: config})
    with running_server(root, server_limits=ONE_LOOP) as live:
        model = live.repository.get(MODEL)
        client = KServeClient(live.url)
        client.infer(MODEL, IMAGE)
        model.recent_compute_s = 0.0
        assert model.queue_delay_s == 0.05
        ran = threads_that_ran(model, lambda: client.infer(MODEL, IMAGE), 1, quick=True)
        assert not any(name.startswith("serve") for name in ran), "a free run: no delay, so on the loop"
        model._batcher._free = 0
        end_the_run_once_queued(model._batcher, after=0.2)
        ran = threads_that_ran(model, lambda: client.infer(MODEL, IMAGE), 1, quick=True)
        assert all(name.startswith("serve") for name in ran), ran


def test_a_long_request_alone_on_its_loop_runs_there_while_another_loop_stays_free(repository):
    with running_server(repository, server_limits=ServerLimits(event_loops=2)) as live:
        model = live.repository.get(MODEL)
        client = KServeClient(live.url)   # one connection: alone on whichever loop accepted it
        client.infer(MODEL, IMAGE)
        model.recent_compute_s = 1.0   # a long run: on a loop only because nobody else's requests wait on that loop
        ran = threads_that_ran(model, lambda: client.infer(MODEL, IMAGE), 1)
        assert not any(name.startswith("serve") for name in ran), ran
        live.app._held_loops = 1   # the other loop is held by such a run: this one must stay free, so the pool runs it
        ran = threads_that_ran(model, lambda: client.infer(MODEL, IMAGE), 1)
        assert all(name.startswith("serve") for name in ran), ran


def ask_on(conn: socket.socket) -> int:
    """One V2 JSON inference on a raw connection; its status."""
    body = json.dumps({"inputs": [{"name": "input", "shape": [1, 3, 8, 8], "datatype": "FP32",
                                   "data": [0.0] * 192}]}).encode()
    conn.sendall(f"POST /v2/models/{MODEL}/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    return read_responses(conn, 1)[0][0]


@contextlib.contextmanager
def three_connections(live):
    """Three raw connections to a 2-loop server, each made and on its loop, with whether it shares its loop (two do).
    """
    host, port = live.url.removeprefix("http://").rsplit(":", 1)
    conns = [socket.create_connection((host, int(port)), timeout=10) for _ in range(3)]
    try:
        assert ask_on(conns[0]) == 200
        # uvicorn adds a connection to its loop's set before it sets its address
        wait_for(lambda: sum(connections_per_loop(live)) >= 3 and all(
            proto.client for server in live._acceptor.loops for proto in server.server_state.connections), seconds=5)
        assert sorted(connections_per_loop(live)) == [1, 2]
        loop_of = {proto.client[1]: i for i, server in enumerate(live._acceptor.loops)
                   for proto in server.server_state.connections}
        yield [(conn, sum(loop == loop_of[conn.getsockname()[1]] for loop in loop_of.values()) > 1)
               for conn in conns]
    finally:
        for conn in conns:
            conn.close()


def test_a_long_request_that_shares_its_loop_with_another_connection_goes_to_the_pool(repository):
    with running_server(repository, server_limits=ServerLimits(event_loops=2)) as live:
        model = live.repository.get(MODEL)
        with three_connections(live) as conns:
            for conn, shared in conns:
                model.recent_compute_s = 1.0
                ran = threads_that_ran(model, lambda: ask_on(conn), 1)
                assert all(name.startswith("serve") for name in ran) == shared, (shared, ran)


def test_a_request_runs_on_its_loop_while_the_loops_connections_would_wait_little_for_it(repository, monkeypatch):
    """A run stays on its loop, even when other connections share it and no other loop is free, while the loop's
    connections, each waiting one such run, would wait at most LOOP_WAIT_S (0.5 s): the hand-off to the pool and back
    cost the full-size SSD (26 ms) 2-4 % of its throughput at 4 clients on 2 loops. It marks its loop held while it
    runs, so that the acceptor places a new connection elsewhere. A large JSON body, slow to parse, still goes to the
    pool."""
    with running_server(repository, server_limits=ServerLimits(event_loops=2)) as live:
        model = live.repository.get(MODEL)
        with three_connections(live) as conns:
            live.app._held_loops = 1   # the other loop is held by a long run: no loop is free
            held_while_running = []

            def watch():
                held_while_running.append([loop.server_state.held for loop in live._acceptor.loops])

            for conn, _ in conns:
                model.recent_compute_s = 0.2   # 2 x 0.2 s on the shared loop
                ran = threads_that_ran(model, lambda: ask_on(conn), 1, watch=watch)
                assert not any(name.startswith("serve") for name in ran), ran
            assert [sum(held) for held in held_while_running] == [1, 1, 1]   # its own loop, for the acceptor
            assert live.app._held_loops == 1
            for conn, shared in conns:
                model.recent_compute_s = 0.3   # 2 x 0.3 s on the shared loop: too long; 1 x 0.3 s alone
                ran = threads_that_ran(model, lambda: ask_on(conn), 1)
                assert all(name.startswith("serve") for name in ran) == shared, (shared, ran)
            monkeypatch.setattr(app, "INLINE_BODY_BYTES", 512)   # ask_on's 1.2 KB of JSON is now a large body
            for conn, _ in conns:
                model.recent_compute_s = 0.02
                ran = threads_that_ran(model, lambda: ask_on(conn), 1)
                assert all(name.startswith("serve") for name in ran), ran


def test_the_event_loops_share_the_port_and_stop_together(repository):
    before = {t.name for t in threading.enumerate()}
    with running_server(repository, server_limits=ServerLimits(event_loops=3)) as live:
        wait_for(lambda: len([t for t in threading.enumerate() if t.name.startswith("http-loop-")]) >= 2, seconds=5)
        clients = [KServeClient(live.url) for _ in range(12)]
        for client in clients:   # twelve connections, handed out over the loops by the acceptor
            assert client.infer(MODEL, IMAGE)["scores"].shape[0] == 1
    assert not [t for t in threading.enumerate() if t.name.startswith("http-loop-") and t.name not in before]
    with pytest.raises(OSError):
        socket.create_connection(live.url.removeprefix("http://").rsplit(":", 1), timeout=2).close()


def test_the_acceptor_gives_each_loop_its_share_of_the_connections(repository):
    """With the loops accepting on a shared socket, whichever woke first took a connection: 16 clients on 4 loops
    were spread differently in every load test, and the small SSD's throughput swung from 790 to 1150 req/s."""
    with running_server(repository, server_limits=ServerLimits(event_loops=3)) as live:
        clients = []
        for opened in range(1, 7):
            clients.append(KServeClient(live.url))
            assert clients[-1].live()
            wait_for(lambda: sum(connections_per_loop(live)) == opened)
            assert max(connections_per_loop(live)) - min(connections_per_loop(live)) <= 1, connections_per_loop(live)
        assert connections_per_loop(live) == [2, 2, 2]


def test_a_new_connection_goes_to_a_loop_that_no_long_run_holds(repository):
    with running_server(repository, server_limits=ServerLimits(event_loops=2)) as live:
        held, free = live._acceptor.loops
        held.server_state.held = True   # as app.py marks a loop running a request
        try:
            clients = [KServeClient(live.url) for _ in range(3)]
            assert all(client.live() for client in clients)
            assert connections_per_loop(live) == [0, 3]
        finally:
            held.server_state.held = False


def test_out_of_file_descriptors_the_acceptor_waits_and_then_accepts_again(repository):
    """accept() failing with EMFILE must not spin or throw from the event loop; asyncio's own servers wait a second."""
    log = io.StringIO()
    with server_process(repository, "--grpc-port", "off", "--ort-grpc-port", "off", log=log) as live:
        soft, hard = resource.prlimit(live.pid, resource.RLIMIT_NOFILE)
        resource.prlimit(live.pid, resource.RLIMIT_NOFILE, (len(os.listdir(f"/proc/{live.pid}/fd")) + 3, hard))
        host, port = live.url.removeprefix("http://").rsplit(":", 1)
        conns = [socket.create_connection((host, int(port)), timeout=10) for _ in range(8)]   # some wait in the backlog
        try:
            wait_for(lambda: "accepting again" in log.getvalue())
        finally:
            resource.prlimit(live.pid, resource.RLIMIT_NOFILE, (soft, hard))
            for conn in conns:
                conn.close()
        assert OrtServerClient(live.url, timeout=10).health()
        assert live.process.poll() is None
    assert "Exception in callback" not in log.getvalue() and "Traceback" not in log.getvalue(), log.getvalue()[-2000:]


def test_a_sigterm_as_soon_as_any_loop_answers_drains_and_exits_0(repository):
    """Another loop can answer before the main one has started; a SIGTERM then killed the process (status -15)
    instead of draining it, until the handlers went in before any loop started."""
    for _ in range(3):
        with server_process(repository, "--event-loops", "8", "--grpc-port", "off", "--ort-grpc-port", "off") as live:
            live.process.send_signal(signal.SIGTERM)   # server_process returns as soon as GET / answers
            assert live.process.wait(timeout=30) == 0


@pytest.mark.parametrize("flag", ["--event-loops", "--instances"])
def test_a_count_below_one_is_refused_at_the_command_line(flag, capsys):
    with pytest.raises(SystemExit) as refused:
        parse_args(["--model-repository", "models", flag, "0"])
    assert refused.value.code == 2 and f"{flag}: must be at least 1, not 0" in capsys.readouterr().err


class RecordingTransport:
    def __init__(self):
        self.writes, self.closed = [], False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def cycle(length: int, chunked: bool = False, more_body: bool = False) -> SimpleNamespace:
    return SimpleNamespace(response_started=True, response_complete=False, expected_content_length=length,
                           chunked_encoding=chunked, more_body=more_body, keep_alive=True)


def test_a_response_head_is_held_until_its_body_so_both_leave_in_one_write():
    transport = RecordingTransport()
    view = OneWrite(transport, cycle(5))
    view.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n")
    assert transport.writes == []
    view.write(b"hello")
    assert transport.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"]
    assert view.is_closing() is False   # everything else is the transport's own


def test_a_head_without_a_body_to_follow_is_not_held_and_a_held_one_leaves_on_flush_or_close():
    for unheld in (cycle(0), cycle(5, chunked=True)):
        transport = RecordingTransport()
        OneWrite(transport, unheld).write(b"HTTP/1.1 204 No Content\r\n\r\n")
        assert transport.writes == [b"HTTP/1.1 204 No Content\r\n\r\n"]
    transport = RecordingTransport()
    head_only = OneWrite(transport, cycle(5))   # HEAD: the body is never written
    head_only.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n")
    head_only.flush()
    assert transport.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"]
    transport = RecordingTransport()
    closing = OneWrite(transport, cycle(5))
    closing.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n")
    closing.close()
    assert transport.writes and transport.closed


def test_an_answer_that_starts_before_its_request_body_has_all_come_closes_its_connection_lingering():
    transport, lingered = RecordingTransport(), []
    early = cycle(5, more_body=True)
    view = OneWrite(transport, early, lambda: lingered.append(True))
    view.write(b"HTTP/1.1 413 Request Entity Too Large\r\ncontent-length: 5\r\n\r\n")
    view.write(b"large")
    assert transport.writes == [b"HTTP/1.1 413 Request Entity Too Large\r\ncontent-length: 5\r\n"
                                b"connection: close\r\n\r\nlarge"]
    assert early.keep_alive is False   # uvicorn closes the connection once the response is written
    view.close()
    assert lingered == [True] and not transport.closed
    whole = cycle(5)   # a body read to its end: kept alive, and a close is a plain one
    view = OneWrite(transport := RecordingTransport(), whole, lambda: lingered.append(False))
    view.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n")
    view.write(b"hello")
    assert b"connection" not in transport.writes[0] and whole.keep_alive
    view.close()
    assert transport.closed and lingered == [True]


def test_a_head_request_gets_its_head_from_the_live_server(repository):
    with running_server(repository) as live:
        host, port = live.url.removeprefix("http://").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as conn:
            conn.sendall(b"HEAD /v2/health/ready HTTP/1.1\r\nHost: x\r\n\r\n"
                         b"HEAD /v2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
        heads = data.split(b"\r\n\r\n")
        assert heads[0].startswith(b"HTTP/1.1 200") and heads[1].startswith(b"HTTP/1.1 200"), data
        assert b"content-length: 0" in heads[0].lower() and b'"extensions"' not in data   # no body after a HEAD


def run_loop_in_thread() -> tuple[asyncio.AbstractEventLoop, threading.Thread]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    return loop, thread


def test_the_body_budget_is_shared_by_event_loops_and_hands_freed_bytes_to_the_oldest_waiter():
    budget = ByteBudget(100)
    (one, t1), (two, t2) = run_loop_in_thread(), run_loop_in_thread()
    try:
        asyncio.run_coroutine_threadsafe(budget.acquire(80, 5), one).result(5)
        waiting = asyncio.run_coroutine_threadsafe(budget.acquire(50, 5), two)
        time.sleep(0.1)
        assert not waiting.done() and budget.used == 80
        later = asyncio.run_coroutine_threadsafe(budget.acquire(10, 5), one)   # would fit, but must not overtake
        time.sleep(0.1)
        assert not later.done()
        budget.release(80)
        waiting.result(5)
        later.result(5)
        assert budget.used == 60
        with pytest.raises(ServeError) as refused:
            asyncio.run_coroutine_threadsafe(budget.acquire(100, 0.2), two).result(5)
        assert refused.value.status == 503 and budget.used == 60 and not any(budget._waiting.values())
    finally:
        for loop, thread in ((one, t1), (two, t2)):
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()


def test_small_requests_have_a_lane_of_the_budget_and_never_queue_behind_large_ones():
    async def scenario() -> None:
        budget = ByteBudget(100, small=10, lane=20)   # large ones together hold at most 80
        await budget.acquire(80, 5)   # a large body that may never come
        for _ in range(2):
            await asyncio.wait_for(budget.acquire(10, 5), 0.5)   # small ones pass at once, beside it
        late = asyncio.ensure_future(budget.acquire(30, 5))   # another large one waits for the first
        await asyncio.sleep(0.05)
        assert not late.done() and budget.used == 100
        with pytest.raises(ServeError):
            await budget.acquire(10, 0.1)   # the budget is full: small ones wait too, within their timeout
        budget.release(80)
        await asyncio.wait_for(late, 1)
        # a small one held throughout does not starve the largest: large ones count against their own share
        budget.release(30)
        await asyncio.wait_for(budget.acquire(80, 5), 0.5)
        assert (budget.used, budget.large_used) == (100, 80)

    asyncio.run(scenario())
