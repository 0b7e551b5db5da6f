"""The access log: one line per request, in a format log tools already parse.

The default is the combined format, as nginx and Apache httpd write it, plus
the request time in seconds::

    127.0.0.1 - - [05/Dec/2026:09:05:02 +0000] "GET /x?a=1 HTTP/1.1" 200 5 "-" "curl/8" 0.000412

``--access-log-format`` takes gunicorn's atoms (``%(h)s %(r)s %(s)s ...``,
see :data:`ATOMS`). Every byte that comes from the request (or from the app's
response headers) is escaped as nginx and Apache do it: ``\\xHH`` for control
bytes and for bytes above 0x7E, ``\\"`` for a quote and ``\\\\`` for a
backslash. So no request can start a new line, end a quoted field early or
send escape sequences to a terminal, and the original bytes can be read back.
The request line shows the raw ``REQUEST_URI`` the web server sent (not the
decoded path); without one, the path and query re-quoted.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import _logs as logs
from .core._environ import request_label, request_uri

if TYPE_CHECKING:
    from .core._response import Response

__all__ = ["ATOMS", "DEFAULT_FORMAT", "AccessLog", "escape", "request_uri"]

DEFAULT_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(L)s'

# Each atom and what it stands for (the --access-log-format help and the README).
ATOMS: dict[str, str] = {
    "h": "remote address (REMOTE_ADDR)",
    "l": "'-' (the remote logname of the common log format)",
    "u": "remote user (REMOTE_USER), or '-'",
    "t": "time the request ended, [05/Dec/2026:09:05:02 +0000]",
    "r": "request line: method, raw request URI, protocol",
    "m": "request method",
    "U": "URL path, as sent (no query string)",
    "q": "query string, as sent",
    "H": "protocol (SERVER_PROTOCOL)",
    "s": "status code",
    "B": "response body bytes",
    "b": "response body bytes, '-' for none (the common log format)",
    "f": "referer",
    "a": "user agent",
    "T": "request time in whole seconds",
    "M": "request time in milliseconds",
    "D": "request time in microseconds",
    "L": "request time in seconds, decimal (0.000412)",
    "p": "process id of the worker",
    "{name}i": "request header 'name'",
    "{name}o": "response header 'name'",
    "{NAME}e": "environ variable 'NAME' (e.g. {HTTPS}e)",
}

_ATOM_RE = re.compile(r"%\((\{[^}()]*\}[ioe]|[a-zA-Z])\)s")
# Anything that looks like an atom (or a lone %): checked against _ATOM_RE, so a
# mistyped atom is refused at start instead of written literally on every line.
_PERCENT_RE = re.compile(r"%%|%\([^()]*\)[a-zA-Z]?|%")

# Bytes as nginx's and Apache's logs show them: printable ASCII as is, but for
# the quote and the backslash; everything else as \xHH.
_ESCAPES: dict[int, str] = {
    c: f"\\x{c:02X}" for c in (*range(0x20), *range(0x7F, 0x100))
}
_ESCAPES[ord('"')] = '\\"'
_ESCAPES[ord("\\")] = "\\\\"


def escape(text: str) -> str:
    """``text`` (a PEP 3333 latin-1 string: one char per byte) escaped for a log line."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return text
    out = text.translate(_ESCAPES)
    if out.isascii():
        return out
    # Not a latin-1 environ string (an app put text there): escape its UTF-8 bytes.
    return "".join(
        ch if ord(ch) < 0x80 else "".join(f"\\x{b:02X}" for b in ch.encode("utf-8", "replace"))
        for ch in out
    )


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun",
           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class _Clock:
    """``[05/Dec/2026:09:05:02 +0000]``, formatted once per second."""

    __slots__ = ("second", "text")

    def __init__(self) -> None:
        self.second = -1
        self.text = ""

    def now(self) -> str:
        second = int(time.time())
        if second != self.second:
            tm = time.localtime(second)
            offset = tm.tm_gmtoff // 60
            sign = "-" if offset < 0 else "+"
            offset = abs(offset)
            self.text = (
                f"[{tm.tm_mday:02d}/{_MONTHS[tm.tm_mon - 1]}/{tm.tm_year}:"
                f"{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d} "
                f"{sign}{offset // 60:02d}{offset % 60:02d}]"
            )
            self.second = second
        return self.text


class _Request:
    """What the atoms are computed from, for one request."""

    __slots__ = ("duration", "environ", "response")

    def __init__(self, environ: dict[str, Any], response: Response, duration: float) -> None:
        self.environ = environ
        self.response = response
        self.duration = duration


Getter = Callable[[_Request], str]


def _env(name: str, default: str = "-") -> Getter:
    def get(r: _Request) -> str:
        value = r.environ.get(name)
        return escape(value) if isinstance(value, str) and value else default

    return get


def _response_header(name: str) -> Getter:
    wanted = name.lower()

    def get(r: _Request) -> str:
        for key, value in r.response.headers:
            if key.lower() == wanted:
                return escape(value)
        return "-"

    return get


def _request_line(r: _Request) -> str:
    env = r.environ
    return escape(f"{request_label(env)} {env.get('SERVER_PROTOCOL') or '-'}")


