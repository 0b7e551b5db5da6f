"""``wsgiwire._client``: targets, the parameters it sends, and its wire format.

The wire is checked against the test-only encoders written from the specifications
(``tests/support/*_spec.py``), with a fake backend that records what the client sent and
answers canned bytes, so no part of wsgiwire's server side is involved.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import fcgi_spec, scgi_spec, uwsgi_spec
from wsgiwire._client import (
    ClientError,
    Target,
    build_params,
    encode_scgi,
    encode_uwsgi,
    fastcgi_get_values,
    fastcgi_request,
    parse_head,
    parse_target,
    scgi_request,
    send_request,
    uwsgi_request,
)
from wsgiwire._events import Role

TIMEOUT = 10.0
CLIENT_HANG_BOUND = 2.0
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def short_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="ww-cl-", dir="/tmp") as path:
        yield Path(path)


# -- parse_target ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "protocol", "family", "address", "path", "query"),
    [
        ("fastcgi://127.0.0.1:9000/a/b?x=1&y=2", "fastcgi", socket.AF_INET,
         ("127.0.0.1", 9000), "/a/b", "x=1&y=2"),
        ("fcgi://localhost:9001", "fastcgi", socket.AF_INET, ("localhost", 9001), "/", ""),
        ("FastCGI://127.0.0.1:1/", "fastcgi", socket.AF_INET, ("127.0.0.1", 1), "/", ""),
        ("scgi://127.0.0.1:4000/p", "scgi", socket.AF_INET, ("127.0.0.1", 4000), "/p", ""),
        ("uwsgi://127.0.0.1:3031/", "uwsgi", socket.AF_INET, ("127.0.0.1", 3031), "/", ""),
        ("uwsgi://[::1]:3031/v6?q", "uwsgi", socket.AF_INET6, ("::1", 3031), "/v6", "q"),
        ("fastcgi://[::1]:9000", "fastcgi", socket.AF_INET6, ("::1", 9000), "/", ""),
        ("fastcgi://127.0.0.1:9000/a%20b/%2F", "fastcgi", socket.AF_INET,
         ("127.0.0.1", 9000), "/a%20b/%2F", ""),
        ("fastcgi+unix:///run/php/app.sock/index.php/x?y=1", "fastcgi", socket.AF_UNIX,
         "/run/php/app.sock", "/index.php/x", "y=1"),
        ("fcgi+unix:///run/app.sock", "fastcgi", socket.AF_UNIX, "/run/app.sock", "/", ""),
        ("scgi+unix:///tmp/s.sock/", "scgi", socket.AF_UNIX, "/tmp/s.sock", "/", ""),
        ("uwsgi+unix:///no/such/socket", "uwsgi", socket.AF_UNIX, "/no/such/socket", "/", ""),
    ],
)
def test_parse_target(*, url: str, protocol: str, family: int, address: object, path: str,
                      query: str) -> None:
    assert parse_target(url) == Target(protocol, family, address, path, query)  # type: ignore[arg-type]


def test_unix_target_splits_at_an_existing_socket_file(short_dir: Path) -> None:
    sock_path = short_dir / "backend"  # no .sock suffix: found because it is a socket
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))
        target = parse_target(f"fastcgi+unix://{sock_path}/app/x?q=1")
    assert (target.address, target.path, target.query) == (str(sock_path), "/app/x", "q=1")


def test_unix_target_existing_socket_wins_over_a_later_dot_sock(short_dir: Path) -> None:
    sock_path = short_dir / "s"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))
        target = parse_target(f"scgi+unix://{sock_path}/files/x.sock/y")
    assert (target.address, target.path) == (str(sock_path), "/files/x.sock/y")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:80/", "unknown protocol"),
        ("ajp://127.0.0.1:8009/", "unknown protocol"),
        ("127.0.0.1:9000", "unknown protocol"),
        ("fastcgi+tcp://127.0.0.1:9000/", "unknown transport"),
        ("fastcgi://127.0.0.1/x", "needs a port"),
        ("scgi://[::1]/", "needs a port"),
    ],
)
def test_parse_target_errors(url: str, message: str) -> None:
    with pytest.raises(ClientError, match=message):
        parse_target(url)


@pytest.mark.parametrize("url", ["fastcgi://127.0.0.1:http/", "scgi://127.0.0.1:99999/"])
def test_bad_port_is_a_client_error(url: str) -> None:
    with pytest.raises(ClientError):
        parse_target(url)


# -- build_params ------------------------------------------------------------------------------
def as_dict(pairs: list[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    names = [name for name, _ in pairs]
    assert len(names) == len(set(names)), f"duplicate names: {names}"
    return dict(pairs)


def test_build_params_fastcgi_shape() -> None:
    target = parse_target("fastcgi://127.0.0.1:9000/a%20b/c?x=1")
    pairs = build_params(target, method="POST", body_length=5)
    params = as_dict(pairs)
    assert params == {
        b"GATEWAY_INTERFACE": b"CGI/1.1",
        b"SERVER_SOFTWARE": b"wsgiwire-client",
        b"REQUEST_METHOD": b"POST",
        b"REQUEST_URI": b"/a%20b/c?x=1",
        b"QUERY_STRING": b"x=1",
        b"SCRIPT_NAME": b"",
        b"PATH_INFO": b"/a b/c",
        b"SERVER_PROTOCOL": b"HTTP/1.1",
        b"SERVER_NAME": b"localhost",
        b"SERVER_PORT": b"80",
        b"REMOTE_ADDR": b"127.0.0.1",
        b"REMOTE_PORT": b"0",
        b"CONTENT_LENGTH": b"5",
        b"HTTP_HOST": b"localhost",
    }
    assert b"SCGI" not in params


def test_build_params_scgi_puts_content_length_first_and_scgi_second() -> None:
    target = parse_target("scgi://127.0.0.1:4000/x")
    pairs = build_params(target, body_length=12)
    assert pairs[0] == (b"CONTENT_LENGTH", b"12")
    assert pairs[1] == (b"SCGI", b"1")
    assert [name for name, _ in pairs].count(b"CONTENT_LENGTH") == 1
    assert as_dict(pairs)[b"PATH_INFO"] == b"/x"


def test_build_params_headers() -> None:
    target = parse_target("uwsgi://127.0.0.1:3031/")
    pairs = build_params(
        target,
        body_length=3,
        headers=[
            ("X-Forwarded-For", "192.0.2.1"),
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", "999"),
            ("Host", "example.org"),
            ("accept-language", "en"),
        ],
    )
    params = as_dict(pairs)
    assert params[b"HTTP_X_FORWARDED_FOR"] == b"192.0.2.1"
    assert params[b"CONTENT_TYPE"] == b"text/plain; charset=utf-8"
    assert params[b"CONTENT_LENGTH"] == b"3"  # the body's real length, never the header's
    assert params[b"HTTP_HOST"] == b"example.org"  # no default Host added
    assert params[b"HTTP_ACCEPT_LANGUAGE"] == b"en"
    assert b"HTTP_CONTENT_TYPE" not in params
    assert b"HTTP_CONTENT_LENGTH" not in params


def test_build_params_script_name_and_extra() -> None:
    target = parse_target("fastcgi://127.0.0.1:9000/app/x/y")
    pairs = build_params(target, script_name="/app", body_length=None,
                         extra=[("HTTPS", "on"), ("DOCUMENT_ROOT", "/srv")])
    params = as_dict(pairs)
    assert (params[b"SCRIPT_NAME"], params[b"PATH_INFO"]) == (b"/app", b"/x/y")
    assert params[b"REQUEST_URI"] == b"/app/x/y"
    assert params[b"CONTENT_LENGTH"] == b""
    assert pairs[-2:] == [(b"HTTPS", b"on"), (b"DOCUMENT_ROOT", b"/srv")]
    outside = as_dict(build_params(parse_target("fastcgi://h:1/other"), script_name="/app"))
    assert (outside[b"SCRIPT_NAME"], outside[b"PATH_INFO"]) == (b"/app", b"/other")


# -- parse_head ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nmissing",
         (404, "Not Found", [("Content-Type", "text/plain")], b"missing")),
        (b"Content-Type: text/html\r\nX-A: 1\r\n\r\n<p>\r\n\r\nmore",
         (200, "OK", [("Content-Type", "text/html"), ("X-A", "1")], b"<p>\r\n\r\nmore")),
        (b"Status: 302 Found\nLocation: /x\n\n",
         (302, "Found", [("Location", "/x")], b"")),
        (b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n\r\nbusy",
         (503, "Service Unavailable", [("Retry-After", "1")], b"busy")),
        (b"HTTP/1.0 200 OK\r\n\r\n", (200, "OK", [], b"")),
        (b"Status: 204\r\n\r\n", (204, "", [], b"")),
    ],
)
def test_parse_head(raw: bytes, expected: tuple[object, ...]) -> None:
    assert parse_head(raw) == expected


def test_parse_head_without_end_of_headers() -> None:
    with pytest.raises(ClientError, match="no end of headers"):
        parse_head(b"Status: 200 OK\r\nContent-Type: text/plain\r\n")


# -- the wire, against a fake backend ----------------------------------------------------------
class FakeBackend:
    """Accepts one connection, reads until ``complete(received)``, answers ``reply``."""

    def __init__(self, complete: Callable[[bytes], bool], reply: bytes, *,
                 close: bool = True) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.listener.settimeout(TIMEOUT)
        self.complete = complete
        self.reply = reply
        self.close = close
        self.received = b""
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def target(self, protocol: str, path: str = "/", query: str = "") -> Target:
        return Target(protocol, socket.AF_INET, self.listener.getsockname(), path, query)

    def _run(self) -> None:
        try:
            conn, _ = self.listener.accept()
            with conn:
                conn.settimeout(TIMEOUT)
                while not self.complete(self.received):
                    data = conn.recv(65536)
                    if not data:
                        break
                    self.received += data
                conn.sendall(self.reply)
                if not self.close:
                    conn.recv(1)  # hold the connection until the client closes it
        except BaseException as exc:
            self.errors.append(exc)

    def __enter__(self) -> FakeBackend:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.thread.join(TIMEOUT)
        self.listener.close()
        assert not self.thread.is_alive()
        assert not self.errors, self.errors


def fcgi_complete(received: bytes) -> bool:
    """A whole FastCGI request: its empty FCGI_STDIN record has arrived."""
    with contextlib.suppress(fcgi_spec.Truncated):
        return any(r.type == fcgi_spec.STDIN and not r.content
                   for r in fcgi_spec.parse_records(received))
    return False


CANNED = b"Status: 201 Created\r\nX-Test: yes\r\n\r\nhello, body"


def fcgi_reply(request_id: int = 1, app_status: int = 0) -> bytes:
    return (
        fcgi_spec.record(fcgi_spec.STDOUT, request_id, CANNED[:20])
        + fcgi_spec.record(fcgi_spec.STDERR, request_id, b"a warning\n")
        + fcgi_spec.record(fcgi_spec.STDOUT, request_id, CANNED[20:])
        + fcgi_spec.record(fcgi_spec.STDOUT, request_id)
        + fcgi_spec.record(fcgi_spec.STDERR, request_id)
        + fcgi_spec.end_request(request_id, app_status, fcgi_spec.REQUEST_COMPLETE)
    )


def test_fastcgi_request_wire_and_reply() -> None:
    body = b"b" * 70_000  # more than one record
    with FakeBackend(fcgi_complete, fcgi_reply(request_id=7, app_status=3)) as backend:
        target = backend.target("fastcgi", "/x")
        params = build_params(target, method="POST", body_length=len(body))
        reply = fastcgi_request(target, params, body, request_id=7, timeout=TIMEOUT)
    records = fcgi_spec.parse_records(backend.received)
    assert all(r.version == 1 and r.request_id == 7 for r in records)
    assert records[0].type == fcgi_spec.BEGIN_REQUEST
    assert records[0].content == fcgi_spec.begin_request(7)[8:16]  # RESPONDER, no KEEP_CONN
    stream = b"".join(r.content for r in records if r.type == fcgi_spec.PARAMS)
    assert fcgi_spec.parse_pairs(stream) == params
    assert [r.type for r in records if not r.content] == [fcgi_spec.PARAMS, fcgi_spec.STDIN]
    assert b"".join(r.content for r in records if r.type == fcgi_spec.STDIN) == body
    assert reply.raw == CANNED
    assert (reply.status, reply.reason, reply.body) == (201, "Created", b"hello, body")
    assert reply.header("x-test") == "yes"
    assert reply.stderr == b"a warning\n"
    assert (reply.app_status, reply.protocol_status) == (3, 0)


def test_fastcgi_request_filter_role_and_keep_conn_flags() -> None:
    def complete(received: bytes) -> bool:
        with contextlib.suppress(fcgi_spec.Truncated):
            return any(r.type == fcgi_spec.DATA and not r.content
                       for r in fcgi_spec.parse_records(received))
        return False

    with FakeBackend(complete, fcgi_reply(), close=False) as backend:
        target = backend.target("fastcgi")
        with target.connect(TIMEOUT) as sock:
            reply = fastcgi_request(target, build_params(target), b"in", sock=sock,
                                    role=Role.FILTER, keep_conn=True, filter_data=b"file")
            assert sock.fileno() != -1  # the caller's socket is left open
    records = fcgi_spec.parse_records(backend.received)
    assert records[0].content == fcgi_spec.begin_request(1, fcgi_spec.FILTER,
                                                         fcgi_spec.KEEP_CONN)[8:16]
    order = [(r.type, r.content) for r in records if r.type != fcgi_spec.PARAMS]
    assert order[1:] == [(fcgi_spec.STDIN, b"in"), (fcgi_spec.STDIN, b""),
                         (fcgi_spec.DATA, b"file"), (fcgi_spec.DATA, b"")]
    assert (reply.status, reply.closed_by_backend) == (201, False)


# A backend that closes mid-response (a crashed worker: "premature end of script
# headers"), run in a child process so a hang is bounded and killed by its own PID.
CLOSING_BACKEND = textwrap.dedent(
    """
    import socket, sys, threading
    from wsgiwire._client import ClientError, Target, build_params, fastcgi_request
    answer = bytes.fromhex(sys.argv[1])
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def backend():
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.sendall(answer)
        conn.close()

    threading.Thread(target=backend, daemon=True).start()
    target = Target("fastcgi", socket.AF_INET, listener.getsockname(), "/", "")
    try:
        fastcgi_request(target, build_params(target), timeout=5)
    except ClientError as exc:
        print("ClientError:", exc)
    except Exception as exc:
        print("other:", type(exc).__name__, exc)
    else:
        print("no error")
    """
)


def closing_backend(answer: bytes) -> str:
    """What fastcgi_request did when the backend sent ``answer`` and closed."""
    try:
        result = subprocess.run(
            [sys.executable, "-c", CLOSING_BACKEND, answer.hex()],
            capture_output=True, timeout=CLIENT_HANG_BOUND, check=False,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
    except subprocess.TimeoutExpired:  # subprocess.run killed it
        pytest.fail(f"fastcgi_request still running after {CLIENT_HANG_BOUND} s")
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode().strip()


@pytest.mark.parametrize(
    "answer", [b"", fcgi_spec.record(fcgi_spec.STDOUT, 1, CANNED)], ids=["nothing", "stdout"]
)
def test_backend_closing_without_end_request_is_a_client_error(answer: bytes) -> None:
    # The backend closes with part of the request unread, so the kernel may turn
    # its close into a reset: either way the client says so in one ClientError.
    assert closing_backend(answer) in (
        "ClientError: the backend closed the connection without FCGI_END_REQUEST",
        "ClientError: reading from the backend failed: [Errno 104] Connection reset by peer",
    )


def test_backend_closing_mid_record_is_a_client_error() -> None:
    answer = fcgi_spec.record(fcgi_spec.STDOUT, 1, CANNED)[:12]
    assert closing_backend(answer).startswith("ClientError:")


def test_fastcgi_get_values() -> None:
    names = [b"FCGI_MAX_CONNS", b"FCGI_MPXS_CONNS"]
    answer = fcgi_spec.record(
        fcgi_spec.GET_VALUES_RESULT, 0,
        fcgi_spec.pairs([(b"FCGI_MAX_CONNS", b"10"), (b"FCGI_MPXS_CONNS", b"0")]),
    )
    expected = fcgi_spec.get_values(names)
    with FakeBackend(lambda got: len(got) >= len(expected), answer) as backend:
        values = fastcgi_get_values(backend.target("fastcgi"), ["FCGI_MAX_CONNS",
                                                                "FCGI_MPXS_CONNS"])
    assert backend.received == expected
    assert values == {"FCGI_MAX_CONNS": "10", "FCGI_MPXS_CONNS": "0"}


def test_encoders_match_the_specs() -> None:
    pairs = [(b"CONTENT_LENGTH", b"4"), (b"SCGI", b"1"), (b"PATH_INFO", b"/\xe9")]
    assert encode_scgi(pairs) == scgi_spec.encode_headers(pairs)
    assert encode_uwsgi(pairs) == uwsgi_spec.request(pairs)
    assert encode_uwsgi(pairs, modifier1=30, modifier2=0) == uwsgi_spec.request(pairs,
                                                                              modifier1=30)
    with pytest.raises(ClientError, match="exceeds 65535"):
        encode_uwsgi([(b"X_%d" % i, b"v" * 1000) for i in range(70)])


def test_uwsgi_value_over_65535_is_a_client_error() -> None:
    with pytest.raises(ClientError):
        encode_uwsgi([(b"HTTP_COOKIE", b"v" * 70_000)])


@pytest.mark.parametrize("protocol", ["scgi", "uwsgi"])
def test_stream_protocols_wire_and_reply(protocol: str) -> None:
    body = b"stream body"
    head_reply = CANNED if protocol == "scgi" else b"HTTP/1.1 201 Created\r\nX-Test: yes\r\n\r\n"
    with FakeBackend(lambda got: got.endswith(body), head_reply + b"hello") as backend:
        target = backend.target(protocol, "/s")
        params = build_params(target, method="POST", body_length=len(body))
        reply = send_request(target, params, body, timeout=TIMEOUT)
    if protocol == "scgi":
        assert backend.received == scgi_spec.encode_headers(params) + body
    else:
        assert backend.received == uwsgi_spec.request(params, body)
    assert (reply.status, reply.header("X-Test"), reply.closed_by_backend) == (201, "yes", True)


def test_stream_protocol_empty_answer_is_a_client_error() -> None:
    with FakeBackend(bool, b"") as backend, \
            pytest.raises(ClientError, match="without answering"):
        target = backend.target("scgi")
        scgi_request(target, build_params(target), timeout=TIMEOUT)


def test_connect_failure_is_a_client_error() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))  # bound, never listening: connection refused
        target = Target("uwsgi", socket.AF_INET, unused.getsockname(), "/", "")
        with pytest.raises(ClientError, match="cannot connect"):
            uwsgi_request(target, build_params(target), timeout=TIMEOUT)
