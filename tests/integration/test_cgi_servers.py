"""wsgiwire's CGI front-end behind real Apache (mod_cgi, mod_cgid) and lighttpd (mod_cgi).

Each server boots once per setup from ``server-configs/<server>/<config>.conf`` and runs
``apps/probe.cgi.in`` (``wsgiwire.adapters.cgi.run`` over ``apps/probe.py``, which
answers JSON describing its environ and the body it read). The first tests prove the
harness itself with a static file on every server, nginx included.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .servers import (
    ApacheServer,
    HarnessError,
    LighttpdServer,
    ManagedProcess,
    NginxServer,
    RunningServer,
    Stage,
    group_members,
    render,
    require_path,
)

pytestmark = pytest.mark.integration

MIB = 1 << 20
LOG_WAIT = 5.0


# ---------------------------------------------------------------------------------------
# The harness itself


@pytest.mark.parametrize(
    "server_cls",
    [NginxServer, ApacheServer, LighttpdServer],
    ids=["nginx", "apache", "lighttpd"],
)
def test_harness_boots_server_and_serves_static_file(server_cls: type[RunningServer]) -> None:
    token = secrets.token_hex(16).encode()
    with server_cls("static") as server:
        page = server.doc_root / "hello.txt"
        page.write_bytes(token)
        page.chmod(0o644)
        status, _, body = server.request("GET", "/hello.txt")
        assert (status, body) == (200, token), server.error_log_text()
        assert server.request("GET", "/missing.txt").status == 404
        assert server.url("/x") == f"http://127.0.0.1:{server.port}/x"
        pid = server.process.pid if server.process else -1
        run_dir = server.run_dir
    assert pid > 0
    assert group_members(pid) == [], "server processes outlived the context manager"
    assert not run_dir.exists()


def test_harness_render_rejects_unknown_and_malformed_placeholders() -> None:
    assert render("listen {{PORT}};", {"PORT": "81"}) == "listen 81;"
    with pytest.raises(HarnessError, match="BACKEND"):
        render("pass {{BACKEND}};", {"PORT": "81"})
    with pytest.raises(HarnessError, match="malformed"):
        render("listen {{ PORT }};", {"PORT": "81"})


def test_harness_require_binary_skips_outside_ci_and_fails_in_ci(
    monkeypatch: pytest.MonkeyPatch, require_binary: Callable[[str], str]
) -> None:
    missing = "wsgiwire-no-such-binary"
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match=missing):
        require_binary(missing)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=missing):
        require_binary(missing)
    assert require_binary("sh").endswith("/sh")


def test_harness_stop_kills_what_ignores_sigterm_and_reports_leftovers(tmp_path: Path) -> None:
    # sh ignores SIGTERM and leaves a child in its process group: the harness must
    # SIGKILL the leader after the bounded wait, then kill and report the child.
    proc = ManagedProcess(
        ["sh", "-c", "trap '' TERM; sleep 60 & echo started; wait"],
        log_path=tmp_path / "out.log",
        stop_timeout=0.5,
    )
    proc.start()
    deadline = time.monotonic() + 10
    while "started" not in proc.output() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "started" in proc.output()
    with pytest.raises(HarnessError, match="left processes"):
        proc.stop()
    assert proc.returncode() == -signal.SIGKILL
    assert group_members(proc.pid) == []


# ---------------------------------------------------------------------------------------
# CGI setups


@dataclass(frozen=True)
class CGISetup:
    server_cls: type[RunningServer]
    config: str
    mount: str  # "" when the script answers the whole site
    module: str  # the CGI module the config loads, checked before booting

    def module_path(self) -> Path:
        return Path(self.server_cls.modules_dir()) / f"mod_{self.module}.so"


CGI_SETUPS = [
    pytest.param(CGISetup(ApacheServer, "cgi-scriptalias", "/app", "cgi"), id="apache-mod_cgi"),
    pytest.param(CGISetup(ApacheServer, "cgid-scriptalias", "/app", "cgid"), id="apache-mod_cgid"),
    pytest.param(CGISetup(ApacheServer, "cgi-root", "", "cgi"), id="apache-mod_cgi-root"),
    pytest.param(CGISetup(LighttpdServer, "cgi", "/app", "cgi"), id="lighttpd-mod_cgi"),
    pytest.param(CGISetup(LighttpdServer, "cgi-root", "", "cgi"), id="lighttpd-mod_cgi-root"),
]


@dataclass
class CGIServer:
    server: RunningServer
    mount: str
    script: Path

    def logs(self) -> str:
        return self.server.error_log_text()


@pytest.fixture(scope="session")
def cgi_script(stage: Stage) -> Path:
    return stage.script("probe.cgi.in", "app.cgi")


@pytest.fixture(scope="module", params=CGI_SETUPS)
def cgi(request: pytest.FixtureRequest, cgi_script: Path) -> Iterator[CGIServer]:
    setup: CGISetup = request.param
    setup.server_cls.require()
    require_path(setup.module_path(), f"{setup.server_cls.server} mod_{setup.module}")
    values = {"SCRIPT": str(cgi_script)}
    if setup.mount:
        values["MOUNT"] = setup.mount
    with setup.server_cls(setup.config, values=values) as server:
        yield CGIServer(server, setup.mount, cgi_script)


def probe(
    cgi: CGIServer,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes | Iterator[bytes] | None = None,
) -> dict[str, Any]:
    """Ask the probe app; check the reply is a clean 200 JSON document and return it."""
    status, reply_headers, data = cgi.server.request(method, cgi.mount + path, headers, body)
    context = f"{method} {cgi.mount + path} -> {status}\n{data[:2000]!r}\n{cgi.logs()}"
    assert status == 200, context
    assert dict((k.lower(), v) for k, v in reply_headers)["content-type"] == "application/json"
    assert b"noise" not in data, context  # print() in the app never reaches the response
    report: dict[str, Any] = json.loads(data)
    assert report["REQUEST_METHOD"] == method
    assert report["SCRIPT_NAME"] == cgi.mount
    return report


def wait_for_log(cgi: CGIServer, text: str) -> str:
    """The server logs once they contain ``text``; fails after LOG_WAIT seconds."""
    deadline = time.monotonic() + LOG_WAIT
    while True:
        logs = cgi.logs()
        if text in logs or time.monotonic() >= deadline:
            return logs
        time.sleep(0.02)


# ---------------------------------------------------------------------------------------
# CGI behaviour


def test_get_with_query_string(cgi: CGIServer) -> None:
    report = probe(cgi, "GET", "/hello?x=1&y=%20z&x=2&e=%E4%B8%AD")
    assert report["PATH_INFO"] == "/hello"
    assert report["QUERY_STRING"] == "x=1&y=%20z&x=2&e=%E4%B8%AD"  # as sent, not decoded
    assert report["wsgi.url_scheme"] == "http"
    assert report["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert report["CONTENT_LENGTH"] in (None, "", "0")
    assert report["body_length"] == 0
    assert (report["wsgi.multiprocess"], report["wsgi.multithread"], report["wsgi.run_once"]) == (
        True,
        False,
        True,
    )


def test_bare_mount_and_trailing_slash(cgi: CGIServer) -> None:
    """``/app`` and ``/app/`` (``/`` at the root) split SCRIPT_NAME/PATH_INFO by the book."""
    if cgi.mount:
        assert probe(cgi, "GET", "")["PATH_INFO"] == ""
    assert probe(cgi, "GET", "/")["PATH_INFO"] == "/"


def test_percent_encoded_utf8_path_arrives_as_latin1_of_the_bytes(cgi: CGIServer) -> None:
    raw = "/a b/中".encode()
    report = probe(cgi, "GET", "/a%20b/%E4%B8%AD")
    assert report["PATH_INFO_hex"] == raw.hex()
    assert report["PATH_INFO"] == raw.decode("latin-1")
    assert report["SCRIPT_NAME_hex"] == cgi.mount.encode().hex()


def test_post_one_mib_body(cgi: CGIServer) -> None:
    body = os.urandom(MIB)
    report = probe(cgi, "POST", "/upload", {"Content-Type": "application/octet-stream"}, body)
    assert report["CONTENT_LENGTH"] == str(MIB)
    assert report["CONTENT_TYPE"] == "application/octet-stream"
    assert report["body_length"] == MIB
    assert report["body_sha256"] == hashlib.sha256(body).hexdigest()
    # PEP 3333 / wsgiref.validate: the body headers appear only without the HTTP_ prefix.
    assert "HTTP_CONTENT_LENGTH" not in report["http_headers"]
    assert "HTTP_CONTENT_TYPE" not in report["http_headers"]


def test_post_chunked_body(cgi: CGIServer) -> None:
    """lighttpd buffers a chunked body and declares CONTENT_LENGTH; Apache streams it
    with no length, so the app must read wsgi.input to its end."""
    body = os.urandom(MIB + 12345)
    pieces = (body[i : i + 50000] for i in range(0, len(body), 50000))
    report = probe(cgi, "POST", "/chunked", {"Content-Type": "application/octet-stream"}, pieces)
    assert report["body_length"] == len(body)
    assert report["body_sha256"] == hashlib.sha256(body).hexdigest()
    if not report["CONTENT_LENGTH"]:
        assert report["wsgi.input_terminated"] is True


def test_proxy_header_never_becomes_http_proxy(cgi: CGIServer) -> None:
    report = probe(
        cgi,
        "GET",
        "/",
        {"Proxy": "http://evil.example:3128", "X-Probe-Token": "kept"},
    )
    assert report["http_headers"].get("HTTP_X_PROBE_TOKEN") == "kept"  # headers do arrive
    assert report["HTTP_PROXY_in_environ"] is False
    assert report["HTTP_PROXY_in_os_environ"] is False


def test_head_has_no_body(cgi: CGIServer) -> None:
    reply = cgi.server.raw_exchange(
        f"HEAD {cgi.mount}/head HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode()
    )
    head, sep, rest = reply.partition(b"\r\n\r\n")
    context = f"{reply!r}\n{cgi.logs()}"
    assert sep, context
    status_line, *header_lines = head.split(b"\r\n")
    assert status_line.split(b" ")[1] == b"200", context
    fields = (line.partition(b":") for line in header_lines)
    headers = {name.strip().lower(): value.strip() for name, _, value in fields}
    assert headers[b"x-probe-method"] == b"HEAD", context  # the app ran, as HEAD
    assert rest == b"", context


def test_print_in_app_goes_to_error_log_not_response(cgi: CGIServer) -> None:
    token = secrets.token_hex(8)
    status, headers, data = cgi.server.request("GET", f"{cgi.mount}/print?{token}")
    assert status == 200, cgi.logs()
    length = dict((k.lower(), v) for k, v in headers).get("content-length")
    assert length is None or int(length) == len(data)
    assert json.loads(data)["PATH_INFO"] == "/print"
    line = f"noise after start_response: {token}"
    assert line in wait_for_log(cgi, line)


# ---------------------------------------------------------------------------------------
# The same script run by hand, as an unpatched server would run it


def test_httpoxy_when_the_server_passes_http_proxy(cgi_script: Path) -> None:
    """Old servers exported the ``Proxy:`` header as HTTP_PROXY; the adapter drops it from
    the app's environ and from os.environ."""
    env = {
        "GATEWAY_INTERFACE": "CGI/1.1",
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "/app",
        "PATH_INFO": "/x",
        "QUERY_STRING": "",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_PROXY": "http://evil.example:3128",
    }
    proc = subprocess.run(
        [str(cgi_script)], env=env, input=b"", capture_output=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    head, _, body = proc.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"Status: 200"), proc.stdout
    report = json.loads(body)
    assert report["PATH_INFO"] == "/x"
    assert report["HTTP_PROXY_in_environ"] is False
    assert report["HTTP_PROXY_in_os_environ"] is False
    assert b"noise" in proc.stderr
