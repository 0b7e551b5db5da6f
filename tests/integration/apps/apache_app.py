"""The WSGI app behind Apache in ``test_fastcgi_apache.py`` (stdlib only).

Served three ways: by ``wsgiwire serve apache_app:application`` behind
mod_proxy_fcgi, by ``apache_app.fcgi.in`` (a flup-style script) spawned by
mod_fcgid as the web server's user, and by ``python apache_app.py HOST:PORT``
as a FastCGI RESPONDER + AUTHORIZER for mod_authnz_fcgi.

What it answers (``application`` is wrapped in ``wsgiref.validate.validator``,
so a PEP 3333 violation by the front-end is a 500):

* ``FCGI_ROLE=AUTHORIZER``: the Basic credentials ``alice:secret`` get a 200
  carrying ``Variable-X-Foo: bar`` (and what the authorizer saw, as more
  ``Variable-AUTHZ_*`` headers, which Apache turns into params of the
  protected request); wrong credentials a 403, none a 401. Every authorizer
  call prints one ``AUTHORIZER {json}`` line to stderr. (A denial body must not
  start like ``word:``: mod_authnz_fcgi hands it to ``ap_custom_response``, which
  takes such text for a URL and answers with a redirect to it.)
* a path ending in ``/stream``: ``?size=N`` bytes (default 16 MiB) produced
  by :func:`stream_chunk`, yielded in 64 KiB pieces, no Content-Length;
* anything else: JSON describing the environ (every CGI variable, no
  ``wsgi.*`` objects), the request body (length and sha256) and the process
  (uid, names in ``os.environ``); and a ``RESPONDER {REQUEST_URI}`` line on
  stderr.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import parse_qs
from wsgiref.validate import validator

READ_SIZE = 65536
STREAM_DEFAULT = 16 << 20
USERS = {"alice": "secret"}

StartResponse = Callable[..., Callable[[bytes], object]]


def stream_chunk(index: int) -> bytes:
    """Piece ``index`` of the streamed body: 64 KiB, different for every index."""
    return hashlib.sha256(b"%d" % index).digest() * 2048


def stream_body(size: int) -> Iterator[bytes]:
    index = 0
    while size > 0:
        chunk = stream_chunk(index)[:size]
        yield chunk
        size -= len(chunk)
        index += 1


def _read_body(environ: dict[str, Any]) -> tuple[int, str]:
    """Read the body by the PEP 3333 rules; returns (length, sha256 hex)."""
    stream = environ["wsgi.input"]
    digest = hashlib.sha256()
    total = 0
    declared = environ.get("CONTENT_LENGTH", "")
    remaining = int(declared) if declared else -1
    if remaining < 0 and not environ.get("wsgi.input_terminated"):
        remaining = 0
    while remaining != 0:
        data = stream.read(READ_SIZE if remaining < 0 else min(remaining, READ_SIZE))
        if not data:
            break
        digest.update(data)
        total += len(data)
        if remaining > 0:
            remaining -= len(data)
    return total, digest.hexdigest()


def _credentials(environ: dict[str, Any]) -> tuple[str | None, str | None]:
    """(user, password) as Apache passed them, else from an Authorization header."""
    user = environ.get("REMOTE_USER")
    password = environ.get("REMOTE_PASSWD")
    auth = environ.get("HTTP_AUTHORIZATION", "")
    if user is None and auth.lower().startswith("basic "):
        decoded = base64.b64decode(auth[6:]).decode("latin-1")
        user, _, password = decoded.partition(":")
    return user, password


def authorizer(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    length, _ = _read_body(environ)
    user, password = _credentials(environ)
    seen = {
        name: environ.get(name)
        for name in (
            "FCGI_ROLE",
            "FCGI_APACHE_ROLE",
            "REMOTE_USER",
            "REMOTE_PASSWD",
            "AUTH_TYPE",
            "REQUEST_METHOD",
            "REQUEST_URI",
            "CONTENT_LENGTH",
        )
    }
    seen["body_length"] = length
    print("AUTHORIZER " + json.dumps(seen, sort_keys=True), file=sys.stderr, flush=True)
    if user is None:
        status = "401 Unauthorized"
        headers = [("WWW-Authenticate", 'Basic realm="wsgiwire"')]
        body = b"Credentials required by the wsgiwire authorizer.\n"
    elif USERS.get(user) != password:
        status, headers, body = "403 Forbidden", [], b"Denied by the wsgiwire authorizer.\n"
    else:
        status, body = "200 OK", b""
        headers = [
            ("Variable-X-Foo", "bar"),
            ("Variable-AUTHZ_USER", user),
            ("Variable-AUTHZ_ROLE", str(environ.get("FCGI_ROLE"))),
            ("Variable-AUTHZ_BODY_LENGTH", str(length)),
        ]
    headers += [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
    start_response(status, headers)
    return [body]


def stream(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    query = parse_qs(environ.get("QUERY_STRING", ""))
    size = int(query.get("size", [str(STREAM_DEFAULT)])[0])
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return stream_body(size)


def report(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    length, sha256 = _read_body(environ)
    print("RESPONDER " + environ.get("REQUEST_URI", "?"), file=sys.stderr, flush=True)
    cgi = {k: v for k, v in environ.items() if not k.startswith("wsgi.") and isinstance(v, str)}
    document = {
        "environ": cgi,
        "SCRIPT_NAME_hex": environ["SCRIPT_NAME"].encode("latin-1").hex(),
        "PATH_INFO_hex": environ["PATH_INFO"].encode("latin-1").hex(),
        "wsgi.url_scheme": environ["wsgi.url_scheme"],
        "wsgi.input_terminated": environ.get("wsgi.input_terminated"),
        "body_length": length,
        "body_sha256": sha256,
        "process": {"uid": os.getuid(), "environ_keys": sorted(os.environ)},
    }
    body = json.dumps(document, sort_keys=True).encode("ascii")
    start_response(
        "200 OK",
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("X-App-Method", environ["REQUEST_METHOD"]),
        ],
    )
    return [body]


def dispatch(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    if environ.get("FCGI_ROLE") == "AUTHORIZER":
        return authorizer(environ, start_response)
    # Behind mod_proxy_fcgi without proxy-fcgi-pathinfo the whole path is in SCRIPT_NAME.
    if (environ["SCRIPT_NAME"] + environ["PATH_INFO"]).endswith("/stream"):
        return stream(environ, start_response)
    return report(environ, start_response)


application = validator(dispatch)


def main(argv: list[str]) -> None:
    """``python apache_app.py HOST:PORT``: a FastCGI RESPONDER and AUTHORIZER on TCP."""
    from wsgiwire.adapters.fastcgi import FCGI_AUTHORIZER, FCGI_RESPONDER, WSGIServer

    host, _, port = argv[1].rpartition(":")
    server = WSGIServer(
        application,
        bindAddress=(host, int(port)),
        roles=(FCGI_RESPONDER, FCGI_AUTHORIZER),
        multithreaded=False,
    )
    server.run()


if __name__ == "__main__":
    main(sys.argv)
