"""wsgiwire's FastCGI backend behind a real lighttpd, booted from ``server-configs/lighttpd/``.

Setups (booted once per module each):

* ``fastcgi-spawn``: ``fastcgi.server`` with ``bin-path``: lighttpd itself starts the
  flup-style script ``apps/fcgi_app.fcgi.in`` (``WSGIServer(app).run()``) as its own
  user, with a listening unix socket on fd 0; mounted at ``/app.fcgi``;
* ``fastcgi-prefix``: ``host``/``port`` to a ``wsgiwire serve`` backend, at ``/app``;
* ``fastcgi-unix``: ``socket`` to a ``wsgiwire serve`` backend (mode 0660, group of
  lighttpd's user), at ``/app``.

lighttpd buffers request bodies, so even a chunked upload arrives with its length.
"""

from __future__ import annotations

import grp
import hashlib
import http.client
import json
import os
import pwd
import secrets
import shutil
import threading
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .servers import (
    LOOPBACK,
    LighttpdServer,
    Stage,
    WsgiwireBackend,
    group_members,
    server_user,
    world_readable_tempdir,
)

pytestmark = pytest.mark.integration

MIB = 1 << 20
LOG_WAIT = 5.0
ENCODED_PATH = "/a%20b/%E4%B8%AD"
QUERY = "q=1&e=%E4%B8%AD&w=a+b&x=%2F"


@dataclass(frozen=True)
class Setup:
    config: str
    mount: str
    backend: str  # "spawn" (lighttpd's bin-path), "tcp" or "unix" (wsgiwire serve)


SETUPS = [
    pytest.param(Setup("fastcgi-spawn", "/app.fcgi", "spawn"), id="bin-path"),
    pytest.param(Setup("fastcgi-prefix", "/app", "tcp"), id="host-port"),
    pytest.param(Setup("fastcgi-unix", "/app", "unix"), id="unix-socket"),
]


@dataclass
class Site:
    setup: Setup
    server: LighttpdServer
    backend: WsgiwireBackend | None  # None: lighttpd spawned the app

    @property
    def mount(self) -> str:
        return self.setup.mount

    def logs(self) -> str:
        text = self.server.error_log_text()
        if self.backend is not None:
            text += f"\n--- backend ---\n{self.backend.output()}"
        return text


@pytest.fixture(scope="module", params=SETUPS)
def site(request: pytest.FixtureRequest, stage: Stage) -> Iterator[Site]:
    setup: Setup = request.param
    LighttpdServer.require()
    values = {"MOUNT": setup.mount}
    if setup.backend == "spawn":
        script = stage.script("fcgi_app.fcgi.in", "app.fcgi")
        with LighttpdServer(setup.config, values={**values, "SCRIPT": str(script)}) as server:
            yield Site(setup, server, None)
        return
    # World-traversable: lighttpd ({{USER}}) reaches the unix socket through it.
    run_dir = world_readable_tempdir("wsgiwire-fcgi-backend-")
    try:
        log_path = run_dir / "backend.log"
        if setup.backend == "unix":
            sock = run_dir / "app.sock"
            backend = WsgiwireBackend(stage, "fcgi_apps", [f"unix:{sock}"], log_path=log_path)
            backend.start()
            os.chown(sock, -1, grp.getgrnam(server_user()[1]).gr_gid)
            values["BACKEND"] = str(sock)
        else:
            backend = WsgiwireBackend(stage, "fcgi_apps", [f"{LOOPBACK}:0"], log_path=log_path)
            backend.start()
            values.update(BACKEND_HOST=LOOPBACK, BACKEND_PORT=str(backend.port))
        try:
            with LighttpdServer(setup.config, values=values) as server:
                yield Site(setup, server, backend)
        finally:
            backend.stop()
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def probe(
    site: Site,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes | Iterator[bytes] | None = None,
) -> tuple[dict[str, Any], int]:
    """Ask the probe app through lighttpd; check a clean 200 JSON reply.

    Returns the report and the pid of the process that ran the app.
    """
    status, reply_headers, data = site.server.request(method, site.mount + path, headers, body)
    context = f"{method} {site.mount + path} -> {status}\n{data[:2000]!r}\n{site.logs()}"
    assert status == 200, context
    lower = {k.lower(): v for k, v in reply_headers}
    assert lower["content-type"] == "application/json", context
    assert b"noise" not in data, context
    report: dict[str, Any] = json.loads(data)
    assert report["REQUEST_METHOD"] == method, context
    assert report["SCRIPT_NAME"] == site.mount, context
    return report, int(lower["x-worker-pid"])


