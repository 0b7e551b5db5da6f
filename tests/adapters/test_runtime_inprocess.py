"""The shared runtime, run in this process: ``Worker(ServerConfig(...)).serve()`` in a thread.

No signals are involved (``Worker`` installs none; ``Server`` does), so a test starts a
worker on a loopback listener, talks to it with ``wsgiwire._client`` or raw bytes, and
stops it with ``request_stop()`` and a bounded join. What is pinned down here:

* sendfile: SCGI and uwsgi send a ``wsgi.file_wrapper`` file with ``os.sendfile``
  (whole, from its position, or cut at a smaller Content-Length); FastCGI and a wrapper
  over a file without a descriptor are iterated instead; the bytes are exact either way.
* the FastCGI FILTER role end to end (FCGI_DATA in ``wsgiwire.fcgi_data``).
* FCGI_ABORT_REQUEST mid-body: END_REQUEST comes back, the kept connection goes on.
* protocol errors (FastCGI version byte, SCGI netstring comma) end that connection with
  its reply, and the worker serves the next one.
* threads: a busy pool holds requests (none refused) up to ``max_queued_requests``,
  then refuses at once with FCGI_OVERLOADED / 503.
* the keep-alive idle timeout and the lingering close after a refusal.
* the peer allow-list applied at accept(), and ``LoadBoard.should_yield``.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import logging
import os
import select
import signal
import socket
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from wsgiref.validate import validator

import pytest

from wsgiwire._client import (
    Pairs,
    Reply,
    Target,
    build_params,
    encode_scgi,
    encode_uwsgi,
    fastcgi_request,
    parse_head,
    scgi_request,
    uwsgi_request,
)
from wsgiwire._events import NEED_DATA, Role
from wsgiwire._limits import DEFAULT_LIMITS, Limits
from wsgiwire.adapters._listeners import PeerFilter, open_listener, parse_bind
from wsgiwire.adapters._runtime import ProtocolDriver, Scoreboard, ServerConfig, Worker
from wsgiwire.adapters._scoreboard import ACCEPTING, DRAINING
from wsgiwire.adapters.fastcgi import FastCGIDriver
from wsgiwire.adapters.scgi import SCGIDriver
from wsgiwire.adapters.uwsgi import UWSGIDriver
from wsgiwire.protocols._fastcgi import (
    FCGI_OVERLOADED,
    FCGI_REQUEST_COMPLETE,
    FCGI_UNKNOWN_ROLE,
    EndRequest,
    FastCGIClient,
    StdoutData,
)

TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
POLL = 0.005

StartResponse = Callable[..., Callable[[bytes], object]]
App = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

DRIVERS: dict[str, Callable[[], ProtocolDriver]] = {
    "fastcgi": FastCGIDriver,
    "scgi": SCGIDriver,
    "uwsgi": UWSGIDriver,
}


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    """Poll ``predicate`` until true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(POLL)


@dataclass
class Served:
    worker: Worker
    protocol: str
    family: int
    address: Any

    def target(self, path: str = "/", query: str = "") -> Target:
        return Target(self.protocol, self.family, self.address, path, query)

    def connect(self) -> socket.socket:
        return self.target().connect(TIMEOUT)


@contextlib.contextmanager
def running(
    app: App,
    protocol: str = "fastcgi",
    *,
    driver: ProtocolDriver | None = None,
    bind: str = "127.0.0.1:0",
    threads: int = 0,
    limits: Limits = DEFAULT_LIMITS,
    peer_filter: PeerFilter | None = None,
    board: Scoreboard | None = None,
) -> Iterator[Served]:
    """A worker serving ``app`` on a fresh loopback listener, in a thread (in slot 0
    of ``board``, when given)."""
    listener = open_listener(parse_bind(bind))
    config = ServerConfig(
        app=app,
        driver=driver or DRIVERS[protocol](),
        listeners=[listener],
        threads=threads,
        limits=limits,
        peer_filter=peer_filter or PeerFilter(None),
        graceful_timeout=5.0,
    )
    worker = Worker(config, board, 0)
    failures: list[BaseException] = []

    def serve() -> None:
        try:
            worker.serve()
        except BaseException as exc:  # reported by the test, not lost in the thread
            failures.append(exc)

    thread = threading.Thread(target=serve, name="test-worker", daemon=True)
    thread.start()
    try:
        yield Served(worker, protocol, listener.family, listener.getsockname())
    finally:
        worker.request_stop()
        thread.join(STOP_TIMEOUT)
        listener.close()
        # Worker.serve() leaves its wake-up socketpair open (see
        # test_worker_closes_its_own_sockets_when_it_stops); close it here.
        close_wake_sockets(worker)
    assert not thread.is_alive(), "the worker did not stop within the bound"
    assert not failures, failures


def close_wake_sockets(worker: Worker) -> None:
    for name in ("_wake_r", "_wake_w"):
        sock = getattr(worker, name, None)
        if isinstance(sock, socket.socket):
            sock.close()


def open_fds() -> set[int]:
    return {int(name) for name in os.listdir("/proc/self/fd")}


def params_for(target: Target, *, method: str = "GET", body: bytes = b"",
               extra: Iterable[tuple[str, str]] = ()) -> Pairs:
    return build_params(target, method=method, body_length=len(body), extra=list(extra))


def ask(served: Served, path: str = "/", *, method: str = "GET", body: bytes = b"",
        **options: Any) -> Reply:
    """One request as a web server would send it, over ``served``'s protocol."""
    path, _, query = path.partition("?")
    target = served.target(path, query)
    params = params_for(target, method=method, body=body)
    if served.protocol == "fastcgi":
        return fastcgi_request(target, params, body, timeout=TIMEOUT, **options)
    if served.protocol == "scgi":
        return scgi_request(target, params, body, timeout=TIMEOUT)
    return uwsgi_request(target, params, body, timeout=TIMEOUT, **options)


def read_all(stream: Any) -> bytes:
    return b"".join(iter(lambda: stream.read(65536), b""))


def echo_app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
    body = read_all(environ["wsgi.input"])
    payload = json.dumps({
        "method": environ["REQUEST_METHOD"],
        "path_info": environ["PATH_INFO"],
        "query": environ["QUERY_STRING"],
        "body_sha256": hashlib.sha256(body).hexdigest(),
        "multithread": environ["wsgi.multithread"],
        "role": environ.get("FCGI_ROLE", "RESPONDER"),
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(payload)))])
    return [payload]


