"""The translator against what real nginx, Apache httpd and lighttpd sent (tests/corpus/).

For every setup x request that reached the backend, the params are fed to
:class:`EnvironBuilder` exactly as the server sent them (ordered bytes pairs,
duplicates kept; uwsgi modifier1 30 honoured) and the environ must be right:
the raw query string, the scheme, no HTTP_PROXY, duplicate cookies joined,
and SCRIPT_NAME + PATH_INFO naming the decoded request path.

Where the *server* hands over a split that no translator can repair from the
params alone (an internal rewrite to ``app.fcgi``/``app.cgi``, a path Apache
decoded twice), the test pins the exact environ the params imply instead; those
cases are collected in ``test_split_fixed_by_middleware`` and are "fixed by
middleware (deployment issue)", not by the translator.
"""

from __future__ import annotations

from io import BytesIO
from typing import Any
from urllib.parse import unquote_to_bytes
from wsgiref.validate import validator

import pytest

from tests.corpus import Exchange, Request, Setup, exchanges, load_setups
from wsgiwire.core._body import BodyBuffer, attach_input
from wsgiwire.core._environ import EnvironBuilder
from wsgiwire.core._gateway import ErrorStream, FileWrapper, call_app
from wsgiwire.core._response import Response

CASES = exchanges()
BUILDER = EnvironBuilder(errors=ErrorStream(), file_wrapper=FileWrapper)

# -- the deployment issues, each named -----------------------------------------
# Fixed by middleware (deployment issue): the server rewrites every URL to a
# script and says so in SCRIPT_NAME, so SCRIPT_NAME + PATH_INFO is the
# *rewritten* path. Only a middleware that knows the deployment can drop the
# script name (wsgiwire.middleware LighttpdCGIRootFix / ScriptNameStripper).
REWRITTEN_TO_SCRIPT = {
    "apache-fcgid-htaccess": "/app.fcgi",  # .htaccess RewriteRule ^(.*)$ app.fcgi/$1
    "lighttpd-cgi-rewrite": "/app.cgi",  # url.rewrite-once "^(/.*)$" => "/app.cgi$1"
    "lighttpd-fastcgi-spawnrewrite": "/app.fcgi",  # Flask docs lighttpd setup
}
# Fixed by middleware (deployment issue): Apache mod_rewrite decoded the path
# a second time before mod_fcgid split it ("/p%2541" arrives as "/pA").
DECODED_TWICE = {"apache-fcgid-htaccess/get_pct25": "/pA;m=1/z"}
# nginx answered "/app" by an internal rewrite to "/app/" (DOCUMENT_URI "/app/"),
# so the app is handed the rewritten path, as the server's params say.
NGINX_INTERNAL_REWRITE = {
    "nginx-fastcgi-prefix/get_mount_noslash": ("/app", "/"),
    "nginx-uwsgi-prefix/get_mount_noslash": ("/app", "/"),
}
# The server answered by itself; nothing reached the backend.
ANSWERED_BY_SERVER = {
    # Apache refuses an encoded slash (%2F) in a path by default (AllowEncodedSlashes Off).
    **{f"{s}/get_enc_slash": 404 for s in (
        "apache-cgi-prefix", "apache-cgi-root", "apache-cgid-prefix",
        "apache-fastcgi-prefix", "apache-fastcgi-prefixunescape", "apache-fastcgi-root",
        "apache-fcgid-htaccess", "apache-fcgid-prefix", "apache-scgi-prefix",
        "apache-scgi-root", "apache-uwsgi-prefix", "apache-uwsgi-root",
    )},
    # ProxyPass "/app/" does not match "/app".
    **{f"{s}/get_mount_noslash": 404 for s in (
        "apache-fastcgi-prefix", "apache-fastcgi-prefixunescape",
        "apache-scgi-prefix", "apache-uwsgi-prefix",
    )},
    # mod_proxy_scgi and mod_proxy_uwsgi cannot forward a chunked body: 411.
    **{f"{s}/post_chunked": 411 for s in (
        "apache-scgi-prefix", "apache-scgi-root", "apache-uwsgi-prefix", "apache-uwsgi-root",
    )},
    "apache-authnzfcgi-authorizer/authz_nocreds": 401,  # no credentials: no authorizer call
}
# Where the server's params put the mount point in SCRIPT_NAME ...
MOUNT_SPLIT_RIGHT = {
    "apache-cgi-prefix", "apache-cgi-root", "apache-cgid-prefix", "apache-fcgid-prefix",
    "apache-fastcgi-prefixunescape", "apache-uwsgi-prefix", "apache-uwsgi-root",
    "lighttpd-cgi-prefix", "lighttpd-fastcgi-prefix", "lighttpd-fastcgi-rootfix",
    "lighttpd-scgi-prefix", "lighttpd-uwsgi-prefix",
    "nginx-fastcgi-keepconn", "nginx-fastcgi-prefix", "nginx-fastcgi-root",
    "nginx-scgi-nobuf", "nginx-scgi-prefix", "nginx-scgi-root",
    "nginx-uwsgi-nobuf", "nginx-uwsgi-prefix", "nginx-uwsgi-root",
}
# ... and where they do not. Fixed by middleware (deployment issue): SCRIPT_NAME
# holds the whole path (Apache mod_proxy_fcgi/scgi without
# proxy-fcgi-pathinfo, nginx with only fastcgi_params) or its first segment
# (lighttpd mounted at "/"); the path survives, the split does not.
MOUNT_SPLIT_WRONG = {
    "apache-fastcgi-prefix", "apache-fastcgi-root", "apache-scgi-prefix", "apache-scgi-root",
    "nginx-fastcgi-plain", "nginx-fastcgi-spawnfcgi",
    "lighttpd-fastcgi-root", "lighttpd-scgi-root", "lighttpd-uwsgi-root",
    "apache-authnzfcgi-authorizer",
}


