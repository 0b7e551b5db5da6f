"""flup 1.0.3 against wsgiwire: the same app, the same FastCGI request bytes.

Both servers run as real processes on loopback (flup's threaded
``flup.server.fcgi.WSGIServer(app, bindAddress=...)`` and ``wsgiwire serve``), each
stopped by its own PID. The request bytes come from a small encoder written here from
the specification, so neither server's code builds its own input.

* Requests flup handles correctly (nginx's params as captured from a real nginx, a
  small POST): the environ keys that matter are equal.
* flup's known bugs, one test each, showing flup wrong and wsgiwire right. Every one
  was reproduced against flup 1.0.3 before it was written down here.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from wsgiwire._limits import DEFAULT_LIMITS

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
IO_TIMEOUT = 10.0

# --- the app both servers run ------------------------------------------------------

APP_SOURCE = textwrap.dedent(
    '''
    """The app of test_flup_differential.py, served by flup and by wsgiwire."""
    import hashlib
    import json
    import sys


    class AppError(Exception):
        """An exception whose constructor needs two arguments."""

        def __init__(self, code, detail):
            super().__init__(code, detail)


    def app(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == "/exc-after-head":
            write = start_response("200 OK", [("Content-Type", "text/plain")])
            write(b"partial body\\n")  # the head is on the wire now
            try:
                raise AppError(418, "late failure")
            except AppError:
                # PEP 3333: too late to change the head, so this must re-raise AppError.
                start_response(
                    "500 Internal Server Error", [("Content-Type", "text/plain")],
                    sys.exc_info(),
                )
            return [b"not reached\\n"]
        if path == "/crlf":
            start_response(
                "200 OK",
                [("Content-Type", "text/plain"), ("X-Note", "a\\r\\nX-Injected: yes")],
            )
            return [b"crlf\\n"]
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        report = {k: v for k, v in environ.items() if isinstance(v, str)}
        report["wsgi.url_scheme"] = environ["wsgi.url_scheme"]
        report["body_sha256"] = hashlib.sha256(body).hexdigest()
        data = json.dumps(report, sort_keys=True).encode("ascii")
        start_response(
            "200 OK",
            [("Content-Type", "application/json"), ("Content-Length", str(len(data)))],
        )
        return [data]
    '''
)

FLUP_RUNNER = (
    "import sys; sys.path.insert(0, sys.argv[1]); from diffapp import app; "
    "from flup.server.fcgi import WSGIServer; "
    "WSGIServer(app, bindAddress=('127.0.0.1', int(sys.argv[2]))).run()"
)

# --- FastCGI from the specification (records, name-value pairs) ---------------------

BEGIN_REQUEST, END_REQUEST, PARAMS, STDIN, STDOUT, STDERR = 1, 3, 4, 5, 6, 7
GET_VALUES, GET_VALUES_RESULT = 9, 10
RESPONDER = 1

Pairs = Sequence[tuple[bytes, bytes]]


def record(rtype: int, request_id: int, content: bytes = b"") -> bytes:
    """version 1, type, requestId (2 bytes), contentLength (2 bytes), no padding."""
    assert len(content) <= 0xFFFF
    header = bytes([1, rtype, request_id >> 8, request_id & 0xFF])
    return header + bytes([len(content) >> 8, len(content) & 0xFF, 0, 0]) + content


def pair_length(n: int) -> bytes:
    return bytes([n]) if n < 128 else (n | 0x80000000).to_bytes(4, "big")


def encode_pairs(pairs: Pairs) -> bytes:
    return b"".join(pair_length(len(k)) + pair_length(len(v)) + k + v for k, v in pairs)


def responder_request(
    params_stream: bytes, body: bytes = b"", *, params_cuts: Sequence[int] = ()
) -> bytes:
    """BEGIN_REQUEST (RESPONDER, no keep-conn), PARAMS cut at ``params_cuts``, STDIN."""
    out = [record(BEGIN_REQUEST, 1, bytes([0, RESPONDER, 0, 0, 0, 0, 0, 0]))]
    bounds = [0, *params_cuts, len(params_stream)]
    out += [record(PARAMS, 1, params_stream[a:b]) for a, b in itertools.pairwise(bounds)]
    out.append(record(PARAMS, 1))
    out += [record(STDIN, 1, body[i : i + 0xFFFF]) for i in range(0, len(body), 0xFFFF)]
    out.append(record(STDIN, 1))
    return b"".join(out)


@dataclass
class Reply:
    records: list[tuple[int, int, bytes]]

    def stream(self, rtype: int) -> bytes:
        return b"".join(content for t, _, content in self.records if t == rtype)

    @property
    def stdout(self) -> bytes:
        return self.stream(STDOUT)

    @property
    def stderr(self) -> bytes:
        return self.stream(STDERR)

    @property
    def app_status(self) -> int:
        ends = [content for t, _, content in self.records if t == END_REQUEST]
        assert len(ends) == 1, self.records
        return int.from_bytes(ends[0][:4], "big")

    def head(self) -> tuple[int, list[tuple[str, str]], bytes]:
        """Status code, header lines (name, value) and body of the CGI-style response."""
        head, sep, body = self.stdout.partition(b"\r\n\r\n")
        assert sep, self.stdout
        status = 200
        headers = []
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            else:
                headers.append((name, value.strip()))
        return status, headers, body

    def environ(self) -> dict[str, str]:
        status, _, body = self.head()
        assert status == 200, self.stdout
        report: dict[str, str] = json.loads(body)
        return report


def exchange(port: int, data: bytes, *, until: int = END_REQUEST) -> Reply:
    """Send ``data``; collect records until one of type ``until`` (or EOF)."""
    records: list[tuple[int, int, bytes]] = []
    buf = b""
    with socket.create_connection((HOST, port), timeout=IO_TIMEOUT) as sock:
        sock.sendall(data)
        while not any(t == until for t, _, _ in records):
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
            while len(buf) >= 8:
                size = buf[4] << 8 | buf[5]
                end = 8 + size + buf[6]
                if len(buf) < end:
                    break
                records.append((buf[1], buf[2] << 8 | buf[3], buf[8 : 8 + size]))
                buf = buf[end:]
    return Reply(records)


# --- the two servers -----------------------------------------------------------------


class Peer:
    """A server process in its own session, stopped by its PID (SIGTERM, bounded wait,
    SIGKILL); whatever it left in its process group is killed and reported."""

    def __init__(self, name: str, argv: Callable[[int], list[str]], cwd: Path, log: Path) -> None:
        self.name = name
        self.log = log
        self.port = _free_port()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        with log.open("wb") as out:
            self.popen = subprocess.Popen(
                argv(self.port),
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.output()}")
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), 1):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} did not listen on {self.port}:\n{self.output()}")
            time.sleep(0.02)

    def signal_stop(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.popen.pid, signal.SIGTERM)

    def wait_stopped(self) -> None:
        pid = self.popen.pid
        try:
            self.popen.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            self.popen.wait(STOP_TIMEOUT)
        # The session leader is gone; anything left in its process group is a leak.
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline:
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.02)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        raise RuntimeError(f"{self.name} left processes in its process group {pid}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Servers:
    flup: Peer
    wsgiwire: Peer

    def both(self, data: bytes, *, until: int = END_REQUEST) -> tuple[Reply, Reply]:
        return exchange(self.flup.port, data, until=until), exchange(
            self.wsgiwire.port, data, until=until
        )


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    if importlib.util.find_spec("flup") is None:
        reason = "flup 1.0.3 (a test dependency) is not installed"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and {reason}", pytrace=False)
        pytest.skip(reason)
    work = tmp_path_factory.mktemp("flup-differential")
    (work / "diffapp.py").write_text(APP_SOURCE)
    python = sys.executable

    def wsgiwire_argv(port: int) -> list[str]:
        serve = ["serve", "diffapp:app", "--protocol", "fastcgi", "--bind", f"{HOST}:{port}"]
        return [python, "-m", "wsgiwire", *serve]

    flup = Peer(
        "flup",
        lambda port: [python, "-c", FLUP_RUNNER, str(work), str(port)],
        work,
        work / "flup.log",
    )
    try:
        wsgiwire = Peer("wsgiwire", wsgiwire_argv, work, work / "wsgiwire.log")
    except BaseException:
        flup.signal_stop()
        flup.wait_stopped()
        raise
    try:
        flup.wait_ready()
        wsgiwire.wait_ready()
        yield Servers(flup, wsgiwire)
    finally:
        flup.signal_stop()  # flup takes about a second: both stop at once
        wsgiwire.signal_stop()
        try:
            flup.wait_stopped()
        finally:
            wsgiwire.wait_stopped()


# --- params as a real nginx sends them (nginx 1.22, Flask-docs configs) -------------


def nginx_params(
    *,
    method: str = "GET",
    uri: str = "/app/x/y?q=1",
    script_name: str = "/app",
    path_info: str = "/x/y",
    https: bool = False,
    content_type: str = "",
    content_length: str = "",
    headers: Sequence[tuple[str, str]] = (),
) -> list[tuple[bytes, bytes]]:
    """The params nginx sent for ``fastcgi_split_path_info ^(/app)(.*)$`` (stock
    ``fastcgi_params`` first, SCRIPT_NAME repeated by the config), as captured."""
    path, _, query = uri.partition("?")
    pairs = [
        ("QUERY_STRING", query),
        ("REQUEST_METHOD", method),
        ("CONTENT_TYPE", content_type),
        ("CONTENT_LENGTH", content_length),
        ("SCRIPT_NAME", script_name),
        ("REQUEST_URI", uri),
        ("DOCUMENT_URI", path),
        ("DOCUMENT_ROOT", "/srv/www"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REQUEST_SCHEME", "https" if https else "http"),
        *([("HTTPS", "on")] if https else []),
        ("GATEWAY_INTERFACE", "CGI/1.1"),
        ("SERVER_SOFTWARE", "nginx/1.22.1"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("REMOTE_PORT", "39110"),
        ("REMOTE_USER", ""),
        ("SERVER_ADDR", "127.0.0.1"),
        ("SERVER_PORT", "8443" if https else "8080"),
        ("SERVER_NAME", "localhost"),
        ("REDIRECT_STATUS", "200"),
        ("HTTP_HOST", "127.0.0.1"),
        ("PATH_INFO", path_info),
        ("SCRIPT_NAME", script_name),
        ("HTTP_USER_AGENT", "curl/7.88.1"),
        ("HTTP_ACCEPT", "*/*"),
        *headers,
    ]
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in pairs]


SMALL_BODY = bytes(range(256)) * 20

AGREED_CASES = [
    pytest.param(nginx_params(), b"", id="nginx-prefix-get"),
    pytest.param(
        nginx_params(uri="/app/x/y?q=1", script_name="", path_info="/app/x/y"),
        b"",
        id="nginx-root-get",
    ),
    pytest.param(
        nginx_params(uri="/app/tls?x=1&y=%20z", path_info="/tls", https=True),
        b"",
        id="nginx-https-get",
    ),
    pytest.param(
        nginx_params(
            uri="/app/a%20b/%E4%B8%AD",
            path_info="/a b/中".encode().decode("latin-1"),
            headers=[("HTTP_COOKIE", "a=1; b=2"), ("HTTP_X_FORWARDED_FOR", "10.0.0.1")],
        ),
        b"",
        id="nginx-encoded-path",
    ),
    pytest.param(
        nginx_params(
            method="POST",
            uri="/app/post",
            path_info="/post",
            content_type="application/octet-stream",
            content_length=str(len(SMALL_BODY)),
            headers=[
                ("HTTP_CONTENT_TYPE", "application/octet-stream"),
                ("HTTP_CONTENT_LENGTH", str(len(SMALL_BODY))),
            ],
        ),
        SMALL_BODY,
        id="nginx-small-post",
    ),
]

COMPARED = (
    "REQUEST_METHOD",
    "SCRIPT_NAME",
    "PATH_INFO",
    "QUERY_STRING",
    "REQUEST_URI",
    "SERVER_NAME",
    "SERVER_PORT",
    "SERVER_PROTOCOL",
    "REMOTE_ADDR",
    "wsgi.url_scheme",
    "body_sha256",
)
# PEP 3333 allows an empty or an absent CONTENT_LENGTH/CONTENT_TYPE alike: flup keeps
# nginx's "", wsgiwire removes it. nginx also sends HTTP_CONTENT_LENGTH/_TYPE, which
# wsgiwire drops (wsgiref.validate rejects them) and flup passes on.
EMPTY_OR_ABSENT = ("CONTENT_LENGTH", "CONTENT_TYPE")
DROPPED_BY_WSGIWIRE = ("HTTP_CONTENT_LENGTH", "HTTP_CONTENT_TYPE")


def _view(environ: dict[str, str]) -> dict[str, Any]:
    view: dict[str, Any] = {key: environ.get(key) for key in COMPARED}
    view.update({key: environ.get(key) or None for key in EMPTY_OR_ABSENT})
    view.update(
        {
            key: value
            for key, value in environ.items()
            if key.startswith("HTTP_") and key not in DROPPED_BY_WSGIWIRE
        }
    )
    return view


@pytest.mark.parametrize(("params", "body"), AGREED_CASES)
def test_same_environ_where_flup_is_correct(
    servers: Servers, params: list[tuple[bytes, bytes]], body: bytes
) -> None:
    flup, wsgiwire = servers.both(responder_request(encode_pairs(params), body))
    assert (flup.app_status, wsgiwire.app_status) == (0, 0)
    flup_env, wsgiwire_env = flup.environ(), wsgiwire.environ()
    assert _view(flup_env) == _view(wsgiwire_env)
    assert wsgiwire_env["body_sha256"] == hashlib.sha256(body).hexdigest()
    sent = dict(params)  # the last of a repeated param (nginx's SCRIPT_NAME)
    assert wsgiwire_env["SCRIPT_NAME"] == sent[b"SCRIPT_NAME"].decode("latin-1")
    for key in DROPPED_BY_WSGIWIRE:
        assert key not in wsgiwire_env
        if key.encode() in sent:
            assert flup_env[key] == sent[key.encode()].decode("latin-1")


# --- flup's bugs, one test each --------------------------------------------------------


def test_flup_bug_param_pair_split_across_params_records(servers: Servers) -> None:
    """FCGI_PARAMS is one byte stream; flup decodes each record on its own (its
    ``_do_params``), so a pair cut in the middle of its value corrupts every param
    after it, silently. wsgiwire decodes the stream."""
    base = [
        (b"PATH_INFO", b"/hello/world"),
        (b"QUERY_STRING", b"a=1"),
        (b"REQUEST_METHOD", b"GET"),
        (b"SERVER_NAME", b"localhost"),
        (b"SERVER_PORT", b"80"),
        (b"SERVER_PROTOCOL", b"HTTP/1.1"),
    ]
    stream = encode_pairs(base)
    cut = stream.index(b"/hello/world") + len(b"/hel")
    flup, wsgiwire = servers.both(responder_request(stream, params_cuts=[cut]))

    good = wsgiwire.environ()
    assert wsgiwire.app_status == 0
    for name, value in base:
        assert good[name.decode()] == value.decode()

    bad = flup.environ()
    assert bad["PATH_INFO"] == "/hel"  # the value cut at the record boundary
    assert bad["QUERY_STRING"] == ""  # lost, as is every pair after the cut ...
    assert bad["SERVER_PROTOCOL"] == "HTTP/1.0"  # ... and replaced by flup's defaults
    # ... and the rest of the stream became one garbage name.
    assert any(key.startswith("/world") and "QUERY_STRING" in key for key in bad)


def test_flup_bug_get_values_answered_empty(servers: Servers) -> None:
    """flup looks the asked names (bytes) up in a dict keyed by str, so its
    FCGI_GET_VALUES_RESULT is always empty. wsgiwire reports its configuration."""
    names = [b"FCGI_MAX_CONNS", b"FCGI_MAX_REQS", b"FCGI_MPXS_CONNS"]
    query = record(GET_VALUES, 0, encode_pairs([(name, b"") for name in names]))
    flup, wsgiwire = servers.both(query, until=GET_VALUES_RESULT)

    assert flup.records == [(GET_VALUES_RESULT, 0, b"")]

    (result,) = wsgiwire.records
    assert result[:2] == (GET_VALUES_RESULT, 0)
    assert result[2] == encode_pairs(
        [
            (b"FCGI_MAX_CONNS", str(DEFAULT_LIMITS.max_connections).encode()),
            # one worker, no threads: one request at a time; the requests of a
            # connection run one after the other (interleaved ones are queued)
            (b"FCGI_MAX_REQS", b"1"),
            (b"FCGI_MPXS_CONNS", b"0"),
        ]
    )


@pytest.mark.parametrize(
    ("script_name", "request_uri", "wsgiwire_path_info", "flup_path_info"),
    [
        # A mount whose name needs escaping: PATH_INFO is the rest of the decoded path.
        pytest.param("/a b/中", "/a%20b/%E4%B8%AD/rest?x=1", "/rest", "E4%B8%AD/rest", id="mount"),
        # Apache mod_proxy_fcgi: the whole decoded path in SCRIPT_NAME, no PATH_INFO.
        pytest.param("/a b/中", "/a%20b/%E4%B8%AD", "", "E4%B8%AD", id="apache-proxy-fcgi"),
    ],
)
def test_flup_bug_path_info_sliced_from_the_encoded_request_uri(
    servers: Servers,
    script_name: str,
    request_uri: str,
    wsgiwire_path_info: str,
    flup_path_info: str,
) -> None:
    """Without PATH_INFO, flup's ``_sanitizeEnv`` cuts ``len(SCRIPT_NAME)`` characters
    off the *percent-encoded* REQUEST_URI, though SCRIPT_NAME is decoded. wsgiwire
    compares and cuts in decoded form."""
    params = [
        (b"REQUEST_METHOD", b"GET"),
        (b"SCRIPT_NAME", script_name.encode()),
        (b"REQUEST_URI", request_uri.encode()),
        (b"QUERY_STRING", request_uri.partition("?")[2].encode()),
        (b"SERVER_NAME", b"localhost"),
        (b"SERVER_PORT", b"80"),
        (b"SERVER_PROTOCOL", b"HTTP/1.1"),
    ]
    flup, wsgiwire = servers.both(responder_request(encode_pairs(params)))
    decoded_script_name = script_name.encode().decode("latin-1")
    good = wsgiwire.environ()
    assert (good["SCRIPT_NAME"], good["PATH_INFO"]) == (decoded_script_name, wsgiwire_path_info)
    bad = flup.environ()
    assert (bad["SCRIPT_NAME"], bad["PATH_INFO"]) == (decoded_script_name, flup_path_info)
    assert b"SCRIPT_NAME does not match REQUEST_URI" in flup.stderr


def test_flup_bug_exc_info_after_head_raises_type_error(servers: Servers) -> None:
    """After the head was sent, ``start_response(..., exc_info)`` must re-raise the
    app's exception. flup raises ``exc_info[0](exc_info[1])``, a *new* exception built
    from the old one, which fails (TypeError) for any exception whose constructor takes
    other arguments; it then ends the cut response with appStatus 0, as if complete.
    wsgiwire re-raises the original, logs it, and ends with appStatus 1."""
    params = [
        (b"REQUEST_METHOD", b"GET"),
        (b"SCRIPT_NAME", b""),
        (b"PATH_INFO", b"/exc-after-head"),
        (b"SERVER_NAME", b"localhost"),
        (b"SERVER_PORT", b"80"),
        (b"SERVER_PROTOCOL", b"HTTP/1.1"),
    ]
    flup, wsgiwire = servers.both(responder_request(encode_pairs(params)))
    for reply in (flup, wsgiwire):
        status, _, body = reply.head()
        assert (status, body) == (200, b"partial body\n")  # cut after the first write

    assert flup.app_status == 0
    assert b"TypeError: AppError.__init__() missing 1 required positional argument" in (flup.stderr)

    assert wsgiwire.app_status == 1
    deadline = time.monotonic() + 5
    while "AppError: (418, 'late failure')" not in servers.wsgiwire.output():
        assert time.monotonic() < deadline, servers.wsgiwire.output()
        time.sleep(0.02)
    assert "TypeError" not in servers.wsgiwire.output()


def test_flup_bug_proxy_header_becomes_http_proxy(servers: Servers) -> None:
    """httpoxy: nginx passes a client's ``Proxy:`` header as HTTP_PROXY. flup hands it
    to the app, where HTTP clients may take it for their outbound proxy; wsgiwire
    drops it."""
    params = nginx_params(
        uri="/app/hdr", path_info="/hdr", headers=[("HTTP_PROXY", "http://evil:3128/")]
    )
    flup, wsgiwire = servers.both(responder_request(encode_pairs(params)))
    assert flup.environ()["HTTP_PROXY"] == "http://evil:3128/"
    good = wsgiwire.environ()
    assert "HTTP_PROXY" not in good
    assert good["HTTP_USER_AGENT"] == "curl/7.88.1"  # the other headers arrive


def test_flup_bug_keeps_only_the_last_of_repeated_headers(servers: Servers) -> None:
    """nginx sends a repeated request header as repeated params (captured: two
    HTTP_COOKIE). flup's dict keeps the last one and loses the others; wsgiwire joins
    them as Apache and lighttpd do (``; `` for Cookie, ``, `` otherwise)."""
    params = nginx_params(
        uri="/app/hdr",
        path_info="/hdr",
        headers=[
            ("HTTP_X_DUP", "first"),
            ("HTTP_X_DUP", "second"),
            ("HTTP_COOKIE", "a=1"),
            ("HTTP_COOKIE", "b=2"),
        ],
    )
    flup, wsgiwire = servers.both(responder_request(encode_pairs(params)))
    bad, good = flup.environ(), wsgiwire.environ()
    assert (bad["HTTP_X_DUP"], bad["HTTP_COOKIE"]) == ("second", "b=2")
    assert (good["HTTP_X_DUP"], good["HTTP_COOKIE"]) == ("first, second", "a=1; b=2")


def test_flup_bug_crlf_in_response_header_is_sent(servers: Servers) -> None:
    """flup never checks header values for CR/LF, so an app echoing input into a header
    lets a client inject headers (here ``X-Injected: yes``). wsgiwire refuses the
    header and answers 500."""
    params = [
        (b"REQUEST_METHOD", b"GET"),
        (b"SCRIPT_NAME", b""),
        (b"PATH_INFO", b"/crlf"),
        (b"SERVER_NAME", b"localhost"),
        (b"SERVER_PORT", b"80"),
        (b"SERVER_PROTOCOL", b"HTTP/1.1"),
    ]
    flup, wsgiwire = servers.both(responder_request(encode_pairs(params)))

    status, headers, body = flup.head()
    assert status == 200
    assert ("X-Note", "a") in headers
    assert ("X-Injected", "yes") in headers  # a header the app never set
    assert body == b"crlf\n"

    status, headers, body = wsgiwire.head()
    assert status == 500
    assert not any(name in ("X-Note", "X-Injected") for name, _ in headers)
    assert b"X-Injected" not in wsgiwire.stdout
    assert body == b"500 Internal Server Error\n"
