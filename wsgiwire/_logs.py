"""Logging for ``wsgiwire serve``: our own loggers only, files that logrotate can move, JSON.

wsgiwire logs through the ``wsgiwire`` logger and its children
(``wsgiwire.access`` for the access log). :func:`configure_logging` puts one
handler on ``wsgiwire`` and one on ``wsgiwire.access`` and turns their
``propagate`` off; the root logger, and so whatever logging the application
sets up for itself (Django's ``LOGGING``, Flask's ``app.logger``), is left
alone: nothing an app logs appears twice, and none of our lines goes through
the app's handlers.

* ``--log-file PATH`` / ``--access-log-file PATH``: append to a file instead
  of stderr. :func:`reopen_log_files` (the master and the workers call it on
  SIGUSR1) closes and reopens them, so ``logrotate`` can rename a file and
  signal, with no line lost or written to the renamed file afterwards.
* ``--log-format json``: one JSON object per line (``time``, ``level``,
  ``logger``, ``pid``, ``message``; an access-log line also carries its
  fields), for journald, Loki or ELK.
* Timestamps are ISO 8601 with the UTC offset: ``2026-12-05T09:05:02.123+00:00``.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

__all__ = [
    "ACCESS_LOGGER",
    "LOGGER",
    "JSONFormatter",
    "ReopenableFileHandler",
    "TextFormatter",
    "configure_logging",
    "reopen_log_files",
]

LOGGER = "wsgiwire"
ACCESS_LOGGER = "wsgiwire.access"

LOG_FORMATS = ("text", "json")

_TEXT_FORMAT = "%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s"

# The handlers configure_logging installed (to remove them when called again).
_installed: list[tuple[logging.Logger, logging.Handler]] = []
_lock = threading.Lock()
_json = False
# The handler configure_logging put on the access logger (for access_writer()).
_access_handler: logging.Handler | None = None


def json_format() -> bool:
    """True when configure_logging chose ``json`` (access lines then carry their fields)."""
    return _json


def iso_time(created: float) -> str:
    """``created`` (epoch seconds) as local ISO 8601 time with its UTC offset, in ms:
    ``2026-12-05T09:05:02.123+01:00``. From ``time.localtime``, as the access log's
    clock: the datetime module would be one more module in every worker."""
    second = int(created)
    micros = round((created - second) * 1_000_000)  # to the microsecond first, as datetime
    if micros == 1_000_000:
        second, micros = second + 1, 0
    tm = time.localtime(second)
    offset = tm.tm_gmtoff // 60
    sign = "-" if offset < 0 else "+"
    offset = abs(offset)
    return (
        f"{tm.tm_year:04d}-{tm.tm_mon:02d}-{tm.tm_mday:02d}T"
        f"{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d}.{micros // 1000:03d}"
        f"{sign}{offset // 60:02d}:{offset % 60:02d}"
    )


class TextFormatter(logging.Formatter):
    """The classic one-line format, with an ISO 8601 timestamp that names its zone."""

    def __init__(self, fmt: str = _TEXT_FORMAT) -> None:
        super().__init__(fmt)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return iso_time(record.created)


class AccessTextFormatter(logging.Formatter):
    """An access-log line is written as it is: it carries its own timestamp."""

    def format(self, record: logging.LogRecord) -> str:
        return record.getMessage()


class JSONFormatter(logging.Formatter):
    """One JSON object per line; never a raw newline, whatever the message holds."""

    def __init__(self) -> None:
        super().__init__()
        # json is imported only with --log-format json, not into every worker.
        import json

        # ensure_ascii: a latin-1 byte from a request comes out as \u00XX, never raw.
        self._encode = json.JSONEncoder(ensure_ascii=True, default=str).encode

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": iso_time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        fields = getattr(record, "access", None)
        if isinstance(fields, dict):
            data["access"] = fields
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return self._encode(data)


if TYPE_CHECKING:  # StreamHandler is generic in the stubs, not subscriptable on 3.10
    _TextStreamHandler = logging.StreamHandler[IO[str]]
else:
    _TextStreamHandler = logging.StreamHandler


class ReopenableFileHandler(_TextStreamHandler):
    """Appends to ``path``; :meth:`reopen` starts a new file after logrotate moved it.

    Opened line-buffered in append mode, so every process writing the same
    file (the master and each worker) adds whole lines at the end.
    """

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self._retired: IO[str] | None = None
        super().__init__(self._open())

    def _open(self) -> IO[str]:
        return open(self.path, "a", buffering=1, encoding="utf-8", errors="backslashreplace")

    def reopen(self) -> None:
        """Write to a fresh ``path`` from now on.

        The old file is closed at the next line written, not here: called
        from a signal handler, this may have interrupted a write to it.
        """
        stream = self._open()
        self.acquire()
        try:
            if self._retired is not None:
                self._retired.close()
            self._retired, self.stream = self.stream, stream
        finally:
            self.release()

    def emit(self, record: logging.LogRecord) -> None:
        super().emit(record)
        self._close_retired()

    def write_line(self, line: str) -> None:
        """Write one preformatted line (the access log's fast path; see access_writer)."""
        self.acquire()
        try:
            self.stream.write(line + "\n")  # line-buffered: one write() per line
        finally:
            self.release()
        self._close_retired()

    def _close_retired(self) -> None:
        if self._retired is not None:
            self.acquire()
            try:
                retired, self._retired = self._retired, None
            finally:
                self.release()
            if retired is not None:
                retired.close()

    def close(self) -> None:
        self.acquire()
        try:
            try:
                self.stream.close()
                if self._retired is not None:
                    self._retired.close()
                    self._retired = None
            finally:
                super().close()
        finally:
            self.release()


def _handler(path: str | None) -> logging.Handler:
    if path is None or path == "-":
        return logging.StreamHandler(sys.stderr)
    return ReopenableFileHandler(path)


def configure_logging(
    level: str = "info",
    *,
    log_file: str | None = None,
    access_log_file: str | None = None,
    log_format: str = "text",
) -> None:
    """Set up the ``wsgiwire`` and ``wsgiwire.access`` loggers, and nothing else.

    Called again, it replaces what it installed before. Raises ``OSError`` when
    a log file cannot be opened (before any worker starts, so the error is seen).
    """
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}")
    main = _handler(log_file)
    try:
        access = _handler(access_log_file)
    except OSError:
        main.close()
        raise
    if log_format == "json":
        main.setFormatter(JSONFormatter())
        access.setFormatter(JSONFormatter())
    else:
        main.setFormatter(TextFormatter())
        access.setFormatter(AccessTextFormatter())
    global _json, _access_handler
    with _lock:
        _json = log_format == "json"
        _remove_installed()
        ours = logging.getLogger(LOGGER)
        ours.setLevel(getattr(logging, level.upper()))
        ours.addHandler(main)
        ours.propagate = False
        access_logger = logging.getLogger(ACCESS_LOGGER)
        # The access log is on or off by --access-log, not by --log-level.
        access_logger.setLevel(logging.INFO)
        access_logger.addHandler(access)
        access_logger.propagate = False
        _installed.extend([(ours, main), (access_logger, access)])
        _access_handler = access