def _build(exchange: Exchange) -> tuple[dict[str, Any], int | None]:
    return BUILDER.build(
        exchange.params_bytes(), script_name_in_path_info=exchange.modifier1 == 30
    )


def _target(url: str) -> tuple[str, str]:
    """(raw path, raw query) of an absolute URL, without any decoding."""
    rest = url.split("://", 1)[1]
    target = rest[rest.index("/") :]
    path, _, query = target.partition("?")
    return path, query


def _decoded_path(url: str) -> str:
    return unquote_to_bytes(_target(url)[0].encode("ascii")).decode("latin-1")


def _ids(cases: list[tuple[str, Setup, Request, Exchange]]) -> list[str]:
    return [case[0] for case in cases]


WITH_URL = [c for c in CASES if c[2].url is not None]
PATH_CASES = [
    c
    for c in WITH_URL
    if c[1].setup not in REWRITTEN_TO_SCRIPT
    and c[0] not in NGINX_INTERNAL_REWRITE
    and c[0] not in DECODED_TWICE
]
MIDDLEWARE_CASES = [c for c in WITH_URL if c[1].setup in REWRITTEN_TO_SCRIPT]
HEADER_CASES = [c for c in CASES if c[2].name == "get_headers"]


def test_corpus_is_complete() -> None:
    setups = load_setups()
    assert len(setups) == 35
    assert len(CASES) >= 400
    # every setup is classified for the mount-split test below
    names = {s.setup for s in setups} - {"cgifcgi-fastcgi-client"}
    assert names == MOUNT_SPLIT_RIGHT | MOUNT_SPLIT_WRONG | set(REWRITTEN_TO_SCRIPT)
    assert not MOUNT_SPLIT_RIGHT & MOUNT_SPLIT_WRONG


@pytest.mark.parametrize(("case_id", "setup", "request_", "exchange"), WITH_URL, ids=_ids(WITH_URL))
def test_query_string_is_the_raw_query(
    case_id: str, setup: Setup, request_: Request, exchange: Exchange
) -> None:
    environ, _ = _build(exchange)
    assert request_.url is not None
    assert environ["QUERY_STRING"] == _target(request_.url)[1]


