"""Tests of the core translator and writer, plus the small harness they share.

``serve()`` runs one request through the whole core exactly as a front-end
does (EnvironBuilder -> BodyBuffer -> attach_input -> Response -> call_app),
with the app wrapped in ``wsgiref.validate.validator`` unless a test is about
misuse the validator would itself refuse first.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from wsgiref.validate import validator

from wsgiwire._limits import DEFAULT_LIMITS, Limits
from wsgiwire.core._body import BodyBuffer, attach_input
from wsgiwire.core._environ import EnvironBuilder
from wsgiwire.core._gateway import ErrorStream, FileWrapper, call_app
from wsgiwire.core._response import HeadStyle, Response

Params = list[tuple[bytes, bytes]]


def params(**values: str | bytes) -> Params:
    """Params as bytes pairs, e.g. ``params(REQUEST_METHOD="GET", PATH_INFO="/")``."""
    return [
        (k.encode("latin-1"), v if isinstance(v, bytes) else v.encode("latin-1"))
        for k, v in values.items()
    ]


def request_params(method: str = "GET", path: str = "/x", query: str = "", **extra: str) -> Params:
    base = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "/app",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "example.org",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
    }
    base.update(extra)
    return params(**base)


@dataclass
class Result:
    ok: bool
    chunks: list[bytes]
    environ: dict[str, Any]
    raw: bytes = b""
    status: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


def parse_head(
    raw: bytes, style: HeadStyle = HeadStyle.CGI
) -> tuple[str, list[tuple[str, str]], bytes]:
    """Split a rendered response into (status, headers, body)."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    assert sep, f"no end of head in {raw[:200]!r}"
    first, *lines = head.decode("latin-1").split("\r\n")
    headers = [tuple(line.split(": ", 1)) for line in lines]
    if style is HeadStyle.CGI:
        assert first.startswith("Status: "), first
        status = first[len("Status: ") :]
    else:
        version, status = first.split(" ", 1)
        assert version.startswith("HTTP/1."), first
    return status, headers, body  # type: ignore[return-value]


def serve(
    app: Any,
    request: Params | None = None,
    body: bytes | Iterable[bytes] = b"",
    *,
    validate: bool = True,
    debug: bool = False,
    style: HeadStyle = HeadStyle.CGI,
    limits: Limits = DEFAULT_LIMITS,
) -> Result:
    """One request through the core; ``body`` may be given as a list of chunks."""
    builder = EnvironBuilder(errors=ErrorStream(), file_wrapper=FileWrapper)
    environ, declared = builder.build(request if request is not None else request_params())
    buffer = BodyBuffer(declared, limits)
    for chunk in [body] if isinstance(body, bytes) else body:
        buffer.feed(chunk)
    attach_input(environ, buffer.finish(), terminated=declared is None)
    chunks: list[bytes] = []
    response = Response(
        chunks.append,
        method=environ["REQUEST_METHOD"],
        style=style,
        protocol=environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
    )
    ok = call_app(validator(app) if validate else app, environ, response, debug=debug)
    raw = b"".join(chunks)
    result = Result(ok, chunks, environ, raw)
    if raw:
        result.status, result.headers, result.body = parse_head(raw, style)
    return result
