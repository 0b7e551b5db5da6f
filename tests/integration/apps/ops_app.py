"""A WSGI app for the runtime operations tests, routed by the last PATH_INFO segment.

Staged beside the ``wsgiwire`` copy and run by ``wsgiwire serve ops_app``, so it uses
the stdlib only. Every answer carries ``X-Worker-Pid`` (the process that ran the app)
and every route is wrapped in ``wsgiref.validate.validator``.

``.../hello``     a short text body: ``hello from <pid>``;
``.../sleep``     sleeps QUERY_STRING seconds (a float, default 1), reading and hashing
                  the request body first; answers ``<length> <sha256 hex>``: a slow
                  request or a slow upload, for graceful-stop and overload tests;
``.../upload``    reads ``wsgi.input`` in 64 KiB pieces by the PEP 3333 rules
                  (CONTENT_LENGTH, or to the end when ``wsgi.input_terminated``),
                  hashing as it goes, never holding the body: ``<length> <sha256 hex>``;
``.../download``  QUERY_STRING bytes (default 1 MiB) yielded as 64 KiB pieces with a
                  Content-Length, each piece :func:`download_piece` (its index in the
                  first 8 bytes): a large streamed response the client can check cheaply;
``.../writes``    the same bytes as ``download``, through the ``write()`` callable that
                  ``start_response`` returns (an empty iterable after);
``.../fail``      raises before ``start_response`` (the client gets a 500);
``.../cut``       sends its head and one piece of a longer body, then raises: the
                  response goes out incomplete (the worker counts an error).
"""

from __future__ import annotations

import hashlib
import os
import struct
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from wsgiref.validate import validator

PIECE = 65536
DEFAULT_DOWNLOAD = 1 << 20

StartResponse = Callable[..., Callable[[bytes], object]]

_FILL = bytes(range(256)) * (PIECE // 256)


def download_piece(index: int) -> bytes:
    """Piece ``index`` of a download: 8 bytes of big-endian index, then a fixed fill."""
    return struct.pack(">Q", index) + _FILL[8:]


def _headers(content_type: str, length: int | None = None) -> list[tuple[str, str]]:
    headers = [("Content-Type", content_type), ("X-Worker-Pid", str(os.getpid()))]
    if length is not None:
        headers.append(("Content-Length", str(length)))
    return headers


def _text(start_response: StartResponse, text: str) -> list[bytes]:
    body = text.encode("ascii")
    start_response("200 OK", _headers("text/plain", len(body)))
    return [body]


def read_body(environ: dict[str, Any]) -> tuple[int, str]:
    """Read and hash ``wsgi.input`` in pieces; returns (length, sha256 hex)."""
    stream = environ["wsgi.input"]
    digest = hashlib.sha256()
    total = 0
    declared = environ.get("CONTENT_LENGTH", "")
    remaining = int(declared) if declared else -1
    if remaining < 0 and not environ.get("wsgi.input_terminated"):
        return 0, digest.hexdigest()
    while remaining != 0:
        data = stream.read(PIECE if remaining < 0 else min(remaining, PIECE))
        if not data:
            break
        digest.update(data)
        total += len(data)
        if remaining > 0:
            remaining -= len(data)
    return total, digest.hexdigest()


def _hello(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    return _text(start_response, f"hello from {os.getpid()}\n")


def _sleep(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    length, sha = read_body(environ)
    time.sleep(float(environ.get("QUERY_STRING") or 1.0))
    return _text(start_response, f"{length} {sha}\n")


def _upload(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    length, sha = read_body(environ)
    return _text(start_response, f"{length} {sha}\n")


def _download(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    size = int(environ.get("QUERY_STRING") or DEFAULT_DOWNLOAD)
    start_response("200 OK", _headers("application/octet-stream", size))

    def pieces() -> Iterator[bytes]:
        index = 0
        left = size
        while left > 0:
            piece = download_piece(index)
            yield piece if left >= PIECE else piece[:left]
            left -= PIECE
            index += 1

    return pieces()


def _writes(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    size = int(environ.get("QUERY_STRING") or DEFAULT_DOWNLOAD)
    write = start_response("200 OK", _headers("application/octet-stream", size))
    index = 0
    left = size
    while left > 0:
        piece = download_piece(index)
        write(piece if left >= PIECE else piece[:left])
        left -= PIECE
        index += 1
    return []


def _fail(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    raise RuntimeError("ops_app: /fail failed on purpose")


def _cut(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", _headers("application/octet-stream", 2 * PIECE))
    yield download_piece(0)
    raise RuntimeError("ops_app: /cut failed after its head was sent")


ROUTES: dict[str, Callable[[dict[str, Any], StartResponse], Iterable[bytes]]] = {
    name: validator(route)
    for name, route in {
        "hello": _hello,
        "sleep": _sleep,
        "upload": _upload,
        "download": _download,
        "writes": _writes,
        "fail": _fail,
        "cut": _cut,
    }.items()
}


def application(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    last = environ.get("PATH_INFO", "").rsplit("/", 1)[-1]
    return ROUTES.get(last, ROUTES["hello"])(environ, start_response)
