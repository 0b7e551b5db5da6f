"""HAProxy (``fcgi-app``) and Caddy (``reverse_proxy`` + ``transport fastcgi``) in front
of wsgiwire: the tested files under ``server-configs/haproxy/`` and
``server-configs/caddy/``, as ``wsgiwire config SERVER --full`` prints them, booted for
real, at the site root and at a prefix, over TCP and a unix socket, each terminating TLS
on a second port with a certificate made here.

Each answers the request set every front end answers (``_deploy_support.Checks``):
path under the mount and query, a 1 MiB body, a chunked body (Caddy 2.6 sends
``CONTENT_LENGTH=-1`` with it: the app gets the body whole, with
``wsgi.input_terminated``), HEAD, duplicate Cookie headers, httpoxy, the https scheme
through TLS, Flask's and Django's absolute URLs with the port, a Django form POST
with ``Origin`` through CSRF, and an absolute-form request target.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from . import _deploy_support as ds
from .servers import (
    CONFIG_ROOT,
    KEEP_RUN_DIRS_ENV,
    REPO_ROOT,
    SERVER_CLASSES,
    RunningServer,
    Stage,
    WsgiwireBackend,
    free_port,
    server_user,
    world_readable_tempdir,
)

pytestmark = pytest.mark.integration

MOUNT = "/app"


@dataclass(frozen=True)
class Case:
    file: str  # under server-configs/, without .conf
    mount: str
    transport: str

    @property
    def server(self) -> str:
        return self.file.partition("/")[0]


CASES = [
    Case("haproxy/fastcgi-root", "", "tcp"),
    Case("haproxy/fastcgi-prefix", MOUNT, "unix"),
    Case("caddy/fastcgi-root", "", "unix"),
    Case("caddy/fastcgi-prefix", MOUNT, "tcp"),
]


def test_every_file_is_booted() -> None:
    on_disk = {f"{d}/{p.stem}" for d in ("haproxy", "caddy") for p in (CONFIG_ROOT / d).iterdir()}
    assert on_disk == {case.file for case in CASES}


@dataclass
class Site:
    case: Case
    server: RunningServer
    backend: WsgiwireBackend
    checks: ds.Checks


@pytest.fixture(scope="module")
def work() -> Iterator[Path]:
    path = world_readable_tempdir("wsgiwire-frontends-")
    yield path
    if os.environ.get(KEEP_RUN_DIRS_ENV) != "1":
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def certificate(work: Path) -> ds.Certificate:
    return ds.self_signed(work)


@pytest.fixture(scope="module")
def backends(stage: Stage, work: Path) -> Iterator[dict[str, WsgiwireBackend]]:
    user, group = server_user()
    started: dict[str, WsgiwireBackend] = {}
    try:
        for transport, bind in (("tcp", "127.0.0.1:0"), ("unix", f"unix:{work}/app.sock")):
            backend = WsgiwireBackend(
                stage, ds.APP, [bind], log_path=work / f"backend-{transport}.log",
                options=["--protocol", "fastcgi", "--workers", "2", "--threads", "4",
                         "--socket-owner", f"{user}:{group}", "--log-level", "debug"],
            )
            backend.start()
            started[transport] = backend
        yield started
    finally:
        for backend in started.values():
            backend.stop()


@pytest.fixture(scope="module", params=CASES, ids=[case.file for case in CASES])
def site(
    request: pytest.FixtureRequest,
    backends: dict[str, WsgiwireBackend],
    certificate: ds.Certificate,
    work: Path,
) -> Iterator[Site]:
    case: Case = request.param
    server_cls = SERVER_CLASSES[case.server]
    server_cls.require()
    backend = backends[case.transport]
    bind = f"127.0.0.1:{backend.port}" if case.transport == "tcp" else f"unix:{work}/app.sock"
    tls_port = free_port()
    # What `wsgiwire config SERVER --full` prints, the harness's own values passed
    # through for it to fill (port, run dir, user).
    argv = [sys.executable, "-m", "wsgiwire", "config", case.server, "--full", "--bind", bind,
            *(["--mount", case.mount] if case.mount else []),
            *(f"--set={n}={{{{{n}}}}}" for n in ("PORT", "RUN_DIR", "DOC_ROOT", "USER", "GROUP")),
            f"--set=TLS_PORT={tls_port}", f"--set=CERT={certificate.cert}",
            f"--set=KEY={certificate.key}", f"--set=CERT_PEM={certificate.pem}"]
    done = subprocess.run(argv, capture_output=True, text=True, cwd=REPO_ROOT, timeout=60,
                          check=False, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert done.returncode == 0, done.stderr
    assert f"# tested file: server-configs/{case.file}.conf\n" in done.stderr, done.stderr
    printed = work / f"{case.file.replace('/', '-')}.conf"
    printed.write_text(done.stdout)
    with server_cls(printed) as server:

        def logs() -> str:
            return (f"[{case.file}]\n{server.error_log_text()}\n--- backend ---\n"
                    f"{backend.output()[-3000:]}")

        checks = ds.Checks(server.port, case.mount, logs, certificate, tls_port)
        yield Site(case, server, backend, checks)


def test_path_and_query(site: Site) -> None:
    site.checks.path_and_query()


def test_one_mib_body(site: Site) -> None:
    site.checks.big_body()


def test_chunked_body(site: Site) -> None:
    if site.case.server == "haproxy":
        # HAProxy 2.6 must hold a chunked body whole to send CONTENT_LENGTH
        # (http-buffer-request, tune.bufsize): a larger one is its own 400.
        got = site.checks.chunked_body(ds.SMALL_CHUNKS)
        assert got["CONTENT_LENGTH"] == str(sum(map(len, ds.SMALL_CHUNKS))), got
        return
    got = site.checks.chunked_body()
    if site.case.server == "caddy":
        # Caddy 2.6 sent CONTENT_LENGTH=-1: no declared length, the body read whole.
        assert got["input_terminated"] is True and "CONTENT_LENGTH" not in got, got
        assert "CONTENT_LENGTH -1 read as no declared length" in site.backend.output()


def test_head(site: Site) -> None:
    site.checks.head()


def test_duplicate_cookie_headers(site: Site) -> None:
    cookie = site.checks.duplicate_cookies()
    # HAProxy forwards each header; wsgiwire joins repeated Cookie params with "; ".
    # Caddy joins the two headers itself (Go's ", ").
    assert cookie == ("a=1; b=2" if site.case.server == "haproxy" else "a=1, b=2")


def test_httpoxy(site: Site) -> None:
    site.checks.httpoxy()


def test_tls_scheme(site: Site) -> None:
    site.checks.tls_scheme()


def test_flask_and_django_see_host_and_port(site: Site) -> None:
    site.checks.frameworks_see_the_port()
    site.checks.frameworks_see_the_port("example.test")


def test_django_form_post_with_origin_passes_csrf(site: Site) -> None:
    site.checks.django_csrf_with_origin()


def test_absolute_form_target(site: Site) -> None:
    site.checks.absolute_form_never_uses_the_host_header()


def test_concurrent_requests_over_kept_connections(site: Site) -> None:
    """HAProxy with mpxs-conns, get-values and keep-conn (it learns FCGI_MPXS_CONNS=0,
    so it does not multiplex): 16 requests at once all come back whole and right."""
    def one(i: int) -> tuple[str, int]:
        got = site.checks.echo("POST", f"/m/{i}", body=ds.CHUNKS[i])
        return got["PATH_INFO"], got["body_length"]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(16)))
    assert results == [(f"/m/{i}", len(ds.CHUNKS[i])) for i in range(16)]
