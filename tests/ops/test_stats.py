"""The status page and /metrics from a scoreboard, across a recycled worker (no processes)."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from wsgiwire._errors import BadRequest, LimitExceeded
from wsgiwire.adapters._master import Child
from wsgiwire.adapters._runtime import Server, ServerConfig
from wsgiwire.adapters._scoreboard import ACCEPTING, DURATION_BUCKETS
from wsgiwire.adapters._stats import _answer, _listen_queue, metrics_text, status
from wsgiwire.adapters.fastcgi import FastCGIDriver


def app(environ: object, start_response: object) -> list[bytes]:
    return []


@pytest.fixture
def server() -> Server:
    config = ServerConfig(app=app, driver=FastCGIDriver(), listeners=[], workers=2, threads=2)
    return Server(config)


def serve_some(server: Server, slot: int, pid: int, statuses: list[str | None]) -> None:
    board = server.board
    assert board is not None
    board.assign(slot, pid)
    board.set_state(slot, ACCEPTING)
    for i, code in enumerate(statuses, 1):
        board.request_finished(slot, i, 0)
        board.record(slot, code, 0.003, 10, 100)
    server.children[pid] = Child(pid, slot, server.generation, 0.0, ready=True)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_counts_survive_a_reaped_worker_and_metrics_parse(server: Server) -> None:
    board = server.board
    assert board is not None
    serve_some(server, 0, os.getpid(), ["200 OK"] * 3 + ["404 Not Found"])
    serve_some(server, 1, 999_999_999, ["500 Oops", None])
    board.count_malformed(1, 0)
    # The worker in slot 1 exits (recycled): the master absorbs its slot, then frees it.
    server.totals.absorb(board, 1)
    board.free(1)
    server.children.pop(999_999_999)
    server.respawns += 1  # as Server._exited counts a replaced worker
    serve_some(server, 1, 999_999_998, ["302 Found"])

    page = status(server)
    json.dumps(page)  # serialisable
    assert page["requests"] == 7
    assert page["statuses"] == {"1xx": 0, "2xx": 3, "3xx": 1, "4xx": 1, "5xx": 1, "none": 1}
    assert page["malformed"]["limit"] == 1
    assert page["tx"] == 700 and page["rx"] == 70
    assert page["respawns"] == 1
    workers = {w["id"]: w for w in page["workers"]}
    assert workers[2]["respawn_count"] == 1 and workers[2]["requests"] == 1
    assert workers[1]["rss"] > 0 and workers[1]["status"] == "idle"
    assert workers[1]["avg_rt"] == 3000 and workers[1]["generation"] == 0

    found = samples(metrics_text(server))
    proto = ("protocol", "fastcgi")
    assert found[("wsgiwire_requests_total", (proto, ("status", "2xx")))] == 3
    assert sum(v for (name, _), v in found.items() if name == "wsgiwire_requests_total") == 7
    assert found[("wsgiwire_request_duration_seconds_count", (proto,))] == 7
    le = ("le", str(DURATION_BUCKETS[1]))
    assert found[("wsgiwire_request_duration_seconds_bucket", (le, proto))] == 0
    le = ("le", str(DURATION_BUCKETS[2]))
    assert found[("wsgiwire_request_duration_seconds_bucket", (le, proto))] == 7
    assert found[("wsgiwire_response_body_bytes_total", (proto,))] == 700
    assert found[("wsgiwire_malformed_requests_total", (proto, ("reason", "limit")))] == 1
    assert found[("wsgiwire_worker_respawns_total", ())] == 1


def test_busy_threads_show_their_request_and_age(server: Server) -> None:
    board = server.board
    assert board is not None
    serve_some(server, 0, os.getpid(), [])
    board.thread_started(0, 1, "GET /slow?x", since=1.0)
    worker = status(server)["workers"][0]
    assert worker["status"] == "busy"
    (thread,) = worker["threads"]
    assert thread["thread"] == 1 and thread["request"] == "GET /slow?x" and thread["age"] > 0
    assert worker["cores"][0]["in_request"] == 1
    board.thread_finished(0, 1)
    assert status(server)["workers"][0]["threads"] == []


def test_malformed_reasons_come_from_the_error_class(server: Server) -> None:
    from wsgiwire.adapters._worker import Worker

    board = server.board
    assert board is not None
    worker = Worker(server.config, board, 0)  # a real one: a compiled class has no bare __new__
    try:
        worker.note_malformed(LimitExceeded("max_params_bytes", 2, 1))
        worker.note_malformed(BadRequest("bad CONTENT_LENGTH"))
        worker.note_malformed(BadRequest("again"))
    finally:
        worker.close()
    assert board.counters(0).malformed == (1, 2, 0)


def test_the_listener_answers_raw_http_metrics_and_refuses_the_rest(server: Server) -> None:
    raw = _answer(server, b"")
    assert json.loads(raw)["protocol"] == "fastcgi"
    reply = _answer(server, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200 OK") and b"version=0.0.4" in head
    assert list(text_string_to_metric_families(body.decode()))
    assert _answer(server, b"HEAD / HTTP/1.1\r\n\r\n").endswith(b"\r\n\r\n")
    assert _answer(server, b"GET /nope HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.0 404")
    assert _answer(server, b"POST / HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.0 405")


@pytest.mark.parametrize("family", ["tcp", "unix"])
def test_the_listen_queue_counts_connections_not_yet_accepted(
    family: str, tmp_path: Path
) -> None:
    """The status page's ``listen_queue`` and each socket's ``queue``/``max_queue``:
    TCP through tcp_info, unix sockets through sock_diag (what ``ss -l`` shows)."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the kernel reports accept queues only on Linux")
    if family == "tcp":
        listener = socket.socket(socket.AF_INET)
        listener.bind(("127.0.0.1", 0))
        address: object = listener.getsockname()
        kind = socket.AF_INET
    else:
        listener = socket.socket(socket.AF_UNIX)
        address = str(tmp_path / "queue.sock")
        listener.bind(address)
        kind = socket.AF_UNIX
    clients: list[socket.socket] = []
    with listener:
        listener.listen(7)
        assert _listen_queue(listener) == (0, 7)
        try:
            for _ in range(3):
                client = socket.socket(kind)
                clients.append(client)
                client.connect(address)
            config = ServerConfig(app=app, driver=FastCGIDriver(), listeners=[listener])
            page = status(Server(config))
            assert page["listen_queue"] == 3
            assert [(s["queue"], s["max_queue"]) for s in page["sockets"]] == [(3, 7)]
            accepted, _ = listener.accept()
            accepted.close()
            assert _listen_queue(listener) == (2, 7)
        finally:
            for client in clients:
                client.close()