def _path(r: _Request) -> str:
    return escape(request_uri(r.environ).partition("?")[0]) or "-"


def _query(r: _Request) -> str:
    return escape(r.environ.get("QUERY_STRING", "")) or "-"


def _status(r: _Request) -> str:
    status = r.response.status
    return status[:3] if status else "-"


def _bytes_clf(r: _Request) -> str:
    return str(r.response.sent) if r.response.sent else "-"


def _getter(atom: str, clock: _Clock) -> Getter:
    if atom.startswith("{"):
        name, kind = atom[1:-2], atom[-1]
        if kind == "i":
            return _env("HTTP_" + name.upper().replace("-", "_"))
        if kind == "o":
            return _response_header(name)
        return _env(name)
    simple: dict[str, Getter] = {
        "h": _env("REMOTE_ADDR"),
        "l": lambda r: "-",
        "u": _env("REMOTE_USER"),
        "t": lambda r: clock.now(),
        "r": _request_line,
        "m": _env("REQUEST_METHOD"),
        "U": _path,
        "q": _query,
        "H": _env("SERVER_PROTOCOL"),
        "s": _status,
        "B": lambda r: str(r.response.sent),
        "b": _bytes_clf,
        "f": _env("HTTP_REFERER"),
        "a": _env("HTTP_USER_AGENT"),
        "T": lambda r: str(int(r.duration)),
        "M": lambda r: str(int(r.duration * 1e3)),
        "D": lambda r: str(int(r.duration * 1e6)),
        "L": lambda r: f"{r.duration:.6f}",
        # The worker's pid: looked up per line, since the log is set up before fork().
        "p": lambda r: str(os.getpid()),
    }
    try:
        return simple[atom]
    except KeyError:
        raise ValueError(f"unknown access log atom %({atom})s") from None


class AccessLog:
    """Formats and writes access-log lines (to the ``wsgiwire.access`` logger).

    ``line()`` is pure formatting; ``log()`` writes through the logger, which
    :func:`wsgiwire._logs.configure_logging` points at stderr or a file.
    Raises ``ValueError`` for an unknown atom, at start-up.
    """

    def __init__(self, fmt: str | None = None) -> None:
        self.format = DEFAULT_FORMAT if fmt is None else fmt
        self._clock = _Clock()
        self._parts: list[str | Getter] = []
        self._names: list[str] = []
        literal: list[str] = []
        position = 0
        for match in _PERCENT_RE.finditer(self.format):
            literal.append(self.format[position : match.start()])
            position = match.end()
            text = match.group(0)
            if text == "%%":
                literal.append("%")
                continue
            atom = _ATOM_RE.fullmatch(text)
            if atom is None:
                raise ValueError(f"{text!r} is not an access log atom (atoms look like "
                                 "%(h)s or %({user-agent}i)s; a literal % is written %%)")
            if "".join(literal):
                self._parts.append("".join(literal))
            literal = []
            self._parts.append(_getter(atom.group(1), self._clock))
            self._names.append(atom.group(1))
        literal.append(self.format[position:])
        if "".join(literal):
            self._parts.append("".join(literal))
        self._logger = logging.getLogger(logs.ACCESS_LOGGER)
        self._default = self.format == DEFAULT_FORMAT

    def line(self, environ: dict[str, Any], response: Response, duration: float) -> str:
        if self._default:
            return self._combined(environ, response, duration)
        request = _Request(environ, response, duration)
        return "".join(
            part if isinstance(part, str) else part(request)
            for part in self._parts
        )

    def _combined(self, env: dict[str, Any], response: Response, duration: float) -> str:
        """DEFAULT_FORMAT, written out (the same line as the generic path, in half the time)."""
        status = response.status
        sent = response.sent
        return (
            f"{escape(env.get('REMOTE_ADDR') or '-')} - {escape(env.get('REMOTE_USER') or '-')} "
            f"{self._clock.now()} \""
            f"{escape(request_label(env))} {escape(env.get('SERVER_PROTOCOL') or '-')}\" "
            f"{status[:3] if status else '-'} {sent if sent else '-'} "
            f"\"{escape(env.get('HTTP_REFERER') or '-')}\" "
            f"\"{escape(env.get('HTTP_USER_AGENT') or '-')}\" {duration:.6f}"
        )

    def fields(self, environ: dict[str, Any], response: Response, duration: float) -> dict[
        str, str
    ]:
        """The atoms of this format by name (for the JSON log format)."""
        request = _Request(environ, response, duration)
        getters = [p for p in self._parts if not isinstance(p, str)]
        return {name: get(request) for name, get in zip(self._names, getters, strict=True)}

    def log(self, environ: dict[str, Any], response: Response, duration: float) -> None:
        """Write the line for a request that took ``duration`` seconds."""
        logger = self._logger
        if not logger.isEnabledFor(logging.INFO):
            return
        write = logs.access_writer(logger)
        if write is not None:
            write(self.line(environ, response, duration))
            return
        # A record made here skips Logger.findCaller's walk up the stack: the
        # access log's source line is always this one.
        record = logging.LogRecord(
            logger.name, logging.INFO, __file__, 0, self.line(environ, response, duration),
            None, None,
        )
        if logs.json_format():
            record.access = self.fields(environ, response, duration)
        logger.handle(record)
