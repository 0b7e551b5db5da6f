"""The request runner: one request's trip through the app, in the loop or on an app thread.

A :class:`Run` turns a complete :class:`Request` into response output; the
transport (``_connection.py``) owns the socket and writes that output. Two ways:

* **inline** (no ``--threads``): the loop thread steps the app with
  :func:`~wsgiwire.core._gateway.app_steps`. Output is framed by the codec into
  ``pending``; past ``FLUSH_AT`` bytes the run yields, the transport writes what
  the socket takes, and the run resumes when the socket drains. A reader that
  never reads holds one suspended run, not the worker. An app that writes
  through the ``write()`` callable cannot be suspended mid-call: past
  ``SPILL_AT`` unsent bytes its output goes to the socket as far as the socket
  takes it now, and the rest to a temporary file (as nginx buffers a reply to
  ``fastcgi_temp_path``) that the transport sends with ``sendfile`` as the
  reader reads: a reader that never reads costs disk, not the worker's memory.
* **threaded**: an app thread calls the app. Output never touches the codec or
  the socket from that thread: it is posted as ``(kind, payload)`` items under
  the run's lock, and the loop is woken to frame and write them. A thread whose
  reply is more than ``QUEUE_MAX`` bytes ahead of the socket waits (bounded by
  the write timeout) for the loop to drain it.

Files from ``wsgi.file_wrapper`` (raw-body protocols) become a
:class:`FileSegment`: a duplicate of the file's descriptor that the transport
sends with non-blocking ``os.sendfile`` as the socket turns writable.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections.abc import Generator
from typing import IO, TYPE_CHECKING, Any, Final, final

from .._errors import ClientDisconnected
from .._events import RequestStarted, ResponseData, ResponseErrorData
from ..core._body import BodyBuffer
from ..core._gateway import ErrorStream, app_steps, call_app, request_label
from ..core._response import Response
from ._base import Buffer, Codec, Transport

if TYPE_CHECKING:
    from ._base import Loop

__all__ = ["DATA", "END", "ERRORS", "FILE", "FLUSH_AT", "FileSegment", "Output", "Request",
           "Run", "cut_buffers"]

log = logging.getLogger("wsgiwire")

# Response bytes gathered before the transport is asked to write them.
FLUSH_AT: Final = 262144
# A threaded reply may be this far ahead of the socket before its thread waits.
QUEUE_MAX: Final = 4 << 20
# An inline run holds at most this many unsent bytes in memory within one step
# (the app's write() calls): then the socket takes what it can, the file the rest.
SPILL_AT: Final = 1 << 20
# writev() takes at most IOV_MAX (1024 on Linux) buffers at once.
_IOV_MAX: Final = 1024
# Kinds of items an app thread posts to the loop.
DATA: Final = 0
ERRORS: Final = 1
FILE: Final = 2
END: Final = 3
# Block size for a file_wrapper file that sendfile cannot send.
_READ_BLOCK: Final = 65536


class Request:
    __slots__ = ("body", "data", "environ", "id", "keep_conn", "role")

    def __init__(self, event: RequestStarted, environ: dict[str, Any], body: BodyBuffer):
        self.id = event.request_id
        self.environ = environ
        self.body = body
        self.data: BodyBuffer | None = None
        self.role = event.role
        self.keep_conn = event.keep_conn


@final
class FileSegment:
    """``left`` bytes of a file from ``offset``, to go out by sendfile; owns ``fd``."""

    __slots__ = ("fd", "left", "offset")

    def __init__(self, fd: int, offset: int, left: int) -> None:
        self.fd = fd
        self.offset = offset
        self.left = left

    def __len__(self) -> int:
        return 0  # holds no memory: never counts against the outbox limits

    def close(self) -> None:
        if self.fd >= 0:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = -1


def file_segment(filelike: IO[bytes], count: int) -> FileSegment | None:
    """A segment for ``count`` bytes (-1: to the end) of ``filelike`` from its position.

    ``None`` when the file cannot go by sendfile (a pipe, socket or device has no
    position or size, and a /proc file says 0 whatever it holds). The file's
    position moves past the segment, as if it had been read.
    """
    fd = filelike.fileno()
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or not info.st_size:
        return None
    offset = filelike.tell()
    if count < 0:
        count = max(0, info.st_size - offset)
    segment = FileSegment(os.dup(fd), offset, count)
    filelike.seek(offset + count)
    return segment


@final
class Output:
    """One run's output: where its response, ``wsgi.errors`` and file sends go.

    Inline, output is framed by the codec into ``pending`` for the transport;
    threaded, it is posted as items under ``cond`` for the loop (see the module
    docstring). An Output holds no reference to its :class:`Run`, response or
    environ (those hold it: the response's ``out``, ``wsgi.errors``' sink), so
    a finished request's objects form no reference cycle and go at once, by
    reference counting. (With the cycles, a worker ran a garbage collection
    every ~65 hello requests, and each request cost about 10 µs more CPU.)
    """

    __slots__ = (
        "codec",
        "cond",
        "cut",
        "done",
        "items",
        "loop",
        "pending",
        "pending_bytes",
        "posted",
        "relieve",
        "request_id",
        "spill",
        "spilled",
        "threaded",
        "transport",
        "unsent",
    )

    def __init__(
        self, loop: Loop, codec: Codec, request_id: int, transport: Transport, threaded: bool
    ) -> None:
        self.loop = loop
        self.codec = codec
        self.request_id = request_id
        # The connection's side the output may use: ``write_now`` and ``label``
        # (inline, within a step) and ``closed`` (read by the app thread).
        self.transport = transport
        self.threaded = threaded
        self.done = False  # no more output will come (the app returned, or the run was dropped)
        # inline: framed output not yet handed to the transport
        self.pending: list[Buffer | FileSegment] = []
        self.pending_bytes = 0
        # inline: past SPILL_AT, give the socket what it takes and spill the
        # rest (False once spilling failed: the rest of the reply waits in memory)
        self.relieve = not threaded
        # inline: the spill segment at the end of ``pending`` that further
        # output extends (see SPILL_AT), this reply's spill files (to keep
        # their sum under Limits.max_reply_spool), and whether it was cut for it
        self.spill: FileSegment | None = None
        self.spilled: list[FileSegment] | None = None
        self.cut = False
        # threaded: items posted, not yet taken by the loop; the loop's unsent bytes
        self.cond: threading.Condition | None = threading.Condition() if threaded else None
        self.items: list[tuple[int, Any]] = []
        self.posted = 0
        self.unsent = 0

    # -- inline ------------------------------------------------------------
    def write(self, data: bytes) -> None:
        """(inline) The response's output: framed into ``pending``."""
        if self.cut:
            raise ClientDisconnected()  # (an app that went on writing after the cut)
        self.pending += self.codec.send(ResponseData(self.request_id, data))
        self.pending_bytes += len(data)

    def wrote(self) -> None:
        """(inline) The app runs on after a ``write()``: past ``SPILL_AT`` unsent
        bytes, relieve memory (see SPILL_AT).

        Not called after the iterable's chunks: the step pauses there (``full``),
        and the chunk, which the paused iteration holds anyway, goes out from
        memory (spilling a 1 MiB body cost more than the rest of its request).
        """
        if self.pending_bytes >= SPILL_AT and self.relieve:
            self._relieve()

    def full(self) -> bool:
        """(inline) Enough output for the transport to write: the step pauses."""
        return self.pending_bytes >= FLUSH_AT

    def take_pending(self) -> list[Buffer | FileSegment]:
        """The framed output so far (inline), handed to the transport."""
        pending = self.pending
        self.pending = []
        self.pending_bytes = 0
        self.spill = None  # the transport's now: never extended again
        return pending

    def _relieve(self) -> None:
        """(inline, within a step) Too much unsent output: give the socket what it
        takes now, spill the rest to a temporary file (see SPILL_AT)."""
        pending = self.pending
        first = 0  # the memory buffers at the end of ``pending``, in order
        for index in range(len(pending) - 1, -1, -1):
            if type(pending[index]) is FileSegment:
                first = index + 1
                break
        buffers: list[Buffer] = []
        for item in pending[first:]:
            if type(item) is not FileSegment:
                buffers.append(item)
        if not first:
            sent = self.transport.write_now(buffers)
            if sent < 0:
                raise ClientDisconnected()
            if sent:
                buffers = cut_buffers(buffers, sent)
                self.pending_bytes -= sent
                pending[:] = buffers
                if self.pending_bytes < SPILL_AT // 2:
                    return
        segment = self.spill
        if segment is not None and not (first and pending[first - 1] is segment):
            segment = None
        self._check_spool(buffers)
        try:
            if segment is None:
                import tempfile  # only to spill a reply: not in every idle worker

                with tempfile.TemporaryFile(prefix="wsgiwire-reply-") as file:
                    segment = FileSegment(os.dup(file.fileno()), 0, 0)
            written = _write_all(segment.fd, buffers)
        except OSError as exc:
            if segment is not None and segment is not self.spill:
                segment.close()
            log.warning("cannot spill the reply to %s to a temporary file (%s); it waits "
                        "in memory", self.transport.label(self.request_id), exc.strerror)
            self.relieve = False  # once: the rest of this reply stays in memory
            return
        segment.left += written
        if segment is not self.spill:
            if self.spilled is None:
                self.spilled = []
            self.spilled.append(segment)
            self.spill = segment
            pending[len(pending) - len(buffers):] = [segment]
        else:
            del pending[len(pending) - len(buffers):]
        self.pending_bytes = 0

    def _check_spool(self, buffers: list[Buffer]) -> None:
        """Refuse to spill ``buffers`` past ``Limits.max_reply_spool``: cut the reply.

        What counts is what this reply holds in temporary files now (a file the
        transport sent whole is closed, and gone). The app's ``write()`` then
        raises ``ClientDisconnected`` (the reader stalled, as past the write
        timeout with threads); the transport closes the connection, so the web
        server sees the reply cut, not short.
        """
        spilled = self.spilled
        on_disk = 0
        if spilled is not None:
            spilled[:] = [segment for segment in spilled if segment.fd >= 0]
            for segment in spilled:
                on_disk += segment.offset + segment.left
        limit = self.loop.config.limits.max_reply_spool
        if on_disk + sum(map(len, buffers)) <= limit:
            return
        self.cut = True
        log.warning("the reply to %s is cut and its connection closed: its reader does not "
                    "read, and more than max_reply_spool (%d bytes) of it would wait in "
                    "temporary files", self.transport.label(self.request_id), limit)
        raise ClientDisconnected()

    def discard(self) -> None:
        """The connection is gone: drop what waits; further output is refused."""
        for item in self.pending:
            if type(item) is FileSegment:
                item.close()
        self.pending.clear()
        self.spill = None
        cond = self.cond
        if cond is None:
            self.done = True
            return
        with cond:
            self.done = True  # any further output from the thread is dropped
            for kind, payload in self.items:
                if kind == FILE:
                    payload.close()
            self.items.clear()
            cond.notify_all()

    # -- threaded ----------------------------------------------------------
    def post_data(self, data: bytes) -> None:
        """(app thread) The response's output: posted to the loop."""
        self.post(DATA, data, len(data))

    def post(self, kind: int, payload: Any, size: int) -> None:
        cond = self.cond
        if cond is None:
            return
        wake = False
        with cond:
            if self.done:
                if kind == FILE:
                    payload.close()
                if kind == DATA:
                    raise ClientDisconnected()
                return
            self.items.append((kind, payload))
            self.posted += size
            wake = len(self.items) == 1
            if kind == END:
                self.done = True
            elif self.posted + self.unsent > QUEUE_MAX:
                # The loop writes what it has; wait until the socket took most of it.
                self.loop.wake(self.transport)
                wake = False
                deadline = time.monotonic() + self.loop.config.limits.write_timeout
                while not self.done and self.posted + self.unsent > QUEUE_MAX // 2:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise ClientDisconnected()
                    cond.wait(left)
                if self.done:
                    raise ClientDisconnected()
        if wake:
            self.loop.wake(self.transport)

    def take_items(self) -> list[tuple[int, Any]]:
        """(loop) The items posted since the last call."""
        cond = self.cond
        if cond is None:
            return []
        with cond:
            items = self.items
            self.items = []
            self.posted = 0
            return items

    def set_unsent(self, unsent: int) -> None:
        """(loop) How many reply bytes wait in the transport; wakes a waiting thread."""
        cond = self.cond
        if cond is None or unsent == self.unsent:
            return
        with cond:
            self.unsent = unsent
            if unsent <= QUEUE_MAX // 2:
                cond.notify_all()

    # -- both --------------------------------------------------------------
    def errors(self, data: bytes) -> None:
        """``wsgi.errors``' copy for the web server's error log (FCGI_STDERR)."""
        if self.done:
            return
        if self.threaded:
            self.post(ERRORS, data, len(data))
        else:
            self.pending += self.codec.send(ResponseErrorData(self.request_id, data))

    def send_file(self, filelike: IO[bytes], count: int) -> int:
        segment = file_segment(filelike, count)
        if segment is None:
            return self._send_by_reading(filelike, count)
        if self.threaded:
            self.post(FILE, segment, 0)
        else:
            self.pending.append(segment)
        return segment.left

    def _send_by_reading(self, filelike: IO[bytes], count: int) -> int:
        """Send up to ``count`` bytes (-1: all) of ``filelike`` as read; the count sent.

        A pipe or device gives what it gives: these blocks go through the same
        output path as any body (inline, they wait in memory for the socket).
        """
        sent = 0
        while count < 0 or sent < count:
            block = filelike.read(_READ_BLOCK if count < 0 else min(_READ_BLOCK, count - sent))
            if not block:
                break
            # The raw body, after the head; inline, nothing pauses between blocks.
            if self.threaded:
                self.post_data(block)
            else:
                self.write(block)
                self.wrote()
            sent += len(block)
        return sent


