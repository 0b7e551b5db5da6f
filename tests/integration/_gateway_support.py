"""Shared parts of the SCGI and uwsgi integration tests (real web servers, real peers).

A *site* is one web server booted from ``server-configs/<server>/<config>.conf`` in
front of one ``wsgiwire serve gw_app:application --protocol scgi|uwsgi`` backend (two
prefork workers, TCP on 127.0.0.1, port chosen by the kernel). The app is
``apps/gw_app.py``: a JSON report of the request by default, other answers chosen by
the ``X-Gw-Action`` request header (so they work under any mount).

``check_*`` functions are the per-setup checks; ``test_scgi_servers.py`` and
``test_uwsgi_servers.py`` call them for their own setups. Every check that gets the
app's report asserts the SCRIPT_NAME the setup promises (its mount) and the PATH_INFO
that goes with it; HEAD and the download check the head and the bytes.

Also here: a deterministic 16 MiB file (:func:`make_blob`) for the
``wsgi.file_wrapper`` download, direct backends without a web server
(:func:`direct_backend`) and a real uWSGI server from pyuwsgi (:class:`PyUwsgiBackend`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wsgiwire._client import (
    Reply,
    Target,
    build_params,
    parse_head,
    parse_target,
    send_request,
)

from .servers import (
    LOOPBACK,
    STARTUP_TIMEOUT,
    ApacheServer,
    HarnessError,
    ManagedProcess,
    Response,
    RunningServer,
    Stage,
    WsgiwireBackend,
    require_path,
    unavailable,
    wait_for_output,
    wait_for_port,
    world_readable_tempdir,
)

MIB = 1 << 20
BLOB_SIZE = 16 * MIB
APP = "gw_app:application"
FILE_ENV = "GW_FILE"  # gw_app serves the file this names (X-Gw-Action: file)

ENCODED_PATH = "/a%20b/%E4%B8%AD"
# PEP 3333: PATH_INFO is the decoded path's bytes as latin-1 text.
DECODED_PATH = "/a b/中".encode().decode("latin-1")
# Sent and expected raw: percent escapes, "+", a "/" escape and a repeated key stay as is.
QUERY = "q=1&e=%E4%B8%AD&w=a+b&x=%2F&q=2"


# ---------------------------------------------------------------------------------------
# The 16 MiB download


@dataclass(frozen=True)
class Blob:
    path: Path
    size: int
    sha256: str


def make_blob(directory: Path, size: int = BLOB_SIZE) -> Blob:
    """A file of ``size`` pseudo-random bytes (fixed seed) in ``directory``."""
    data = random.Random(0x5C61).randbytes(size)
    path = directory / "blob.bin"
    path.write_bytes(data)
    path.chmod(0o644)
    return Blob(path, size, hashlib.sha256(data).hexdigest())


# ---------------------------------------------------------------------------------------
# Setups and sites


@dataclass(frozen=True)
class GatewaySetup:
    """One web server config in front of one wsgiwire backend.

    ``mount`` is the URL prefix the server routes to the app ("" for the whole site),
    and the SCRIPT_NAME the app must see; ``backend_options`` are extra ``wsgiwire
    serve`` options (``--mount`` where the server does not split the path itself).
    ``apache_module`` is checked before booting Apache (``proxy_scgi``...).
    """

    server_cls: type[RunningServer]
    config: str
    protocol: str  # "scgi" or "uwsgi"
    mount: str
    backend_options: tuple[str, ...] = ()
    apache_module: str | None = None

    @property
    def name(self) -> str:
        return f"{self.server_cls.server}-{self.config}"


@dataclass
class GatewaySite:
    setup: GatewaySetup
    server: RunningServer
    backend: WsgiwireBackend
    blob: Blob

    @property
    def mount(self) -> str:
        return self.setup.mount

    def logs(self) -> str:
        return f"{self.server.error_log_text()}\n--- backend ---\n{self.backend.output()[-4000:]}"

    def request(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> Response:
        """One HTTP request for ``mount + path`` through the web server."""
        return self.server.request(method, self.mount + path, headers, body)

    def report(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> dict[str, Any]:
        """gw_app's JSON report for ``mount + path``; checks status, type, method and
        that SCRIPT_NAME is the mount."""
        status, reply_headers, data = self.request(method, path, headers, body)
        context = (
            f"{self.setup.name}: {method} {self.mount + path} -> {status}\n"
            f"{data[:2000]!r}\n{self.logs()}"
        )
        assert status == 200, context
        content_type = {k.lower(): v for k, v in reply_headers}.get("content-type")
        assert content_type == "application/json", context
        report: dict[str, Any] = json.loads(data)
        assert report["app"] == "gw_app", context
        assert report["REQUEST_METHOD"] == method, context
        assert report["SCRIPT_NAME"] == self.mount, context
        return report


def start_backend(
    stage: Stage,
    protocol: str,
    log_path: Path,
    *,
    options: Sequence[str] = (),
    workers: int = 2,
    env: Mapping[str, str] | None = None,
) -> WsgiwireBackend:
    """``wsgiwire serve gw_app:application --protocol P`` on 127.0.0.1, port by the kernel."""
    backend = WsgiwireBackend(
        stage,
        APP,
        [f"{LOOPBACK}:0"],
        log_path=log_path,
        options=["--protocol", protocol, "--workers", str(workers), *options],
        env=env,
    )
    backend.start()
    return backend


@contextlib.contextmanager
def gateway_site(setup: GatewaySetup, stage: Stage, blob: Blob) -> Iterator[GatewaySite]:
    """Boot the backend, then the web server in front of it; stop both by PID."""
    setup.server_cls.require()
    if setup.apache_module is not None:
        require_path(
            Path(ApacheServer.modules_dir()) / f"mod_{setup.apache_module}.so",
            f"Apache mod_{setup.apache_module}",
        )
    run_dir = world_readable_tempdir(f"wsgiwire-{setup.protocol}-backend-")
    try:
        backend = start_backend(
            stage,
            setup.protocol,
            run_dir / "backend.log",
            options=setup.backend_options,
            env={FILE_ENV: str(blob.path)},
        )
        try:
            values = {
                "BACKEND": f"{LOOPBACK}:{backend.port}",
                "BACKEND_HOST": LOOPBACK,
                "BACKEND_PORT": str(backend.port),
            }
            if setup.mount:
                values["MOUNT"] = setup.mount
            with setup.server_cls(setup.config, values=values) as server:
                yield GatewaySite(setup, server, backend, blob)
        finally:
            backend.stop()
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


# ---------------------------------------------------------------------------------------
# The checks every setup passes


def check_get(site: GatewaySite) -> None:
    report = site.report("GET", "/x/y")
    assert (report["SCRIPT_NAME"], report["PATH_INFO"]) == (site.mount, "/x/y")
    assert report["QUERY_STRING"] == ""
    assert report["body_length"] == 0
    assert report["wsgi.url_scheme"] == "http"
    assert report["uwsgi_vars"] == []
    report = site.report("GET", "/")
    assert (report["SCRIPT_NAME"], report["PATH_INFO"]) == (site.mount, "/")


def check_encoded_path(site: GatewaySite) -> None:
    report = site.report("GET", ENCODED_PATH)
    assert report["SCRIPT_NAME_hex"] == site.mount.encode().hex()
    assert report["PATH_INFO_hex"] == "/a b/中".encode().hex(), site.logs()
    assert report["PATH_INFO"] == DECODED_PATH


def check_query_string(site: GatewaySite) -> None:
    report = site.report("GET", f"/q?{QUERY}")
    assert (report["SCRIPT_NAME"], report["PATH_INFO"]) == (site.mount, "/q")
    assert report["QUERY_STRING"] == QUERY  # raw, as the client sent it


def check_post_1mib(site: GatewaySite) -> None:
    body = random.Random(1).randbytes(MIB)
    report = site.report(
        "POST",
        "/upload",
        {"Content-Type": "application/octet-stream", "X-Gw-Tag": "post"},
        body,
    )
    assert (report["SCRIPT_NAME"], report["PATH_INFO"]) == (site.mount, "/upload")
    assert report["CONTENT_LENGTH"] == str(MIB)
    assert report["CONTENT_TYPE"] == "application/octet-stream"
    assert report["x_headers"] == {"HTTP_X_GW_TAG": "post"}
    assert (report["body_length"], report["body_sha256"]) == (
        MIB,
        hashlib.sha256(body).hexdigest(),
    )


def check_head(site: GatewaySite) -> None:
    """HEAD: a 200 head and not one body byte (read to the close)."""
    raw = site.server.raw_exchange(
        f"HEAD {site.mount}/head HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode()
    )
    head, sep, rest = raw.partition(b"\r\n\r\n")
    assert sep, raw[:500]
    assert head.startswith(b"HTTP/1.1 200 "), f"{head!r}\n{site.logs()}"
    assert b"\r\ncontent-type: application/json" in head.lower(), head
    assert rest == b"", f"{len(rest)} body bytes after a HEAD: {rest[:200]!r}"


def check_file_download(site: GatewaySite) -> None:
    status, headers, data = site.request("GET", "/file", {"X-Gw-Action": "file"})
    assert status == 200, f"{status} {data[:500]!r}\n{site.logs()}"
    fields = {k.lower(): v for k, v in headers}
    if site.setup.server_cls is ApacheServer and site.setup.protocol == "scgi":
        # mod_proxy_scgi re-frames a CGI-style reply: chunked, the backend's length dropped.
        assert fields.get("transfer-encoding") == "chunked", headers
    else:
        assert fields.get("content-length") == str(site.blob.size), headers
    assert len(data) == site.blob.size
    assert hashlib.sha256(data).hexdigest() == site.blob.sha256


# ---------------------------------------------------------------------------------------
# Talking to a backend directly (no web server)


@dataclass
class DirectBackend:
    """A backend reached with wsgiwire's own client."""

    protocol: str
    process: ManagedProcess
    port: int

    def target(self, path: str = "/") -> Target:
        return parse_target(f"{self.protocol}://{LOOPBACK}:{self.port}{path}")

    def send(
        self,
        path: str,
        *,
        method: str = "GET",
        headers: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
        script_name: str = "",
        extra: Sequence[tuple[str, str]] = (),
        timeout: float = 30.0,
    ) -> Reply:
        """One request as nginx would build it (:func:`wsgiwire._client.build_params`)."""
        target = self.target(path)
        params = build_params(
            target,
            method=method,
            headers=headers,
            body_length=len(body),
            script_name=script_name,
            extra=extra,
        )
        return send_request(target, params, body, timeout=timeout)

    def report(self, path: str = "/", **kwargs: Any) -> dict[str, Any]:
        """gw_app's JSON report, checked to be a 200."""
        reply = self.send(path, **kwargs)
        assert reply.status == 200, f"{reply.raw[:1000]!r}\n{self.output()}"
        report: dict[str, Any] = json.loads(reply.body)
        assert report["app"] == "gw_app"
        return report

    def output(self) -> str:
        return self.process.output()[-4000:]

    def assert_alive(self) -> None:
        assert self.process.returncode() is None, f"the backend exited:\n{self.output()}"

    def assert_still_serving(self) -> None:
        """The process is up and a normal request gets its normal answer."""
        self.assert_alive()
        report = self.report("/after?x=1")
        assert (report["PATH_INFO"], report["QUERY_STRING"]) == ("/after", "x=1")

    def raw(self, data: bytes, *, timeout: float = 10.0) -> bytes:
        """Send ``data`` as is, half-close, and read to EOF."""
        with socket.create_connection((LOOPBACK, self.port), timeout=timeout) as sock:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)

    def check_stalled_connection_blocks_nobody(self, head: bytes) -> None:
        """A peer that sent ``head[:3]`` and went quiet must not hold up another
        request, even on one worker without threads."""
        with socket.create_connection((LOOPBACK, self.port), timeout=10) as stalled:
            stalled.sendall(head[:3])
            started = time.monotonic()
            self.assert_still_serving()
            assert time.monotonic() - started < 5.0

    def check_short_body_is_400(self, head: bytes) -> None:
        """CONTENT_LENGTH 10, 5 body bytes, then EOF: a 400, the app never runs."""
        raw = self.raw(head + b"12345")
        status, _, _, body = parse_head(raw)
        assert status == 400, raw[:500]
        assert b"gw_app" not in body
        self.assert_still_serving()


