"""The WSGI app of the SCGI and uwsgi integration tests, also served by real uWSGI.

Staged beside the ``wsgiwire`` copy and run by ``wsgiwire serve`` (behind nginx,
Apache and lighttpd) and by pyuwsgi, so it uses the stdlib only. The route is the
``X-Gw-Action`` request header (``HTTP_X_GW_ACTION``), never the path, so every route
answers the same under any mount and any server's SCRIPT_NAME/PATH_INFO split:

``(none)``  a JSON report of the request (:func:`report`): method, SCRIPT_NAME,
            PATH_INFO (also as hex of its latin-1 bytes), QUERY_STRING, CONTENT_LENGTH,
            the ``X-Gw-*`` request headers, every environ key starting ``UWSGI_``, the
            working directory, and the length and sha256 of the body it read;
``file``    the file named by this process's ``GW_FILE`` environment variable, through
            ``environ["wsgi.file_wrapper"]`` with its Content-Length (not wrapped in the
            validator, whose iterator wrapper would hide the file wrapper from the
            server and so skip its native file path);
``status``  the status line in the ``X-Gw-Status`` request header, a short text body and
            an ``X-Gw-Custom: yes`` header;
``stream``  a generator of 64 pieces of 1 KiB and no Content-Length (the body ends when
            the connection closes);
``write``   half the body through the ``write()`` callable, the rest as the iterable.

Everything but ``file`` runs under ``wsgiref.validate.validator``: a PEP 3333
violation by the server (either of them) becomes an exception, hence a 500.

PEP 3333 lets a server leave out SCRIPT_NAME and PATH_INFO when they are empty, and
uWSGI does when the client sent none; CPython's validator then dies with a KeyError
(its ``"... %r" % environ['SCRIPT_NAME']`` message is built before the check). So
:func:`application` notes which of the two were missing (``missing_keys`` in the
report) and fills in "" before the validator sees the environ.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from wsgiref.validate import validator

READ_SIZE = 65536
FILE_ENV = "GW_FILE"
MISSING_KEY = "gw_app.missing_keys"  # environ key: SCRIPT_NAME/PATH_INFO the server left out
STREAM_PIECES = 64
STREAM_PIECE = b"0123456789abcdef" * 64  # 1 KiB

StartResponse = Callable[..., Callable[[bytes], object]]


def _read_body(environ: dict[str, Any]) -> tuple[int, str]:
    """Read exactly CONTENT_LENGTH bytes (PEP 3333); returns (length, sha256 hex)."""
    stream = environ["wsgi.input"]
    digest = hashlib.sha256()
    total = 0
    remaining = int(environ.get("CONTENT_LENGTH") or 0)
    while remaining > 0:
        data = stream.read(min(remaining, READ_SIZE))
        if not data:
            break
        digest.update(data)
        total += len(data)
        remaining -= len(data)
    return total, digest.hexdigest()


def report(environ: dict[str, Any]) -> dict[str, Any]:
    """What the request looked like to the app (reads the body)."""
    length, sha256 = _read_body(environ)
    script_name: str = environ.get("SCRIPT_NAME", "")
    path_info: str = environ.get("PATH_INFO", "")
    return {
        "app": "gw_app",
        "REQUEST_METHOD": environ["REQUEST_METHOD"],
        "SCRIPT_NAME": script_name,
        "SCRIPT_NAME_hex": script_name.encode("latin-1").hex(),
        "PATH_INFO": path_info,
        "PATH_INFO_hex": path_info.encode("latin-1").hex(),
        "QUERY_STRING": environ.get("QUERY_STRING", ""),
        "CONTENT_LENGTH": environ.get("CONTENT_LENGTH") or None,
        "CONTENT_TYPE": environ.get("CONTENT_TYPE") or None,
        "wsgi.url_scheme": environ["wsgi.url_scheme"],
        "x_headers": {k: v for k, v in environ.items() if k.startswith("HTTP_X_GW_")},
        "uwsgi_vars": sorted(k for k in environ if k.upper().startswith("UWSGI_")),
        "missing_keys": environ.get(MISSING_KEY, []),
        "cwd": os.getcwd(),
        "body_length": length,
        "body_sha256": sha256,
    }


def _report(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    body = json.dumps(report(environ), sort_keys=True).encode("ascii")
    start_response(
        "200 OK",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]


def _status(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    status = environ.get("HTTP_X_GW_STATUS", "418 I'm a teapot")
    body = f"status {status}\n".encode("latin-1")
    start_response(
        status,
        [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("X-Gw-Custom", "yes"),
        ],
    )
    return [body]


def _stream(environ: dict[str, Any], start_response: StartResponse) -> Iterator[bytes]:
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    for _ in range(STREAM_PIECES):
        yield STREAM_PIECE


def _write(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    write = start_response(
        "200 OK",
        [("Content-Type", "text/plain"), ("Content-Length", str(2 * len(STREAM_PIECE)))],
    )
    write(STREAM_PIECE)
    return [STREAM_PIECE]


_VALIDATED = {
    "": validator(_report),
    "status": validator(_status),
    "stream": validator(_stream),
    "write": validator(_write),
}


def _file(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    path = os.environ[FILE_ENV]
    start_response(
        "200 OK",
        [
            ("Content-Type", "application/octet-stream"),
            ("Content-Length", str(os.path.getsize(path))),
        ],
    )
    wrapper: Callable[[Any], Iterable[bytes]] = environ["wsgi.file_wrapper"]
    return wrapper(open(path, "rb"))  # the wrapper's close() closes the file


def application(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    action = environ.get("HTTP_X_GW_ACTION", "")
    if action == "file":
        return _file(environ, start_response)
    missing = [key for key in ("SCRIPT_NAME", "PATH_INFO") if key not in environ]
    if missing:
        environ[MISSING_KEY] = missing
        for key in missing:
            environ[key] = ""
    app = _VALIDATED.get(action)
    if app is None:
        body = f"unknown X-Gw-Action {action!r}\n".encode("latin-1", "replace")
        start_response("400 Bad Request", [("Content-Type", "text/plain")])
        return [body]
    return app(environ, start_response)
