"""The one response writer: ``start_response``, ``write()``, the head, the body.

Enforces the PEP 3333 contract with exceptions (never ``assert``, so it holds
under ``python -O``):

* status is a native string ``"NNN reason"``;
* header names are RFC 9110 tokens, values contain no CR, LF or NUL, both are
  latin-1 native strings: header injection cannot happen;
* hop-by-hop headers (Connection, Transfer-Encoding, ...) are refused, and so
  is ``Status`` (it would be read as the CGI status by the web server);
* a second ``start_response`` without ``exc_info`` is an error; with
  ``exc_info`` after the head was sent, the original exception is re-raised;
* the head is rendered only when the first non-empty body chunk arrives (or
  the iterable ends), so an app can still replace it on error;
* a declared Content-Length is enforced: extra bytes are never sent, a short
  body is reported; two Content-Length headers that disagree are refused;
* HEAD requests and 1xx/204/304 responses send no body.

The head is either CGI style (``Status: 200 OK``) for CGI, FastCGI and SCGI,
or an HTTP status line for uwsgi. Output goes to one callable ``out(bytes)``
that the front-end supplies; it frames the bytes for its protocol.
"""

from __future__ import annotations

from .._errors import ResponseHeaderError, StartResponseError
from .._params import HeadStyle, length_value
from ._environ import request_label
from ._lazylog import lazy_logger

# typing and collections.abc cost a CGI start-up about 9 ms: annotations only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType
    from typing import IO, Any, Final

    # ``sender(filelike, count)`` writes up to ``count`` bytes (-1: to the end) of
    # the file from its current position straight to the client; returns the count.
    FileSender = Callable[[IO[bytes], int], int]
    ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]

__all__ = [
    "HeadStyle",
    "Response",
    "send_status",
    "status_line",
    "validate_status",
    "validate_headers",
]

log = lazy_logger("wsgiwire")

Headers = list[tuple[str, str]]

# The checks below use sets and str methods, not regular expressions: ``re``
# (with the ``enum`` it imports) and compiling the patterns cost a CGI process,
# which serves one request, more than all of the rest of its start-up.
_DIGITS: Final = frozenset("0123456789")
# RFC 9110 tchar: what a header name is made of.
_TOKEN_CHARS: Final = frozenset(
    "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)
# Control characters a reason phrase may not hold (HTAB may appear).
_STATUS_CTL: Final = frozenset([*map(chr, range(0x09)), *map(chr, range(0x0A, 0x20)), "\x7f"])
# The head and a first chunk up to this size go out as one piece (one record,
# one send); larger chunks are passed on without copying.
_COALESCE_MAX: Final = 65536
_HTTP_VERSIONS: Final = frozenset({"HTTP/1.0", "HTTP/1.1"})
_REFUSED_HEADERS: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "status",
    }
)


def validate_status(status: object) -> str:
    if type(status) is not str:
        raise ResponseHeaderError(f"status must be a native str, not {type(status).__name__}")
    if not (
        len(status) >= 4
        and status[0] in _DIGITS
        and status[0] != "0"
        and status[1] in _DIGITS
        and status[2] in _DIGITS
        and status[3] == " "
        and _STATUS_CTL.isdisjoint(status[4:])
    ):
        raise ResponseHeaderError(f"invalid status line {status[:80]!r}")
    try:
        status.encode("latin-1")
    except UnicodeEncodeError:
        raise ResponseHeaderError(f"status is not latin-1: {status[:80]!r}") from None
    return status


def validate_headers(headers: object) -> Headers:
    """``headers`` itself once valid, else ``ResponseHeaderError``."""
    return _check_headers(headers)[0]


def _check_headers(headers: object) -> tuple[Headers, int | None, str]:
    """Validate ``headers``; return them (typed), the declared Content-Length
    (``None``: none) and the header lines as they go out (``"Name: value\\r\\n"`` each)."""
    if type(headers) is not list:
        raise ResponseHeaderError(
            f"response_headers must be a list, not {type(headers).__name__}"
        )
    content_length: int | None = None
    lines = ""
    valid = _VALID_PAIRS
    for item in headers:
        # The exact types before the lookup: a tuple or str subclass equal to a
        # valid pair is not that pair (it is refused, as it always is).
        entry = None
        if type(item) is tuple and len(item) == 2:
            name, value = item
            if type(name) is str and type(value) is str:
                entry = valid.get(item)
        if entry is None:
            entry = _check_pair(item)
            if len(entry[0]) <= _VALID_LINE_MAX:
                if len(valid) >= _VALID_PAIRS_MAX:
                    valid.clear()
                valid[item] = entry
        line, length = entry
        if length is not None:
            if content_length is not None and length != content_length:
                # The web server would have to guess which one frames the body.
                raise ResponseHeaderError(
                    f"conflicting Content-Length headers ({content_length} and {length})"
                )
            content_length = length
        lines += line
    return headers, content_length, lines