def wait_for(predicate: Any, timeout: float = LOG_WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


# ---------------------------------------------------------------------------------------


def test_get_with_query_string(site: Site) -> None:
    report, _ = probe(site, "GET", f"/x/y?{QUERY}")
    assert report["PATH_INFO"] == "/x/y"
    assert report["QUERY_STRING"] == QUERY  # raw, as the client sent it
    assert report["CONTENT_LENGTH"] in (None, "0")
    assert report["body_length"] == 0
    assert report["wsgi.url_scheme"] == "http"
    assert report["SERVER_PROTOCOL"] == "HTTP/1.1"


def test_mount_root(site: Site) -> None:
    assert probe(site, "GET", "/")[0]["PATH_INFO"] == "/"
    assert probe(site, "GET", "")[0]["PATH_INFO"] == ""
    assert site.server.request("GET", "/elsewhere").status == 404  # not the app's


def test_percent_encoded_utf8_path_arrives_as_latin1_of_the_bytes(site: Site) -> None:
    raw = "/a b/中".encode()
    report, _ = probe(site, "GET", ENCODED_PATH)
    assert report["PATH_INFO_hex"] == raw.hex()
    assert report["PATH_INFO"] == raw.decode("latin-1")
    assert report["SCRIPT_NAME_hex"] == site.mount.encode().hex()


def test_post_one_mib_body(site: Site) -> None:
    body = os.urandom(MIB)
    report, _ = probe(site, "POST", "/upload", {"Content-Type": "application/octet-stream"}, body)
    assert report["CONTENT_LENGTH"] == str(MIB)
    assert report["CONTENT_TYPE"] == "application/octet-stream"
    assert (report["body_length"], report["body_sha256"]) == (
        MIB,
        hashlib.sha256(body).hexdigest(),
    )


def test_chunked_upload_arrives_with_its_length(site: Site) -> None:
    body = os.urandom(MIB + 12345)
    pieces = (body[i : i + 50000] for i in range(0, len(body), 50000))
    report, _ = probe(
        site, "POST", "/chunked", {"Content-Type": "application/octet-stream"}, pieces
    )
    assert report["CONTENT_LENGTH"] == str(len(body))
    assert (report["body_length"], report["body_sha256"]) == (
        len(body),
        hashlib.sha256(body).hexdigest(),
    )


def test_head_has_no_body(site: Site) -> None:
    reply = site.server.raw_exchange(
        f"HEAD {site.mount}/head HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode()
    )
    head, sep, rest = reply.partition(b"\r\n\r\n")
    context = f"{reply!r}\n{site.logs()}"
    assert sep, context
    status_line, *header_lines = head.split(b"\r\n")
    assert status_line.split(b" ")[1] == b"200", context
    fields = (line.partition(b":") for line in header_lines)
    headers = {name.strip().lower(): value.strip() for name, _, value in fields}
    assert headers[b"x-probe-method"] == b"HEAD", context  # the app ran, as HEAD
    assert rest == b"", context


def test_streamed_16_mib_response(site: Site, fcgi_stream: tuple[int, str]) -> None:
    length, sha256 = fcgi_stream
    conn = http.client.HTTPConnection(LOOPBACK, site.server.port, timeout=30)
    try:
        conn.request("GET", f"{site.mount}/big/stream")
        resp = conn.getresponse()
        assert resp.status == 200, site.logs()
        digest = hashlib.sha256()
        total = 0
        while chunk := resp.read(262144):
            digest.update(chunk)
            total += len(chunk)
    finally:
        conn.close()
    assert (total, digest.hexdigest()) == (length, sha256), site.logs()


def test_wsgi_errors_reach_lighttpd_error_log(site: Site) -> None:
    token = secrets.token_hex(8)
    status, _, data = site.server.request("GET", f"{site.mount}/errors?{token}")
    assert (status, data) == (200, b"logged\n"), site.logs()
    line = f"wsgi.errors: {token}"
    assert wait_for(lambda: line in site.server.error_log.read_text()), site.logs()


def test_who_runs_the_app(site: Site) -> None:
    """bin-path: lighttpd's own child, as lighttpd's user, a threaded flup-style server;
    otherwise the ``wsgiwire serve`` process we started."""
    report, pid = probe(site, "GET", "/who")
    assert site.server.process is not None
    if site.backend is None:
        assert pid in group_members(site.server.process.pid)
        uid = int(Path(f"/proc/{pid}/status").read_text().split("\nUid:")[1].split()[0])
        assert pwd.getpwuid(uid).pw_name == server_user()[0]
        assert report["wsgi.multithread"] is True  # WSGIServer's flup default
    else:
        # `wsgiwire serve` runs a master and its workers: the app runs in a worker.
        ppid = int(Path(f"/proc/{pid}/status").read_text().split("\nPPid:")[1].split()[0])
        assert site.backend.pid in (pid, ppid)
        assert report["wsgi.multithread"] is False


CONCURRENT_CLIENTS = 24
GATE_OBSERVE = 1.0  # how long the gate stays shut while every request is in flight


def test_concurrent_requests_are_all_served(site: Site) -> None:
    """24 clients at once, each held in the app until the test opens a gate: lighttpd
    opens a backend connection per request, and every one must be answered 200."""
    gate = Path(site.server.values["TMP_DIR"]) / f"gate-{secrets.token_hex(4)}"
    start = threading.Barrier(CONCURRENT_CLIENTS, timeout=10)

    def client(n: int) -> tuple[int, bytes]:
        start.wait()
        status, _, data = site.server.request("GET", f"{site.mount}/c{n}/gate?{gate}", timeout=30)
        return status, data

    with ThreadPoolExecutor(CONCURRENT_CLIENTS) as pool:
        try:
            futures = [pool.submit(client, n) for n in range(CONCURRENT_CLIENTS)]
            done, _ = wait(futures, timeout=GATE_OBSERVE, return_when=FIRST_COMPLETED)
            early = [f.result() for f in done]
        finally:
            gate.touch()
        results = [f.result(timeout=60) for f in futures]
    failed = [(status, data[:200]) for status, data in results if status != 200]
    assert not failed, f"{len(failed)} of {len(results)} failed: {failed[:3]}\n{site.logs()}"
    assert not early, f"answered while the gate was shut: {early[:3]}"