def request_bytes(served: Served, path: str) -> list[bytes]:
    """A whole bodiless GET for ``path`` as the bytes ``served``'s protocol puts on the wire."""
    params = params_for(served.target(path))
    if served.protocol == "scgi":
        return [encode_scgi(params)]
    if served.protocol == "uwsgi":
        return [encode_uwsgi(params)]
    client = FastCGIClient()
    return [client.begin(1, params), client.end_stdin(1)]


def ok_head(protocol: str) -> bytes:
    return b"HTTP/1.1 200 OK\r\n" if protocol == "uwsgi" else b"Status: 200 OK\r\n"


# -- every driver: the plain round trip ----------------------------------------------------
@pytest.mark.parametrize("protocol", list(DRIVERS))
def test_get_and_post_round_trip(protocol: str) -> None:
    body = os.urandom(100_000)
    with running(validator(echo_app), protocol) as served:
        got = ask(served, "/a/b?x=1")
        posted = ask(served, "/upload", method="POST", body=body)
    assert got.raw.startswith(ok_head(protocol))
    assert json.loads(got.body) == {
        "method": "GET", "path_info": "/a/b", "query": "x=1",
        "body_sha256": hashlib.sha256(b"").hexdigest(), "multithread": False,
        "role": "RESPONDER",
    }
    assert posted.status == 200
    assert json.loads(posted.body)["body_sha256"] == hashlib.sha256(body).hexdigest()


def test_unix_socket_listener() -> None:
    with contextlib.ExitStack() as stack:
        import tempfile

        run_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="ww-rt-", dir="/tmp"))
        served = stack.enter_context(running(validator(echo_app), bind=f"unix:{run_dir}/a.sock"))
        assert served.family == socket.AF_UNIX
        reply = ask(served, "/u")
        assert (reply.status, reply.app_status) == (200, 0)
        assert json.loads(reply.body)["path_info"] == "/u"


# -- (a) sendfile ---------------------------------------------------------------------------
class SendfileSpy:
    """Counts os.sendfile calls (and bytes) made while it is installed; calls the original."""

    def __init__(self, real: Callable[[int, int, int | None, int], int]) -> None:
        self.real = real
        self.calls = 0
        self.sent = 0

    def __call__(self, out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
        sent = self.real(out_fd, in_fd, offset, count)
        self.calls += 1
        self.sent += sent
        return sent


@pytest.fixture
def sendfile_spy(monkeypatch: pytest.MonkeyPatch) -> SendfileSpy:
    spy = SendfileSpy(os.sendfile)
    monkeypatch.setattr(os, "sendfile", spy)
    return spy


@pytest.fixture
def data_file(tmp_path: Path) -> tuple[Path, bytes]:
    """A real file larger than a socket buffer (so sendfile has to wait and resume)."""
    data = b"".join(hashlib.sha256(b"%d" % i).digest() for i in range(40_000)) + b"tail!"
    path = tmp_path / "payload.bin"
    path.write_bytes(data)
    return path, data


def opener(path: Path) -> Callable[[], io.BufferedReader]:
    def open_file() -> io.BufferedReader:
        # Handed to wsgi.file_wrapper, whose close() (called by the server) closes it.
        return open(path, "rb")

    return open_file


def file_app(
    opener: Callable[[], io.RawIOBase | io.BufferedIOBase],
    opened: list[Any],
    *,
    content_length: int | None = None,
    seek: int = 0,
) -> App:
    def app(environ: dict[str, Any], start_response: StartResponse) -> Any:
        filelike = opener()
        filelike.seek(seek)
        opened.append(filelike)
        headers = [("Content-Type", "application/octet-stream")]
        if content_length is not None:
            headers.append(("Content-Length", str(content_length)))
        start_response("200 OK", headers)
        return environ["wsgi.file_wrapper"](filelike, 8192)

    return app


@pytest.mark.parametrize("protocol", ["scgi", "uwsgi"])
@pytest.mark.parametrize(
    ("declared", "seek", "expected_slice"),
    [
        (None, 0, slice(None)),
        ("size", 0, slice(None)),
        (1000, 0, slice(0, 1000)),
        (None, 4321, slice(4321, None)),
        (1000, 4321, slice(4321, 5321)),
    ],
    ids=["no-length", "exact-length", "shorter-length", "from-position", "position+length"],
)
def test_sendfile_used_for_raw_body_protocols(
    *,
    protocol: str,
    declared: int | str | None,
    seek: int,
    expected_slice: slice,
    sendfile_spy: SendfileSpy,
    data_file: tuple[Path, bytes],
) -> None:
    path, data = data_file
    expected = data[expected_slice]
    length = len(data) - seek if declared == "size" else declared
    assert length is None or isinstance(length, int)
    opened: list[Any] = []
    app = file_app(opener(path), opened, content_length=length, seek=seek)
    with running(app, protocol) as served:
        reply = ask(served, "/file")
    assert reply.raw.startswith(ok_head(protocol))
    assert len(reply.body) == len(expected)
    assert reply.body == expected
    assert sendfile_spy.calls >= 1
    assert sendfile_spy.sent == len(expected)
    assert len(opened) == 1
    assert opened[0].closed  # the wrapper's close() reached the file


def test_fastcgi_iterates_the_file_wrapper(
    sendfile_spy: SendfileSpy, data_file: tuple[Path, bytes]
) -> None:
    path, data = data_file
    opened: list[Any] = []
    for length in (None, len(data), 1000):
        app = file_app(opener(path), opened, content_length=length)
        with running(app, "fastcgi") as served:
            reply = ask(served, "/file")
        assert (reply.status, reply.app_status) == (200, 0)
        assert reply.body == (data if length is None else data[:length])
    assert sendfile_spy.calls == 0
    assert all(f.closed for f in opened)


@pytest.mark.parametrize("protocol", ["scgi", "uwsgi"])
def test_file_wrapper_without_fileno_falls_back_to_iteration(
    protocol: str, sendfile_spy: SendfileSpy, data_file: tuple[Path, bytes]
) -> None:
    _, data = data_file
    opened: list[Any] = []
    with running(file_app(lambda: io.BytesIO(data), opened), protocol) as served:
        reply = ask(served, "/bytesio")
    assert reply.status == 200
    assert reply.body == data
    assert sendfile_spy.calls == 0
    assert opened[0].closed


@pytest.mark.parametrize("protocol", ["scgi", "uwsgi"])
def test_file_wrapper_around_a_pipe_is_read_not_sendfiled(
    protocol: str, sendfile_spy: SendfileSpy, data_file: tuple[Path, bytes]
) -> None:
    # A pipe has a fileno but no position and no size: sendfile would cut the reply.
    _, data = data_file
    writers: list[threading.Thread] = []
    opened: list[Any] = []

    def app(environ: dict[str, Any], start_response: StartResponse) -> Any:
        read_fd, write_fd = os.pipe()

        def feed() -> None:
            with open(write_fd, "wb") as sink:
                sink.write(data)

        writer = threading.Thread(target=feed, daemon=True)  # more than a pipe holds
        writer.start()
        writers.append(writer)
        opened.append(open(read_fd, "rb"))  # noqa: SIM115 - the wrapper closes it
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](opened[-1], 8192)

    with running(app, protocol) as served:
        reply = ask(served, "/pipe")
    for writer in writers:
        writer.join(TIMEOUT)
    assert reply.status == 200
    assert len(reply.body) == len(data)
    assert reply.body == data
    assert sendfile_spy.calls == 0
    assert opened[0].closed