# Header pairs already found valid, with their line and Content-Length value.
# A pair's verdict depends on nothing but its two strings, and only an exact
# tuple of two exact ``str`` is looked up (see above), so an entry can never
# change a verdict: it spares the checks and the rendering of a pair the
# application sent before (most responses repeat their headers exactly).
# Bounded: emptied when full, long lines never kept; values that vary
# (lengths, cookies) only churn it. tests/core/test_response.py checks that
# the cached and uncached validators agree on arbitrary input.
_VALID_PAIRS: Final[dict[object, tuple[str, int | None]]] = {}
_VALID_PAIRS_MAX: Final = 1024
_VALID_LINE_MAX: Final = 512
# Status lines already found valid, with their code: the same rule (an exact
# ``str`` is looked up, nothing else); a few dozen in practice, never more
# than _VALID_STATUS_MAX.
_VALID_STATUS: Final[dict[str, int]] = {}
_VALID_STATUS_MAX: Final = 256


def _check_pair(item: object) -> tuple[str, int | None]:
    """Check one header pair: its line, and its value if a Content-Length (uncached)."""
    if type(item) is not tuple or len(item) != 2:
        raise ResponseHeaderError(f"each header must be a (name, value) tuple: {item!r}")
    name, value = item
    if type(name) is not str or type(value) is not str:
        raise ResponseHeaderError(f"header name and value must be native str: {item!r}")
    if not name or not _TOKEN_CHARS.issuperset(name):
        raise ResponseHeaderError(f"invalid header name {name[:80]!r}")
    lower = name.lower()
    if lower in _REFUSED_HEADERS:
        raise ResponseHeaderError(f"header {name!r} is hop-by-hop or reserved; not allowed")
    if "\r" in value or "\n" in value or "\x00" in value:
        raise ResponseHeaderError(f"CR, LF or NUL in the value of header {name!r}")
    if not value.isascii() and max(value) > "\xff":
        raise ResponseHeaderError(f"value of header {name!r} is not latin-1")
    length: int | None = None
    if lower == "content-length":
        length = length_value(value)
        if length is None:
            raise ResponseHeaderError(f"invalid Content-Length {value[:40]!r}")
    return f"{name}: {value}\r\n", length


