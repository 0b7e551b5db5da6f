"""The built-in demo application: a page that shows the request as the app saw it.

``wsgiwire serve`` with no APP runs it, and so does ``wsgiwire demo``. It is
also a handy probe behind a new web server setup: SCRIPT_NAME, PATH_INFO,
the scheme, the body and every CGI variable are listed, so a wrong mount
prefix or a missing header shows at a glance. ``?format=json`` gives the
same as JSON (the tests use it).
"""

from __future__ import annotations

import hashlib
import html
import json
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

__all__ = ["app", "describe"]



def describe(environ: dict[str, Any]) -> dict[str, Any]:
    """What the app received: CGI variables, wsgi.* flags, the body's size and digest."""
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH")
    if length:
        body = stream.read(int(length))
    elif environ.get("wsgi.input_terminated"):
        body = b"".join(iter(lambda: stream.read(65536), b""))
    else:
        body = b""
    cgi = {
        k: v for k, v in sorted(environ.items()) if isinstance(v, str) and "." not in k
    }
    return {
        "method": environ["REQUEST_METHOD"],
        "script_name": environ.get("SCRIPT_NAME", ""),
        "path_info": environ.get("PATH_INFO", ""),
        "query_string": environ.get("QUERY_STRING", ""),
        "url_scheme": environ["wsgi.url_scheme"],
        "multithread": environ["wsgi.multithread"],
        "multiprocess": environ["wsgi.multiprocess"],
        "run_once": environ["wsgi.run_once"],
        "input_terminated": bool(environ.get("wsgi.input_terminated", False)),
        "body_length": len(body),
        "body_sha256": hashlib.sha256(body).hexdigest(),
        "cgi": cgi,
    }


def app(
    environ: dict[str, Any], start_response: Callable[..., Callable[[bytes], None]]
) -> Iterable[bytes]:
    """The demo WSGI application."""
    info = describe(environ)
    if "json" in parse_qs(environ.get("QUERY_STRING", "")).get("format", ()):
        payload = json.dumps(info, indent=1, sort_keys=True).encode("utf-8")
        ctype = "application/json"
    else:
        payload = _render_html(info).encode("utf-8")
        ctype = "text/html; charset=utf-8"
    start_response(
        "200 OK", [("Content-Type", ctype), ("Content-Length", str(len(payload)))]
    )
    return [payload]


def _render_html(info: dict[str, Any]) -> str:
    def row(name: str, value: object) -> str:
        shown = html.escape(repr(value))
        return f"<tr><th>{html.escape(name)}</th><td><code>{shown}</code></td></tr>"

    summary = "".join(row(k, v) for k, v in info.items() if k != "cgi")
    cgi = "".join(row(k, v) for k, v in info["cgi"].items())
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>wsgiwire demo</title>"
        "<style>body{font-family:sans-serif;margin:2em}th{text-align:left;padding-right:1em}"
        "td code{word-break:break-all}</style></head><body>"
        "<h1>wsgiwire is serving this page</h1>"
        "<p>This is what the WSGI application received for your request.</p>"
        f"<h2>Request</h2><table>{summary}</table>"
        f"<h2>CGI variables</h2><table>{cgi}</table>"
        "</body></html>"
    )
