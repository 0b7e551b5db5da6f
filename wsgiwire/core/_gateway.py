"""The only place an application is called.

``call_app`` runs the app, iterates its result into a :class:`Response`,
always calls the result's ``close()``, and maps failures:

* an exception before the head was sent becomes a 500 with a short body
  (the traceback only when ``debug`` is on);
* after the head was sent the response is cut and ``call_app`` returns
  ``False`` so the front-end can signal it (FastCGI appStatus, closing the
  connection);
* every failure is logged once, with the request's method and path;
* once the response is over, ``wsgi.input`` (a spooled body holds a temporary
  file) is closed and ``wsgi.errors`` flushed (a last line without "\\n" is not
  lost), whatever the app or a validator wrapped around them did.
"""

from __future__ import annotations

from .._errors import ClientDisconnected, StartResponseError
from ._apptypes import StartResponse, WSGIApp
from ._environ import request_label
from ._lazylog import lazy_logger
from ._response import Response

# typing and collections.abc cost a CGI start-up about 9 ms: annotations only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterable, Iterator
    from typing import IO, Any, Final

__all__ = [
    "WSGIApp", "StartResponse", "app_steps", "call_app", "FileWrapper", "ErrorStream",
    "request_label",
]

log = lazy_logger("wsgiwire")
# wsgi.errors' logger. A module constant, not a class attribute of ErrorStream:
# the compiled build gives every instance its own copy of a class attribute,
# made anew for each one (each request).
_app_log: Final = lazy_logger("wsgiwire.app")


class FileWrapper:
    """``wsgi.file_wrapper``: iterates a file in blocks; front-ends may send it natively.

    A front-end whose wire carries raw body bytes (SCGI, uwsgi, CGI) can
    recognise this type and use ``os.sendfile`` on ``filelike.fileno()``.
    """

    __slots__ = ("blksize", "filelike")

    def __init__(self, filelike: IO[bytes], blksize: int = 65536) -> None:
        self.filelike = filelike
        self.blksize = blksize

    def __iter__(self) -> Iterator[bytes]:
        read = self.filelike.read
        size = self.blksize
        while True:
            block = read(size)
            if not block:
                return
            yield block

    def close(self) -> None:
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()


class ErrorStream:
    """``wsgi.errors``: text goes to the ``wsgiwire.app`` logger, line by line.

    ``sink`` (optional) also receives every write as UTF-8 bytes: FastCGI
    uses it to send FCGI_STDERR records to the web server's error log.
    """

    __slots__ = ("_pending", "_sink")

    def __init__(self, sink: Callable[[bytes], None] | None = None) -> None:
        self._sink = sink
        self._pending = ""

    def write(self, text: str) -> int:
        if type(text) is not str:
            raise TypeError(f"wsgi.errors.write() takes str, not {type(text).__name__}")
        if self._sink is not None and text:
            self._sink(text.encode("utf-8", "replace"))
        data = self._pending + text
        *lines, self._pending = data.split("\n")
        for line in lines:
            _app_log.error("%s", line)
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if self._pending:
            _app_log.error("%s", self._pending)
            self._pending = ""


_SERVER_ERROR: Final = b"500 Internal Server Error\n"


def call_app(
    app: WSGIApp,
    environ: dict[str, Any],
    response: Response,
    *,
    debug: bool = False,
) -> bool:
    """Run ``app`` for one request. True when the response went out complete."""
    for _ in app_steps(app, environ, response, debug=debug):
        pass
    return response.complete


def app_steps(
    app: WSGIApp,
    environ: dict[str, Any],
    response: Response,
    *,
    debug: bool = False,
    pause: Callable[[], bool] | None = None,
) -> Generator[None, None, None]:
    """``call_app`` as a generator: it yields after a body chunk when ``pause()`` is true.

    A front-end that calls the app in its event loop uses this to suspend a
    response the peer cannot take yet and to resume it (``next()``) once the
    socket drains; ``close()`` on the generator abandons the response (the
    app's iterable is closed, as PEP 3333 asks). Once it is exhausted,
    ``response.complete`` is ``call_app``'s answer. (It returns nothing: a
    return value travels in a StopIteration, which costs a compiled caller
    an exception per request; a ``for`` loop ends without one.)
    """
    result: Iterable[bytes] | None = None
    # Held before the app runs: middleware (wsgiref.validate among them) may
    # replace these keys with wrappers that must not be closed.
    body = environ.get("wsgi.input")
    errors = environ.get("wsgi.errors")
    if response.environ is None:
        response.environ = environ
    try:
        result = app(environ, response.start_response)
        # HEAD, 1xx, 204, 304 send no body: once the head is known, stop iterating.
        if not (response.no_body and response.status is not None):
            if (
                response.file_sender is not None
                and type(result) is FileWrapper
                and response.status is not None
                and _has_fileno(result.filelike)
            ):
                response.send_file(result.filelike)
            else:
                for chunk in result:
                    response.write(chunk)
                    if response.no_body:
                        break
                    if pause is not None and pause():
                        yield
        response.finish()
    except ClientDisconnected:
        log.info("client went away during %s", request_label(environ))
    except Exception as exc:  # the app's failure, whatever it is, is answered here
        _fail(exc, environ, response, debug)
    finally:
        # hasattr, not getattr(result, "close", None): a result without close()
        # (a list) costs the compiled build's getattr an AttributeError.
        if result is not None and hasattr(result, "close"):
            try:
                result.close()
            except Exception:
                log.exception("error closing the response of %s", request_label(environ))
        _end_request(body, errors)


def _has_fileno(filelike: object) -> bool:
    fileno = getattr(filelike, "fileno", None)
    if fileno is None:
        return False
    try:
        fileno()
    except Exception:  # io.UnsupportedOperation for BytesIO, OSError when closed
        return False
    return hasattr(filelike, "tell") and hasattr(filelike, "seek")


def _end_request(body: object, errors: object) -> None:
    flush = getattr(errors, "flush", None)
    if flush is not None:
        try:
            flush()
        except Exception:
            log.exception("error flushing wsgi.errors")
    close = getattr(body, "close", None)
    if close is not None:
        try:
            close()
        except Exception:
            log.exception("error closing wsgi.input")


def _fail(exc: Exception, environ: dict[str, Any], response: Response, debug: bool) -> None:
    """Log the app's failure; answer 500 if the head is not out yet (then the
    response is complete), else leave it cut."""
    response.failed = True
    what = "misuse of start_response" if isinstance(exc, StartResponseError) else "error"
    log.error(
        "application %s in %s: %s: %s",
        what,
        request_label(environ),
        type(exc).__name__,
        exc,
        exc_info=exc,
    )
    if response.head_sent:
        return
    body = _SERVER_ERROR
    if debug:
        import traceback  # the debug page only

        body += "".join(traceback.format_exception(exc)).encode("utf-8", "replace")
    response.send_error("500 Internal Server Error", body)