class Response:
    """start_response/write state machine for one request.

    ``out`` receives raw response bytes (head first). ``method`` is the
    request method (HEAD sends no body). ``protocol`` is the HTTP version for
    the HTTP head style. ``environ`` (optional; :func:`~wsgiwire.core._gateway.call_app`
    fills it in) names the request in log lines, e.g. ``GET /app/x``.

    ``after_write`` (optional) is called after each call of the application's
    ``write()`` callable, not after the iterable's chunks: the caller of the
    iterable may pause the application after a chunk, while the application
    runs on after its ``write()`` (an inline runner moves output that piles
    up there out of memory).
    """

    __slots__ = (
        "_out",
        "_after_write",
        "_lines",
        "_style",
        "_protocol",
        "_head_request",
        "status",
        "headers",
        "head_sent",
        "content_length",
        "sent",
        "no_body",
        "overflowed",
        "environ",
        "failed",
        "file_sender",
        "finished",
        "complete",
    )

    def __init__(
        self,
        out: Callable[[bytes], object],
        *,
        method: str = "GET",
        style: HeadStyle = HeadStyle.CGI,
        protocol: str = "HTTP/1.1",
        environ: dict[str, Any] | None = None,
        file_sender: FileSender | None = None,
        after_write: Callable[[], object] | None = None,
    ) -> None:
        self._out = out
        self._after_write = after_write
        self.environ = environ
        self.file_sender = file_sender
        # Set by the gateway when the application raised (answered 500 or cut).
        self.failed = False
        self.finished = False
        # Set by finish() when the body was as long as declared: the response
        # went out whole (what call_app reports).
        self.complete = False
        self._style = style
        # Only the two versions a status line can carry; anything else (HTTP/2.0 from
        # an h2 front, or a value with CR/LF in it) must not reach the wire.
        self._protocol = protocol if protocol in _HTTP_VERSIONS else "HTTP/1.1"
        self._head_request = method == "HEAD"
        self.status: str | None = None
        self.headers: Headers = []
        self._lines = ""  # the headers as rendered by _check_headers
        self.head_sent = False
        self.content_length: int | None = None
        self.sent = 0
        self.no_body = self._head_request
        self.overflowed = False

    # -- the WSGI callables -------------------------------------------------
    # ``status``, ``headers`` and ``data`` are annotated ``object``: they come from the
    # application, and the checks below (not a compiled build's argument check, which
    # would raise a bare TypeError) say what is wrong with them.
    def start_response(
        self,
        status: object,
        headers: object,
        exc_info: ExcInfo | None = None,
    ) -> Callable[[bytes], None]:
        if exc_info is not None:
            try:
                if self.head_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None  # break the frame cycle, as PEP 3333 advises
        elif self.status is not None:
            raise StartResponseError("start_response called a second time without exc_info")
        if type(status) is str and status in _VALID_STATUS:
            checked = status
            code = _VALID_STATUS[status]
        else:
            checked = validate_status(status)
            code = int(checked[:3])
            if len(_VALID_STATUS) < _VALID_STATUS_MAX:
                _VALID_STATUS[checked] = code
        self.headers, content_length, lines = _check_headers(headers)
        self.status = checked
        self._lines = lines
        self.content_length = content_length
        self.no_body = self._head_request or code < 200 or code in (204, 304)
        return self.write if self._after_write is None else self._app_write

    def _app_write(self, data: object) -> None:
        """The WSGI ``write`` callable when there is an ``after_write`` hook."""
        self.write(data)
        after_write = self._after_write
        if after_write is not None:
            after_write()

    def write(self, data: object) -> None:
        """The WSGI ``write`` callable, also used for each chunk of the iterable."""
        if type(data) is not bytes:
            if isinstance(data, (bytearray, memoryview)):
                data = bytes(data)
            else:
                raise StartResponseError(
                    f"response body must be bytes, not {type(data).__name__}"
                )
        if self.status is None:
            raise StartResponseError("write() or body data before start_response()")
        if self.finished:
            raise StartResponseError("write() after the response was finished")
        if not data:
            return
        if self.no_body:
            if not self.head_sent:
                self._out(self._render_head())
            return
        limit = self.content_length
        if limit is not None and self.sent + len(data) > limit:
            if not self.overflowed:
                log.warning(
                    "application sent more than its Content-Length %d in %s; "
                    "extra bytes dropped",
                    limit,
                    self._label(),
                )
            self.overflowed = True
            data = data[: limit - self.sent]
            if not data:
                if not self.head_sent:
                    self._out(self._render_head())
                return
        self.sent += len(data)
        if self.head_sent:
            self._out(data)
        elif len(data) <= _COALESCE_MAX:
            self._out(self._render_head() + data)
        else:
            self._out(self._render_head())
            self._out(data)

    def send_file(self, filelike: IO[bytes]) -> None:
        """Send the rest of ``filelike`` through ``file_sender`` (zero copy), after the head.

        Used for a ``wsgi.file_wrapper`` result when the front-end can write
        the file to its socket itself (raw-body protocols: sendfile). Honours
        a declared Content-Length and sends nothing for bodiless responses.
        """
        sender = self.file_sender
        if self.status is None or sender is None:
            raise StartResponseError("send_file() needs start_response() and a file sender")
        if not self.head_sent:
            self._out(self._render_head())
        if self.no_body:
            return
        count = -1 if self.content_length is None else self.content_length - self.sent
        if count:
            self.sent += sender(filelike, count)

    def finish(self) -> bool:
        """End of the body: send the head if it is still pending.

        Returns False when the body was shorter than the declared
        Content-Length (the response is cut and the front-end should say so),
        else True; ``complete`` keeps the answer.
        """
        if self.status is None:
            raise StartResponseError("the application returned without calling start_response()")
        self.finished = True
        if not self.head_sent:
            self._out(self._render_head())
        if (
            self.content_length is not None
            and not self.no_body
            and self.sent < self.content_length
        ):
            log.warning(
                "application sent %d bytes but declared Content-Length %d in %s; "
                "response cut short",
                self.sent,
                self.content_length,
                self._label(),
            )
            return False
        self.complete = True
        return True

    def _label(self) -> str:
        return request_label(self.environ) if self.environ is not None else "a request"

    # -- rendering ----------------------------------------------------------
    def _render_head(self) -> bytes:
        status = self.status
        if status is None:
            raise StartResponseError("no status to send")
        self.head_sent = True
        if self._style is HeadStyle.CGI:
            head = f"Status: {status}\r\n{self._lines}\r\n"
        else:
            head = f"{self._protocol} {status}\r\n{self._lines}\r\n"
        return head.encode("latin-1")

    def send_error(self, status: str, body: bytes, headers: Headers | None = None) -> None:
        """Replace a not-yet-sent response with an error page (the gateway's 500)."""
        if self.head_sent:
            raise StartResponseError("cannot send an error page after the head was sent")
        self.status = None
        all_headers: Headers = [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
        ]
        if headers:
            all_headers.extend(headers)
        self.start_response(status, all_headers)
        self.write(body)
        self.finish()


def status_line(code: int) -> str:
    """``"404 Not Found"`` for 404 (``"NNN Error"`` for a code without a standard phrase)."""
    from http import HTTPStatus  # error replies only: its enum costs a CGI start-up

    try:
        return f"{code} {HTTPStatus(code).phrase}"
    except ValueError:
        return f"{code} Error"


def send_status(
    out: Callable[[bytes], object],
    code: int,
    *,
    style: HeadStyle = HeadStyle.CGI,
    protocol: str = "HTTP/1.1",
    method: str = "GET",
) -> None:
    """A complete short plain-text response with status ``code``, e.g. a 400 for bad input."""
    status = status_line(code)
    Response(out, style=style, protocol=protocol, method=method).send_error(
        status, f"{status}\n".encode("ascii")
    )
