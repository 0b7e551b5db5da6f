"""wsgiwire's FastCGI backend behind a real nginx, booted from ``server-configs/nginx/``.

Setups (one nginx + one ``wsgiwire serve`` each, booted once per module):

* ``fastcgi-root``: ``fastcgi_pass`` at ``/``; SCRIPT_NAME is sent twice (stock
  ``fastcgi_params`` with the whole path, then ``""``): the last wins;
* ``fastcgi-prefix``: the Flask-docs recipe at ``/app`` (``fastcgi_split_path_info``),
  backend on a unix socket (mode 0660, group of nginx's user);
* ``fastcgi-keepconn``: an upstream keepalive pool + ``fastcgi_keep_conn on``, two
  backend workers; nginx's connection to the backend stays open between requests;
* ``fastcgi-nobuffer``: ``fastcgi_request_buffering off``: a chunked upload arrives
  with no CONTENT_LENGTH and is read to the empty FCGI_STDIN record.

The app is ``apps/fcgi_apps.py`` (the JSON probe, a 16 MiB stream, wsgi.errors).
"""

from __future__ import annotations

import grp
import hashlib
import http.client
import json
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .servers import (
    LOOPBACK,
    NginxServer,
    Stage,
    WsgiwireBackend,
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
    mount: str  # "" at the root
    transport: str  # "tcp" or "unix"
    workers: int = 1
    keep_conn: bool = False
    streams_body: bool = False  # fastcgi_request_buffering off


SETUPS = [
    pytest.param(Setup("fastcgi-root", "", "tcp"), id="root"),
    pytest.param(Setup("fastcgi-prefix", "/app", "unix"), id="prefix-unix"),
    pytest.param(Setup("fastcgi-keepconn", "", "tcp", workers=2, keep_conn=True), id="keepconn"),
    pytest.param(Setup("fastcgi-nobuffer", "", "tcp", streams_body=True), id="nobuffer"),
]


@dataclass
class Site:
    setup: Setup
    server: NginxServer
    backend: WsgiwireBackend
    socket_path: Path | None

    @property
    def mount(self) -> str:
        return self.setup.mount

    def logs(self) -> str:
        return f"{self.server.error_log_text()}\n--- backend ---\n{self.backend.output()}"


def start_backend(
    stage: Stage, run_dir: Path, transport: str, workers: int = 1
) -> tuple[WsgiwireBackend, Path | None, str]:
    """A ``wsgiwire serve fcgi_apps`` backend; returns it, its socket path, and the
    address for ``fastcgi_pass``/``server``."""
    options = ["--workers", str(workers)]
    if transport == "unix":
        sock = run_dir / "app.sock"
        backend = WsgiwireBackend(
            stage, "fcgi_apps", [f"unix:{sock}"], log_path=run_dir / "backend.log", options=options
        )
        backend.start()
        # 0660: nginx's workers reach it through the group, as php-fpm's listen.group.
        os.chown(sock, -1, grp.getgrnam(server_user()[1]).gr_gid)
        return backend, sock, f"unix:{sock}"
    backend = WsgiwireBackend(
        stage, "fcgi_apps", [f"{LOOPBACK}:0"], log_path=run_dir / "backend.log", options=options
    )
    backend.start()
    return backend, None, f"{LOOPBACK}:{backend.port}"


@pytest.fixture(scope="module", params=SETUPS)
def site(request: pytest.FixtureRequest, stage: Stage) -> Iterator[Site]:
    setup: Setup = request.param
    NginxServer.require()
    # World-traversable: nginx's workers ({{USER}}) reach the unix socket through it.
    run_dir = world_readable_tempdir("wsgiwire-fcgi-backend-")
    try:
        backend, sock, address = start_backend(stage, run_dir, setup.transport, setup.workers)
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    try:
        values = {"BACKEND": address}
        if setup.mount:
            values["MOUNT"] = setup.mount
        with NginxServer(setup.config, values=values) as server:
            yield Site(setup, server, backend, sock)
    finally:
        try:
            backend.stop()
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)


def probe(
    site: Site,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes | Iterator[bytes] | None = None,
) -> dict[str, Any]:
    """Ask the probe app through nginx; check a clean 200 JSON reply and return it."""
    status, reply_headers, data = site.server.request(method, site.mount + path, headers, body)
    context = f"{method} {site.mount + path} -> {status}\n{data[:2000]!r}\n{site.logs()}"
    assert status == 200, context
    assert dict((k.lower(), v) for k, v in reply_headers)["content-type"] == "application/json"
    assert b"noise" not in data, context
    report: dict[str, Any] = json.loads(data)
    assert report["REQUEST_METHOD"] == method, context
    assert report["SCRIPT_NAME"] == site.mount, context  # the last SCRIPT_NAME won
    return report