@contextlib.contextmanager
def direct_backend(
    stage: Stage,
    protocol: str,
    log_dir: Path,
    *,
    options: Sequence[str] = (),
    workers: int = 1,
    env: Mapping[str, str] | None = None,
) -> Iterator[DirectBackend]:
    """A wsgiwire backend serving gw_app, stopped by its PID afterwards."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{protocol}-{time.monotonic_ns()}.log"
    backend = start_backend(stage, protocol, log_path, options=options, workers=workers, env=env)
    try:
        yield DirectBackend(protocol, backend, backend.port)
    finally:
        backend.stop()


# ---------------------------------------------------------------------------------------
# Real peers


_UWSGI_PORT = re.compile(r"bound to TCP address [\d.]+:(\d+)")


def require_pyuwsgi() -> None:
    """Skip (fail in CI) when pyuwsgi is not importable by this interpreter."""
    probe = subprocess.run(
        [sys.executable, "-c", "import pyuwsgi"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    if probe.returncode != 0:
        unavailable("pyuwsgi (the uWSGI server as a wheel) is not installed")


def require_uwsgi_curl() -> str:
    """The ``uwsgi_curl`` script of uwsgi-tools (beside this interpreter or on PATH)."""
    beside = Path(sys.executable).parent / "uwsgi_curl"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("uwsgi_curl")
    if found is None:
        unavailable("uwsgi_curl (pip package uwsgi-tools) is not installed")
    return found


class PyUwsgiBackend(ManagedProcess):
    """A real uWSGI 2.0 server (pyuwsgi) serving ``APP`` from ``stage.root``.

    One process, no master (``--die-on-term`` so SIGTERM stops it), ``--need-app``
    and ``--strict`` so a bad option or app fails the start instead of serving
    "no app"; the socket is ``127.0.0.1:0`` and the port is read from its log.
    """

    def __init__(
        self,
        stage: Stage,
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        options: Sequence[str] = (),
    ) -> None:
        argv = [
            sys.executable, "-c", "import pyuwsgi; pyuwsgi.run()",
            "--socket", f"{LOOPBACK}:0",
            "--module", APP,
            "--pythonpath", str(stage.root),
            "--chdir", str(stage.root),
            "--need-app", "--strict", "--die-on-term",
            "--processes", "1",
            *options,
        ]  # fmt: skip
        full_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONDONTWRITEBYTECODE": "1",
            **(env or {}),
        }
        super().__init__(argv, log_path=log_path, env=full_env, cwd=stage.root)
        self.port = 0

    def start(self) -> None:
        super().start()
        try:
            output = wait_for_output(self, "spawned uWSGI worker", timeout=STARTUP_TIMEOUT)
            match = _UWSGI_PORT.search(output)
            if match is None:
                raise HarnessError(f"uWSGI did not log its port:\n{output}")
            self.port = int(match.group(1))
            wait_for_port(self.port, process=self)
        except BaseException:
            self.stop()
            raise
