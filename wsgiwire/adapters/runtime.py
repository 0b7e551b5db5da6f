"""The server runtime shared by every socket protocol: workers, the connection loop, signals.

One connection loop serves FastCGI, SCGI and uwsgi alike:
``recv -> codec -> core -> app -> core -> codec -> send``. A protocol only
supplies a :class:`ProtocolDriver` (which codec, which head style).

Each worker process runs one ``selectors`` loop (epoll on Linux; never
``select()``, so descriptors above 1024 work). An idle kept-alive connection
costs a socket and a codec, never a thread. The application is called inline
in the loop by default (the fastest path, as in a prefork uWSGI); with
``threads > 0`` it runs on a bounded pool and a full pool answers at once
with an overload reply instead of queueing without bound.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import mmap
import os
import queue
import select
import selectors
import signal
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

from ..core.body import BodyBuffer, attach_input
from ..core.environ import EnvironBuilder
from ..core.gateway import ErrorStream, FileWrapper, WSGIApp, call_app, request_label
from ..core.response import HeadStyle, Response, send_status
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
    OutEvent,
    RequestAborted,
    RequestStarted,
    ResponseData,
    ResponseEnd,
    ResponseErrorData,
    Role,
)
from ..limits import DEFAULT_LIMITS, Limits
from .listeners import PeerFilter, close_quietly, remove_socket_file

__all__ = [
    "Buffer",
    "Codec",
    "OneShotDriver",
    "ProtocolDriver",
    "Server",
    "ServerConfig",
    "Worker",
    "status_reply",
]

log = logging.getLogger("wsgiwire")

_RECV_SIZE = 262144
# Response bytes buffered before a write is forced while the app still runs.
_FLUSH_AT = 262144
# sendmsg() takes at most IOV_MAX (1024 on Linux) buffers at once.
_IOV_MAX = 1024
_SWEEP_INTERVAL = 1.0
# Accept balancing between prefork workers (see LoadBoard).
_ACCEPT_SLACK = 1
_ACCEPT_PAUSE = 0.005
# Lingering close: how long and how much to drain after a refusal (nginx's
# lingering_time is 30 s; a gateway peer is local and fast, so less will do).
_LINGER_TIME = 5.0
_LINGER_BYTES = 64 << 20

Buffer = bytes | bytearray | memoryview


class Codec(Protocol):
    """What the runtime needs of a protocol codec (see ``wsgiwire.protocols``)."""

    def receive_data(self, data: bytes | bytearray | memoryview) -> None: ...
    def next_event(self) -> Event | NeedData: ...
    def send(self, event: OutEvent) -> bytes: ...
    def send_chunks(self, event: OutEvent) -> list[bytes | memoryview]: ...
    def data_to_send(self) -> bytes: ...
    @property
    def should_close(self) -> bool: ...


class ProtocolDriver(Protocol):
    """A protocol's hooks into the shared runtime.

    ``raw_body`` says the response body travels as raw bytes on the socket
    (SCGI, uwsgi), so ``wsgi.file_wrapper`` files can go out by sendfile.
    """

    name: str
    head_style: HeadStyle
    raw_body: bool

    def new_codec(self, config: ServerConfig) -> Codec: ...
    def overload_reply(self, codec: Codec, request_id: int) -> list[Buffer]: ...


def status_reply(
    codec: Codec, request_id: int, code: int, style: HeadStyle, *, app_status: int = 1
) -> list[Buffer]:
    """A complete short response with HTTP status ``code``, framed by ``codec``."""
    chunks: list[Buffer] = []
    send_status(
        lambda data: chunks.extend(codec.send_chunks(ResponseData(request_id, data))),
        code,
        style=style,
    )
    chunks.extend(codec.send_chunks(ResponseEnd(request_id, app_status=app_status)))
    return chunks


class OneShotDriver:
    """Hooks for protocols with one request per connection and a raw body (SCGI, uwsgi)."""

    name = "?"
    head_style = HeadStyle.CGI
    raw_body = True

    def new_codec(self, config: ServerConfig) -> Codec:
        raise NotImplementedError

    def overload_reply(self, codec: Codec, request_id: int) -> list[Buffer]:
        return status_reply(codec, request_id, 503, self.head_style)


@dataclass
class ServerConfig:
    """Everything a worker needs; built by the CLI or a flup-style ``WSGIServer``."""

    app: WSGIApp
    driver: ProtocolDriver
    listeners: list[socket.socket]
    workers: int = 0
    threads: int = 0
    limits: Limits = DEFAULT_LIMITS
    debug: bool = False
    peer_filter: PeerFilter = field(default_factory=lambda: PeerFilter(None))
    graceful_timeout: float = 30.0
    base_environ: dict[str, Any] = field(default_factory=dict)
    multiplex: bool = True
    # Unix socket files this server created: removed when it stops.
    owned_paths: list[str] = field(default_factory=list)


class _Request:
    __slots__ = ("body", "data", "environ", "id", "keep_conn", "role")

    def __init__(self, event: RequestStarted, environ: dict[str, Any], body: BodyBuffer):
        self.id = event.request_id
        self.environ = environ
        self.body = body
        self.data: BodyBuffer | None = None
        self.role = event.role
        self.keep_conn = event.keep_conn


class _Connection:
    """One accepted socket: feeds the codec, runs requests, writes replies."""

    __slots__ = (
        "busy",
        "closed",
        "codec",
        "last_active",
        "loop",
        "peer",
        "requests",
        "sock",
    )

    def __init__(self, loop: Worker, sock: socket.socket, peer: object) -> None:
        self.loop = loop
        self.sock = sock
        self.peer = peer
        self.codec = loop.config.driver.new_codec(loop.config)
        self.requests: dict[int, _Request] = {}
        self.busy = False  # a request of this connection is running on a thread
        self.closed = False
        self.last_active = time.monotonic()

    # -- reading --------------------------------------------------------
    def on_readable(self) -> None:
        try:
            data = self.sock.recv(_RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close()
            return
        self.last_active = time.monotonic()
        self.codec.receive_data(data)
        with contextlib.suppress(ClientDisconnected):
            self.pump()

    def pump(self) -> None:
        """Handle every event the codec has; stop while a request runs on a thread."""
        codec = self.codec
        while not self.closed and not self.busy:
            try:
                event = codec.next_event()
            except ProtocolError as exc:
                self.protocol_error(exc)
                return
            if event is NEED_DATA:
                break
            try:
                self.dispatch(event)
            except ProtocolError as exc:
                self.protocol_error(exc)
                return
        if self.closed:
            return
        housekeeping = codec.data_to_send()
        if housekeeping:
            self.write([housekeeping])
        if codec.should_close and not self.requests and not self.busy:
            # Bytes past the request (nginx with request buffering off may still
            # be sending) must be drained, not reset.
            self.close(linger=getattr(codec, "discarded_bytes", 0) > 0)

    def dispatch(self, event: Event | NeedData) -> None:
        kind = type(event)
        if kind is RequestStarted:
            self.start(event)  # type: ignore[arg-type]
        elif kind is BodyData:
            self.requests[event.request_id].body.feed(event.data)  # type: ignore[union-attr]
        elif kind is BodyEnd:
            request = self.requests[event.request_id]  # type: ignore[union-attr]
            if request.role is not Role.FILTER:
                self.ready(request)
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
            self.write(self.codec.send_chunks(ResponseEnd(request_id, app_status=1)))
        elif kind is ConnectionClosed:
            self.close()

    def start(self, event: RequestStarted) -> None:
        config = self.loop.config
        environ, declared = self.loop.builder.build(
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
        self.requests[request_id] = _Request(event, environ, body)

    # -- running the app ------------------------------------------------
    def ready(self, request: _Request) -> None:
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

    def run(self, request: _Request) -> None:
        """Call the app for ``request`` and write the whole reply (any thread)."""
        codec = self.codec
        request_id = request.id
        pending: list[Buffer] = []
        size = 0

        def out(data: bytes) -> None:
            nonlocal size
            pending.extend(codec.send_chunks(ResponseData(request_id, data)))
            size += len(data)
            if size >= _FLUSH_AT:
                self.write(pending)
                pending.clear()
                size = 0

        environ = request.environ
        environ["wsgi.errors"] = ErrorStream(
            lambda data: pending.extend(codec.send_chunks(ResponseErrorData(request_id, data)))
        )
        def send_file(filelike: IO[bytes], count: int) -> int:
            nonlocal size
            self.write(pending)
            pending.clear()
            size = 0
            return self.sendfile(filelike, count)

        driver = self.loop.config.driver
        response = Response(
            out,
            method=environ["REQUEST_METHOD"],
            style=driver.head_style,
            protocol=environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
            file_sender=send_file if driver.raw_body else None,
        )
        try:
            ok = call_app(self.loop.app, environ, response, debug=self.loop.config.debug)
        except ClientDisconnected:
            ok = False
        self.requests.pop(request_id, None)
        if self.closed:
            return
        pending.extend(codec.send_chunks(ResponseEnd(request_id, app_status=0 if ok else 1)))
        with contextlib.suppress(ClientDisconnected):
            self.write(pending)
        if not ok and self.loop.config.driver.head_style is not HeadStyle.CGI:
            # uwsgi/SCGI have no way to say "cut" but closing the connection.
            self.close()

    # -- errors ---------------------------------------------------------
    def protocol_error(self, exc: ProtocolError) -> None:
        peer = _peer_text(self.peer)
        log.warning("%s protocol error from %s: %s", self.loop.config.driver.name, peer, exc.msg)
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
    def write(self, buffers: Sequence[Buffer]) -> None:
        """Write every buffer, waiting (bounded) while the socket is full."""
        if self.closed:
            raise ClientDisconnected()
        sock = self.sock
        deadline = 0.0
        views: list[Buffer] = [b for b in buffers if len(b)]
        while views:
            try:
                sent = sock.sendmsg(views[:_IOV_MAX])
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as exc:
                log.info("client %s went away: %s", _peer_text(self.peer), exc.strerror)
                self.close()
                raise ClientDisconnected() from None
            if sent:
                deadline = 0.0
                while views and sent >= len(views[0]):
                    sent -= len(views[0])
                    views.pop(0)
                if sent:
                    views[0] = memoryview(views[0])[sent:]
                continue
            if not deadline:
                deadline = time.monotonic() + self.loop.config.limits.write_timeout
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not _wait_writable(sock, remaining):
                log.warning("write timeout to %s; connection closed", _peer_text(self.peer))
                self.close()
                raise ClientDisconnected()
        self.last_active = time.monotonic()

    def sendfile(self, filelike: IO[bytes], count: int) -> int:
        """Write ``count`` bytes (-1: all) of ``filelike`` from its position with os.sendfile."""
        if self.closed:
            raise ClientDisconnected()
        fd = filelike.fileno()
        offset = filelike.tell()
        if count < 0:
            count = max(0, os.fstat(fd).st_size - offset)
        sent = 0
        out_fd = self.sock.fileno()
        deadline = 0.0
        while sent < count:
            try:
                n = os.sendfile(out_fd, fd, offset + sent, count - sent)
            except (BlockingIOError, InterruptedError):
                n = -1
            except OSError as exc:
                log.info("client %s went away: %s", _peer_text(self.peer), exc.strerror)
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
                log.warning("write timeout to %s; connection closed", _peer_text(self.peer))
                self.close()
                raise ClientDisconnected()
        filelike.seek(offset + sent)
        self.last_active = time.monotonic()
        return sent

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
        if linger:
            self.closed = True
            for request in self.requests.values():
                request.body.discard()
            self.requests.clear()
            self.loop.forget(self)
            self.loop.linger(self.sock)
            return
        self.closed = True
        for request in self.requests.values():
            request.body.discard()
        self.requests.clear()
        self.loop.forget(self)
        close_quietly(self.sock)


def _wait_writable(sock: socket.socket, timeout: float) -> bool:
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLOUT)
    return bool(poller.poll(timeout * 1000))


def _peer_text(peer: object) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        host = str(peer[0])
        return f"[{host}]:{peer[1]}" if ":" in host else f"{host}:{peer[1]}"
    return "unix socket peer" if not peer else str(peer)


class _Lingerer:
    """A closed connection draining the peer's last bytes (see ``_Connection.close``)."""

    __slots__ = ("deadline", "drained", "sock")

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self.drained = 0

    def drain(self) -> bool:
        """Read and discard; True when done (EOF, error, or enough drained)."""
        try:
            data = self.sock.recv(_RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return True
        self.drained += len(data)
        return not data or self.drained > _LINGER_BYTES


class _Pool:
    """A fixed set of app threads with a bounded hand-off queue.

    A queued request's connection is paused (no further reads), so web
    servers, which send one request per connection at a time, simply wait.
    Only past ``Limits.max_queued_requests`` waiting requests is one refused
    (FCGI_OVERLOADED or 503): a fast answer instead of an unbounded queue.
    """

    def __init__(self, worker: Worker, threads: int, queue_size: int) -> None:
        self.worker = worker
        self.jobs: queue.Queue[tuple[_Connection, _Request] | None] = queue.Queue(queue_size)
        self.threads = [
            threading.Thread(target=self._loop, name=f"wsgiwire-app-{i}", daemon=True)
            for i in range(threads)
        ]
        for thread in self.threads:
            thread.start()

    def submit(self, conn: _Connection, request: _Request) -> bool:
        try:
            self.jobs.put_nowait((conn, request))
        except queue.Full:
            return False
        return True

    def _loop(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            conn, request = job
            try:
                conn.run(request)
            except Exception:
                log.exception("internal error running %s", request_label(request.environ))
            self.worker.resume_later(conn)

    def stop(self) -> None:
        for _ in self.threads:
            self.jobs.put(None)
        for thread in self.threads:
            thread.join(timeout=5)


class LoadBoard:
    """Connection counts of the prefork workers, in memory shared across fork().

    Workers accept from one shared socket; left alone, the kernel hands most
    kept-alive connections to whichever worker wakes first. A worker holding
    more than ``_ACCEPT_SLACK`` connections over the least-loaded one stops
    accepting for a moment, so the others get the next ones.
    """

    _SLOT = struct.Struct("q")

    def __init__(self, workers: int) -> None:
        self.size = workers
        self.memory = mmap.mmap(-1, self._SLOT.size * workers)

    def set(self, slot: int, count: int) -> None:
        self._SLOT.pack_into(self.memory, slot * self._SLOT.size, count)

    def should_yield(self, slot: int, count: int) -> bool:
        counts: tuple[int, ...] = struct.unpack_from(f"{self.size}q", self.memory)
        return count > min(counts) + _ACCEPT_SLACK


class Worker:
    """One process's event loop: accept, read, dispatch, sweep idle connections."""

    def __init__(
        self, config: ServerConfig, board: LoadBoard | None = None, slot: int = 0
    ) -> None:
        self.board = board
        self.slot = slot
        self.accept_paused_until = 0.0
        self.config = config
        self.app = config.app
        self.builder = EnvironBuilder(
            multithread=config.threads > 0,
            multiprocess=config.workers > 1,
            file_wrapper=FileWrapper,
        )
        self.selector = selectors.DefaultSelector()
        self.connections: dict[int, _Connection] = {}
        self.lingering: dict[int, _Lingerer] = {}
        self.stopping = False
        self.pool: _Pool | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._resume: queue.SimpleQueue[_Connection] = queue.SimpleQueue()

    # -- connection bookkeeping -------------------------------------------
    def forget(self, conn: _Connection) -> None:
        if self.connections.pop(id(conn), None) is not None:
            with contextlib.suppress(KeyError, ValueError, OSError):
                self.selector.unregister(conn.sock)
            if self.board is not None:
                self.board.set(self.slot, len(self.connections))

    def linger(self, sock: socket.socket) -> None:
        """Shut down our side of ``sock`` and drain it briefly before closing."""
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)
        lingerer = _Lingerer(sock, time.monotonic() + _LINGER_TIME)
        try:
            self.selector.register(sock, selectors.EVENT_READ, lingerer)
        except (KeyError, ValueError, OSError):
            close_quietly(sock)
            return
        self.lingering[id(lingerer)] = lingerer

    def _end_linger(self, lingerer: _Lingerer) -> None:
        self.lingering.pop(id(lingerer), None)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.selector.unregister(lingerer.sock)
        close_quietly(lingerer.sock)

    def pause(self, conn: _Connection) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(conn.sock)

    def resume_later(self, conn: _Connection) -> None:
        self._resume.put(conn)
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    def _resume_ready(self) -> None:
        with contextlib.suppress(OSError):
            while self._wake_r.recv(4096):
                pass
        while True:
            try:
                conn = self._resume.get_nowait()
            except queue.Empty:
                return
            conn.busy = False
            if conn.closed:
                continue
            if self.stopping and not conn.requests:
                conn.close()
                continue
            self.selector.register(conn.sock, selectors.EVENT_READ, conn)
            with contextlib.suppress(ClientDisconnected):
                conn.pump()

    # -- accepting ------------------------------------------------------
    def _accept(self, listener: socket.socket) -> None:
        board = self.board
        count = len(self.connections)
        if count >= self.config.limits.max_connections or (
            board is not None and board.should_yield(self.slot, count)
        ):
            # At the FCGI_MAX_CONNS we advertise, or ahead of the other workers:
            # leave new connections in the backlog for a moment.
            self._stop_accepting()
            self.accept_paused_until = time.monotonic() + _ACCEPT_PAUSE
            return
        for _ in range(64):
            try:
                sock, peer = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    log.error("cannot accept: %s", exc.strerror)
                    return
                if exc.errno in (errno.ECONNABORTED, errno.EPROTO):
                    continue
                raise
            if len(self.connections) >= self.config.limits.max_connections:
                close_quietly(sock)
                log.warning("connection limit %d reached; connection refused",
                            self.config.limits.max_connections)
                return
            if not self.config.peer_filter.allows(peer):
                log.warning("connection from %s refused by the allow-list", _peer_text(peer))
                close_quietly(sock)
                continue
            sock.setblocking(False)
            if sock.family != socket.AF_UNIX:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Connection(self, sock, peer)
            self.connections[id(conn)] = conn
            self.selector.register(sock, selectors.EVENT_READ, conn)
            if board is not None:
                board.set(self.slot, len(self.connections))
                return  # one at a time, so the board stays current

    # -- the loop ---------------------------------------------------------
    def serve(self) -> None:
        config = self.config
        if config.threads > 0:
            self.pool = _Pool(self, config.threads, config.limits.max_queued_requests)
        self._start_accepting()
        self.selector.register(self._wake_r, selectors.EVENT_READ, None)
        limits = config.limits
        next_sweep = time.monotonic() + _SWEEP_INTERVAL
        stop_by = 0.0
        try:
            while True:
                if self.stopping:
                    if not stop_by:
                        stop_by = time.monotonic() + config.graceful_timeout
                        self._stop_accepting()
                        self._close_idle()
                    if not self.connections or time.monotonic() >= stop_by:
                        break
                timeout = _SWEEP_INTERVAL
                if self.accept_paused_until:
                    wait = self.accept_paused_until - time.monotonic()
                    if wait <= 0 and not self.stopping:
                        self.accept_paused_until = 0.0
                        self._start_accepting()
                    else:
                        timeout = max(0.0, min(timeout, wait))
                for key, _ in self.selector.select(timeout):
                    target = key.data
                    if target is None:
                        self._resume_ready()
                    elif type(target) is _Connection:
                        target.on_readable()
                    elif type(target) is _Lingerer:
                        if target.drain():
                            self._end_linger(target)
                    else:
                        self._accept(target)
                now = time.monotonic()
                if now >= next_sweep:
                    next_sweep = now + _SWEEP_INTERVAL
                    self._sweep(now, limits)
        finally:
            cut = [c for c in self.connections.values() if c.requests or c.busy]
            if cut:
                log.warning("stopping with %d connection(s) mid-request; they are cut", len(cut))
            for conn in list(self.connections.values()):
                conn.close()
            for lingerer in list(self.lingering.values()):
                self._end_linger(lingerer)
            if self.pool is not None:
                self.pool.stop()
            self.selector.close()

    def _sweep(self, now: float, limits: Limits) -> None:
        for lingerer in list(self.lingering.values()):
            if now >= lingerer.deadline:
                self._end_linger(lingerer)
        for conn in list(self.connections.values()):
            if conn.busy:
                continue
            idle = now - conn.last_active
            if conn.requests:
                if idle > limits.body_idle_timeout:
                    log.warning("%s sent no data for %.0f s mid-request; closed",
                                _peer_text(conn.peer), idle)
                    conn.close()
            elif idle > limits.keepalive_timeout:
                conn.close()

    def _start_accepting(self) -> None:
        for listener in self.config.listeners:
            with contextlib.suppress(KeyError, ValueError):
                self.selector.register(listener, selectors.EVENT_READ, listener)

    def _stop_accepting(self) -> None:
        for listener in self.config.listeners:
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(listener)

    def _close_idle(self) -> None:
        for conn in list(self.connections.values()):
            if not conn.requests and not conn.busy:
                conn.close()

    def request_stop(self) -> None:
        self.stopping = True
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")


class Server:
    """Runs workers for one configuration: in this process, or as a prefork pool."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.children: dict[int, tuple[int, float]] = {}  # pid -> (slot, started)
        self._stopping = False
        self.board = LoadBoard(config.workers) if config.workers > 1 else None

    def serve(self) -> int:
        try:
            if self.config.workers <= 1:
                return self._serve_here()
            return self._serve_prefork()
        finally:
            for path in self.config.owned_paths:
                remove_socket_file(path)

    def _serve_here(self, slot: int = 0) -> int:
        worker = Worker(self.config, self.board, slot)
        self._install_signals(worker.request_stop)
        worker.serve()
        return 0

    def _install_signals(self, stop: Callable[[], None]) -> None:
        def handler(signum: int, frame: object) -> None:
            stop()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)
        with contextlib.suppress(AttributeError, ValueError):
            signal.signal(signal.SIGPIPE, signal.SIG_IGN)

    def _spawn(self, slot: int) -> int:
        if self.board is not None:
            self.board.set(slot, 0)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                code = self._serve_here(slot)
            except BaseException:  # a worker must never fall back into the master's loop
                log.exception("worker %d crashed", os.getpid())
            finally:
                with contextlib.suppress(Exception):
                    logging.shutdown()
                os._exit(code)
        self.children[pid] = (slot, time.monotonic())
        return pid

    def _serve_prefork(self) -> int:
        stop_event = threading.Event()

        def on_stop(signum: int, frame: object) -> None:
            self._stopping = True
            stop_event.set()

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        for slot in range(self.config.workers):
            self._spawn(slot)
        quick_deaths = 0
        while not self._stopping:
            stop_event.wait(0.2)
            while True:
                try:
                    pid, status = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    pid = 0
                if pid == 0:
                    break
                slot, started = self.children.pop(pid, (-1, time.monotonic()))
                if self._stopping or slot < 0:
                    continue
                lived = time.monotonic() - started
                log.warning("worker %d exited (status %d) after %.1f s; starting another",
                            pid, status, lived)
                quick_deaths = quick_deaths + 1 if lived < 1.0 else 0
                if quick_deaths >= 5:
                    log.error("workers keep dying at start; stopping the server")
                    self._stopping = True
                    break
                self._spawn(slot)
        return self._stop_children()

    def _stop_children(self) -> int:
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + self.config.graceful_timeout + 1.0
        while self.children and time.monotonic() < deadline:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid:
                self.children.pop(pid, None)
            else:
                time.sleep(0.05)
        for pid in list(self.children):
            log.warning("worker %d did not stop in time; killed", pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        self.children.clear()
        return 0

