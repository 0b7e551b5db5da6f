"""WSGI apps for the FastCGI integration tests, chosen by the last segment of PATH_INFO.

Staged beside ``probe.py`` and the ``wsgiwire`` copy, and run by ``wsgiwire serve``,
by lighttpd ``bin-path`` (through ``fcgi_app.fcgi.in``) or over ``cgi-fcgi``, so it
uses the stdlib only. Every app is wrapped in ``wsgiref.validate.validator``.

``.../stream``            a 16 MiB body yielded as 256 pieces of 64 KiB, no
                          Content-Length (the client checks the length and sha256
                          against :func:`stream_pieces`);
``.../raise-after-head``  sends the head and one piece, then raises;
``.../raise-before-head`` raises before ``start_response`` (the message must not
                          reach the client);
``.../slow``              sleeps 10 ms, then answers as the probe (keeps requests
                          in flight at once, for concurrency tests);
``.../gate``              waits until the file named by QUERY_STRING exists (at most
                          GATE_TIMEOUT seconds, else 504), then answers as the probe:
                          holds requests in flight until the test opens the gate;
``.../errors``            writes ``wsgi.errors: <QUERY_STRING>`` to ``wsgi.errors``
                          (FastCGI sends it as FCGI_STDERR records);
anything else             ``probe.application``: JSON describing the environ and the
                          body it read (length and sha256).

Every response carries ``X-Worker-Pid``, the process that ran the app.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from wsgiref.validate import validator

from probe import application as probe_application

STREAM_PIECES = 256
STREAM_PIECE_SIZE = 65536
STREAM_LENGTH = STREAM_PIECES * STREAM_PIECE_SIZE  # 16 MiB
BEFORE_HEAD_SECRET = "fcgi-apps-secret-before-head"
SLOW_SECONDS = 0.01
GATE_TIMEOUT = 10.0
GATE_POLL = 0.005

StartResponse = Callable[..., Callable[[bytes], object]]


def stream_piece(index: int) -> bytes:
    """Piece ``index`` of the streamed body: 64 KiB that differ from every other piece."""
    seed = hashlib.sha256(b"wsgiwire-stream-%d" % index).digest()  # 32 bytes
    return seed * (STREAM_PIECE_SIZE // len(seed))


def stream_pieces() -> Iterator[bytes]:
    for index in range(STREAM_PIECES):
        yield stream_piece(index)


def _pid_header() -> tuple[str, str]:
    return ("X-Worker-Pid", str(os.getpid()))


def _stream(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "application/octet-stream"), _pid_header()])
    return stream_pieces()


def _raise_after_head(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "application/octet-stream"), _pid_header()])
    yield stream_piece(0)
    raise RuntimeError("fcgi_apps: failed after the head was sent")


def _raise_before_head(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    raise RuntimeError(BEFORE_HEAD_SECRET)


def _errors(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    message = f"wsgi.errors: {environ.get('QUERY_STRING', '')}\n"
    environ["wsgi.errors"].write(message)
    environ["wsgi.errors"].flush()
    body = b"logged\n"
    start_response(
        "200 OK",
        [("Content-Type", "text/plain"), ("Content-Length", str(len(body))), _pid_header()],
    )
    return [body]


def _probe(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    def add_pid(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
        return start_response(status, [*headers, _pid_header()], *exc_info)

    return probe_application(environ, add_pid)


def _slow(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    time.sleep(SLOW_SECONDS)
    return _probe(environ, start_response)


def _gate(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    gate = environ.get("QUERY_STRING", "")
    deadline = time.monotonic() + GATE_TIMEOUT
    while not os.path.exists(gate):
        if time.monotonic() >= deadline:
            body = b"the gate stayed shut\n"
            start_response(
                "504 Gateway Timeout",
                [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
            )
            return [body]
        time.sleep(GATE_POLL)
    return _probe(environ, start_response)


ROUTES: dict[str, Callable[[dict[str, Any], StartResponse], Iterable[bytes]]] = {
    "stream": validator(_stream),
    "raise-after-head": validator(_raise_after_head),
    "raise-before-head": validator(_raise_before_head),
    "errors": validator(_errors),
    "slow": _slow,  # the probe validates itself
    "gate": _gate,  # the probe validates itself
}


def application(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    last = environ.get("PATH_INFO", "").rsplit("/", 1)[-1]
    return ROUTES.get(last, _probe)(environ, start_response)