def access_writer(logger: logging.Logger) -> Callable[[str], None] | None:
    """A direct writer for access lines, or None when the logging machinery must run.

    With text format and nothing but our own handler on ``wsgiwire.access``
    (no filter, no handler an app added), a line is written straight to the
    handler's stream, without a LogRecord: the same bytes, at a fraction of
    the cost per request. Anything else goes through ``logger.handle``.
    """
    handler = _access_handler
    handlers = logger.handlers
    if (
        _json
        or handler is None
        or len(handlers) != 1
        or handlers[0] is not handler
        or logger.filters
        or handler.filters
    ):
        return None
    if isinstance(handler, ReopenableFileHandler):
        return handler.write_line
    if isinstance(handler, logging.StreamHandler):
        return functools.partial(_write_stream_line, handler)
    return None


def _write_stream_line(handler: logging.StreamHandler[Any], line: str) -> None:
    handler.acquire()
    try:
        handler.stream.write(line + "\n")
        handler.stream.flush()
    finally:
        handler.release()


def _remove_installed() -> None:
    for logger, handler in _installed:
        logger.removeHandler(handler)
        handler.close()
    _installed.clear()
    global _access_handler
    _access_handler = None


def reopen_log_files() -> int:
    """Reopen every log file we write (SIGUSR1, after logrotate renamed them); how many.

    Safe to call from a signal handler in the main thread: a handler being
    written to by another thread is swapped under its own lock.
    """
    reopened = 0
    for _, handler in list(_installed):
        if isinstance(handler, ReopenableFileHandler):
            try:
                handler.reopen()
                reopened += 1
            except OSError as exc:
                logging.getLogger(LOGGER).error("cannot reopen %s: %s", handler.path, exc)
    return reopened