@pytest.mark.parametrize(("case_id", "setup", "request_", "exchange"), WITH_URL, ids=_ids(WITH_URL))
def test_url_scheme(case_id: str, setup: Setup, request_: Request, exchange: Exchange) -> None:
    environ, _ = _build(exchange)
    expected = "https" if request_.name == "https_get" else "http"
    assert request_.url is not None and request_.url.startswith(expected + "://")
    assert environ["wsgi.url_scheme"] == expected


@pytest.mark.parametrize(("case_id", "setup", "request_", "exchange"), CASES, ids=_ids(CASES))
def test_no_http_proxy_and_no_duplicate_length_headers(
    case_id: str, setup: Setup, request_: Request, exchange: Exchange
) -> None:
    environ, declared = _build(exchange)
    assert "HTTP_PROXY" not in environ
    assert "HTTP_CONTENT_LENGTH" not in environ
    assert "HTTP_CONTENT_TYPE" not in environ
    # CONTENT_LENGTH: the last value the server sent; empty means none declared
    sent = exchange.last("CONTENT_LENGTH")
    if sent:
        assert declared == int(sent)
        assert environ["CONTENT_LENGTH"] == str(declared)
    else:
        assert declared is None
        assert "CONTENT_LENGTH" not in environ


@pytest.mark.parametrize(
    ("case_id", "setup", "request_", "exchange"), HEADER_CASES, ids=_ids(HEADER_CASES)
)
def test_headers_joined_and_proxy_dropped(
    case_id: str, setup: Setup, request_: Request, exchange: Exchange
) -> None:
    environ, _ = _build(exchange)
    cookies = exchange.values("HTTP_COOKIE")
    if len(cookies) > 1:  # nginx: one param per header line
        assert cookies == ["a=1", "b=2"]
        assert environ["HTTP_COOKIE"] == "a=1; b=2"
    else:  # Apache ("a=1, b=2") and lighttpd ("a=1; b=2") joined them already
        assert environ["HTTP_COOKIE"] == cookies[0]
    assert environ["HTTP_X_DUP"] == "first, second"
    if setup.server == "nginx":
        # the client's "Proxy:" header did arrive, and was dropped
        assert exchange.values("HTTP_PROXY") == ["http://127.0.0.1:1/"]


@pytest.mark.parametrize(
    ("case_id", "setup", "request_", "exchange"), PATH_CASES, ids=_ids(PATH_CASES)
)
def test_script_name_plus_path_info_is_the_decoded_path(
    case_id: str, setup: Setup, request_: Request, exchange: Exchange
) -> None:
    environ, _ = _build(exchange)
    assert request_.url is not None
    script_name, path_info = environ["SCRIPT_NAME"], environ["PATH_INFO"]
    assert script_name + path_info == _decoded_path(request_.url)
    assert script_name != "/" and not script_name.endswith("/")
    assert not script_name or script_name.startswith("/")
    assert not path_info or path_info.startswith("/")


@pytest.mark.parametrize(
    ("case_id", "setup", "request_", "exchange"), MIDDLEWARE_CASES, ids=_ids(MIDDLEWARE_CASES)
)
def test_split_fixed_by_middleware(
    case_id: str, setup: Setup, request_: Request, exchange: Exchange
) -> None:
    """Fixed by middleware (deployment issue): the server rewrote the URL to a script.

    The environ is exactly what the server's params say: the script in
    SCRIPT_NAME, the request path (as the server decoded it) in PATH_INFO.
    """
    environ, _ = _build(exchange)
    assert request_.url is not None
    assert environ["SCRIPT_NAME"] == REWRITTEN_TO_SCRIPT[setup.setup]
    assert environ["PATH_INFO"] == exchange.last("PATH_INFO")
    expected_path = DECODED_TWICE.get(case_id, _decoded_path(request_.url))
    assert environ["PATH_INFO"] == expected_path