@final
class Run:
    """One request's run of the app; see the module docstring for the two modes."""

    __slots__ = (
        "label",
        "loop",
        "ok",
        "output",
        "request",
        "response",
        "started",
        "steps",
        "threaded",
    )

    def __init__(
        self, loop: Loop, codec: Codec, request: Request, transport: Transport, *,
        threaded: bool,
    ) -> None:
        self.loop = loop
        self.request = request
        self.threaded = threaded
        self.ok = False
        self.steps: Generator[None, None, None] | None = None
        self.started = 0.0
        self.label = ""  # threaded: "METHOD uri", for the scoreboard and the watchdog
        output = self.output = Output(loop, codec, request.id, transport, threaded)
        environ = request.environ
        raw = codec.raw_body
        # wsgi.errors also goes to the web server's error log (FCGI_STDERR), for
        # as long as the request runs (a late write goes to the log only); on a
        # raw-body connection nothing but the reply travels: the log only.
        environ["wsgi.errors"] = ErrorStream() if raw else ErrorStream(output.errors)
        self.response = Response(
            output.post_data if threaded else output.write,
            method=environ["REQUEST_METHOD"],
            style=codec.head_style,
            protocol=environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
            file_sender=output.send_file if raw else None,
            after_write=None if threaded else output.wrote,
        )

    def _name(self) -> str:
        """The request, for a log line."""
        return self.label or request_label(self.request.environ)

    # -- inline ------------------------------------------------------------
    def step(self) -> bool:
        """Run the app until it has ``FLUSH_AT`` bytes to write or ends; True when it ended."""
        steps = self.steps
        if steps is None:
            steps = self.steps = app_steps(
                self.loop.app, self.request.environ, self.response,
                debug=self.loop.config.debug, pause=self.output.full,
            )
        for _ in steps:
            return False  # paused: resumed once the socket drains
        self.ok = self.response.complete
        self.output.done = True
        self.steps = None
        return True

    def abandon(self) -> None:
        """The connection is gone: close a suspended app iterable, drop what waits."""
        steps = self.steps
        if steps is not None:
            self.steps = None
            try:
                steps.close()
            except Exception:
                log.exception("error abandoning %s", self._name())
        self.output.discard()

    # -- threaded ----------------------------------------------------------
    def execute(self) -> None:
        """Run the app on this (app) thread; the result is posted to the loop."""
        ok = False
        try:
            if self.output.transport.closed:  # a request whose peer has left is not started
                log.info("%s not run: its client went away while it waited", self._name())
                stream = self.request.environ.get("wsgi.input")
                if stream is not None:
                    stream.close()  # a spooled body's temporary file goes now
            else:
                ok = call_app(self.loop.app, self.request.environ, self.response,
                              debug=self.loop.config.debug)
        except Exception:
            log.exception("internal error running %s", self._name())
        self.output.post(END, ok, 0)


def cut_buffers(buffers: list[Any], sent: int) -> list[Any]:
    """``buffers`` less their first ``sent`` bytes (a partial write)."""
    first = 0
    while first < len(buffers) and sent >= len(buffers[first]):
        sent -= len(buffers[first])
        first += 1
    rest = buffers[first:]
    if sent and rest:
        part = rest[0]
        rest[0] = (part if type(part) is memoryview else memoryview(part))[sent:]
    return rest


def _write_all(fd: int, buffers: list[Buffer]) -> int:
    """Write every byte of ``buffers`` to the file ``fd`` at its position; the count."""
    total = 0
    while buffers:
        batch = buffers[:_IOV_MAX]
        size = sum(map(len, batch))
        written = os.writev(fd, batch)
        total += written
        buffers = cut_buffers(batch, written) + buffers[_IOV_MAX:] if written < size \
            else buffers[_IOV_MAX:]
    return total
