"""One accepted connection: bytes in, requests to the app, replies out (any protocol)."""

from __future__ import annotations

import _socket
import contextlib
import logging
import os
import select
import stat
import time
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Any

from ..core.body import BodyBuffer, attach_input
from ..core.gateway import ErrorStream, call_app, request_label
from ..core.response import HeadStyle, Response
from ..errors import ClientDisconnected, ProtocolError
from ..events import (
    NEED_DATA,
    BodyData,
    BodyEnd,
    ConnectionClosed,
    Event,
    FilterData,
    FilterDataEnd,
    NeedData,
    RequestAborted,
    RequestStarted,
    ResponseErrorData,
    Role,
)
from .base import Buffer, status_reply
from .listeners import close_quietly

if TYPE_CHECKING:
    from .worker import Worker

__all__ = ["Connection", "Lingerer", "Request", "peer_text"]

log = logging.getLogger("wsgiwire")

# 64 KiB: below glibc's mmap threshold, so a read does not map and unmap memory
# (a 256 KiB read did, on every one-request connection).
RECV_SIZE = 65536
# Response bytes buffered before a write is forced while the app still runs.
_FLUSH_AT = 262144
# Reply bytes that may wait for a slow reader while the app called in the loop
# goes on; past this the app's output waits for the socket instead.
_OUTBOX_MAX = 16 << 20
# sendmsg() takes at most IOV_MAX (1024 on Linux) buffers at once.
_IOV_MAX = 1024
# How much of the last bytes received a protocol-error log line shows.
_SHOWN_BYTES = 48
# Lingering close: how long and how much to drain after a refusal (nginx's
# lingering_time is 30 s; a gateway peer is local and fast, so less will do).
LINGER_TIME = 5.0
_LINGER_BYTES = 64 << 20
# Block size for a file_wrapper file that sendfile cannot send (see sendfile()).
_READ_BLOCK = 65536


class Request:
    __slots__ = ("body", "data", "environ", "id", "keep_conn", "role")

    def __init__(self, event: RequestStarted, environ: dict[str, Any], body: BodyBuffer):
        self.id = event.request_id
        self.environ = environ
        self.body = body
        self.data: BodyBuffer | None = None
        self.role = event.role
        self.keep_conn = event.keep_conn


