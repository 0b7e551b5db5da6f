"""A worker: one process's event loop (accept, read, dispatch, sweep), optional app threads.

Who owns what is written once, in ``_connection.py``: this loop thread owns the
poller, the connection table, the scoreboard slot and every socket; app
threads post to a run and wake the loop through ``_wake_w``.
"""

from __future__ import annotations

import _socket
import contextlib
import errno
import logging
import os
import queue
import random
import select
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any, Final

from .._accesslog import AccessLog
from .._errors import BadRequest, LimitExceeded, ProtocolError
from .._limits import Limits
from ..core._environ import EnvironBuilder
from ..core._gateway import FileWrapper, request_label
from ._base import Loop, ServerConfig
from ._connection import LINGER_TIME, Connection, Lingerer, peer_text
from ._listeners import close_quietly
from ._poller import READ, Poller
from ._rss import RSSProbe
from ._runner import Run
from ._scoreboard import ACCEPT_SLACK, ACCEPTING, DRAINING, Scoreboard

__all__ = ["Pool", "Worker"]

log = logging.getLogger("wsgiwire")

_SWEEP_INTERVAL: Final = 1.0
_ACCEPT_PAUSE: Final = 0.005
# Out of descriptors (EMFILE/ENFILE): stop polling the listeners this long, then
# try again. One log line when it starts and one when accepting works again.
_STARVED_PAUSE: Final = 0.25
# Stopping: an idle kept-alive connection is closed once it has been quiet this
# long. nginx reuses its most recently used connection first, so one quiet for
# a while is the least likely to carry a request already on its way.
_QUIET: Final = 0.5
# ... and only once no request at all has come to this worker for this long
# since it began to stop. While the web server still sends requests over our
# kept connections it is reaching into its keepalive cache for them (each one
# we answered while stopping closed right behind its reply), and the next it
# takes may be one we hold idle: closing that one then would cut a request
# already on its way (a POST, which nginx never retries, would get a 502).
_DRAIN_QUIET: Final = 1.0
# Exit status of a worker that stopped itself over --request-timeout (no threads).
TIMED_OUT: Final = 4
# The signals that stop a worker gracefully (see _install_stop_handlers in _master.py).
_STOP_SIGNALS: Final = (int(signal.SIGTERM), int(signal.SIGINT))


