"""wsgiwire's uwsgi-protocol backend behind real nginx, Apache httpd and lighttpd.

Each setup boots one web server from ``server-configs/<server>/uwsgi-*.conf`` in front
of one ``wsgiwire serve gw_app:application --protocol uwsgi --workers 2`` (see
``_gateway_support``), once per module. Every setup must give the app SCRIPT_NAME =
its mount and PATH_INFO = the decoded rest of the path, with no ``--mount``:

* ``nginx-uwsgi-root``: ``uwsgi_pass`` at ``/`` (PATH_INFO = ``$document_uri``);
* ``nginx-uwsgi-prefix30``: the Flask-docs recipe ``uwsgi_param SCRIPT_NAME /app;
  uwsgi_modifier1 30;``: nginx sends PATH_INFO ``/app/x/y``, modifier1 30 makes
  wsgiwire strip SCRIPT_NAME from it (real uWSGI 2.0.30 does not: see
  ``test_uwsgi_peers.py``);
* ``apache-uwsgi-root`` / ``apache-uwsgi-prefix``: ``mod_proxy_uwsgi`` splits the path
  itself (at the prefix: SCRIPT_NAME ``/app/`` and PATH_INFO ``/`` for ``/app/``);
* ``lighttpd-uwsgi-prefix`` / ``lighttpd-uwsgi-root``: ``scgi.server`` with
  ``scgi.protocol = "uwsgi"`` (the root one with ``fix-root-scriptname``).

Then uwsgi-specific checks straight on the backend's socket (unknown modifier1, the
uWSGI "magic variables", UWSGI_SCHEME), each followed by a normal request on the same
backend: it keeps serving.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from wsgiwire._client import build_params, encode_uwsgi, parse_head, uwsgi_request

from . import _gateway_support as gw
from .servers import ApacheServer, LighttpdServer, NginxServer, Stage

pytestmark = pytest.mark.integration

SETUPS = [
    gw.GatewaySetup(NginxServer, "uwsgi-root", "uwsgi", ""),
    gw.GatewaySetup(NginxServer, "uwsgi-prefix30", "uwsgi", "/app"),
    gw.GatewaySetup(ApacheServer, "uwsgi-root", "uwsgi", "", apache_module="proxy_uwsgi"),
    gw.GatewaySetup(ApacheServer, "uwsgi-prefix", "uwsgi", "/app", apache_module="proxy_uwsgi"),
    gw.GatewaySetup(LighttpdServer, "uwsgi-prefix", "uwsgi", "/app"),
    gw.GatewaySetup(LighttpdServer, "uwsgi-root", "uwsgi", ""),
]


@pytest.fixture(scope="module")
def blob(tmp_path_factory: pytest.TempPathFactory) -> gw.Blob:
    return gw.make_blob(tmp_path_factory.mktemp("uwsgi-blob"))


@pytest.fixture(scope="module", params=SETUPS, ids=[s.name for s in SETUPS])
def site(request: pytest.FixtureRequest, stage: Stage, blob: gw.Blob) -> Iterator[gw.GatewaySite]:
    with gw.gateway_site(request.param, stage, blob) as running:
        yield running


def test_get(site: gw.GatewaySite) -> None:
    gw.check_get(site)


def test_percent_encoded_utf8_path(site: gw.GatewaySite) -> None:
    gw.check_encoded_path(site)


def test_query_string_is_raw(site: gw.GatewaySite) -> None:
    gw.check_query_string(site)


def test_post_1mib_body(site: gw.GatewaySite) -> None:
    gw.check_post_1mib(site)


def test_head_has_no_body(site: gw.GatewaySite) -> None:
    gw.check_head(site)


def test_16mib_file_wrapper_download(site: gw.GatewaySite) -> None:
    gw.check_file_download(site)


# ---------------------------------------------------------------------------------------
# The backend's own socket


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("uwsgi-direct")


@pytest.fixture(scope="module")
def backend(stage: Stage, log_dir: Path) -> Iterator[gw.DirectBackend]:
    with gw.direct_backend(stage, "uwsgi", log_dir) as running:
        yield running


@pytest.fixture(scope="module")
def trusting_backend(stage: Stage, log_dir: Path) -> Iterator[gw.DirectBackend]:
    with gw.direct_backend(stage, "uwsgi", log_dir, options=["--trust-uwsgi-scheme"]) as running:
        yield running


def test_backend_answers_with_an_http_status_line(backend: gw.DirectBackend) -> None:
    reply = backend.send(gw.ENCODED_PATH + "?" + gw.QUERY, method="POST", body=b"abc")
    assert reply.raw.startswith(b"HTTP/1.1 200 OK\r\n"), reply.raw[:300]
    report = backend.report(gw.ENCODED_PATH + "?" + gw.QUERY, method="POST", body=b"abc")
    assert (report["SCRIPT_NAME"], report["PATH_INFO"]) == ("", gw.DECODED_PATH)
    assert report["QUERY_STRING"] == gw.QUERY
    assert report["body_length"] == 3


def test_modifier1_30_strips_script_name_from_path_info(backend: gw.DirectBackend) -> None:
    target = backend.target("/app/x/y")
    params = [
        *(p for p in build_params(target) if p[0] not in (b"SCRIPT_NAME", b"PATH_INFO")),
        (b"PATH_INFO", b"/app/x/y"),
        (b"SCRIPT_NAME", b"/app"),
    ]
    for modifier1, expected in ((30, "/x/y"), (0, "/app/x/y")):
        reply = uwsgi_request(target, params, modifier1=modifier1, timeout=10)
        assert reply.status == 200, reply.raw[:500]
        report = json.loads(reply.body)
        assert (report["SCRIPT_NAME"], report["PATH_INFO"]) == ("/app", expected), modifier1


@pytest.mark.parametrize("modifier1", [5, 17, 99, 255])
def test_unknown_modifier1_is_refused_and_server_keeps_serving(
    backend: gw.DirectBackend, modifier1: int
) -> None:
    target = backend.target("/modifier")
    reply = uwsgi_request(target, build_params(target), modifier1=modifier1, timeout=10)
    assert reply.raw.startswith(b"HTTP/1.1 501 "), reply.raw[:500]
    assert b"gw_app" not in reply.body  # the app never ran
    backend.assert_still_serving()


def test_nonzero_modifier2_is_refused(backend: gw.DirectBackend) -> None:
    target = backend.target("/modifier2")
    head = encode_uwsgi(build_params(target))
    raw = backend.raw(head[:3] + b"\x07" + head[4:])
    status, _, _, _ = parse_head(raw)
    assert status == 501, raw[:500]
    backend.assert_still_serving()


def test_plain_http_sent_to_the_uwsgi_port_is_refused(backend: gw.DirectBackend) -> None:
    raw = backend.raw(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 501 "), raw[:500]  # 'G' read as modifier1 71
    backend.assert_still_serving()


def test_truncated_vars_block_is_400(backend: gw.DirectBackend) -> None:
    block = struct.pack("<H", 14) + b"REQUEST_METHOD" + struct.pack("<H", 10) + b"GET"
    raw = backend.raw(struct.pack("<BHB", 0, len(block), 0) + block)
    status, _, _, _ = parse_head(raw)
    assert status == 400, raw[:500]
    backend.assert_still_serving()


def test_uwsgi_magic_variables_never_reach_the_app_and_change_nothing(
    backend: gw.DirectBackend, tmp_path: Path
) -> None:
    baseline = backend.report("/magic")
    blob = backend.send("/file", headers=[("X-Gw-Action", "file")]).body
    marker = tmp_path / "evil-ran"
    evil = tmp_path / "gw_evil.py"
    evil.write_text(
        f"open({str(marker)!r}, 'w').close()\n"
        "def application(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [b'evil']\n"
    )
    magic = [
        ("UWSGI_SCRIPT", "gw_evil:application"),
        ("UWSGI_MODULE", "gw_evil"),
        ("UWSGI_CALLABLE", "application"),
        ("UWSGI_FILE", str(evil)),
        ("UWSGI_CHDIR", str(tmp_path)),
        ("UWSGI_PYHOME", str(tmp_path)),
        ("UWSGI_SETENV", f"GW_FILE={evil}"),
        ("UWSGI_APPID", "evil"),
    ]
    report = backend.report("/magic", extra=magic)
    assert report["uwsgi_vars"] == []  # none reached the app
    assert report["cwd"] == baseline["cwd"]  # UWSGI_CHDIR changed nothing
    assert (report["SCRIPT_NAME"], report["PATH_INFO"]) == ("", "/magic")
    assert not marker.exists()  # UWSGI_FILE / UWSGI_SCRIPT loaded nothing
    # UWSGI_SETENV did not point GW_FILE at the module: the app serves the same file.
    assert backend.send("/file", headers=[("X-Gw-Action", "file")]).body == blob
    backend.assert_still_serving()
    assert backend.report("/again")["cwd"] == baseline["cwd"]


@pytest.mark.parametrize(
    ("trusted", "sent", "scheme"),
    [
        pytest.param(False, "https", "http", id="untrusted-https"),
        pytest.param(True, "https", "https", id="trusted-https"),
        pytest.param(True, "HTTPS", "https", id="trusted-upper"),
        pytest.param(True, "http", "http", id="trusted-http"),
        pytest.param(True, "gopher", "http", id="trusted-bogus"),
    ],
)
def test_uwsgi_scheme_sets_url_scheme_only_when_trusted(
    request: pytest.FixtureRequest, trusted: bool, sent: str, scheme: str
) -> None:
    backend: gw.DirectBackend = request.getfixturevalue(
        "trusting_backend" if trusted else "backend"
    )
    report = backend.report("/scheme", extra=[("UWSGI_SCHEME", sent)])
    assert report["wsgi.url_scheme"] == scheme
    assert report["uwsgi_vars"] == []
    backend.assert_still_serving()


def test_trusted_uwsgi_scheme_wins_over_request_scheme(
    trusting_backend: gw.DirectBackend,
) -> None:
    report = trusting_backend.report(
        "/scheme", extra=[("UWSGI_SCHEME", "https"), ("REQUEST_SCHEME", "http")]
    )
    assert report["wsgi.url_scheme"] == "https"


def test_stalled_connection_does_not_block_others(backend: gw.DirectBackend) -> None:
    target = backend.target("/stalled")
    backend.check_stalled_connection_blocks_nobody(encode_uwsgi(build_params(target)))


def test_body_shorter_than_content_length_is_400(backend: gw.DirectBackend) -> None:
    target = backend.target("/short")
    head = encode_uwsgi(build_params(target, method="POST", body_length=10))
    backend.check_short_body_is_400(head)