@pytest.mark.parametrize("case_id", sorted(NGINX_INTERNAL_REWRITE))
def test_nginx_internal_rewrite(case_id: str) -> None:
    """nginx rewrote "/app" to "/app/" itself; the app sees the rewritten path."""
    (case,) = [c for c in CASES if c[0] == case_id]
    environ, _ = _build(case[3])
    assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == NGINX_INTERNAL_REWRITE[case_id]
    assert case[2].url is not None and _decoded_path(case[2].url) == "/app"


def test_requests_the_server_answered_itself() -> None:
    not_reached = {
        f"{s.setup}/{r.name}": r.status
        for s in load_setups()
        for r in s.requests.values()
        if not r.exchanges
    }
    assert not_reached == ANSWERED_BY_SERVER


SPLIT_CASES = [c for c in WITH_URL if c[1].setup not in REWRITTEN_TO_SCRIPT]


@pytest.mark.parametrize(
    ("case_id", "setup", "request_", "exchange"), SPLIT_CASES, ids=_ids(SPLIT_CASES)
)
def test_mount_point_split(
    case_id: str, setup: Setup, request_: Request, exchange: Exchange
) -> None:
    environ, _ = _build(exchange)
    if setup.setup in MOUNT_SPLIT_RIGHT:
        assert environ["SCRIPT_NAME"] == setup.mount_path
    else:
        # Fixed by middleware (deployment issue): the exact split the params imply,
        # SCRIPT_NAME as sent (minus a trailing slash), PATH_INFO as sent or derived.
        sent = exchange.last("SCRIPT_NAME") or ""
        assert environ["SCRIPT_NAME"] == sent.rstrip("/")
        if exchange.last("PATH_INFO") is not None:
            assert environ["PATH_INFO"] == exchange.last("PATH_INFO")


CLIENT_CASES = [c for c in CASES if c[2].url is None]


@pytest.mark.parametrize(
    ("case_id", "setup", "request_", "exchange"), CLIENT_CASES, ids=_ids(CLIENT_CASES)
)
def test_cgi_fcgi_client_params(
    case_id: str, setup: Setup, request_: Request, exchange: Exchange
) -> None:
    """libfcgi's cgi-fcgi forwards its whole environment; no HTTP request behind it."""
    environ, declared = _build(exchange)
    assert environ["SCRIPT_NAME"] == "/cgi-fcgi"
    assert environ["PATH_INFO"] == exchange.last("PATH_INFO")
    assert environ["QUERY_STRING"] == exchange.last("QUERY_STRING")
    assert environ["PATH"] == "/usr/bin:/bin"  # forwarded as any other param
    assert declared == (11 if request_.method == "POST" else None)


@pytest.mark.parametrize(("case_id", "setup", "request_", "exchange"), CASES, ids=_ids(CASES))
def test_wsgiref_validator_accepts_every_environ(
    case_id: str, setup: Setup, request_: Request, exchange: Exchange
) -> None:
    """The whole core path, under wsgiref.validate, for every captured request."""
    environ, declared = _build(exchange)
    body = BodyBuffer(declared)
    if declared:
        body.feed(b"\x00" * declared)
    attach_input(environ, body.finish(), terminated=declared is None)
    seen: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        stream = environ["wsgi.input"]
        seen["body"] = b"".join(iter(lambda: stream.read(8192), b""))
        seen["path"] = environ["SCRIPT_NAME"] + environ["PATH_INFO"]
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]

    out = BytesIO()
    response = Response(out.write, method=environ["REQUEST_METHOD"])
    assert call_app(validator(app), environ, response) is True
    head, _, payload = out.getvalue().partition(b"\r\n\r\n")
    assert head.startswith(b"Status: 200 OK\r\n")
    assert payload == (b"" if request_.method == "HEAD" else b"ok")
    assert seen["body"] == b"\x00" * (declared or 0)