@pytest.mark.parametrize("protocol", ["scgi", "uwsgi"])
def test_file_wrapper_around_a_proc_file_sends_its_content(
    protocol: str, sendfile_spy: SendfileSpy
) -> None:
    # /proc files report a size of 0: sending "the rest of the file" by its size
    # would answer 200 with an empty body.
    path = Path("/proc/self/cmdline")
    expected = path.read_bytes()
    assert expected and path.stat().st_size == 0
    opened: list[Any] = []
    with running(file_app(opener(path), opened), protocol) as served:
        reply = ask(served, "/proc")
    assert reply.status == 200
    assert reply.body == expected
    assert sendfile_spy.calls == 0


# -- (b) the FastCGI FILTER role ------------------------------------------------------------
@pytest.mark.parametrize("how", ["sendmsg", "sendfile"])
@pytest.mark.parametrize("protocol", ["scgi", "uwsgi"])
def test_a_peer_that_reads_nothing_never_blocks_the_loop(
    protocol: str, how: str, tmp_path: Path, sendfile_spy: SendfileSpy
) -> None:
    """Accepted sockets stay in blocking mode: every read and write passes
    MSG_DONTWAIT, and sendfile (which takes no flags) makes its socket non-blocking
    first. A 64 MiB reply to a peer that reads nothing, from memory or from a file,
    waits in the loop while the next request is answered at once."""
    size = 64 * 1024 * 1024
    sparse = tmp_path / "sparse.bin"
    with open(sparse, "wb") as out:
        out.truncate(size)  # no disk used: a hole reads as zeros
    big = bytes(size) if how == "sendmsg" else b""

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ["PATH_INFO"] != "/big":
            start_response("200 OK", [("Content-Length", "2")])
            return [b"ok"]
        start_response("200 OK", [("Content-Length", str(size))])
        if how == "sendfile":
            wrapper: Callable[[Any], Iterable[bytes]] = environ["wsgi.file_wrapper"]
            return wrapper(open(sparse, "rb"))  # the server closes it
        return [big]

    with running(app, protocol) as served, served.connect() as stuck:
        for chunk in request_bytes(served, "/big"):
            stuck.sendall(chunk)
        wait_for(lambda: bool(select.select([stuck], [], [], 0)[0]), "the big reply to begin")
        began = time.monotonic()
        reply = ask(served, "/small")
        elapsed = time.monotonic() - began
        assert reply.body == b"ok"
        assert elapsed < 2.0, f"the loop was held {elapsed:.1f} s by a peer that reads nothing"
        # The big reply still waits, not cut.
        wait_for(lambda: len(served.worker.connections) == 1, "one connection left")
    if how == "sendfile":
        assert sendfile_spy.calls >= 1


