"""The applications the hostile catalogue runs, behind one router.

Every server of the catalogue runs :func:`router`; a request picks its app
with the ``X-Hostile-App`` header (the CGI parameter ``HTTP_X_HOSTILE_APP``)
and gets :func:`echo` without it, so hand-crafted bytes need no routing.

These apps break the WSGI contract on purpose, so none of them is wrapped in
``wsgiref.validate`` (which would catch the misuse first, and with
``assert``, which ``python -O`` removes).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

Environ = dict[str, Any]
StartResponse = Callable[..., Callable[[bytes], None]]
App = Callable[[Environ, StartResponse], Any]

APP_HEADER = b"HTTP_X_HOSTILE_APP"

# Text an app could leak into a reply if the server echoed its failure.
SECRET = "hostile-secret-4711"

BIG_CHUNK = 64 * 1024
BIG_CHUNKS = 128  # 8 MiB: more than any socket buffer holds


def echo(environ: Environ, start_response: StartResponse) -> list[bytes]:
    """200 with the environ as JSON: str values as they are, others as their type name.

    ``wsgiwire.body`` holds the request body (latin-1), so a case can check
    exactly what reached the application.
    """
    body = environ["wsgi.input"].read()
    info = {k: v if isinstance(v, str) else type(v).__name__ for k, v in environ.items()}
    info["wsgiwire.body"] = body.decode("latin-1")
    out = json.dumps(info, sort_keys=True).encode("ascii")
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(out)))]
    )
    return [out]


def raise_before(environ: Environ, start_response: StartResponse) -> list[bytes]:
    raise RuntimeError(f"failed before start_response ({SECRET})")


def raise_after(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"partial "
    raise RuntimeError(f"failed after the head was sent ({SECRET})")


def raise_in_iter_first(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    raise RuntimeError(f"failed before the first chunk ({SECRET})")
    yield b"never"  # pragma: no cover


def start_twice(environ: Environ, start_response: StartResponse) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    start_response("201 Created", [("Content-Type", "text/plain")])
    return [b"twice"]


def exc_info_after_head(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"head sent "
    try:
        raise ValueError(f"late failure ({SECRET})")
    except ValueError as exc:
        start_response("500 Internal Server Error", [], (type(exc), exc, exc.__traceback__))
    yield b"never"


def exc_info_before_head(environ: Environ, start_response: StartResponse) -> list[bytes]:
    """The legitimate use of exc_info: replace a head that was not sent yet."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    try:
        raise ValueError("replaced")
    except ValueError as exc:
        start_response("503 Service Unavailable", [("Content-Type", "text/plain")],
                       (type(exc), exc, exc.__traceback__))
    return [b"replaced"]


def returns_str(environ: Environ, start_response: StartResponse) -> str:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return "a str is not an iterable of bytes"


def returns_none(environ: Environ, start_response: StartResponse) -> None:
    """Falls off the end: the result is None, not an iterable."""
    start_response("200 OK", [("Content-Type", "text/plain")])


def never_starts(environ: Environ, start_response: StartResponse) -> list[bytes]:
    return [b"body without a head"]


def never_starts_empty(environ: Environ, start_response: StartResponse) -> list[bytes]:
    return []


def str_status_bytes(environ: Environ, start_response: StartResponse) -> list[bytes]:
    start_response(b"200 OK", [])  # bytes status: PEP 3333 wants a native str
    return [b"x"]


class _WritesInClose:
    """An iterable whose ``close()`` still writes (and yields) after the response ended."""

    def __init__(self, write: Callable[[bytes], None], declared: bool) -> None:
        self.write = write
        self.declared = declared
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        yield b"hello"

    def close(self) -> None:
        self.closed = True
        self.write(b"INJECTED-AFTER-CLOSE")


