"""The CGI front-end: one request per process, over the environment, stdin and stdout.

For a ``.cgi`` file on shared hosting::

    #!/usr/bin/env python3
    from wsgiwire.adapters.cgi import run
    from myapp import app
    run(app)

* the environ comes from ``os.environb``, so every byte of the request
  survives (decoded as latin-1 by the core translator);
* the body is read from binary stdin, never past CONTENT_LENGTH; with no
  declared length it is read to end of file only when the request was
  chunked (Apache streams a chunked body that way), so a person running the
  script by hand in a shell is not left waiting on the terminal;
* ``HTTP_PROXY`` is removed from ``os.environ`` before the app runs, so the
  app's own HTTP clients never take a client's ``Proxy:`` header as a proxy;
* while the app runs, file descriptor 1 and ``sys.stdout`` point at stderr:
  a stray ``print()`` lands in the web server's error log instead of
  corrupting the response, which goes to the original stdout;
* IIS puts SCRIPT_NAME in front of PATH_INFO; that prefix is removed.
"""

from __future__ import annotations

import os
import sys

from .._errors import ProtocolError
from .._limits import DEFAULT_LIMITS, Limits
from ..core._body import BodyBuffer, attach_input
from ..core._environ import EnvironBuilder
from ..core._gateway import ErrorStream, FileWrapper, WSGIApp, call_app
from ..core._lazylog import lazy_logger
from ..core._response import Response, send_status

# typing and collections.abc cost a CGI start-up about 9 ms: annotations only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import IO

# Public: run (the documented entry point); CGIGateway is what it runs, used by
# wsgiwire's own modules.
__all__ = ["run"]

log = lazy_logger("wsgiwire")

_READ_SIZE = 65536


def _environ_bytes() -> Mapping[bytes, bytes]:
    environb = getattr(os, "environb", None)
    if environb is not None:
        return dict(environb)
    # Windows has a text environment: IIS decoded the request as UTF-8, other
    # servers pass bytes as latin-1 (wsgiref.handlers.read_environ's choice).
    iis = os.environ.get("SERVER_SOFTWARE", "").lower().startswith("microsoft-iis/")

    def raw(text: str) -> bytes:
        if not iis:
            try:
                return text.encode("latin-1")
            except UnicodeEncodeError:
                pass
        return text.encode("utf-8", "surrogateescape")

    return {raw(k): raw(v) for k, v in os.environ.items()}


class CGIGateway:
    """Runs one request of ``app`` over explicit streams (``run`` wires the real ones)."""

    def __init__(self, app: WSGIApp, *, debug: bool = False, limits: Limits = DEFAULT_LIMITS):
        self.app = app
        self.debug = debug
        self.limits = limits
        self.builder = EnvironBuilder(
            errors=ErrorStream(),
            multithread=False,
            multiprocess=True,
            run_once=True,
            file_wrapper=FileWrapper,
        )

    def handle(
        self, params: Mapping[bytes, bytes], stdin: IO[bytes], stdout: IO[bytes]
    ) -> bool:
        """Serve one request; True when the response went out complete."""
        iis = params.get(b"SERVER_SOFTWARE", b"").startswith(b"Microsoft-IIS/")
        try:
            environ, declared = self.builder.build(
                params.items(), script_name_in_path_info=iis
            )
            body = BodyBuffer(declared, self.limits)
            if declared is not None:
                _read_exactly(stdin, body, declared)
            elif "HTTP_TRANSFER_ENCODING" in environ:
                _read_to_eof(stdin, body)
            attach_input(environ, body.finish(), terminated=declared is None)
        except ProtocolError as exc:
            method = params.get(b"REQUEST_METHOD", b"?").decode("latin-1")
            path = (params.get(b"SCRIPT_NAME", b"") + params.get(b"PATH_INFO", b"")).decode(
                "latin-1"
            )
            log.warning("bad CGI request %s %s: %s", method, path or "/", exc.msg)
            send_status(stdout.write, exc.status_hint)
            stdout.flush()
            return False
        response = Response(stdout.write, method=environ["REQUEST_METHOD"])
        ok = call_app(self.app, environ, response, debug=self.debug)
        stdout.flush()
        return ok


def _read_exactly(stdin: IO[bytes], body: BodyBuffer, length: int) -> None:
    remaining = length
    while remaining > 0:
        data = stdin.read(min(remaining, _READ_SIZE))
        if not data:
            break  # short: BodyBuffer.finish() reports it
        body.feed(data)
        remaining -= len(data)


def _read_to_eof(stdin: IO[bytes], body: BodyBuffer) -> None:
    while True:
        data = stdin.read(_READ_SIZE)
        if not data:
            return
        body.feed(data)


class _StdoutToStderr:
    """Point fd 1 and sys.stdout at stderr; ``with`` gives a binary stream on the
    real stdout. (A class, not ``contextlib``: its import costs a CGI start-up.)"""

    def __enter__(self) -> IO[bytes]:
        try:
            sys.stdout.flush()
        except Exception:
            pass
        self.real_fd = os.dup(1)
        os.dup2(2, 1)
        self.saved = sys.stdout
        sys.stdout = sys.stderr
        self.out = os.fdopen(self.real_fd, "wb", buffering=_READ_SIZE)
        return self.out

    def __exit__(self, *exc_info: object) -> None:
        try:
            sys.stderr.flush()
        except Exception:
            pass
        sys.stdout = self.saved
        self.out.flush()
        os.dup2(self.real_fd, 1)
        self.out.close()


def run(app: WSGIApp, *, debug: bool = False, limits: Limits = DEFAULT_LIMITS) -> bool:
    """Serve the one request this CGI process was started for."""
    params = _environ_bytes()
    if b"GATEWAY_INTERFACE" not in params and b"PATH_INFO" not in params:
        # Run by hand from a shell, not by a web server: ask for the app's root page.
        params = {**params, b"PATH_INFO": b"/"}
    os.environ.pop("HTTP_PROXY", None)
    gateway = CGIGateway(app, debug=debug, limits=limits)
    stdin = sys.stdin.buffer if sys.stdin is not None else open(os.devnull, "rb")  # noqa: SIM115
    with _StdoutToStderr() as stdout:
        return gateway.handle(params, stdin, stdout)