def backend_connections(site: Site) -> int:
    """Established connections to the backend's socket, from /proc/net (Linux)."""
    if site.socket_path is not None:
        # /proc/net/unix: Num RefCount Protocol Flags Type St Inode Path; St 03 = connected.
        count = 0
        for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
            fields = line.split()
            if len(fields) >= 8 and fields[7] == str(site.socket_path) and fields[5] == "03":
                count += 1
        return count
    port = f"{site.backend.port:04X}"
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        # local_address rem_address st: 01 = ESTABLISHED; the backend's side has its port.
        if fields[1].endswith(f":{port}") and fields[3] == "01":
            count += 1
    return count


def wait_for(predicate: Any, timeout: float = LOG_WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


# ---------------------------------------------------------------------------------------


def test_get_with_query_string(site: Site) -> None:
    report = probe(site, "GET", f"/x/y?{QUERY}")
    assert report["PATH_INFO"] == "/x/y"
    assert report["QUERY_STRING"] == QUERY  # raw, as the client sent it
    assert report["CONTENT_LENGTH"] is None  # nginx sends "" for a GET: no declared length
    assert report["body_length"] == 0
    assert report["wsgi.url_scheme"] == "http"
    assert report["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert report["wsgi.multiprocess"] is (site.setup.workers > 1)


def test_mount_root(site: Site) -> None:
    assert probe(site, "GET", "/")["PATH_INFO"] == "/"
    if site.mount:
        # "/app" is rewritten to "/app/"; outside the mount nginx serves static files.
        assert probe(site, "GET", "")["PATH_INFO"] == "/"
        assert site.server.request("GET", "/elsewhere").status == 404


def test_percent_encoded_utf8_path_arrives_as_latin1_of_the_bytes(site: Site) -> None:
    raw = "/a b/中".encode()
    report = probe(site, "GET", ENCODED_PATH)
    assert report["PATH_INFO_hex"] == raw.hex()
    assert report["PATH_INFO"] == raw.decode("latin-1")
    assert report["SCRIPT_NAME_hex"] == site.mount.encode().hex()


def test_post_one_mib_body(site: Site) -> None:
    body = os.urandom(MIB)
    report = probe(site, "POST", "/upload", {"Content-Type": "application/octet-stream"}, body)
    assert report["CONTENT_LENGTH"] == str(MIB)
    assert report["CONTENT_TYPE"] == "application/octet-stream"
    assert (report["body_length"], report["body_sha256"]) == (
        MIB,
        hashlib.sha256(body).hexdigest(),
    )


def test_chunked_upload(site: Site) -> None:
    """Buffering nginx declares the length it read; with fastcgi_request_buffering off
    CONTENT_LENGTH is empty and the body runs to the empty FCGI_STDIN record."""
    body = os.urandom(MIB + 12345)
    pieces = (body[i : i + 50000] for i in range(0, len(body), 50000))
    report = probe(site, "POST", "/chunked", {"Content-Type": "application/octet-stream"}, pieces)
    assert (report["body_length"], report["body_sha256"]) == (
        len(body),
        hashlib.sha256(body).hexdigest(),
    )
    if site.setup.streams_body:
        assert report["CONTENT_LENGTH"] is None
        assert report["wsgi.input_terminated"] is True
    else:
        assert report["CONTENT_LENGTH"] == str(len(body))


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


def test_wsgi_errors_reach_nginx_error_log(site: Site) -> None:
    token = secrets.token_hex(8)
    status, _, data = site.server.request("GET", f"{site.mount}/errors?{token}")
    assert (status, data) == (200, b"logged\n"), site.logs()
    line = f"wsgi.errors: {token}"
    assert wait_for(lambda: line in site.server.error_log_text()), site.logs()
    logged = [ln for ln in site.server.error_log.read_text().splitlines() if line in ln]
    assert len(logged) == 1, logged
    assert "FastCGI sent in stderr" in logged[0]


def test_backend_connection_kept_only_with_keep_conn(site: Site) -> None:
    """With ``fastcgi_keep_conn on`` one backend connection carries every request and
    stays open afterwards; without it the backend closes after each END_REQUEST."""
    for i in range(5):
        assert probe(site, "GET", f"/seq/{i}")["PATH_INFO"] == f"/seq/{i}"
    expected = 1 if site.setup.keep_conn else 0
    assert wait_for(lambda: backend_connections(site) == expected), (
        f"{backend_connections(site)} backend connections, expected {expected}\n{site.logs()}"
    )
