"""The applications every backend serves, as the same objects for every server.

Each is a module-level WSGI callable, named on the command line as
``bench.apps:NAME`` (wsgiwire, gunicorn, uWSGI's ``--module``, the flup launcher).
The expected bodies are module constants so the benchmark can check every
backend's answer byte for byte before it measures anything.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

__all__ = [
    "DOWNLOAD_BODY",
    "DOWNLOAD_SIZE",
    "FLASK_BODY",
    "HELLO_BODY",
    "UPLOAD_SIZE",
    "download",
    "flask_app",
    "hello",
    "upload",
]

StartResponse = Callable[..., Any]
Environ = dict[str, Any]

HELLO_BODY = b"Hello, World!"
FLASK_BODY = b"Hello from Flask!\n"
DOWNLOAD_SIZE = 1 << 20
UPLOAD_SIZE = 1 << 20
# Deterministic, not all one byte, so a truncated or shifted body cannot pass the check.
DOWNLOAD_BODY = bytes(range(256)) * (DOWNLOAD_SIZE // 256)

_HELLO_HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(HELLO_BODY)))]
_DOWNLOAD_HEADERS = [
    ("Content-Type", "application/octet-stream"),
    ("Content-Length", str(DOWNLOAD_SIZE)),
]


def hello(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """The smallest useful app: the 13-byte body ``Hello, World!``."""
    start_response("200 OK", list(_HELLO_HEADERS))
    return [HELLO_BODY]


def download(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """A 1 MiB body as one bytes object (the server frames it)."""
    start_response("200 OK", list(_DOWNLOAD_HEADERS))
    return [DOWNLOAD_BODY]


def upload(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """Reads the whole request body from ``wsgi.input``; answers its length in decimal."""
    length_text = environ.get("CONTENT_LENGTH") or ""
    stream = environ["wsgi.input"]
    data = stream.read(int(length_text)) if length_text.isdigit() else stream.read()
    body = str(len(data)).encode("ascii")
    start_response(
        "200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
    )
    return [body]


_flask: list[Flask] = []  # the Flask app, built on first use


def _make_flask_app() -> Flask:
    from flask import Flask

    app = Flask("bench.apps")

    @app.route("/")
    def index() -> str:
        return FLASK_BODY.decode("ascii")

    return app


def flask_app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """A small Flask app (one route returning a str), imported on its first request.

    Flask is imported lazily so that the workers of the other apps never load it and
    their memory figures stay comparable. The servers need a real module attribute
    (uWSGI looks the callable up in the module's ``__dict__``), hence this plain
    function in front of the Flask object: one extra Python call per request, the
    same for every backend.
    """
    if not _flask:
        _flask.append(_make_flask_app())
    return _flask[0](environ, start_response)