class Connection:
    """One accepted socket: feeds the codec, runs requests, writes replies."""

    __slots__ = (
        "busy",
        "close_after_flush",
        "closed",
        "codec",
        "fd",
        "head_since",
        "last_active",
        "last_bytes",
        "last_done",
        "loop",
        "outbox",
        "outbox_bytes",
        "outbox_since",
        "peer",
        "requests",
        "sock",
        "watching",
    )

    def __init__(self, loop: Worker, sock: _socket.socket, peer: object) -> None:
        self.loop = loop
        self.sock = sock
        self.fd = sock.fileno()
        self.watching = 0  # what the loop polls this socket for (0: nothing)
        self.peer = peer
        self.codec = loop.config.driver.new_codec(loop.config)
        self.requests: dict[int, Request] = {}
        self.busy = False  # a request of this connection is running on a thread
        self.closed = False
        self.last_active = time.monotonic()
        # When the first byte of a request head arrived (0: not reading a head):
        # the header timeout runs from here, so a trickling client is cut.
        self.head_since = 0.0
        # Reply bytes the peer could not take yet (see write(block=False)).
        self.outbox: list[Buffer] | None = None
        self.outbox_bytes = 0
        self.outbox_since = 0.0
        self.close_after_flush = False
        self.last_done = False
        self.last_bytes = b""

    # -- reading --------------------------------------------------------
    def on_readable(self) -> None:
        try:
            data = self.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close()
            return
        now = self.last_active = time.monotonic()
        if data and not self.requests and not self.head_since:
            self.head_since = now
        self.last_bytes = data[:_SHOWN_BYTES]  # for the log line of a protocol error
        self.codec.receive_data(data)
        try:
            self.pump()
        except ClientDisconnected:
            pass

    def pump(self) -> None:
        """Handle every event the codec has; stop while a request runs on a thread."""
        codec = self.codec
        requests = self.requests
        while not self.closed and not self.busy and self.outbox is None:
            if self.last_done and not requests:
                break  # nothing after a request the peer said was the last
            event: Event | NeedData | None = None
            try:
                event = codec.next_event()
                if event is NEED_DATA:
                    break
                # Every request's two events here; the others in dispatch().
                kind = type(event)
                if kind is RequestStarted:
                    self.start(event)  # type: ignore[arg-type]
                elif kind is BodyEnd:
                    request = requests[event.request_id]  # type: ignore[union-attr]
                    if request.role is not Role.FILTER:
                        self.ready(request)
                else:
                    self.dispatch(event)
            except ProtocolError as exc:
                # An error from the codec names its request itself (or none:
                # the connection's fault); one from handling an event is that
                # event's request's.
                if exc.request_id is None and event is not None:
                    exc.request_id = getattr(event, "request_id", None)
                self.protocol_error(exc)
                return
        if self.closed:
            return
        if self.head_since and not requests and codec.idle:
            self.head_since = 0.0  # bytes that started no request (e.g. a late ABORT)
        housekeeping = codec.data_to_send()
        if housekeeping:
            self.write([housekeeping])
        if codec.should_close and not requests and not self.busy:
            # Input may still be on its way: the rest of a request the codec
            # refused (housekeeping replies), or bytes past a body (nginx with
            # request buffering off). Drain it rather than reset the peer.
            self.close_soon(linger=bool(housekeeping) or getattr(codec, "discarded_bytes", 0) > 0)

    def dispatch(self, event: Event | NeedData) -> None:
        """Handle an event other than RequestStarted and BodyEnd (``pump`` takes those)."""
        kind = type(event)
        if kind is BodyData:
            self.requests[event.request_id].body.feed(event.data)  # type: ignore[union-attr]
        elif kind is FilterData:
            request = self.requests[event.request_id]  # type: ignore[union-attr]
            if request.data is None:
                request.data = BodyBuffer(None, self.loop.config.limits)
            request.data.feed(event.data)  # type: ignore[union-attr]
        elif kind is FilterDataEnd:
            self.ready(self.requests[event.request_id])  # type: ignore[union-attr]
        elif kind is RequestAborted:
            request_id = event.request_id  # type: ignore[union-attr]
            aborted = self.requests.pop(request_id, None)
            if aborted is not None:
                aborted.body.discard()
                log.info("request aborted by the web server: %s", request_label(aborted.environ))
            self.write(self.codec.send_end(request_id, 1))
        elif kind is ConnectionClosed:
            self.close()

    def start(self, event: RequestStarted) -> None:
        config = self.loop.config
        environ, declared = self.loop.builder.build_from_strings(
            event.params, script_name_in_path_info=event.script_name_in_path_info
        )
        if config.base_environ:
            for key, value in config.base_environ.items():
                environ.setdefault(key, value)
        if event.role is not Role.RESPONDER:
            environ["FCGI_ROLE"] = event.role.name
        request_id = event.request_id
        try:
            body = BodyBuffer(declared, config.limits)
        except ProtocolError as exc:
            exc.request_id = request_id
            raise
        self.requests[request_id] = Request(event, environ, body)
        self.head_since = 0.0

    # -- running the app ------------------------------------------------
    def ready(self, request: Request) -> None:
        environ = request.environ
        try:
            stream = request.body.finish()
        except ProtocolError as exc:
            exc.request_id = request.id
            raise
        attach_input(environ, stream, terminated=request.body.declared is None)
        if request.data is not None:
            environ["wsgiwire.fcgi_data"] = request.data.finish()
        pool = self.loop.pool
        if pool is None:
            self.run(request)
            return
        if not pool.submit(self, request):
            self.requests.pop(request.id, None)
            log.warning("overloaded: refused %s", request_label(environ))
            with contextlib.suppress(ClientDisconnected):
                self.write(self.loop.config.driver.overload_reply(self.codec, request.id))
            return
        self.busy = True
        self.loop.pause(self)

    def run(self, request: Request) -> None:
        """Call the app for ``request`` and write the whole reply (any thread)."""
        codec = self.codec
        request_id = request.id
        pending: list[Buffer] = []
        size = 0

        inline = self.loop.pool is None

        send_data = codec.send_data

        def out(data: bytes) -> None:
            nonlocal size
            pending.extend(send_data(request_id, data))
            size += len(data)
            if size >= _FLUSH_AT:
                # In the loop, up to _OUTBOX_MAX of a reply may wait for a slow
                # reader without holding up other connections; past that the
                # app's output waits for the socket (memory stays bounded).
                self.write(pending, block=not inline or self.outbox_bytes >= _OUTBOX_MAX)
                pending.clear()
                size = 0

        environ = request.environ
        send_file = None
        driver = self.loop.config.driver
        if not driver.raw_body:
            # wsgi.errors also goes to the web server's error log (FCGI_STDERR).
            environ["wsgi.errors"] = ErrorStream(
                lambda data: pending.extend(codec.send_chunks(ResponseErrorData(request_id, data)))
            )
        else:
            # Nothing but the reply travels on a raw-body connection: the log only.
            environ["wsgi.errors"] = ErrorStream()

            def send_file(filelike: IO[bytes], count: int) -> int:
                nonlocal size
                self.write(pending)  # blocking: sendfile follows in order
                pending.clear()
                size = 0
                return self.sendfile(filelike, count)

        response = Response(
            out,
            method=environ["REQUEST_METHOD"],
            style=driver.head_style,
            protocol=environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
            file_sender=send_file,
        )
        loop = self.loop
        started = loop.request_begins(environ)
        try:
            ok = call_app(loop.app, environ, response, debug=loop.config.debug)
        except ClientDisconnected:
            ok = False
        loop.request_done(ok, environ, response, started)
        self.requests.pop(request_id, None)
        if self.closed:
            return
        pending.extend(codec.send_end(request_id, 0 if ok else 1))
        # A request without keep-alive was the connection's last: no more are read.
        self.last_done = codec.should_close
        try:
            # In the loop, a reply the peer cannot take at once waits in the outbox.
            self.write(pending, block=not inline)
        except ClientDisconnected:
            pass
        if not ok and driver.head_style is not HeadStyle.CGI:
            # uwsgi/SCGI have no way to say "cut" but closing the connection.
            self.close_soon()

    # -- errors ---------------------------------------------------------
    def protocol_error(self, exc: ProtocolError) -> None:
        self.loop.note_malformed(exc)
        peer = peer_text(self.peer)
        shown = self.last_bytes.decode("latin-1").encode("unicode_escape").decode("ascii")
        log.warning(
            "%s protocol error from %s: %s (last bytes received: '%s'%s)",
            self.loop.config.driver.name,
            peer,
            exc.msg,
            shown,
            "..." if len(self.last_bytes) >= _SHOWN_BYTES else "",
        )
        request_id = exc.request_id
        if request_id is not None and not self.closed:
            try:
                chunks = status_reply(
                    self.codec, request_id, exc.status_hint, self.loop.config.driver.head_style
                )
            except ProtocolError:
                chunks = []
            if chunks:
                with contextlib.suppress(ClientDisconnected):
                    self.write(chunks)
        self.requests.pop(request_id or 0, None)
        with contextlib.suppress(ProtocolError):
            housekeeping = self.codec.data_to_send()
            if housekeeping:
                with contextlib.suppress(ClientDisconnected):
                    self.write([housekeeping])
        self.close(linger=True)

    # -- writing --------------------------------------------------------
    def write(self, buffers: Sequence[Buffer], *, block: bool = True) -> None:
        """Write every buffer; while the socket is full, wait (bounded) or park the rest.

        With ``block=False`` (a finished reply, app called in the loop) what the
        peer cannot take yet goes to the outbox, flushed when the socket turns
        writable, so one slow reader never holds up the other connections.
        """
        if self.closed:
            raise ClientDisconnected()
        left = sum(map(len, buffers))  # bytes still to write
        if self.outbox is not None:
            self.outbox.extend(buffers)
            self.outbox_bytes += left
            if not block:
                return
            # Blocking now: what waited goes first, in order.
            buffers, left, self.outbox, self.outbox_bytes = self.outbox, self.outbox_bytes, None, 0
            self.loop.done_writing(self)
        sock = self.sock
        deadline = 0.0
        views = buffers  # copied only if a partial write has to cut into one
        first = 0
        while left:
            try:
                # All in one sendmsg() unless there are too many buffers or a
                # write was partial.
                if not first and len(views) <= _IOV_MAX:
                    sent = sock.sendmsg(views)
                else:
                    sent = sock.sendmsg(views[first : first + _IOV_MAX])
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as exc:
                log.info("client %s went away: %s", peer_text(self.peer), exc.strerror)
                self.close()
                raise ClientDisconnected() from None
            if sent:
                left -= sent
                if not left:
                    break
                deadline = 0.0
                # A partial write: skip the buffers it took, cut into the next
                # (in a copy: the caller's list is left as it was).
                cut = views if isinstance(views, list) and views is not buffers else list(views)
                while sent >= len(cut[first]):
                    sent -= len(cut[first])
                    first += 1
                if sent:
                    cut[first] = memoryview(cut[first])[sent:]
                views = cut
                continue
            if not block:
                self.outbox = list(views[first:])
                self.outbox_bytes = left
                self.outbox_since = time.monotonic()
                self.loop.want_write(self)
                return
            if not deadline:
                deadline = time.monotonic() + self.loop.config.limits.write_timeout
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not _wait_writable(sock, remaining):
                log.warning("write timeout to %s; connection closed", peer_text(self.peer))
                self.close()
                raise ClientDisconnected()
        self.last_active = time.monotonic()

    def on_writable(self) -> None:
        """The socket can take more of the outbox; resume reading once it is empty."""
        outbox = self.outbox
        if outbox is None or self.closed:
            return
        self.outbox = None
        self.outbox_bytes = 0
        try:
            self.write(outbox, block=False)
        except ClientDisconnected:
            return
        if self.outbox is not None:
            return
        if self.close_after_flush:
            self.close()  # no need to poll for reading first (an SCGI/uwsgi reply's end)
            return
        self.loop.done_writing(self)
        with contextlib.suppress(ClientDisconnected):
            self.pump()

    def sendfile(self, filelike: IO[bytes], count: int) -> int:
        """Write ``count`` bytes (-1: all) of ``filelike`` from its position with os.sendfile."""
        if self.closed:
            raise ClientDisconnected()
        fd = filelike.fileno()
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or not info.st_size:
            # A pipe, socket or device has no position or size, and a /proc file
            # says 0 whatever it holds: read it and write what it gives.
            return self._send_by_reading(filelike, count)
        offset = filelike.tell()
        if count < 0:
            count = max(0, info.st_size - offset)
        sent = 0
        out_fd = self.sock.fileno()
        deadline = 0.0
        while sent < count:
            try:
                n = os.sendfile(out_fd, fd, offset + sent, count - sent)
            except (BlockingIOError, InterruptedError):
                n = -1
            except OSError as exc:
                log.info("client %s went away: %s", peer_text(self.peer), exc.strerror)
                self.close()
                raise ClientDisconnected() from None
            if n == 0:
                break  # the file ended early; Response.finish() reports a short body
            if n > 0:
                sent += n
                deadline = 0.0
                continue
            if not deadline:
                deadline = time.monotonic() + self.loop.config.limits.write_timeout
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not _wait_writable(self.sock, remaining):
                log.warning("write timeout to %s; connection closed", peer_text(self.peer))
                self.close()
                raise ClientDisconnected()
        filelike.seek(offset + sent)
        self.last_active = time.monotonic()
        return sent

    def _send_by_reading(self, filelike: IO[bytes], count: int) -> int:
        """Write up to ``count`` bytes (-1: all) of ``filelike`` as read; the count written."""
        sent = 0
        while count < 0 or sent < count:
            block = filelike.read(_READ_BLOCK if count < 0 else min(_READ_BLOCK, count - sent))
            if not block:
                break
            self.write([block])
            sent += len(block)
        return sent

    def close_soon(self, *, linger: bool = False) -> None:
        """Close once the outbox is written (at once when it is empty)."""
        if self.outbox is not None:
            self.close_after_flush = True
            return
        self.close(linger=linger)

    def close(self, *, linger: bool = False) -> None:
        """Close the connection; with ``linger``, first let the peer finish sending.

        Closing a socket with unread input makes the kernel send a reset, which
        can destroy a reply the peer has not read yet (nginx then logs
        "Connection reset by peer" and may answer 502). Lingering shuts down our
        side and discards what still arrives, for a bounded time, as nginx's
        lingering_close does.
        """
        if self.closed:
            return
        self.closed = True
        requests = self.requests
        if requests:
            for request in requests.values():
                request.body.discard()
            requests.clear()
        self.loop.forget(self)
        if linger:
            self.loop.linger(self.sock)
            return
        close_quietly(self.sock)


def _wait_writable(sock: _socket.socket, timeout: float) -> bool:
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLOUT)
    return bool(poller.poll(timeout * 1000))


def peer_text(peer: object) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        host = str(peer[0])
        return f"[{host}]:{peer[1]}" if ":" in host else f"{host}:{peer[1]}"
    return "unix socket peer" if not peer else str(peer)


class Lingerer:
    """A closed connection draining the peer's last bytes (see ``Connection.close``)."""

    __slots__ = ("deadline", "drained", "sock")

    def __init__(self, sock: _socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self.drained = 0

    def drain(self) -> bool:
        """Read and discard; True when done (EOF, error, or enough drained)."""
        try:
            data = self.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return True
        self.drained += len(data)
        return not data or self.drained > _LINGER_BYTES