def filter_app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
    stdin = read_all(environ["wsgi.input"])
    data_stream = environ.get("wsgiwire.fcgi_data")
    data = b"" if data_stream is None else read_all(data_stream)
    payload = json.dumps({
        "role": environ.get("FCGI_ROLE"),
        "stdin": stdin.decode(),
        "data": data.decode(),
        "data_length": environ.get("FCGI_DATA_LENGTH"),
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [payload]


def test_fastcgi_filter_role_end_to_end() -> None:
    driver = FastCGIDriver(roles=(Role.RESPONDER, Role.FILTER))
    file_data = b"<h1>the file to filter</h1>" * 100
    with running(filter_app, driver=driver) as served:
        target = served.target("/page.html")
        params = params_for(
            target, body=b"stdin bytes",
            extra=[("FCGI_DATA_LENGTH", str(len(file_data))),
                   ("FCGI_DATA_LAST_MOD", "1700000000")],
        )
        reply = fastcgi_request(target, params, b"stdin bytes", role=Role.FILTER,
                                filter_data=file_data, timeout=TIMEOUT)
        # The same server still plays RESPONDER.
        plain = ask(served, "/x")
    assert (reply.status, reply.app_status, reply.protocol_status) == (200, 0, 0)
    assert json.loads(reply.body) == {
        "role": "FILTER",
        "stdin": "stdin bytes",
        "data": file_data.decode(),
        "data_length": str(len(file_data)),
    }
    assert (plain.status, plain.protocol_status) == (200, FCGI_REQUEST_COMPLETE)
    assert json.loads(plain.body)["role"] is None  # RESPONDER: no FCGI_ROLE, no data


# -- raw FastCGI helpers ------------------------------------------------------------------
def read_until_end(sock: socket.socket, codec: FastCGIClient, request_id: int
                   ) -> tuple[bytes, EndRequest]:
    """STDOUT bytes and the END_REQUEST of ``request_id`` (bounded by the socket timeout)."""
    stdout: list[bytes] = []
    while True:
        event = codec.next_event()
        if event is NEED_DATA:
            data = sock.recv(65536)
            if not data:
                pytest.fail("connection closed before FCGI_END_REQUEST")
            codec.receive_data(data)
            continue
        if isinstance(event, StdoutData) and event.request_id == request_id:
            stdout.append(event.data)
        elif isinstance(event, EndRequest) and event.request_id == request_id:
            return b"".join(stdout), event


def wait_closed(sock: socket.socket, timeout: float = TIMEOUT) -> bytes:
    """Read until the peer closes; returns what came before EOF."""
    sock.settimeout(timeout)
    received = []
    while True:
        data = sock.recv(65536)
        if not data:
            return b"".join(received)
        received.append(data)


def test_fastcgi_filter_role_refused_unless_enabled() -> None:
    calls: list[object] = []

    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        calls.append(environ)
        return echo_app(environ, start_response)

    with running(app) as served, served.connect() as sock:  # RESPONDER only (the default)
        codec = FastCGIClient()
        params = params_for(served.target("/page.html"))
        # The whole request in one write: the refusal must not race the rest of it (see
        # test_fastcgi_refusal_with_input_still_arriving_is_read_without_reset).
        sock.sendall(codec.begin(1, params, role=Role.FILTER) + codec.end_stdin(1)
                     + codec.data(1, b"x") + codec.end_data(1))
        stdout, end = read_until_end(sock, codec, 1)
        assert wait_closed(sock) == b""
    assert (stdout, end.protocol_status) == (b"", FCGI_UNKNOWN_ROLE)
    assert calls == []


def test_fastcgi_refusal_with_input_still_arriving_is_read_without_reset() -> None:
    body = os.urandom(4 << 20)
    with running(validator(echo_app)) as served, served.connect() as sock:
        codec = FastCGIClient()
        params = params_for(served.target("/filter"), method="POST", body=body)
        request = codec.begin(1, params, role=Role.FILTER) + codec.stdin(1, body)
        send_errors: list[BaseException] = []

        def send() -> None:
            try:
                sock.sendall(request + codec.end_stdin(1))
                sock.shutdown(socket.SHUT_WR)
            except OSError as exc:
                send_errors.append(exc)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        try:
            stdout, end = read_until_end(sock, codec, 1)
            rest = wait_closed(sock)
        finally:
            sender.join(TIMEOUT)
        assert not sender.is_alive()
    assert (stdout, end.protocol_status, rest) == (b"", FCGI_UNKNOWN_ROLE, b"")
    assert send_errors == []


# -- (c) FCGI_ABORT_REQUEST -----------------------------------------------------------------
def test_abort_mid_body_ends_the_request_and_the_connection_goes_on() -> None:
    calls: list[str] = []

    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        calls.append(environ["PATH_INFO"])
        return echo_app(environ, start_response)

    with running(validator(app)) as served, served.connect() as sock:
        codec = FastCGIClient()
        target = served.target("/aborted")
        params = build_params(target, method="POST", body_length=100)
        sock.sendall(codec.begin(1, params, keep_conn=True) + codec.stdin(1, b"x" * 10))
        sock.sendall(codec.abort(1))
        stdout, end = read_until_end(sock, codec, 1)
        assert stdout == b""
        assert end.protocol_status == FCGI_REQUEST_COMPLETE
        assert calls == []  # the app never ran for the aborted request

        # The same connection serves the next request (same id reused, then another).
        for request_id in (1, 2):
            target = served.target(f"/next{request_id}")
            sock.sendall(codec.begin(request_id, build_params(target), keep_conn=True)
                         + codec.end_stdin(request_id))
            stdout, end = read_until_end(sock, codec, request_id)
            status, _, _, body = parse_head(stdout)
            assert (status, end.app_status, end.protocol_status) == (200, 0, 0)
            assert json.loads(body)["path_info"] == f"/next{request_id}"
    assert calls == ["/next1", "/next2"]


# -- (d) protocol errors --------------------------------------------------------------------
def test_bad_fastcgi_version_closes_that_connection_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with running(validator(echo_app)) as served:
        with served.connect() as bad:
            # version 2, FCGI_BEGIN_REQUEST, id 1, 8 bytes of content
            bad.sendall(b"\x02\x01\x00\x01\x00\x08\x00\x00" + b"\x00\x01\x00" + b"\x00" * 5)
            assert wait_closed(bad) == b""
        reply = ask(served, "/after")
    assert (reply.status, reply.app_status) == (200, 0)
    assert "unsupported FastCGI version 2" in caplog.text


def test_scgi_missing_comma_gets_400_then_close() -> None:
    with running(validator(echo_app), "scgi") as served:
        head = encode_scgi(params_for(served.target("/bad")))
        with served.connect() as bad:
            bad.sendall(head[:-1] + b";")
            answer = wait_closed(bad)
        reply = ask(served, "/after")
    status, _, _, body = parse_head(answer)
    assert status == 400
    assert body.startswith(b"400 Bad Request")
    assert reply.status == 200
    assert json.loads(reply.body)["path_info"] == "/after"


# -- (e) threads -------------------------------------------------------------------------------
class Gate:
    """An app that holds every request until ``release`` is set (bounded)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.entered = 0
        self.running = 0
        self.max_running = 0

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        with self.lock:
            self.entered += 1
            self.running += 1
            self.max_running = max(self.max_running, self.running)
        released = self.release.wait(TIMEOUT)
        with self.lock:
            self.running -= 1
        start_response("200 OK" if released else "504 Gateway Timeout",
                       [("Content-Type", "text/plain")])
        return [environ["PATH_INFO"].encode()]


def queued(served: Served) -> int:
    pool = served.worker.pool
    return 0 if pool is None else pool.jobs.qsize()


def test_threads_hold_concurrent_requests_none_refused() -> None:
    gate = Gate()
    with running(validator(gate), threads=2) as served, ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(ask, served, f"/r{i}") for i in range(8)]
        try:
            wait_for(lambda: gate.entered == 2 and queued(served) == 6,
                     "2 requests running and 6 queued")
        finally:
            gate.release.set()
        replies = [f.result(TIMEOUT) for f in futures]
    assert [(r.status, r.app_status, r.protocol_status) for r in replies] == [(200, 0, 0)] * 8
    assert sorted(r.body for r in replies) == sorted(b"/r%d" % i for i in range(8))
    assert gate.entered == 8
    assert gate.max_running == 2


@pytest.mark.parametrize("protocol", ["fastcgi", "uwsgi"])
def test_full_queue_refuses_at_once(protocol: str) -> None:
    gate = Gate()
    limits = Limits(max_queued_requests=1)
    with running(gate, protocol, threads=1, limits=limits) as served, \
            ThreadPoolExecutor(2) as pool:
        try:
            first = pool.submit(ask, served, "/first")
            wait_for(lambda: gate.entered == 1, "the first request to run")
            second = pool.submit(ask, served, "/second")
            wait_for(lambda: queued(served) == 1, "the second request to queue")
            started = time.monotonic()
            refused = ask(served, "/third")
            elapsed = time.monotonic() - started
            assert not gate.release.is_set()
        finally:
            gate.release.set()
        held = [first.result(TIMEOUT), second.result(TIMEOUT)]
    assert elapsed < 2.0
    if protocol == "fastcgi":
        assert refused.protocol_status == FCGI_OVERLOADED == 2
        assert refused.raw == b""
    else:
        assert refused.status == 503
        assert refused.raw.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert [(r.status, r.body) for r in held] == [(200, b"/first"), (200, b"/second")]
    assert gate.entered == 2  # the refused request never reached the app


def test_threads_mode_sets_multithread() -> None:
    with running(validator(echo_app), threads=2) as served:
        reply = ask(served, "/")
    assert json.loads(reply.body)["multithread"] is True


# -- (f) keep-alive idle timeout -------------------------------------------------------------
def test_idle_kept_connection_is_closed_after_keepalive_timeout() -> None:
    limits = Limits(keepalive_timeout=0.5)
    with running(validator(echo_app), limits=limits) as served, served.connect() as sock:
        for _ in range(2):  # kept alive between requests
            reply = ask(served, "/k", sock=sock, keep_conn=True)
            assert (reply.status, reply.closed_by_backend) == (200, False)
        idle_from = time.monotonic()
        assert wait_closed(sock, timeout=5.0) == b""
        idle = time.monotonic() - idle_from
        assert len(served.worker.connections) == 0
    # keepalive 0.5 s, checked on a 1 s sweep: closed after 0.5 s and within ~2 s.
    assert 0.4 <= idle <= 2.5


def test_request_without_keep_conn_is_closed_at_once() -> None:
    with running(validator(echo_app)) as served, served.connect() as sock:
        reply = ask(served, "/once", sock=sock)
        assert reply.status == 200
        started = time.monotonic()
        assert wait_closed(sock, timeout=5.0) == b""
        assert time.monotonic() - started < 0.5


# -- (g) lingering close ---------------------------------------------------------------------
def test_refusal_with_body_still_arriving_is_read_without_reset() -> None:
    """uwsgi modifier1 5 (PSGI) is refused with 501 while 2 MiB of body still arrive.

    The server must shut down its side and drain, not close with unread input: a close
    would make the kernel send RST and the client's recv fail with ECONNRESET before it
    reads the 501 (nginx: "Connection reset by peer", then a 502).
    """
    body = os.urandom(2 << 20)
    with running(validator(echo_app), "uwsgi") as served:
        target = served.target("/psgi")
        head = encode_uwsgi(params_for(target, method="POST", body=body), modifier1=5)
        with served.connect() as sock:
            send_errors: list[BaseException] = []

            def send() -> None:
                try:
                    sock.sendall(head + body)
                    sock.shutdown(socket.SHUT_WR)
                except OSError as exc:
                    send_errors.append(exc)

            sender = threading.Thread(target=send, daemon=True)
            sender.start()
            answer = wait_closed(sock)
            sender.join(TIMEOUT)
            assert not sender.is_alive()
        reply = ask(served, "/after")
    status, _, _, text = parse_head(answer)
    assert answer.startswith(b"HTTP/1.1 501 Not Implemented\r\n")
    assert (status, text) == (501, b"501 Not Implemented\n")
    assert send_errors == []  # the whole body was taken (and discarded)
    assert reply.status == 200


# -- the allow-list at accept() -------------------------------------------------------------
@pytest.mark.parametrize("protocol", sorted(DRIVERS))
def test_peer_filter_refuses_unlisted_peer_without_a_reply(
    caplog: pytest.LogCaptureFixture, protocol: str
) -> None:
    calls: list[str] = []

    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        calls.append(environ["PATH_INFO"])
        return echo_app(environ, start_response)

    received = b""
    with running(app, protocol, peer_filter=PeerFilter(["192.0.2.1"])) as served, \
            served.connect() as sock:
        try:
            sock.sendall(b"".join(request_bytes(served, "/refused")))
            received = wait_closed(sock)
        except ConnectionError:
            pass  # closed with the request unread: a reset, no reply either
    assert received == b""
    assert "refused by the allow-list" in caplog.text
    assert calls == []  # nothing it sent reached the app


@pytest.mark.parametrize("protocol", sorted(DRIVERS))
@pytest.mark.parametrize(
    ("bind", "allowed"),
    [("127.0.0.1:0", "::ffff:127.0.0.1"), ("127.0.0.1:0", "127.0.0.0/8"), ("[::1]:0", "::1")],
)
def test_peer_filter_admits_listed_peer(bind: str, allowed: str, protocol: str) -> None:
    with running(validator(echo_app), protocol, bind=bind,
                 peer_filter=PeerFilter([allowed])) as served:
        reply = ask(served, "/allowed")
    assert reply.status == 200
    assert json.loads(reply.body)["path_info"] == "/allowed"


# -- accepting -----------------------------------------------------------------------------
def unix_listener(path: str) -> socket.socket:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(8)
    listener.setblocking(False)
    return listener


class CountingListener(socket.socket):
    """A listening socket that counts the accept() calls that found, and did not find, one."""

    accepted = 0
    failed = 0

    def _accept(self) -> tuple[int, Any]:
        try:
            result: tuple[int, Any] = super()._accept()  # type: ignore[misc]
        except BlockingIOError:
            self.failed += 1
            raise
        self.accepted += 1
        return result


def test_one_wakeup_accepts_every_waiting_connection_without_a_failed_accept(
    tmp_path: Path,
) -> None:
    """Queued SCGI connections are all served by one wakeup; an empty backlog is found by
    poll(), not by an accept() failing with EAGAIN (which costs the kernel a file)."""
    listener = CountingListener(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(tmp_path / "a.sock"))
    listener.listen(8)
    listener.setblocking(False)
    board = Scoreboard(1)
    board.set_connections(0, 5)
    worker = Worker(
        ServerConfig(app=echo_app, driver=SCGIDriver(), listeners=[listener]), board, 0
    )
    target = Target("scgi", socket.AF_UNIX, str(tmp_path / "a.sock"), "/q", "")
    clients = []
    try:
        for _ in range(3):
            client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            client.settimeout(TIMEOUT)
            client.connect(str(tmp_path / "a.sock"))
            client.sendall(encode_scgi(params_for(target)))
            clients.append(client)
        worker._accept(listener)
        replies = [wait_closed(client) for client in clients]
    finally:
        for client in clients:
            client.close()
        worker.close()
        listener.close()
    assert [reply.startswith(b"Status: 200 OK\r\n") for reply in replies] == [True] * 3
    assert (listener.accepted, listener.failed) == (3, 0)
    assert worker.connections == {}
    assert board.read(0).connections == 0  # written once, after the wakeup


def test_scoreboard_counts_a_kept_fastcgi_connection_until_it_closes(tmp_path: Path) -> None:
    path = str(tmp_path / "f.sock")
    listener = unix_listener(path)
    board = Scoreboard(1)
    worker = Worker(
        ServerConfig(app=echo_app, driver=FastCGIDriver(), listeners=[listener]), board, 0
    )
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        client.connect(path)
        worker._accept(listener)
        kept = board.read(0).connections
        (conn,) = worker.connections.values()
        client.close()
        wait_for(lambda: bool(select.select([conn.sock], [], [], 0)[0]), "EOF to arrive")
        conn.on_readable()
    finally:
        client.close()
        worker.close()
        listener.close()
    assert kept == 1
    assert worker.connections == {}
    assert board.read(0).connections == 0


def scgi_bytes(path: str, path_info: str) -> bytes:
    return encode_scgi(params_for(Target("scgi", socket.AF_UNIX, path, path_info, "")))


def test_a_worker_at_its_connection_limit_leaves_the_next_connection_waiting(
    tmp_path: Path,
) -> None:
    """A connection the worker has no room for stays in the backlog (for another worker,
    or this one once a slot frees): it is not accepted and then closed unanswered."""
    path = str(tmp_path / "l.sock")
    listener = unix_listener(path)
    worker = Worker(
        ServerConfig(app=echo_app, driver=SCGIDriver(), listeners=[listener],
                     limits=Limits(max_connections=1)),
        Scoreboard(1), 0,
    )
    first = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    second = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        first.connect(path)
        first.sendall(scgi_bytes(path, "/1")[:5])  # holds the one slot, head unfinished
        second.connect(path)
        second.sendall(scgi_bytes(path, "/2"))
        worker._accept(listener)
        assert len(worker.connections) == 1
        assert select.select([second], [], [], 0.2)[0] == []  # no answer, no reset: waiting
        first.sendall(scgi_bytes(path, "/1")[5:])
        (conn,) = worker.connections.values()
        wait_for(lambda: bool(select.select([conn.sock], [], [], 0)[0]), "the rest of /1")
        conn.on_readable()  # /1 is answered; its slot frees
        worker._accept(listener)
        replies = [wait_closed(first), wait_closed(second)]
    finally:
        first.close()
        second.close()
        worker.close()
        listener.close()
    assert [json.loads(parse_head(r)[3])["path_info"] for r in replies] == ["/1", "/2"]


def test_a_stopping_one_request_worker_accepts_no_more_and_finishes_what_it_took(
    tmp_path: Path,
) -> None:
    """max_requests=1: the first request makes the worker stop. A connection it had taken
    before, whose request comes late, is still answered; those behind it in the backlog
    are left for the replacement worker."""
    path = str(tmp_path / "s.sock")
    listener = unix_listener(path)
    served: list[str] = []

    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        served.append(environ["PATH_INFO"])
        return echo_app(environ, start_response)

    worker = Worker(
        ServerConfig(app=app, driver=SCGIDriver(), listeners=[listener], max_requests=1,
                     graceful_timeout=5.0),
        Scoreboard(1), 0,
    )
    clients = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(3)]
    thread = threading.Thread(target=worker.serve, daemon=True)
    try:
        clients[0].connect(path)  # taken, its request comes later
        worker._accept(listener)
        assert len(worker.connections) == 1
        clients[1].connect(path)
        clients[1].sendall(scgi_bytes(path, "/first"))
        clients[2].connect(path)
        clients[2].sendall(scgi_bytes(path, "/third"))
        thread.start()
        wait_for(lambda: worker.stopping, "the first request to make the worker stop")
        clients[0].sendall(scgi_bytes(path, "/late"))
        late = wait_closed(clients[0])
        thread.join(STOP_TIMEOUT)
        assert not thread.is_alive()
        third_waiting = select.select([clients[2]], [], [], 0)[0] == []
    finally:
        for client in clients:
            client.close()
        listener.close()
        close_wake_sockets(worker)
    assert served == ["/first", "/late"]
    assert json.loads(parse_head(late)[3])["path_info"] == "/late"
    assert third_waiting  # not accepted: no answer and no reset


def test_a_worker_ahead_of_the_others_leaves_a_new_connection_to_them() -> None:
    """Two workers share a listener and a scoreboard; worker 0 holds two idle kept-alive
    FastCGI connections, so it declines the next one. Worker 1 must learn of it at once,
    not when worker 0's idle connections time out."""
    listener = open_listener(parse_bind("127.0.0.1:0"))
    config = ServerConfig(app=echo_app, driver=FastCGIDriver(), listeners=[listener],
                          limits=Limits(keepalive_timeout=8.0), graceful_timeout=1.0)
    board = Scoreboard(2)
    workers = [Worker(config, board, 0), Worker(config, board, 1)]
    threads = [threading.Thread(target=w.serve, daemon=True) for w in workers]
    address = listener.getsockname()
    idle: list[socket.socket] = []
    try:
        threads[0].start()
        idle = [socket.create_connection(address) for _ in range(2)]
        wait_for(lambda: len(workers[0].connections) == 2, "worker 0 to hold two connections")
        threads[1].start()
        wait_for(lambda: board.read(1).state == ACCEPTING, "worker 1 to accept")
        target = Target("fastcgi", listener.family, address, "/", "")
        started = time.monotonic()
        reply = fastcgi_request(target, params_for(target), timeout=TIMEOUT)
        took = time.monotonic() - started
    finally:
        for sock in idle:
            sock.close()
        for worker in workers:
            worker.request_stop()
        for thread in threads:
            thread.join(STOP_TIMEOUT)
        listener.close()
        for worker in workers:
            close_wake_sockets(worker)
    assert reply.status == 200
    assert took < 4.0, f"answered only after {took:.1f} s"


# -- stopping ------------------------------------------------------------------------------
def test_worker_closes_its_own_sockets_when_it_stops() -> None:
    before = open_fds()
    listener = open_listener(parse_bind("127.0.0.1:0"))
    worker = Worker(ServerConfig(app=echo_app, driver=FastCGIDriver(), listeners=[listener]))
    thread = threading.Thread(target=worker.serve, daemon=True)
    thread.start()
    try:
        worker.request_stop()
        thread.join(STOP_TIMEOUT)
        assert not thread.is_alive()
        listener.close()  # the caller's; everything else is the worker's to close
        left_open = open_fds() - before
    finally:
        listener.close()
        close_wake_sockets(worker)
    assert left_open == set()


def test_a_stop_signals_number_on_the_wake_up_socket_stops_the_worker() -> None:
    """What the C-level handler writes for a SIGTERM (its number, on the wake-up fd)
    stops the worker by itself: the compiled loop may run no bytecode, hence no
    Python handler (request_stop), until the next request comes."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        with running(echo_app, "uwsgi") as served:
            assert ask(served, "/before").status == 200
            served.worker._wake_w.send(bytes([signum]))
            wait_for(lambda: served.worker.stopping, f"signal {signum} to stop the worker")


def test_serve_on_the_main_thread_stops_on_a_sigterm_through_the_wake_up_fd() -> None:
    """On the main thread serve() makes its wake-up socket the signal wake-up fd: a
    SIGTERM stops it even when its Python handler does nothing (or runs late), and
    the fd is given back when serve() returns."""
    listener = open_listener(parse_bind("127.0.0.1:0"))
    worker = Worker(ServerConfig(app=echo_app, driver=SCGIDriver(), listeners=[listener]))
    handler = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    before = signal.set_wakeup_fd(-1)
    sigterm = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM))
    fallback = threading.Timer(STOP_TIMEOUT, worker.request_stop)  # the old behaviour
    started = time.monotonic()
    try:
        sigterm.start()
        fallback.start()
        worker.serve()
        took = time.monotonic() - started
        assert signal.set_wakeup_fd(-1) == -1  # given back
    finally:
        sigterm.cancel()
        fallback.cancel()
        signal.set_wakeup_fd(before)
        signal.signal(signal.SIGTERM, handler)
        listener.close()
        close_wake_sockets(worker)
    assert took < STOP_TIMEOUT / 2, took


def test_request_stop_waits_for_a_running_request() -> None:
    gate = Gate()
    with running(gate, threads=1) as served, ThreadPoolExecutor(1) as pool:
        future = pool.submit(ask, served, "/in-flight")
        wait_for(lambda: gate.entered == 1, "the request to run")
        served.worker.request_stop()
        gate.release.set()
        reply = future.result(TIMEOUT)
    assert (reply.status, reply.body, reply.app_status) == (200, b"/in-flight", 0)


# -- (h) accept balancing: Scoreboard.should_yield -----------------------------------------
def board_with(counts: dict[int, tuple[int, int]], slots: int = 4) -> Scoreboard:
    """A scoreboard whose slot -> (state, connections) are as given; other slots free."""
    board = Scoreboard(slots)
    for slot, (state, connections) in counts.items():
        board.assign(slot, 1000 + slot)
        board.set_state(slot, state)
        board.set_connections(slot, connections)
    return board


def test_should_yield_only_when_clearly_ahead_of_the_least_loaded() -> None:
    board = board_with({0: (ACCEPTING, 0), 1: (ACCEPTING, 0), 2: (ACCEPTING, 0)})
    assert not board.should_yield(0, 0)
    assert not board.should_yield(0, 1)  # one over the least loaded: within the slack
    assert board.should_yield(0, 2)
    board = board_with({0: (ACCEPTING, 2), 1: (ACCEPTING, 5), 2: (ACCEPTING, 3)})
    assert not board.should_yield(0, 2)
    assert not board.should_yield(2, 3)
    assert board.should_yield(2, 4)
    assert board.should_yield(1, 5)


def test_should_yield_compares_with_other_accepting_workers_only() -> None:
    # The caller's own slot is not compared with (its stored count may be stale).
    board = board_with({0: (ACCEPTING, 50), 1: (ACCEPTING, 3)})
    assert not board.should_yield(0, 4)
    assert board.should_yield(0, 5)
    # Draining workers (old generation after a reload) and free slots do not count.
    board = board_with({0: (ACCEPTING, 6), 1: (DRAINING, 0), 3: (ACCEPTING, 5)})
    assert not board.should_yield(0, 6)
    assert board.should_yield(0, 7)
    # Alone: never yields, however many connections it holds.
    board = board_with({0: (ACCEPTING, 0), 1: (DRAINING, 0)})
    assert not board.should_yield(0, 1000)


@pytest.mark.parametrize("keep_conn", [False, True])
def test_accept_balancing_counts_only_the_connections_the_web_server_keeps(
    keep_conn: bool,
) -> None:
    """A worker holding several FastCGI connections whose requests came without
    FCGI_KEEP_CONN (nginx's default) goes on accepting: they close after their reply,
    and pausing for them stalled every such request. Kept connections are balanced:
    ahead of an idle worker, it leaves new ones in the backlog."""
    big = b"x" * (32 << 20)  # more than the sockets hold: the reply waits for a reader

    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [big if environ["PATH_INFO"] == "/big" else b"ok"]

    board = board_with({0: (ACCEPTING, 0), 1: (ACCEPTING, 0)}, slots=2)
    client = FastCGIClient()
    with running(app, board=board) as served, contextlib.ExitStack() as held:
        for _ in range(3):  # three replies that nobody reads: three connections held
            sock = held.enter_context(served.connect())
            params = params_for(served.target("/big"))
            sock.sendall(client.begin(1, params, keep_conn=keep_conn) + client.end_stdin(1))
        if keep_conn:
            # Two kept connections against the other worker's none: the third waits.
            wait_for(lambda: served.worker.accept_paused_until > 0, "a pause for the other worker")
            assert len(served.worker.connections) == 2
            return
        wait_for(lambda: len(served.worker.connections) == 3, "three connections held")
        probe = held.enter_context(served.connect())
        probe.sendall(client.begin(1, params_for(served.target("/small")))
                      + client.end_stdin(1))
        probe.settimeout(TIMEOUT)
        assert probe.recv(8), "the fourth connection was not served"
        assert served.worker.accept_paused_until == 0


def test_scoreboard_is_shared_across_fork() -> None:
    board = board_with({0: (ACCEPTING, 0), 1: (ACCEPTING, 0)}, slots=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        pid = os.fork()
    if pid == 0:  # the child: publish a count and leave at once
        try:
            board.set_connections(1, 7)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert board.read(1).connections == 7  # the parent sees the child's count
    assert not board.should_yield(0, 8)  # the child's 7 is the least loaded: 8 is within
    assert board.should_yield(0, 9)


def test_a_protocol_error_is_one_log_line_showing_the_peers_bytes_escaped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Plain HTTP sent to a uwsgi socket: one warning naming the protocol, the peer,
    the reason, and the bytes received, escaped and cut short."""
    request = b"GET /" + b"x" * 100 + b" HTTP/1.1\r\nHost: a\r\n\r\n"
    with (
        caplog.at_level(logging.WARNING, logger="wsgiwire"),
        running(echo_app, "uwsgi") as served,
        served.connect() as sock,
    ):
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        reply = b"".join(iter(lambda: sock.recv(65536), b""))
    assert reply.startswith(b"HTTP/1.1 501 ")
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1, lines
    line = lines[0]
    assert line.startswith("uwsgi protocol error from 127.0.0.1:")
    assert "last bytes received: 'GET /xxxxxxxx" in line
    assert "\r" not in line and "\n" not in line
    assert line.endswith("...)")  # truncated: the request is longer than what is shown



# -- inline write() past the spill threshold --------------------------------------------------
def _writes_app(size: int, done: threading.Event) -> App:
    """Writes ``size`` bytes (piece i: 64 KiB of byte i % 251) through ``write()``."""

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        write = start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                          ("Content-Length", str(size))])
        for index in range(size // 65536):
            write(bytes([index % 251]) * 65536)
        write(b"z" * (size % 65536))
        done.set()
        return []

    return app


def _expected_writes(size: int) -> bytes:
    pieces = [bytes([i % 251]) * 65536 for i in range(size // 65536)]
    return b"".join(pieces) + b"z" * (size % 65536)


def _ask_reading_late(served: Served, done: threading.Event) -> tuple[bytes, bytes, list[str]]:
    """A GET whose reply is read only once the app has returned: (head, body, the
    worker's descriptors that were open on a temporary file meanwhile)."""
    with served.connect() as sock:
        for chunk in request_bytes(served, "/writes"):
            sock.sendall(chunk)
        assert done.wait(TIMEOUT)  # every write() is over: what spilled is in its file
        spill = [link for link in map(_fd_link, os.listdir("/proc/self/fd"))
                 if "wsgiwire-reply" in link or "(deleted)" in link]
        head, body = _read_reply(served, sock)
    return head, body, spill


def _read_reply(served: Served, sock: socket.socket) -> tuple[bytes, bytes]:
    """(head, body) of the reply ``sock`` receives, read to the end of the connection."""
    sock.settimeout(TIMEOUT)
    raw = b"".join(iter(lambda: sock.recv(1 << 20), b""))
    if served.protocol == "fastcgi":
        codec = FastCGIClient()
        codec.receive_data(raw)
        out = []
        while (event := codec.next_event()) is not NEED_DATA:
            if isinstance(event, StdoutData):
                out.append(event.data)
            elif isinstance(event, EndRequest):
                break
        raw = b"".join(out)
    head, _, body = raw.partition(b"\r\n\r\n")
    return head, body


def _fd_link(name: str) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{name}")
    except OSError:
        return ""


@pytest.mark.parametrize("protocol", list(DRIVERS))
def test_inline_write_past_the_socket_spills_to_a_file_and_arrives_whole(
    protocol: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    size = 6 * 1024 * 1024 + 5
    done = threading.Event()
    with running(_writes_app(size, done), protocol) as served:
        head, body, spill = _ask_reading_late(served, done)
        assert head.startswith(ok_head(protocol)), head
        assert len(body) == size and body == _expected_writes(size)
        assert any(str(tmp_path) in link for link in spill), spill
        wait_for(lambda: not any(str(tmp_path) in _fd_link(name)
                                 for name in os.listdir("/proc/self/fd")),
                 "the spill file closed")


@pytest.mark.parametrize("protocol", list(DRIVERS))
def test_a_reply_past_max_reply_spool_is_cut_and_its_connection_closed(
    protocol: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    size = 24 * 1024 * 1024
    ended = threading.Event()
    raised: list[BaseException] = []

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ["PATH_INFO"] != "/writes":
            start_response("200 OK", [("Content-Length", "2")])
            return [b"ok"]
        write = start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                          ("Content-Length", str(size))])
        try:
            for index in range(size // 65536):
                write(bytes([index % 251]) * 65536)
        except BaseException as exc:
            raised.append(exc)
            raise
        finally:
            ended.set()
        return []

    limits = DEFAULT_LIMITS.replace(max_reply_spool=4 * 1024 * 1024)
    with caplog.at_level(logging.INFO, logger="wsgiwire"), \
            running(app, protocol, limits=limits) as served:
        with served.connect() as sock:
            for chunk in request_bytes(served, "/writes"):
                sock.sendall(chunk)
            assert ended.wait(TIMEOUT)  # nothing read yet: the app's write() gave up
            sock.settimeout(TIMEOUT)
            # What the socket took before the cut, then the close (EOF).
            raw = b"".join(iter(lambda: sock.recv(1 << 20), b""))
        assert 0 < len(raw) < size
        assert ask(served, "/").body == b"ok"  # the worker serves on
        wait_for(lambda: not any(str(tmp_path) in _fd_link(name)
                                 for name in os.listdir("/proc/self/fd")),
                 "the spill files closed")
    assert [type(exc).__name__ for exc in raised] == ["ClientDisconnected"]
    lines = [r for r in caplog.records if "max_reply_spool" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.WARNING, lines
    assert "GET /writes" in lines[0].getMessage()
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("protocol", list(DRIVERS))
def test_a_large_chunk_of_the_iterable_is_not_spilled(
    protocol: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunk of the app's iterable far past ``SPILL_AT``, to a reader that reads late,
    goes out from memory: the run pauses after it, and the paused iteration holds the
    chunk anyway, so a temporary file would only copy it (a 1 MiB download spent more
    CPU on that copy than on all the rest of its request)."""
    opened: list[object] = []
    temporary_file = tempfile.TemporaryFile

    def recorded(*args: Any, **kwargs: Any) -> Any:
        opened.append(args)
        return temporary_file(*args, **kwargs)

    monkeypatch.setattr(tempfile, "TemporaryFile", recorded)
    size = 6 * 1024 * 1024 + 5
    chunk = _expected_writes(size)
    returned = threading.Event()

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(size))])
        returned.set()
        return [chunk]

    # A unix socket: its buffer (about 200 KiB) cannot take the chunk at once.
    with running(app, protocol, bind=f"unix:{tmp_path / 'w.sock'}") as served, \
            served.connect() as sock:
        for piece in request_bytes(served, "/"):
            sock.sendall(piece)
        assert returned.wait(TIMEOUT)
        time.sleep(0.2)  # the worker writes what the socket takes; the rest waits
        head, body = _read_reply(served, sock)
    assert head.startswith(ok_head(protocol)), head
    assert len(body) == size and body == chunk
    assert opened == []


def test_a_spill_that_cannot_be_written_keeps_the_reply_in_memory(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def no_room(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tempfile, "TemporaryFile", no_room)
    size = 6 * 1024 * 1024 + 5
    done = threading.Event()
    with caplog.at_level(logging.WARNING, logger="wsgiwire"), \
            running(_writes_app(size, done)) as served:
        head, body, _ = _ask_reading_late(served, done)
    assert head.startswith(ok_head("fastcgi")), head
    assert body == _expected_writes(size)
    lines = [r.getMessage() for r in caplog.records if "cannot spill" in r.getMessage()]
    assert len(lines) == 1, lines
    assert "No space left on device" in lines[0]
