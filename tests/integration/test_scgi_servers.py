"""wsgiwire's SCGI backend behind real nginx, Apache httpd and lighttpd.

Each setup boots one web server from ``server-configs/<server>/scgi-*.conf`` in front
of one ``wsgiwire serve gw_app:application --protocol scgi --workers 2`` (see
``_gateway_support``), once per module. Every setup must give the app SCRIPT_NAME =
its mount and PATH_INFO = the decoded rest of the path:

* ``nginx-scgi-root``: ``scgi_pass`` at ``/``; nginx sends no SCRIPT_NAME/PATH_INFO,
  wsgiwire derives PATH_INFO from REQUEST_URI;
* ``nginx-scgi-prefix``: ``scgi_pass`` at ``/app/`` with the stock ``scgi_params``
  and ``wsgiwire serve --mount /app`` (what a user does: nginx cannot know the split);
* ``nginx-scgi-prefix-params``: nginx sends the split itself (a regex location and
  ``scgi_param SCRIPT_NAME``/``PATH_INFO``), no ``--mount``;
* ``apache-scgi-root`` / ``apache-scgi-prefix``: ``mod_proxy_scgi`` puts the whole
  path in SCRIPT_NAME and sends no PATH_INFO; ``--mount /`` and ``--mount /app``
  restore the split;
* ``lighttpd-scgi-prefix``: ``scgi.server`` at ``/app`` (lighttpd splits it);
* ``lighttpd-scgi-root``: ``scgi.server`` at ``/`` with ``fix-root-scriptname``.

Then SCGI-specific refusals straight on the backend's socket, each followed by a
normal request on the same backend (it keeps serving).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from wsgiwire._client import build_params, encode_scgi, parse_head, scgi_request

from . import _gateway_support as gw
from .servers import ApacheServer, LighttpdServer, NginxServer, Stage

pytestmark = pytest.mark.integration

SETUPS = [
    gw.GatewaySetup(NginxServer, "scgi-root", "scgi", ""),
    gw.GatewaySetup(NginxServer, "scgi-prefix", "scgi", "/app", ("--mount", "/app")),
    gw.GatewaySetup(NginxServer, "scgi-prefix-params", "scgi", "/app"),
    gw.GatewaySetup(ApacheServer, "scgi-root", "scgi", "", ("--mount", "/"), "proxy_scgi"),
    gw.GatewaySetup(ApacheServer, "scgi-prefix", "scgi", "/app", ("--mount", "/app"), "proxy_scgi"),
    gw.GatewaySetup(LighttpdServer, "scgi-prefix", "scgi", "/app"),
    gw.GatewaySetup(LighttpdServer, "scgi-root", "scgi", ""),
]


@pytest.fixture(scope="module")
def blob(tmp_path_factory: pytest.TempPathFactory) -> gw.Blob:
    return gw.make_blob(tmp_path_factory.mktemp("scgi-blob"))


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
# Refusals on the backend's own socket


@pytest.fixture(scope="module")
def backend(stage: Stage, tmp_path_factory: pytest.TempPathFactory) -> Iterator[gw.DirectBackend]:
    with gw.direct_backend(stage, "scgi", tmp_path_factory.mktemp("scgi-direct")) as running:
        yield running


def test_backend_answers_scgi_request(backend: gw.DirectBackend) -> None:
    report = backend.report(gw.ENCODED_PATH + "?" + gw.QUERY, method="POST", body=b"abc")
    assert (report["SCRIPT_NAME"], report["PATH_INFO"]) == ("", gw.DECODED_PATH)
    assert report["QUERY_STRING"] == gw.QUERY
    assert report["body_length"] == 3


def test_request_without_scgi_1_is_400(backend: gw.DirectBackend) -> None:
    target = backend.target("/no-scgi")
    params = [(k, v) for k, v in build_params(target) if k != b"SCGI"]
    assert params[0][0] == b"CONTENT_LENGTH"
    reply = scgi_request(target, params, timeout=10)
    assert reply.status == 400, reply.raw[:500]
    assert reply.raw.startswith(b"Status: 400"), reply.raw[:500]
    assert b"gw_app" not in reply.body  # the app never ran
    backend.assert_still_serving()


def test_scgi_with_another_value_is_400(backend: gw.DirectBackend) -> None:
    target = backend.target("/scgi-2")
    params = [(k, b"2" if k == b"SCGI" else v) for k, v in build_params(target)]
    reply = scgi_request(target, params, timeout=10)
    assert reply.status == 400, reply.raw[:500]
    backend.assert_still_serving()


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", id="http-on-scgi-port"),
        pytest.param(b"12x:CONTENT_LENGTH\x000\x00,", id="bad-length-digits"),
        pytest.param(
            encode_scgi([(b"CONTENT_LENGTH", b"0"), (b"SCGI", b"1")])[:-1] + b";",
            id="no-trailing-comma",
        ),
    ],
)
def test_malformed_netstring_is_400(backend: gw.DirectBackend, data: bytes) -> None:
    raw = backend.raw(data)
    status, _, _, _ = parse_head(raw)
    assert status == 400, raw[:500]
    backend.assert_still_serving()


def test_stalled_connection_does_not_block_others(backend: gw.DirectBackend) -> None:
    target = backend.target("/stalled")
    backend.check_stalled_connection_blocks_nobody(encode_scgi(build_params(target)))


def test_body_shorter_than_content_length_is_400(backend: gw.DirectBackend) -> None:
    target = backend.target("/short")
    head = encode_scgi(build_params(target, method="POST", body_length=10))
    backend.check_short_body_is_400(head)