def write_after_close(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    return _WritesInClose(write, declared=False)


def write_after_close_cl(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    write = start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return _WritesInClose(write, declared=True)


class _YieldsAfterClose:
    """An iterator that keeps yielding after ``close()``: the server must stop at close."""

    def __init__(self) -> None:
        self.closed = False
        self.count = 0

    def __iter__(self) -> _YieldsAfterClose:
        return self

    def __next__(self) -> bytes:
        if self.closed:
            return b"YIELDED-AFTER-CLOSE"
        self.count += 1
        if self.count > 2:
            raise StopIteration
        return b"chunk%d " % self.count

    def close(self) -> None:
        self.closed = True


def yield_after_close(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return _YieldsAfterClose()


def _header_app(status: str, headers: list[tuple[str, str]]) -> App:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response(status, headers)
        return [b"should not be sent"]

    return app


def big(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
    """8 MiB in 64 KiB chunks: a client that stops reading leaves it stuck."""
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(BIG_CHUNK * BIG_CHUNKS))])
    chunk = b"x" * BIG_CHUNK
    for _ in range(BIG_CHUNKS):
        yield chunk


def overflow_content_length(environ: Environ, start_response: StartResponse) -> list[bytes]:
    """More body than declared: the extra bytes must never reach the wire."""
    start_response("200 OK", [("Content-Length", "5")])
    return [b"hello", b"HTTP/1.1 200 OK\r\nX-Smuggled: injected\r\n\r\n"]


def short_content_length(environ: Environ, start_response: StartResponse) -> list[bytes]:
    """Less body than declared: the response is cut, and said to be."""
    start_response("200 OK", [("Content-Length", "10")])
    return [b"hello"]


def non_latin1_header(environ: Environ, start_response: StartResponse) -> list[bytes]:
    start_response("200 OK", [("X-Name", "snowman \u2603")])
    return [b"x"]


APPS: dict[str, App] = {
    "echo": echo,
    "raise_before": raise_before,
    "raise_after": raise_after,
    "raise_in_iter_first": raise_in_iter_first,
    "start_twice": start_twice,
    "exc_info_after_head": exc_info_after_head,
    "exc_info_before_head": exc_info_before_head,
    "returns_str": returns_str,
    "returns_none": returns_none,
    "never_starts": never_starts,
    "never_starts_empty": never_starts_empty,
    "bytes_status": str_status_bytes,
    "write_after_close": write_after_close,
    "write_after_close_cl": write_after_close_cl,
    "yield_after_close": yield_after_close,
    "big": big,
    "non_latin1_header": non_latin1_header,
    "overflow_content_length": overflow_content_length,
    "short_content_length": short_content_length,
    # Header injection: every one of these must become a 500 with nothing injected.
    "inject_status_crlf": _header_app("200 OK\r\nSet-Cookie: injected=1", []),
    "inject_status_lf": _header_app("200 OK\nSet-Cookie: injected=1", []),
    "inject_value_crlf": _header_app("200 OK", [("X-A", "a\r\nSet-Cookie: injected=1")]),
    "inject_value_lf": _header_app("200 OK", [("X-A", "a\nSet-Cookie: injected=1")]),
    "inject_value_cr": _header_app("200 OK", [("X-A", "a\rSet-Cookie: injected=1")]),
    "inject_value_nul": _header_app("200 OK", [("X-A", "a\x00Set-Cookie: injected=1")]),
    "inject_name_crlf": _header_app("200 OK", [("X-A\r\nSet-Cookie", "injected=1")]),
    "inject_name_colon": _header_app("200 OK", [("Set-Cookie: injected=1\r\nX", "y")]),
    "inject_name_nul": _header_app("200 OK", [("X-A\x00", "injected=1")]),
    "inject_name_space": _header_app("200 OK", [("X A", "injected=1")]),
    "inject_status_header": _header_app("200 OK", [("Status", "302 injected=1")]),
    "inject_hop_by_hop": _header_app("200 OK", [("Transfer-Encoding", "chunked injected=1")]),
    "inject_conflicting_content_length": _header_app(
        "200 OK", [("Content-Length", "18"), ("Content-Length", "0"), ("X-A", "injected=1")]),
    "inject_content_length_list": _header_app(
        "200 OK", [("Content-Length", "18, 0"), ("X-A", "injected=1")]),
}


def router(environ: Environ, start_response: StartResponse) -> Any:
    """Run the app the request names in ``X-Hostile-App`` (default: echo)."""
    app = APPS.get(environ.get("HTTP_X_HOSTILE_APP", "echo"), echo)
    return app(environ, start_response)
