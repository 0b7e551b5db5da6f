"""Shared ground for the middleware tests: captured environs, the setup table, a runner.

Every environ here is built by the real translator from what a real server
sent (``tests/corpus``), so the middleware is tested on exactly what it will
meet. ``FIXES`` is the deployment table: for each captured setup, the
middleware that makes SCRIPT_NAME + PATH_INFO right, or ``None`` where the
server's split is right already.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from io import BytesIO
from typing import Any
from urllib.parse import unquote_to_bytes

from tests.corpus import Exchange, Request, Setup, exchanges, load_setups
from wsgiwire.core._body import attach_input
from wsgiwire.core._environ import EnvironBuilder
from wsgiwire.core._gateway import ErrorStream, FileWrapper, WSGIApp
from wsgiwire.middleware import (
    ApacheProxyPathFix,
    LighttpdCGIRootFix,
    MountPrefix,
    ScriptNameStripper,
)

Environ = dict[str, Any]
BUILDER = EnvironBuilder(errors=ErrorStream(), file_wrapper=FileWrapper)


@dataclass(frozen=True)
class Fix:
    """One middleware with its arguments, applied around an app."""

    cls: Callable[..., WSGIApp]
    kwargs: dict[str, str]

    def __call__(self, app: WSGIApp) -> WSGIApp:
        return self.cls(app, **self.kwargs)

    def __str__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"{self.cls.__name__}(app, {args})"


# setup -> the fix that makes its split right (None: right already, no middleware).
FIXES: dict[str, Fix | None] = {
    # Apache mod_proxy_fcgi / mod_proxy_scgi: SCRIPT_NAME holds the whole path.
    "apache-fastcgi-prefix": Fix(ApacheProxyPathFix, {"mount": "/app"}),
    "apache-fastcgi-root": Fix(ApacheProxyPathFix, {"mount": ""}),
    "apache-scgi-prefix": Fix(ApacheProxyPathFix, {"mount": "/app"}),
    "apache-scgi-root": Fix(ApacheProxyPathFix, {"mount": ""}),
    "apache-authnzfcgi-authorizer": Fix(ApacheProxyPathFix, {"mount": "/protected"}),
    # Rewrites to a script: SCRIPT_NAME names the script, not a URL.
    "apache-fcgid-htaccess": Fix(ScriptNameStripper, {"script_name": ""}),
    "lighttpd-cgi-rewrite": Fix(ScriptNameStripper, {"script_name": ""}),
    "lighttpd-fastcgi-spawnrewrite": Fix(ScriptNameStripper, {"script_name": ""}),
    # lighttpd mounted at "/": SCRIPT_NAME is the first segment.
    "lighttpd-fastcgi-root": Fix(LighttpdCGIRootFix, {"app_root": "/"}),
    "lighttpd-scgi-root": Fix(LighttpdCGIRootFix, {"app_root": "/"}),
    "lighttpd-uwsgi-root": Fix(LighttpdCGIRootFix, {"app_root": "/"}),
    # nginx with only fastcgi_params: SCRIPT_NAME is $fastcgi_script_name, the whole path.
    "nginx-fastcgi-plain": Fix(MountPrefix, {"prefix": "/"}),
    "nginx-fastcgi-spawnfcgi": Fix(MountPrefix, {"prefix": "/"}),
    # Already right.
    **dict.fromkeys(
        [
            "apache-cgi-prefix", "apache-cgi-root", "apache-cgid-prefix",
            "apache-fastcgi-prefixunescape", "apache-fcgid-prefix",
            "apache-uwsgi-prefix", "apache-uwsgi-root",
            "lighttpd-cgi-prefix", "lighttpd-fastcgi-prefix", "lighttpd-fastcgi-rootfix",
            "lighttpd-scgi-prefix", "lighttpd-uwsgi-prefix",
            "nginx-fastcgi-keepconn", "nginx-fastcgi-prefix", "nginx-fastcgi-root",
            "nginx-scgi-nobuf", "nginx-scgi-prefix", "nginx-scgi-root",
            "nginx-uwsgi-nobuf", "nginx-uwsgi-prefix", "nginx-uwsgi-root",
        ]
    ),
}
# The server rewrote the URL to a script: the public URLs must not show it.
REWRITE_SETUPS = {"apache-fcgid-htaccess", "lighttpd-cgi-rewrite", "lighttpd-fastcgi-spawnrewrite"}
# nginx answered "/app" by an internal rewrite to "/app/" (DOCUMENT_URI "/app/");
# the app is handed the rewritten path, on purpose, and no fix undoes that.
NGINX_INTERNAL_REWRITE = {
    "nginx-fastcgi-prefix/get_mount_noslash",
    "nginx-uwsgi-prefix/get_mount_noslash",
}

Case = tuple[str, Setup, Request, Exchange]
# every exchange of a real HTTP request (the cgi-fcgi client captures have no URL)
CASES: list[Case] = [c for c in exchanges() if c[2].url is not None]
SETUPS = [s for s in load_setups() if any(r.url for r in s.requests.values())]
RIGHT_CASES = [c for c in CASES if FIXES[c[1].setup] is None]
FIXED_CASES = [c for c in CASES if FIXES[c[1].setup] is not None]


def ids(cases: list[Case]) -> list[str]:
    return [c[0] for c in cases]


def build(exchange: Exchange) -> Environ:
    """The environ the translator makes of a captured exchange, with a body attached."""
    environ, declared = BUILDER.build(
        exchange.params_bytes(), script_name_in_path_info=exchange.modifier1 == 30
    )
    attach_input(environ, BytesIO(b"\0" * (declared or 0)), terminated=declared is None)
    return environ


def decoded_path(url: str) -> str:
    """The path of an absolute URL, percent-decoded once (bytes as latin-1 text)."""
    rest = url.split("://", 1)[1]
    path = rest[rest.index("/") :].partition("?")[0]
    return unquote_to_bytes(path.encode("ascii")).decode("latin-1")


def expected_path(case: Case) -> str:
    """What SCRIPT_NAME + PATH_INFO must name for this request once fixed."""
    url = case[2].url
    assert url is not None
    path = decoded_path(url)
    return path + "/" if case[0] in NGINX_INTERNAL_REWRITE else path


def wrap(setup: str, app: WSGIApp) -> WSGIApp:
    fix = FIXES[setup]
    return app if fix is None else fix(app)


def plain(environ: Environ | None) -> Environ:
    """The environ without its streams (a validator wraps them; they are not ours to compare)."""
    assert environ is not None
    return {k: v for k, v in environ.items() if k not in ("wsgi.input", "wsgi.errors")}


class Recorder:
    """A WSGI app that keeps a copy of the environ it was given and answers 200."""

    def __init__(self) -> None:
        self.environ: Environ | None = None

    def __call__(self, environ: Environ, start_response: Callable[..., Any]) -> Iterable[bytes]:
        self.environ = dict(environ)
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]


def call(
    app: WSGIApp, environ: Environ, headers: dict[str, str] | None = None
) -> tuple[str, bytes]:
    """Run ``app`` as a server would: (status, body), the result always closed.

    The response headers go into ``headers`` when given.
    """
    status: list[str] = []

    def start_response(s: str, head: list[tuple[str, str]], exc_info: Any = None) -> Any:
        status[:] = [s]
        if headers is not None:
            headers.update(head)
        return lambda data: None

    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return status[0], body
