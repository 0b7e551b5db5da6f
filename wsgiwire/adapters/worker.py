"""A worker: one process's event loop (accept, read, dispatch, sweep), optional app threads."""

from __future__ import annotations

import _socket
import contextlib
import errno
import logging
import os
import queue
import random
import select
import socket
import threading
import time
from typing import Any

from ..accesslog import AccessLog
from ..core.environ import EnvironBuilder
from ..core.gateway import FileWrapper, request_label
from ..core.response import Response
from ..errors import BadRequest, ClientDisconnected, LimitExceeded, ProtocolError
from ..limits import Limits
from .base import ServerConfig
from .connection import LINGER_TIME, Connection, Lingerer, Request, peer_text
from .listeners import close_quietly
from .poller import READ, WRITE, Poller
from .rss import RSSProbe
from .scoreboard import ACCEPTING, DRAINING, Scoreboard

__all__ = ["Pool", "Worker"]

log = logging.getLogger("wsgiwire")

_SWEEP_INTERVAL = 1.0
_ACCEPT_PAUSE = 0.005


def _has_input(sock: _socket.socket) -> bool:
    try:
        return bool(sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return False


def _body_size(environ: dict[str, Any]) -> int:
    """The request body's declared size (the core checked it is digits)."""
    length = environ.get("CONTENT_LENGTH")
    try:
        return int(length) if length else 0
    except ValueError:
        return 0


class Pool:
    """A fixed set of app threads with a bounded hand-off queue.

    A queued request's connection is paused (no further reads), so web
    servers, which send one request per connection at a time, simply wait.
    Only past ``Limits.max_queued_requests`` waiting requests is one refused
    (FCGI_OVERLOADED or 503): a fast answer instead of an unbounded queue.
    """

    def __init__(self, worker: Worker, threads: int, queue_size: int) -> None:
        self.worker = worker
        self.busy = 0
        # Requests handed over and not finished: running plus waiting. Only past
        # threads + queue_size is one refused, so requests arriving together at
        # idle threads are never mistaken for overload.
        self.pending = 0
        self.capacity = threads + queue_size
        self._lock = threading.Lock()
        self.jobs: queue.SimpleQueue[tuple[Connection, Request] | None] = queue.SimpleQueue()
        self.threads = [
            threading.Thread(target=self._loop, name=f"wsgiwire-app-{i}", daemon=True)
            for i in range(threads)
        ]
        for thread in self.threads:
            thread.start()

    def submit(self, conn: Connection, request: Request) -> bool:
        with self._lock:
            if self.pending >= self.capacity:
                return False
            self.pending += 1
            busy, waiting = self.busy, self.pending - self.busy
        self.jobs.put((conn, request))
        self._report(busy, waiting)
        return True

    def _loop(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            conn, request = job
            self._count(+1, 0)
            try:
                conn.run(request)
            except Exception:
                log.exception("internal error running %s", request_label(request.environ))
            finally:
                self._count(-1, -1)
            self.worker.resume_later(conn)

    def _count(self, busy_delta: int, pending_delta: int) -> None:
        with self._lock:
            self.busy += busy_delta
            self.pending += pending_delta
            busy, waiting = self.busy, self.pending - self.busy
        self._report(busy, waiting)

    def _report(self, busy: int, waiting: int) -> None:
        board = self.worker.board
        if board is not None:
            board.set_threads(self.worker.slot, busy, waiting)

    def stop(self) -> None:
        for _ in self.threads:
            self.jobs.put(None)
        for thread in self.threads:
            thread.join(timeout=5)


class Worker:
    """One process's event loop: accept, read, dispatch, sweep idle connections."""

    def __init__(
        self, config: ServerConfig, board: Scoreboard | None = None, slot: int = 0
    ) -> None:
        self.board = board
        self.slot = slot
        self.accept_paused_until = 0.0
        self.config = config
        self.app = config.load_app()
        self.requests_served = 0
        self.errors = 0
        self._count_lock = threading.Lock()
        self.max_requests = config.max_requests
        if self.max_requests and config.max_requests_jitter:
            self.max_requests += random.randint(0, config.max_requests_jitter)
        self._watch = board is not None and config.threads == 0
        self._rss = RSSProbe() if config.reload_on_rss else None
        self._access_log = AccessLog(config.access_log_format) if config.access_log else None
        # App thread -> its number on the scoreboard (each shows its current request).
        self._thread_numbers: dict[int, int] = {}
        self._one_shot = bool(getattr(config.driver, "one_request_per_connection", False))
        self._accepting = False  # inside _accept(): forget() leaves the scoreboard alone
        self._reported_connections = -1  # the count last written to the scoreboard (-1: none)
        self.builder = EnvironBuilder(
            multithread=config.threads > 0,
            multiprocess=config.workers > 1,
            file_wrapper=FileWrapper,
        )
        self.poller = Poller()
        self.connections: dict[int, Connection] = {}
        self.lingering: dict[int, Lingerer] = {}
        self.stopping = False
        self.pool: Pool | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._resume: queue.SimpleQueue[Connection] = queue.SimpleQueue()
        # Per listener: its family and type (accept() would convert them to
        # enums on every call), and a poll object that says whether a
        # connection is waiting. Asked before each accept, poll() with no
        # timeout costs a tenth of an accept4() that fails with EAGAIN (the
        # kernel makes, then destroys, a file for the socket it did not find).
        self._listener_info: dict[int, tuple[int, int, select.poll]] = {}
        for listener in config.listeners:
            waiting = select.poll()
            waiting.register(listener.fileno(), select.POLLIN)
            self._listener_info[listener.fileno()] = (
                int(listener.family), int(listener.type), waiting
            )

    # -- connection bookkeeping -------------------------------------------
    def forget(self, conn: Connection) -> None:
        if self.connections.pop(id(conn), None) is not None:
            if conn.watching:
                self._poll_for(conn, 0)
            if self.board is not None and not self._accepting:
                self._report_connections()

    def _report_connections(self) -> None:
        """Write the connection count to the scoreboard, if it changed (board only)."""
        count = len(self.connections)
        if count != self._reported_connections and self.board is not None:
            self._reported_connections = count
            self.board.set_connections(self.slot, count)

    # -- per-request accounting (any thread) -------------------------------
    def request_begins(self, environ: dict[str, Any]) -> float:
        now = time.monotonic()
        board = self.board
        if board is not None and (self._watch or self.pool is not None):
            # Web servers send REQUEST_URI: the label for the status page and
            # the watchdog without assembling it from the parts.
            uri = environ.get("REQUEST_URI")
            label = f"{environ['REQUEST_METHOD']} {uri}" if uri else request_label(environ)
            if self._watch:
                board.request_started(self.slot, label, now)
            else:
                board.thread_started(self.slot, self._thread_number(), label, now)
        return now

    def _thread_number(self) -> int:
        ident = threading.get_ident()
        number = self._thread_numbers.get(ident)
        if number is None:
            with self._count_lock:
                number = self._thread_numbers.setdefault(ident, len(self._thread_numbers))
        return number

    def request_done(
        self, ok: bool, environ: dict[str, Any], response: Response, started: float
    ) -> None:
        failed = not ok or response.failed
        board = self.board
        duration = time.monotonic() - started
        if self.pool is None:  # one thread: no lock needed
            served = self.requests_served = self.requests_served + 1
            errors = self.errors = self.errors + failed
            if board is not None:
                board.request_finished(self.slot, served, errors)
                board.record(self.slot, response.status, duration,
                             _body_size(environ), response.sent)
        else:
            with self._count_lock:
                served = self.requests_served = self.requests_served + 1
                errors = self.errors = self.errors + failed
                if board is not None:
                    board.request_finished(self.slot, served, errors)
                    board.record(self.slot, response.status, duration,
                                 _body_size(environ), response.sent)
            if board is not None:
                board.thread_finished(self.slot, self._thread_number())
        if self._access_log is not None:
            self._access_log.log(environ, response, duration)
        if self.max_requests and served >= self.max_requests and not self.stopping:
            log.info("worker %d served %d requests; recycling it", os.getpid(), served)
            self.request_stop()
        if self._rss is not None and not self.stopping:
            rss = self._rss.rss()
            if rss > self.config.reload_on_rss:
                log.info("worker %d uses %d MiB, over --reload-on-rss %d MiB; recycling it",
                         os.getpid(), rss >> 20, self.config.reload_on_rss >> 20)
                self.request_stop()

    def note_malformed(self, exc: ProtocolError) -> None:
        """Count a request refused as malformed, by reason, for the status page."""
        if self.board is not None:
            reason = (0 if isinstance(exc, LimitExceeded)
                      else 1 if isinstance(exc, BadRequest) else 2)
            self.board.count_malformed(self.slot, reason)

    def linger(self, sock: _socket.socket) -> None:
        """Shut down our side of ``sock`` and drain it briefly before closing."""
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)
        lingerer = Lingerer(sock, time.monotonic() + LINGER_TIME)
        try:
            self.poller.add(sock.fileno(), READ, lingerer)
        except (ValueError, OSError):
            close_quietly(sock)
            return
        self.lingering[id(lingerer)] = lingerer

    def _end_linger(self, lingerer: Lingerer) -> None:
        self.lingering.pop(id(lingerer), None)
        self.poller.remove(lingerer.sock.fileno())
        close_quietly(lingerer.sock)

    def _poll_for(self, conn: Connection, mask: int) -> None:
        """Poll ``conn`` for ``mask`` (READ or WRITE), or not at all (0)."""
        current = conn.watching
        if current == mask:
            return
        poller = self.poller
        try:
            if not mask:
                poller.remove(conn.fd)
            elif current:
                poller.change(conn.fd, mask)
            else:
                poller.add(conn.fd, mask, conn)
        except (OSError, ValueError):
            return
        conn.watching = mask

    def want_write(self, conn: Connection) -> None:
        """``conn`` has an outbox: wait for writability, and stop reading meanwhile."""
        self._poll_for(conn, WRITE)

    def done_writing(self, conn: Connection) -> None:
        self._poll_for(conn, READ)

    def pause(self, conn: Connection) -> None:
        self._poll_for(conn, 0)

    def resume_later(self, conn: Connection) -> None:
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
            self._poll_for(conn, READ)
            with contextlib.suppress(ClientDisconnected):
                conn.pump()

    # -- accepting ------------------------------------------------------
    def _accept(self, listener: socket.socket) -> None:
        if self.stopping:
            return  # leave waiting connections to a worker that will serve them
        board = self.board
        count = len(self.connections)
        if count >= self.config.limits.max_connections or (
            # Balancing matters for kept-alive connections; one-request
            # connections come and go and the accept queue shares them out.
            board is not None
            and not self._one_shot
            and board.should_yield(self.slot, count)
        ):
            # At the FCGI_MAX_CONNS we advertise, or ahead of the other workers:
            # leave new connections in the backlog for a moment.
            self._stop_accepting()
            self.accept_paused_until = time.monotonic() + _ACCEPT_PAUSE
            return
        # Connections served whole during this call come and go without
        # touching the scoreboard; it gets the count once, at the end.
        self._accepting = True
        try:
            self._accept_waiting(listener, board)
        finally:
            self._accepting = False
            if board is not None:
                self._report_connections()

    def _accept_waiting(self, listener: socket.socket, board: Scoreboard | None) -> None:
        """Accept and start serving the connections waiting on ``listener`` (up to 64)."""
        limit = self.config.limits.max_connections
        allows = self.config.peer_filter.allows
        family, kind, waiting = self._listener_info[listener.fileno()]
        backlog = waiting.poll
        tcp = family != socket.AF_UNIX
        for _ in range(64):
            # Every worker polling the listener wakes for a new connection: one
            # takes it, the others find the backlog empty. Asking first costs
            # a tenth of an accept4() that fails. A connection this worker
            # cannot serve (stopping, or at its limit) is left for the others.
            if self.stopping or len(self.connections) >= limit or not backlog(0):
                return
            try:
                # socket.accept() less its per-call enum conversions of the
                # listener's family and type, and the socket is the C-level
                # object: the socket.py layer adds only Python work per call.
                fd, peer = listener._accept()  # type: ignore[attr-defined]
                sock = _socket.socket(family, kind, 0, fd)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    log.error("cannot accept: %s", exc.strerror)
                    return
                if exc.errno in (errno.ECONNABORTED, errno.EPROTO):
                    continue
                raise
            if tcp:
                if not allows(peer):
                    log.warning("connection from %s refused by the allow-list", peer_text(peer))
                    close_quietly(sock)
                    continue
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
            conn = Connection(self, sock, peer)
            self.connections[id(conn)] = conn
            # Web servers send the request right after connecting: read it now
            # rather than after another trip through the poller; for SCGI and
            # uwsgi (one connection per request) that usually serves the whole
            # connection, which then never needs polling at all.
            conn.on_readable()
            if not conn.closed and not conn.watching and not conn.busy:
                self._poll_for(conn, READ)
            if board is not None and not self._one_shot:
                return  # one at a time, so the board stays current

    # -- the loop ---------------------------------------------------------
    def serve(self) -> None:
        config = self.config
        if config.threads > 0:
            self.pool = Pool(self, config.threads, config.limits.max_queued_requests)
        if self.board is not None:
            self.board.set_state(self.slot, ACCEPTING)
        self._start_accepting()
        self.poller.add(self._wake_r.fileno(), READ, None)
        limits = config.limits
        next_sweep = time.monotonic() + _SWEEP_INTERVAL
        stop_by = 0.0
        try:
            while True:
                if self.stopping:
                    if not stop_by:
                        stop_by = time.monotonic() + config.graceful_timeout
                        self._stop_accepting()
                        if self.board is not None:
                            self.board.set_state(self.slot, DRAINING)
                    # Connections close as soon as they are between requests.
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
                for target in self.poller.wait(timeout):
                    kind = type(target)
                    if kind is Connection:
                        if target.closed:
                            continue  # closed by an earlier target of this round
                        if target.watching == WRITE:
                            target.on_writable()
                        else:
                            target.on_readable()
                    elif target is None:
                        self._resume_ready()
                    elif kind is Lingerer:
                        if id(target) in self.lingering and target.drain():
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
            self.close()

    def close(self) -> None:
        """Release the loop's own resources (``serve()`` does this when it returns)."""
        self.poller.close()
        if self._rss is not None:
            self._rss.close()
        self._wake_r.close()
        self._wake_w.close()

    def _sweep(self, now: float, limits: Limits) -> None:
        for lingerer in list(self.lingering.values()):
            if now >= lingerer.deadline:
                self._end_linger(lingerer)
        for conn in list(self.connections.values()):
            if conn.busy:
                continue
            if conn.outbox is not None:
                if now - conn.outbox_since > limits.write_timeout:
                    log.warning("%s read nothing for %.0f s; connection closed",
                                peer_text(conn.peer), limits.write_timeout)
                    conn.close()
                continue
            idle = now - conn.last_active
            if conn.head_since and now - conn.head_since > limits.header_timeout:
                log.warning("%s took over %.0f s to send a request head; closed",
                            peer_text(conn.peer), limits.header_timeout)
                conn.close()
            elif conn.requests:
                if idle > limits.body_idle_timeout:
                    log.warning("%s sent no data for %.0f s mid-request; closed",
                                peer_text(conn.peer), idle)
                    conn.close()
            elif idle > limits.keepalive_timeout:
                conn.close()

    def _start_accepting(self) -> None:
        for listener in self.config.listeners:
            fd = listener.fileno()
            if fd not in self.poller.targets:
                self.poller.add(fd, READ, listener)

    def _stop_accepting(self) -> None:
        for listener in self.config.listeners:
            self.poller.remove(listener.fileno())

    def _close_idle(self) -> None:
        """Close connections between requests; one with unread bytes is served first.

        A one-request connection (SCGI, uwsgi) is never between requests: its
        request is on its way until it is answered (the header and idle
        timeouts still bound the wait), so it is left to finish.
        """
        if self._one_shot:
            return
        for conn in list(self.connections.values()):
            if (conn.requests or conn.busy or conn.head_since or conn.outbox is not None
                    or _has_input(conn.sock)):
                continue
            conn.close()

    def request_stop(self) -> None:
        self.stopping = True
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")
