"""The CGI front-end: CGIGateway.handle over BytesIO, and real scripts run through run(app)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from wsgiref.validate import validator

import pytest

from wsgiwire._limits import Limits
from wsgiwire.adapters.cgi import CGIGateway

REPO = Path(__file__).resolve().parents[2]


def cgi_params(**values: str | bytes) -> dict[bytes, bytes]:
    base: dict[str, str | bytes] = {
        "GATEWAY_INTERFACE": "CGI/1.1",
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "/app.cgi",
        "PATH_INFO": "/x",
        "QUERY_STRING": "",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_SOFTWARE": "Apache/2.4",
    }
    base.update(values)
    return {
        k.encode("latin-1"): v if isinstance(v, bytes) else v.encode("latin-1")
        for k, v in base.items()
    }


class Probe:
    """A validated app that records its environ and body and echoes a summary."""

    def __init__(self) -> None:
        self.environ: dict[str, Any] = {}
        self.body = b""
        self.calls = 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        self.calls += 1
        self.environ = dict(environ)
        stream = environ["wsgi.input"]
        self.body = b"".join(iter(lambda: stream.read(4096), b""))
        payload = b"got %d bytes" % len(self.body)
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(payload)))])
        return [payload]


def handle(params: Mapping[bytes, bytes], stdin: bytes = b"", *,
           limits: Limits | None = None) -> tuple[bool, bytes, Probe, io.BytesIO]:
    probe = Probe()
    gateway = CGIGateway(validator(probe), **({"limits": limits} if limits else {}))
    stdin_stream = io.BytesIO(stdin)
    out = io.BytesIO()
    ok = gateway.handle(params, stdin_stream, out)
    return ok, out.getvalue(), probe, stdin_stream


# -- CGIGateway.handle ---------------------------------------------------------------
def test_get() -> None:
    ok, out, probe, _ = handle(cgi_params(QUERY_STRING="a=1"))
    assert ok
    assert out == (b"Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\n"
                   b"got 0 bytes")
    env = probe.environ
    assert (env["SCRIPT_NAME"], env["PATH_INFO"], env["QUERY_STRING"]) == ("/app.cgi", "/x", "a=1")
    assert env["wsgi.run_once"] is True
    assert env["wsgi.multiprocess"] is True and env["wsgi.multithread"] is False
    assert "wsgi.file_wrapper" in env


def test_body_is_bounded_by_content_length() -> None:
    body = bytes(range(256)) * 3
    ok, _, probe, stdin = handle(cgi_params(REQUEST_METHOD="POST",
                                            CONTENT_LENGTH=str(len(body))),
                                 body + b"EXTRA BYTES")
    assert ok and probe.body == body
    assert stdin.tell() == len(body)  # not one byte past CONTENT_LENGTH was read
    assert "wsgi.input_terminated" not in probe.environ


def test_chunked_body_reads_to_eof_and_is_terminated() -> None:
    ok, _, probe, stdin = handle(
        cgi_params(REQUEST_METHOD="POST", HTTP_TRANSFER_ENCODING="chunked"), b"dechunked body"
    )
    assert ok and probe.body == b"dechunked body"
    assert probe.environ["wsgi.input_terminated"] is True
    assert stdin.tell() == len(b"dechunked body")


def test_no_length_and_not_chunked_leaves_stdin_alone() -> None:
    """Run by hand in a shell, the script must not wait for the terminal."""
    ok, _, probe, stdin = handle(cgi_params(), b"typed at a terminal")
    assert ok and probe.body == b""
    assert stdin.tell() == 0


def test_negative_length_is_no_declared_length() -> None:
    """A negative CONTENT_LENGTH (Go's "unknown", as Caddy sends over FastCGI) is no
    declared length, one rule in the core: a chunked body is read to EOF, else none."""
    ok, _, probe, stdin = handle(
        cgi_params(REQUEST_METHOD="POST", CONTENT_LENGTH="-1", HTTP_TRANSFER_ENCODING="chunked"),
        b"dechunked body",
    )
    assert ok and probe.body == b"dechunked body" and "CONTENT_LENGTH" not in probe.environ
    assert probe.environ["wsgi.input_terminated"] is True
    ok, _, probe, stdin = handle(cgi_params(REQUEST_METHOD="POST", CONTENT_LENGTH="-1"), b"x")
    assert ok and probe.body == b"" and stdin.tell() == 0


@pytest.mark.parametrize("length", ["+1_0", " 5", "5 ", "--1", "\u0663", "0x10", "1" * 20])
def test_malformed_content_length_is_status_400(length: str) -> None:
    params = cgi_params(REQUEST_METHOD="POST", CONTENT_LENGTH=length.encode("utf-8"))
    ok, out, probe, _ = handle(params, b"12345")
    assert not ok and probe.calls == 0
    assert out.startswith(b"Status: 400 Bad Request\r\n")
    assert out.endswith(b"\r\n\r\n400 Bad Request\n")


def test_short_body_is_status_400() -> None:
    ok, out, probe, _ = handle(cgi_params(REQUEST_METHOD="POST", CONTENT_LENGTH="10"), b"abc")
    assert not ok and probe.calls == 0
    assert out.startswith(b"Status: 400 Bad Request\r\n")


def test_body_over_the_limit_is_status_413() -> None:
    limits = Limits(max_body_size=100, spool_threshold=10)
    ok, out, probe, _ = handle(cgi_params(REQUEST_METHOD="POST", CONTENT_LENGTH="101"),
                               b"x" * 101, limits=limits)
    assert not ok and probe.calls == 0
    assert out.startswith(b"Status: 413 ")


def test_large_body_is_spooled() -> None:
    body = os.urandom(200_000)
    limits = Limits(spool_threshold=1024)
    ok, _, probe, _ = handle(cgi_params(REQUEST_METHOD="POST", CONTENT_LENGTH=str(len(body))),
                             body, limits=limits)
    assert ok and probe.body == body


def test_iis_script_name_in_path_info_is_removed() -> None:
    iis = cgi_params(SERVER_SOFTWARE="Microsoft-IIS/10.0", SCRIPT_NAME="/app.py",
                     PATH_INFO="/app.py/x/y")
    _, _, probe, _ = handle(iis)
    assert (probe.environ["SCRIPT_NAME"], probe.environ["PATH_INFO"]) == ("/app.py", "/x/y")
    other = cgi_params(SCRIPT_NAME="/app.py", PATH_INFO="/app.py/x/y")
    _, _, probe, _ = handle(other)
    assert probe.environ["PATH_INFO"] == "/app.py/x/y"  # only IIS gets that treatment


def test_http_proxy_and_raw_bytes() -> None:
    _, _, probe, _ = handle(cgi_params(HTTP_PROXY="http://evil:1/", PATH_INFO=b"/caf\xe9/\xff"))
    assert "HTTP_PROXY" not in probe.environ
    assert probe.environ["PATH_INFO"] == "/caf\xe9/\xff"


def test_app_error_is_status_500() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        raise RuntimeError("boom")

    out = io.BytesIO()
    assert CGIGateway(validator(app)).handle(cgi_params(), io.BytesIO(), out) is True
    assert out.getvalue().startswith(b"Status: 500 Internal Server Error\r\n")
    assert b"boom" not in out.getvalue()
    debug = io.BytesIO()
    CGIGateway(validator(app), debug=True).handle(cgi_params(), io.BytesIO(), debug)
    assert b"RuntimeError: boom" in debug.getvalue()


def test_head_request() -> None:
    ok, out, _, _ = handle(cgi_params(REQUEST_METHOD="HEAD"))
    assert ok and out.endswith(b"Content-Length: 11\r\n\r\n")


# -- real CGI processes ----------------------------------------------------------------------
SCRIPT = textwrap.dedent(
    '''
    import hashlib, json, os, sys
    from wsgiref.validate import validator
    from wsgiwire.adapters.cgi import run

    def app(environ, start_response):
        print("stray print from the app")  # must land on stderr, not in the response
        stream = environ["wsgi.input"]
        body = b"".join(iter(lambda: stream.read(65536), b""))
        info = {
            "script_name": environ["SCRIPT_NAME"],
            "path_info": environ["PATH_INFO"],
            "query_string": environ["QUERY_STRING"],
            "body_len": len(body),
            "body_sha256": hashlib.sha256(body).hexdigest(),
            "terminated": environ.get("wsgi.input_terminated", False),
            "http_proxy_in_environ": "HTTP_PROXY" in environ,
            "http_proxy_in_os_environ": "HTTP_PROXY" in os.environ,
        }
        payload = json.dumps(info).encode("ascii")
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(payload)))])
        return [payload]

    ok = run(validator(app))
    leftover = sys.stdin.buffer.read()
    sys.stderr.write("LEFTOVER:" + leftover.hex() + "\\n")
    sys.exit(0 if ok else 1)
    '''
)


def run_cgi(tmp_path: Path, env: Mapping[str, str | bytes], stdin: bytes = b""
            ) -> subprocess.CompletedProcess[bytes]:
    script = tmp_path / "app.cgi"
    script.write_text(SCRIPT, encoding="utf-8")
    environ: dict[bytes, bytes] = {
        b"PYTHONPATH": os.fsencode(REPO),
        b"GATEWAY_INTERFACE": b"CGI/1.1",
        b"SERVER_NAME": b"localhost",
        b"SERVER_PORT": b"80",
        b"SERVER_PROTOCOL": b"HTTP/1.1",
        b"SERVER_SOFTWARE": b"Apache/2.4",
        b"REQUEST_METHOD": b"GET",
        b"SCRIPT_NAME": b"/app.cgi",
        b"QUERY_STRING": b"",
    }
    for key, value in env.items():
        environ[key.encode("latin-1")] = value if isinstance(value, bytes) else value.encode()
    return subprocess.run([sys.executable, str(script)], env=environ, input=stdin,
                          capture_output=True, timeout=60, check=False)


def _response(done: subprocess.CompletedProcess[bytes]) -> tuple[bytes, dict[str, Any]]:
    head, sep, body = done.stdout.partition(b"\r\n\r\n")
    assert sep, done.stdout[:500] + done.stderr[-2000:]
    return head, json.loads(body)


def test_run_keeps_environ_bytes(tmp_path: Path) -> None:
    done = run_cgi(tmp_path, {"PATH_INFO": b"/caf\xe9/\xff\x80", "QUERY_STRING": b"q=\xe4"})
    assert done.returncode == 0, done.stderr
    head, info = _response(done)
    assert head.startswith(b"Status: 200 OK\r\n")
    assert info["path_info"] == "/caf\xe9/\xff\x80"  # each raw byte as one latin-1 char
    assert info["query_string"] == "q=\xe4"


def test_run_reads_binary_stdin_only_up_to_content_length(tmp_path: Path) -> None:
    body = bytes(range(256)) * 1000 + b"\r\n\x1a\x00"
    done = run_cgi(tmp_path, {"REQUEST_METHOD": "POST", "CONTENT_LENGTH": str(len(body)),
                              "PATH_INFO": "/post"}, body + b"EXTRA")
    assert done.returncode == 0, done.stderr
    _, info = _response(done)
    assert info["body_len"] == len(body)
    assert info["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert info["terminated"] is False
    assert b"LEFTOVER:" + b"EXTRA".hex().encode() + b"\n" in done.stderr


def test_run_chunked_reads_to_eof(tmp_path: Path) -> None:
    body = os.urandom(300_000)
    done = run_cgi(tmp_path, {"REQUEST_METHOD": "POST", "HTTP_TRANSFER_ENCODING": "chunked",
                              "PATH_INFO": "/chunked"}, body)
    assert done.returncode == 0, done.stderr
    _, info = _response(done)
    assert info["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert info["terminated"] is True
    assert b"LEFTOVER:\n" in done.stderr


def test_run_removes_http_proxy_from_os_environ(tmp_path: Path) -> None:
    done = run_cgi(tmp_path, {"HTTP_PROXY": "http://127.0.0.1:1/", "PATH_INFO": "/"})
    assert done.returncode == 0, done.stderr
    _, info = _response(done)
    assert info["http_proxy_in_environ"] is False
    assert info["http_proxy_in_os_environ"] is False


def test_run_print_goes_to_stderr(tmp_path: Path) -> None:
    done = run_cgi(tmp_path, {"PATH_INFO": "/"})
    assert done.returncode == 0, done.stderr
    assert b"stray print" not in done.stdout
    assert b"stray print from the app\n" in done.stderr
    head, _ = _response(done)
    assert done.stdout.startswith(b"Status: 200 OK\r\nContent-Type: application/json\r\n")
    assert head.count(b"\r\n") == 2


def test_run_fixes_the_iis_path(tmp_path: Path) -> None:
    done = run_cgi(tmp_path, {"SERVER_SOFTWARE": "Microsoft-IIS/10.0", "SCRIPT_NAME": "/app.py",
                              "PATH_INFO": "/app.py/x/y"})
    assert done.returncode == 0, done.stderr
    _, info = _response(done)
    assert (info["script_name"], info["path_info"]) == ("/app.py", "/x/y")


def test_run_malformed_content_length_is_status_400(tmp_path: Path) -> None:
    done = run_cgi(tmp_path, {"REQUEST_METHOD": "POST", "CONTENT_LENGTH": "+1_0",
                              "PATH_INFO": "/"}, b"0123456789")
    assert done.returncode == 1
    assert done.stdout.startswith(b"Status: 400 Bad Request\r\n")
    assert done.stdout.endswith(b"400 Bad Request\n")


def test_environ_without_environb_survives_non_latin1(monkeypatch: pytest.MonkeyPatch) -> None:
    from wsgiwire.adapters import cgi

    monkeypatch.delattr(os, "environb")
    monkeypatch.setenv("PATH_INFO", "/\u4e2d")
    params = cgi._environ_bytes()
    assert params[b"PATH_INFO"] == "/\u4e2d".encode()