def _has_input(sock: _socket.socket) -> bool:
    try:
        return bool(sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return False


class Pool:
    """A fixed set of app threads with a bounded hand-off queue.

    A queued request's connection is paused (no further reads), so web
    servers, which send one request per connection at a time, simply wait.
    Only past ``Limits.max_queued_requests`` waiting requests is one refused
    (FCGI_OVERLOADED or 503): a fast answer instead of an unbounded queue.
    The pool's counters are its own (under its lock); the loop reads them to
    write the scoreboard.
    """

    def __init__(
        self,
        threads: int,
        queue_size: int,
        started: Callable[[int, Run], None] | None = None,
        finished: Callable[[int], None] | None = None,
    ) -> None:
        self.busy = 0
        # Called in app thread ``index`` around each run (the scoreboard's
        # per-thread fields: each thread writes only its own).
        self._started = started
        self._finished = finished
        # Requests handed over and not finished: running plus waiting. Only past
        # threads + queue_size is one refused, so requests arriving together at
        # idle threads are never mistaken for overload.
        self.pending = 0
        self.capacity = threads + queue_size
        self._lock = threading.Lock()
        # thread ident -> (started, run, connection): for the request watchdog
        self.running: dict[int, tuple[float, Run, Connection]] = {}
        self.jobs: queue.SimpleQueue[tuple[Connection, Run] | None] = queue.SimpleQueue()
        self.threads = [
            threading.Thread(target=self._loop, args=(i,), name=f"wsgiwire-app-{i}", daemon=True)
            for i in range(threads)
        ]
        for thread in self.threads:
            thread.start()

    def submit(self, conn: Connection, run: Run) -> bool:
        """(loop) Queue ``run``; False when the pool is full."""
        with self._lock:
            if self.pending >= self.capacity:
                return False
            self.pending += 1
        self.jobs.put((conn, run))
        return True

    def counts(self, in_flight: int) -> tuple[int, int]:
        """(busy, waiting) for ``in_flight`` requests handed over and not finished."""
        threads = len(self.threads)
        return min(in_flight, threads), max(0, in_flight - threads)

    def _loop(self, index: int) -> None:
        ident = threading.get_ident()
        while True:
            job = self.jobs.get()
            if job is None:
                return
            conn, run = job
            with self._lock:
                self.busy += 1
                self.running[ident] = (time.monotonic(), run, conn)
            try:
                if self._started is not None:
                    self._started(index, run)
                run.execute()
            except BaseException:
                log.exception("internal error in an app thread")
            finally:
                if self._finished is not None:
                    self._finished(index)
                with self._lock:
                    self.busy -= 1
                    self.pending -= 1
                    self.running.pop(ident, None)

    def stop(self, timeout: float = 2.0) -> None:
        for _ in self.threads:
            self.jobs.put(None)
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            # A hung app thread (see --request-timeout) is a daemon: not waited for.
            thread.join(max(0.0, deadline - time.monotonic()))


class Worker(Loop):
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
        self.max_requests = config.max_requests
        if self.max_requests and config.max_requests_jitter:
            self.max_requests += random.randint(0, config.max_requests_jitter)
        self._watch = board is not None and config.threads == 0
        self._rss = RSSProbe() if config.reload_on_rss else None
        self._access_log = AccessLog(config.access_log_format) if config.access_log else None
        self._one_shot = config.driver.one_request_per_connection
        self.kept_connections = 0
        self._accepting = False  # inside _accept(): forget() leaves the scoreboard alone
        self._reported_connections = -1  # the count last written to the scoreboard (-1: none)
        self._starved = False  # out of descriptors: accepts paused
        self._refuse = False  # stopping for good: close the listening sockets
        self._listeners_closed = False
        # Set by the SIGTERM/SIGINT handler, acted on by the loop at the top of a
        # turn: a handler may run between any two bytecodes, and ``stopping``
        # flipping in the middle of a reply's end (corked or not, closed or
        # kept) would send the END_REQUEST and the FIN in separate segments.
        self._stop_asked = False
        # Stopping: the latest activity of a connection already closed (the
        # drain waits for the whole worker to be quiet, see _DRAIN_QUIET).
        self._last_activity = 0.0
        self._in_flight = 0  # requests handed to the pool and not finished (loop's count)
        # A worker under a master stops when its master is gone: told by
        # PR_SET_PDEATHSIG (SIGTERM), and checked in the sweep.
        self._ppid = os.getppid() if board is not None else 0
        self.builder = EnvironBuilder(
            multithread=config.threads > 0,
            multiprocess=config.workers > 1,
            file_wrapper=FileWrapper,
        )
        self.poller = Poller()
        self.connections: dict[int, Connection] = {}  # by socket fd
        self.lingering: dict[int, Lingerer] = {}
        self.stopping = False
        self.pool: Pool | None = None
        self.threaded = False  # app threads (--threads): set with the pool in serve()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        # Connections whose app thread posted output, or ("timeout", ...) notes
        # from the request watchdog.
        self._woken: queue.SimpleQueue[Any] = queue.SimpleQueue()
        # The request watchdog (--request-timeout): when the loop thread entered
        # the app (inline; 0: not in the app) and for which run, read by the
        # watchdog thread (which renders the run's label only if it fires).
        self._app_since = 0.0
        self._app_run: Run | None = None
        # The pieces of the label this worker last wrote to the scoreboard
        # (inline): the label is rendered and written only when they change.
        self._shown_method: str | None = None
        self._shown_uri: str | None = None
        self._loop_ident = 0
        self._watchdog_done = threading.Event()
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
        connections = self.connections
        fd = conn.fd
        # (``in`` and ``del``: compiled, two dict operations; pop() is a method call)
        if fd in connections:
            del connections[fd]
            if conn.kept:
                self.kept_connections -= 1
            if self.stopping and conn.last_active > self._last_activity:
                self._last_activity = conn.last_active
            if conn.watching:
                self.poll_for(conn, 0)
            if self.board is not None and not self._accepting:
                self._report_connections()

    def keeps(self, conn: Connection) -> None:
        """``conn``'s web server keeps it for more requests (FCGI_KEEP_CONN): it
        counts for accept balancing until forget()."""
        self.kept_connections += 1

    def _report_connections(self) -> None:
        """Write the connection count to the scoreboard, if it changed (board only)."""
        count = len(self.connections)
        if count != self._reported_connections and self.board is not None:
            self._reported_connections = count
            self.board.set_connections(self.slot, count)

    # -- per-request accounting (the loop thread) ---------------------------
    def run_begins(self, run: Run, now: float) -> None:
        """The loop is about to step ``run`` in the app (inline mode); ``now`` is
        the connection's latest activity, a moment ago (see ``Connection._advance``)."""
        if not run.started:
            run.started = now
        self._app_since = now
        self._app_run = run
        board = self.board
        if board is not None and self._watch:
            environ = run.request.environ
            uri = environ.get("REQUEST_URI")
            method = environ["REQUEST_METHOD"]
            label = None  # unchanged: the board keeps the one it has
            if uri is None or uri != self._shown_uri or method != self._shown_method:
                self._shown_uri = uri
                self._shown_method = method
                label = request_label(environ)
            board.request_started(self.slot, label, now)

    def run_paused(self) -> None:
        """The loop is out of the app: the run waits for the socket (a slow reader)."""
        self._app_since = 0.0
        if self._watch and self.board is not None:
            # Suspended for a slow reader, the worker is not busy: say so, so that
            # neither the master's watchdog nor accept balancing count it as stuck.
            self.board.request_finished(self.slot, self.requests_served, self.errors)

    def request_done(self, run: Run, now: float = 0.0) -> None:
        """The one place a request is finished (answered, failed or cut); ``now``:
        the monotonic time, when the caller has it."""
        self._app_since = 0.0
        self._app_run = None
        response = run.response
        failed = not run.ok or response.failed
        served = self.requests_served = self.requests_served + 1
        errors = self.errors = self.errors + failed
        board = self.board
        started = run.started
        duration = (now or time.monotonic()) - started if started else 0.0
        if board is not None:
            board.request_done(self.slot, served, errors, status=response.status,
                               duration=duration, bytes_in=run.request.body.received,
                               bytes_out=response.sent)
        if self.pool is not None:
            self._in_flight -= 1
            if board is not None:
                board.set_threads(self.slot, *self.pool.counts(self._in_flight))
        if self._access_log is not None:
            self._access_log.log(run.request.environ, response, duration)
        if self.max_requests and served >= self.max_requests and not self.stopping:
            log.info("worker %d served %d requests; recycling it", os.getpid(), served)
            self._begin_stop(refuse=False)
        if self._rss is not None and not self.stopping:
            rss = self._rss.rss()
            if rss > self.config.reload_on_rss:
                log.info("worker %d uses %d MiB, over --reload-on-rss %d MiB; recycling it",
                         os.getpid(), rss >> 20, self.config.reload_on_rss >> 20)
                self._begin_stop(refuse=False)

    def note_malformed(self, exc: ProtocolError) -> None:
        """Count a request refused as malformed, by reason, for the status page."""
        if self.board is not None:
            reason = (0 if isinstance(exc, LimitExceeded)
                      else 1 if isinstance(exc, BadRequest) else 2)
            self.board.count_malformed(self.slot, reason)

    def _thread_started(self, index: int, run: Run) -> None:
        """(app thread ``index``) Show its request on the scoreboard; its own field."""
        if self.board is not None:
            self.board.thread_started(self.slot, index, run.label, time.monotonic())

    def _thread_finished(self, index: int) -> None:
        """(app thread ``index``)"""
        if self.board is not None:
            self.board.thread_finished(self.slot, index)

    def submit(self, conn: Connection, run: Run) -> bool:
        pool = self.pool
        if pool is None or not pool.submit(conn, run):
            return False
        run.started = time.monotonic()
        run.label = request_label(run.request.environ)
        self._in_flight += 1
        if self.board is not None:
            self.board.set_threads(self.slot, *pool.counts(self._in_flight))
        return True

    def wake(self, conn: Connection) -> None:
        """(an app thread) ``conn``'s run has output (or ended): wake the loop for it."""
        self._woken.put(conn)
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

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

    def poll_for(self, conn: Connection, mask: int) -> None:
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

    def _woken_ready(self) -> None:
        while True:
            try:
                data = self._wake_r.recv(4096)
            except OSError:
                break
            if not data:
                break
            # Zeros from app threads and request_stop(); the number of each
            # signal caught (serve() makes this the wake-up fd on the main thread).
            for signum in _STOP_SIGNALS:
                if signum in data:
                    self._stop_asked = True
        while True:
            try:
                item = self._woken.get_nowait()
            except queue.Empty:
                return
            if type(item) is tuple:
                self._timed_out(item[1], item[2])
                continue
            if not item.closed:
                item.on_wake()

    # -- accepting ------------------------------------------------------
    def _accept(self, listener: socket.socket) -> None:
        if self.stopping:
            return  # leave waiting connections to a worker that will serve them
        board = self.board
        count = len(self.connections)
        # Balancing matters for kept-alive connections only; one-request
        # connections (SCGI, uwsgi, FastCGI without FCGI_KEEP_CONN) come and go
        # and the accept queue shares them out. Pausing for them stalled every
        # FastCGI request that a web server sent without keep-alive.
        kept = self.kept_connections
        if count >= self.config.limits.max_connections or (
            board is not None
            and not self._one_shot
            and kept > ACCEPT_SLACK  # else no worker can hold clearly fewer
            and board.should_yield(self.slot, kept)
        ):
            # At the FCGI_MAX_CONNS we advertise, or ahead of the other workers:
            # leave new connections in the backlog for a moment.
            self._pause_accepting(_ACCEPT_PAUSE)
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

    def _pause_accepting(self, seconds: float) -> None:
        self._stop_accepting()
        self.accept_paused_until = time.monotonic() + seconds

    def _accept_waiting(
        self, listener: socket.socket, board: Scoreboard | None, *, draining: bool = False
    ) -> None:
        """Accept and start serving the connections waiting on ``listener`` (up to 64;
        ``draining``: every one, before the listener closes for good)."""
        limit = self.config.limits.max_connections
        family, kind, waiting = self._listener_info[listener.fileno()]
        backlog = waiting.poll
        tcp = family != socket.AF_UNIX
        peer_filter = self.config.peer_filter  # TCP only: unix peers always pass
        for _ in range(limit if draining else 64):
            # Every worker polling the listener wakes for a new connection: one
            # takes it, the others find the backlog empty. Asking first costs
            # a tenth of an accept4() that fails. A connection this worker
            # cannot serve (stopping, or at its limit) is left for the others.
            if ((self.stopping and not draining) or len(self.connections) >= limit
                    or not backlog(0)):
                return
            try:
                # socket.accept() less its per-call enum conversions of the
                # listener's family and type, and the socket is the C-level
                # object: the socket.py layer adds only Python work per call.
                # (Typed, so that the compiled build unpacks it as a tuple.)
                accepted: tuple[int, object] = listener._accept()  # type: ignore[attr-defined]
                fd, peer = accepted
                sock = _socket.socket(family, kind, 0, fd)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    # Level-triggered: polling the listener again now would spin.
                    if not self._starved:
                        self._starved = True
                        log.error("cannot accept: %s; pausing accepts until descriptors "
                                  "free up (%d connections open)", exc.strerror,
                                  len(self.connections))
                    self._pause_accepting(_STARVED_PAUSE)
                    return
                if exc.errno in (errno.ECONNABORTED, errno.EPROTO):
                    continue
                raise
            if self._starved:
                self._starved = False
                log.info("accepting again (%d connections open)", len(self.connections))
            if tcp:
                if not peer_filter.allows(peer):
                    log.warning("connection from %s refused by the allow-list", peer_text(peer))
                    close_quietly(sock)
                    continue
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # Left in blocking mode: the connection reads and writes with
            # MSG_DONTWAIT, one ioctl(FIONBIO) fewer per connection.
            try:
                conn = Connection(self, sock, peer)
            except Exception:
                log.exception("cannot set up a connection from %s", peer_text(peer))
                close_quietly(sock)
                continue
            self.connections[conn.fd] = conn
            # Web servers send the request right after connecting: read it now
            # rather than after another trip through the poller; for SCGI and
            # uwsgi (one connection per request) that usually serves the whole
            # connection, which then never needs polling at all.
            try:
                conn.on_readable()
            except Exception:
                self._failed(conn)
            if not conn.closed:
                conn.repoll()
            if board is not None and not self._one_shot and not draining:
                return  # one at a time, so the board stays current

    def _failed(self, conn: Connection) -> None:
        """(within ``except``) An entry point of ``conn`` raised: log it, close it."""
        log.exception("internal error on the connection from %s; closed", peer_text(conn.peer))
        with contextlib.suppress(Exception):
            conn.close()

    # -- the loop ---------------------------------------------------------
    def serve(self) -> None:
        config = self.config
        self._loop_ident = threading.get_ident()
        if config.threads > 0:
            self.pool = Pool(config.threads, config.limits.max_queued_requests,
                             self._thread_started, self._thread_finished)
            self.threaded = True
        if config.limits.request_timeout:
            threading.Thread(target=self._watchdog, name="wsgiwire-watchdog",
                             daemon=True).start()
        if self.board is not None:
            self.board.set_state(self.slot, ACCEPTING)
        self._start_accepting()
        self.poller.add(self._wake_r.fileno(), READ, None)
        # CPython runs a signal's Python handler (request_stop for SIGTERM) only
        # when it next executes bytecode. The compiled loop runs none between
        # requests: a SIGTERM that lands outside a system call (just after a
        # reply) would wait for the next request, and an idle worker would never
        # stop. As the wake-up fd, our socketpair gets the signal's number from
        # the C-level handler at once, and _woken_ready() acts on it.
        old_wakeup_fd: int | None = None
        if threading.current_thread() is threading.main_thread():
            old_wakeup_fd = signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)
        limits = config.limits
        next_sweep = time.monotonic() + _SWEEP_INTERVAL
        stop_by = 0.0
        try:
            while True:
                if self._stop_asked:
                    self._stop_asked = False
                    self._check_master()
                    self._begin_stop(refuse=True)
                if self.stopping:
                    if not stop_by:
                        stop_by = time.monotonic() + config.graceful_timeout
                        self._last_activity = max(self._last_activity, time.monotonic())
                        self._stop_accepting()
                        if self.board is not None:
                            self.board.set_state(self.slot, DRAINING)
                    if self._refuse and not self._listeners_closed:
                        self._close_listeners()
                    # Connections close as soon as they are between requests.
                    self._close_idle()
                    if not self.connections or time.monotonic() >= stop_by:
                        break
                timeout = _SWEEP_INTERVAL
                if self.stopping:
                    timeout = 0.1  # idle connections become quiet enough to close
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
                        # An error in a connection's entry point ends that
                        # connection only.
                        try:
                            if target.outbox is not None:
                                target.on_writable()
                            else:
                                target.on_readable()
                        except Exception:
                            self._failed(target)
                    elif target is None:
                        self._woken_ready()
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
            if old_wakeup_fd is not None:
                signal.set_wakeup_fd(old_wakeup_fd)
            self._watchdog_done.set()
            cut = [c for c in self.connections.values() if c.requests or c.busy]
            if cut:
                log.warning("stopping with %d connection(s) mid-request; they are cut", len(cut))
            for conn in list(self.connections.values()):
                with contextlib.suppress(Exception):
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
        self._check_master()
        for lingerer in list(self.lingering.values()):
            if now >= lingerer.deadline:
                self._end_linger(lingerer)
        for conn in list(self.connections.values()):
            if conn.outbox is not None:
                if now - conn.outbox_since > limits.write_timeout:
                    log.warning("%s read nothing for %.0f s; connection closed",
                                peer_text(conn.peer), limits.write_timeout)
                    conn.close()
                continue
            if conn.busy:
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
            if fd >= 0 and fd not in self.poller.targets:
                self.poller.add(fd, READ, listener)

    def _stop_accepting(self) -> None:
        for listener in self.config.listeners:
            fd = listener.fileno()
            if fd >= 0:
                self.poller.remove(fd)

    def _close_listeners(self) -> None:
        """Stopping for good: close this process's copies of the listening sockets.

        Once every process holding one has closed it (the master closes its own
        when it stops), new connections are refused at once and the web server
        fails over, instead of waiting in a backlog nobody will accept from.

        The last close resets every connection still in the backlog, and the web
        server has already sent its request on each (the kernel completed the
        handshake): nginx answers 502 to such a POST instead of failing over. So
        what waits is accepted and served first; only a connection completing
        its handshake between that and the close (microseconds) can be cut.
        """
        self._listeners_closed = True
        for listener in self.config.listeners:
            if listener.fileno() >= 0:
                with contextlib.suppress(OSError):
                    self._accept_waiting(listener, None, draining=True)
            close_quietly(listener)

    def _close_idle(self) -> None:
        """Close connections between requests that have been quiet for a moment,
        once the whole worker has been (see ``_DRAIN_QUIET``).

        Until then a request arriving on a kept connection is served, and its
        connection closes right behind the reply (``Connection._finish``): the
        one close the web server always sees before it reuses a connection.
        One with unread bytes is served first. A one-request connection (SCGI,
        uwsgi) is never between requests: its request is on its way until it is
        answered (the header and idle timeouts still bound the wait), so it is
        left to finish.
        """
        if self._one_shot:
            return
        now = time.monotonic()
        newest = self._last_activity
        for conn in self.connections.values():
            newest = max(newest, conn.last_active)
        if now - newest < _DRAIN_QUIET:
            return  # the web server still sends requests our way: see _DRAIN_QUIET
        quiet_since = now - _QUIET
        for conn in list(self.connections.values()):
            if (conn.requests or conn.busy or conn.head_since or conn.outbox is not None
                    or conn.last_active > quiet_since or _has_input(conn.sock)):
                continue
            conn.close()

    def request_stop(self) -> None:
        """Stop for good (SIGTERM/SIGINT): refuse new connections, finish what came.

        Called from a signal handler: the loop acts on it at the top of its next
        turn (see ``_stop_asked``); this only wakes it.
        """
        self._stop_asked = True
        if self._ppid and os.getppid() != self._ppid:
            self._arm_deadline()  # here: the loop may be stuck in the app
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    def _arm_deadline(self) -> None:
        """No master will kill this worker if its drain hangs (an app stuck in a
        request): the kernel does, by SIGALRM, once the graceful timeout and a
        second are over."""
        with contextlib.suppress(OSError, ValueError):
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            signal.setitimer(signal.ITIMER_REAL, self.config.graceful_timeout + 1.0)

    def _check_master(self) -> None:
        """(loop) The master is gone (its death signal, PR_SET_PDEATHSIG, is SIGTERM;
        the sweep checks too): stop for good, draining as on SIGTERM."""
        if self._ppid and os.getppid() != self._ppid:
            log.warning("worker %d: the master (%d) is gone; stopping", os.getpid(), self._ppid)
            self._ppid = 0
            self._arm_deadline()
            self._begin_stop(refuse=True)

    def _begin_stop(self, *, refuse: bool) -> None:
        self._refuse = self._refuse or refuse
        self.stopping = True
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    # -- the request watchdog (--request-timeout) ------------------------------
    def _watchdog(self) -> None:
        """A thread: log where a request over its time limit is, then act.

        Inline (no threads) the loop itself is stuck in the app: after the stack
        is logged the worker exits, and the master starts another. With threads,
        the hung request's connection is cut and the worker stops gracefully:
        its other requests finish, then a fresh worker takes over.
        """
        limit = self.config.limits.request_timeout
        if not limit:
            return
        tick = min(0.1, limit / 10)
        reported: set[int] = set()
        while not self._watchdog_done.wait(tick):
            now = time.monotonic()
            pool = self.pool
            if pool is None:
                since = self._app_since
                run = self._app_run
                if since and now - since > limit:
                    label = request_label(run.request.environ) if run is not None else ""
                    self._log_stack(f"worker {os.getpid()} killed:", self._loop_ident,
                                    label, ran=now - since, limit=limit, then="")
                    os._exit(TIMED_OUT)
                continue
            with pool._lock:
                running = list(pool.running.items())
            for ident, (started, run, conn) in running:
                if now - started > limit and id(run) not in reported:
                    reported.add(id(run))
                    self._log_stack(f"worker {os.getpid()} cut a request:", ident, run.label,
                                    ran=now - started, limit=limit,
                                    then="; the worker finishes its other requests and restarts")
                    self._woken.put(("timeout", run, conn))
                    with contextlib.suppress(OSError):
                        self._wake_w.send(b"\0")

    def _log_stack(
        self, what: str, ident: int, label: str, *, ran: float, limit: float, then: str
    ) -> None:
        frame = sys._current_frames().get(ident)
        stack = "".join(traceback.format_stack(frame)) if frame is not None else "(gone)\n"
        log.error("%s %s ran %.1f s, over the request timeout of %g s%s. It was at:\n%s",
                  what, label or "a request", ran, limit, then, stack.rstrip())

    def _timed_out(self, run: Run, conn: Connection) -> None:
        """(loop) A request on an app thread ran over its limit: cut it, then recycle."""
        if conn.run is run and not conn.closed:
            conn.close()
        if not self.stopping:
            self._begin_stop(refuse=False)
