"""One accepted connection's transport: bytes in, events to the runner, replies out.

Who owns what, in a worker (the one place this is written down):

* The **loop thread** owns the poller, the connection table, the scoreboard,
  every socket, every codec and every :class:`Connection` attribute. It reads,
  frames, writes (``sendmsg``, non-blocking ``sendfile``), closes and forgets.
* An **app thread** (``--threads``) owns only the app call of one
  :class:`~wsgiwire.adapters._runner.Run`. It hands output back by posting
  items under that run's lock and waking the loop (a socketpair, as waitress's
  ``trigger.py``); it never calls into the loop, the codec or the socket.
  The only state both sides touch is the run's item list and byte counts,
  under the run's lock, and the connection's ``closed`` flag, which the loop
  sets and the thread only reads (a request whose peer left is not started).

Nothing here blocks: what the socket cannot take waits in ``outbox`` until
it turns writable, and a response being produced in the loop (no threads) is
suspended meanwhile and resumed after (``Run.step``), or, when the app writes
it through ``write()``, held in a temporary file past a bound (``SPILL_AT``).
While a request runs on an app thread its FastCGI connection is watched for
the peer's hang-up only, so a request whose web server gave up is not started. An exception while a
request is set up or run ends that request (an error reply or a close, one
log line), never the worker.
"""

from __future__ import annotations

import _socket
import contextlib
import errno
import logging
import os
import socket
import time
from collections.abc import Sequence
from typing import Final

from .._errors import ClientDisconnected, ProtocolError
from .._events import (
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
    ResponseData,
    ResponseEnd,
    ResponseErrorData,
    Role,
)
from ..core._body import BodyBuffer, SpoolError, attach_input
from ..core._gateway import request_label
from ..core._response import HeadStyle
from ._base import Buffer, Loop, Transport, refusal, status_reply
from ._poller import HANGUP, READ, WRITE
from ._runner import DATA, END, ERRORS, FILE, FileSegment, Request, Run, cut_buffers

__all__ = ["Connection", "Lingerer", "Request", "peer_text"]

log = logging.getLogger("wsgiwire")

# 64 KiB: below glibc's mmap threshold, so a read does not map and unmap memory
# (a 256 KiB read did, on every one-request connection).
RECV_SIZE: Final = 65536
# Accepted sockets stay in blocking mode (see Worker._accept_waiting): every read
# and write asks for non-blocking behaviour itself, which spares each connection
# the ioctl(FIONBIO) of setblocking(False). Only sendfile(), which takes no
# flags, needs the socket non-blocking: _flush sets that on first use.
_DONTWAIT: Final = socket.MSG_DONTWAIT
_NO_ANCILLARY: Final[tuple[()]] = ()
# sendmsg() takes at most IOV_MAX (1024 on Linux) buffers at once.
_IOV_MAX: Final = 1024
# What a flush hands one sendmsg() at most (then more, if it took all of it):
# a socket takes no more than its send buffer (a unix socket's is 208 KiB by
# default), and each buffer passed costs a conversion, taken or not (the 34
# of a 1 MiB FastCGI reply, at every wake-up, for the 4 or so it took).
# (The send buffer is left as the kernel sets it. Grown to hold a whole 1 MiB
# reply, it spared the worker its write wake-ups, but nginx then read the reply
# at once into 16 buffers of its own, and its page faults (its heap grown and
# trimmed) doubled its CPU per download, 0.35 -> 0.7 ms.)
_BATCH_BYTES: Final = 512 << 10
# How much of the last bytes received a protocol-error log line shows.
_SHOWN_BYTES: Final = 48
# Lingering close: how long and how much to drain after a refusal (nginx's
# lingering_time is 30 s; a gateway peer is local and fast, so less will do).
LINGER_TIME: Final = 5.0
_LINGER_BYTES: Final = 64 << 20
# A file segment goes out in pieces of at most this, so one fast reader of a
# large file does not keep the loop to itself.
_SENDFILE_MAX: Final = 8 << 20

OutItem = Buffer | FileSegment


class Connection(Transport):
    """One accepted socket (loop-owned): feeds the codec, starts runs, writes replies."""

    __slots__ = (
        "close_after_flush",
        "close_linger",
        "closed",
        "codec",
        "fd",
        "hangup",
        "head_since",
        "kept",
        "last_active",
        "last_bytes",
        "last_done",
        "loop",
        "outbox",
        "outbox_bytes",
        "outbox_since",
        "peer",
        "requests",
        "run",
        "sock",
        "watching",
    )

    def __init__(self, loop: Loop, sock: _socket.socket, peer: object) -> None:
        self.loop = loop
        self.sock = sock
        self.fd = sock.fileno()
        self.watching = 0  # what the loop polls this socket for (0: nothing)
        self.peer = peer
        self.codec = loop.config.driver.new_codec(loop.config)
        self.requests: dict[int, Request] = {}
        # The request being run (inline and suspended, or on an app thread).
        self.run: Run | None = None
        self.closed = False
        # A request on it asked to keep the connection (counted in the loop's
        # kept_connections until forget()).
        self.kept = False
        # Set by the first on_readable(), which the loop calls at once (0: not yet).
        self.last_active = 0.0
        # When the first byte of a request head arrived (0: not reading a head):
        # the header timeout runs from here, so a trickling client is cut.
        self.head_since = 0.0
        # Reply bytes and file segments the peer could not take yet (None: none).
        self.outbox: list[OutItem] | None = None
        self.outbox_bytes = 0
        self.outbox_since = 0.0
        self.close_after_flush = False
        self.close_linger = False
        self.last_done = False
        self.last_bytes = b""
        # What to poll for while a request runs on an app thread or waits for
        # one: the peer's hang-up, so that a request whose peer has gone is not
        # started (0: not watched). A web server closes its FastCGI connection
        # when its client goes away, and never half-closes one that waits for
        # a reply. SCGI and uwsgi clients may end their request with a
        # half-close (``wsgiwire check`` does), so there it means nothing.
        self.hangup = 0 if self.codec.one_request_per_connection else HANGUP

    @property
    def busy(self) -> bool:
        """A request of this connection is running (or suspended mid-reply)."""
        return self.run is not None

    # -- entry points (the loop calls these) --------------------------------
    def on_readable(self) -> None:
        # Tested through a local, not as ``self.run is not None``: that would narrow
        # ``self.run`` to None for the rest of this method, which pump() changes,
        # and the compiled build trusts such narrowing (a TypeError further down).
        running = self.run
        if running is not None:
            self._on_hangup()  # polled for nothing else while a request runs
            return
        try:
            data = self.sock.recv(RECV_SIZE, _DONTWAIT)
        except (BlockingIOError, InterruptedError):
            if not self.last_active:
                self.last_active = time.monotonic()  # accepted before its first bytes
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
        # (repoll(), less the call when reading on is all there is to do)
        if self.watching != READ or self.run is not None or self.outbox is not None:
            self.repoll()

    def on_writable(self) -> None:
        """The socket can take more of the outbox; then resume the reply or read on."""
        if self.closed or self.outbox is None:
            return
        if not self._flush():
            self._sync_run()
            return
        if self.close_after_flush:
            self.close(linger=self.close_linger)
            return
        run = self.run
        if run is not None:
            if run.threaded:
                run.output.set_unsent(0)
            elif not run.output.done:
                self._advance(run)
        self._pump_safely()

    def on_wake(self) -> None:
        """An app thread posted output for this connection's run."""
        run = self.run
        if self.closed or run is None or not run.threaded:
            return
        out: list[OutItem] = []
        codec = self.codec
        request_id = run.request.id
        finished = False
        for kind, payload in run.output.take_items():
            if kind == DATA:
                out.extend(codec.send(ResponseData(request_id, payload)))
            elif kind == ERRORS:
                out.extend(codec.send(ResponseErrorData(request_id, payload)))
            elif kind == FILE:
                out.append(payload)
            elif kind == END:
                run.ok = bool(payload)
                finished = True
        if finished:
            self._finish(run, out)
        elif out:
            self.send(out)
            self._sync_run()
        self._pump_safely()

    def write_now(self, buffers: list[Buffer]) -> int:
        """(an inline run, from inside the app's ``write()``) Write what the socket
        takes now, in order after anything waiting; the count sent, -1 when the
        peer is gone. Changes nothing else: the loop deals with the socket once
        the app returns."""
        if self.closed:
            return -1
        if self.outbox is not None:
            return 0
        try:
            sent = self.sock.sendmsg(buffers[:_IOV_MAX], _NO_ANCILLARY, _DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError:
            return -1
        if sent:
            self.last_active = time.monotonic()
        return sent

    def label(self, request_id: int) -> str:
        """``METHOD /path?query`` of a request of this connection, for a log line."""
        request = self.requests.get(request_id)
        return request_label(request.environ) if request is not None else "a request"

    def _on_hangup(self) -> None:
        """The peer shut down its side while its request is queued or running."""
        try:
            rest = self.sock.recv(1, socket.MSG_PEEK | _DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            rest = b""
        if rest:
            # It sent more first (an abort, another request): read after the
            # run, as before; stop watching this one, or the poller would spin.
            self.hangup = 0
            self.repoll()
            return
        run = self.run
        if run is not None:
            log.info("client %s went away before the answer to %s", peer_text(self.peer),
                     request_label(run.request.environ))
        self.close()

    def _sync_run(self) -> None:
        run = self.run
        if run is not None and run.threaded:
            run.output.set_unsent(self.outbox_bytes)

    # -- reading ----------------------------------------------------------
    def _pump_safely(self) -> None:
        try:
            self.pump()
        except ClientDisconnected:
            pass
        self.repoll()

    def pump(self) -> None:
        """Handle every event the codec has; stop while a request runs or a reply waits."""
        codec = self.codec
        requests = self.requests
        while not self.closed and self.run is None and self.outbox is None:
            if self.last_done and not requests:
                break  # nothing after a request the peer said was the last
            event: Event | NeedData | None = None
            try:
                event = codec.next_event()
                if event is NEED_DATA:
                    break
                # Every request's two events here; the others in dispatch().
                if type(event) is RequestStarted:
                    self.start(event)
                elif type(event) is BodyEnd:
                    request = requests[event.request_id]
                    if request.role is not Role.FILTER:
                        self.ready(request)
                else:
                    self.dispatch(event)
            except ProtocolError as exc:
                # An error from the codec names its request itself (or none:
                # the connection's fault); one from handling an event is that
                # event's request's.
                request_id = exc.request_id
                if request_id is None and event is not None:
                    request_id = getattr(event, "request_id", None)
                if not exc.peer_fault:
                    self.request_failed(request_id, exc.status_hint, exc.msg, exc=exc)
                else:
                    self.protocol_error(exc, request_id)
                return
            except ClientDisconnected:
                raise
            except Exception as exc:  # a bug or a shortage (MemoryError, OSError)
                request_id = getattr(event, "request_id", None)
                status = 507 if getattr(exc, "errno", None) in (errno.ENOSPC, errno.EFBIG) else 500
                log.error("internal error setting up a request from %s: %s: %s",
                          peer_text(self.peer), type(exc).__name__, exc, exc_info=exc)
                self.request_failed(request_id, status, "", logged=True)
                return
        if self.closed:
            return
        if self.head_since and not requests and codec.idle:
            self.head_since = 0.0  # bytes that started no request (e.g. a late ABORT)
        housekeeping = codec.data_to_send()
        if housekeeping:
            self.send([housekeeping])
        if codec.should_close and not requests and self.run is None:
            # Input may still be on its way: the rest of a request the codec
            # refused (housekeeping replies), or bytes past a body (nginx with
            # request buffering off). Drain it rather than reset the peer.
            self.close_soon(linger=bool(housekeeping) or codec.discarded_bytes > 0)

    def dispatch(self, event: Event | NeedData) -> None:
        """Handle an event other than RequestStarted and BodyEnd (``pump`` takes those)."""
        if type(event) is BodyData:
            self.requests[event.request_id].body.feed(event.data)
        elif type(event) is FilterData:
            request = self.requests[event.request_id]
            data = request.data
            if data is None:
                data = request.data = BodyBuffer(None, self.loop.config.limits)
            data.feed(event.data)
        elif type(event) is FilterDataEnd:
            self.ready(self.requests[event.request_id])
        elif type(event) is RequestAborted:
            request_id = event.request_id
            aborted = self.requests.pop(request_id, None)
            if aborted is not None:
                aborted.body.discard()
                log.info("request aborted by the web server: %s", request_label(aborted.environ))
            self.send(self.codec.send(ResponseEnd(request_id, 1)))
        elif type(event) is ConnectionClosed:
            self.close()

    def start(self, event: RequestStarted) -> None:
        loop = self.loop
        if event.keep_conn and not self.kept:
            self.kept = True
            loop.keeps(self)
        config = loop.config
        environ, declared = loop.builder.build_request(event)
        if config.base_environ:
            for key, value in config.base_environ.items():
                environ.setdefault(key, value)
        if event.role is not Role.RESPONDER:
            environ["FCGI_ROLE"] = event.role.name
        body = BodyBuffer(declared, config.limits)  # errors: the event's request's (pump)
        self.requests[event.request_id] = Request(event, environ, body)
        self.head_since = 0.0

    # -- running the app ------------------------------------------------
    def ready(self, request: Request) -> None:
        environ = request.environ
        stream = request.body.finish()  # errors: the event's request's (pump)
        attach_input(environ, stream, terminated=request.body.declared is None)
        if request.data is not None:
            environ["wsgiwire.fcgi_data"] = request.data.finish()
        loop = self.loop
        if not loop.threaded:
            run = Run(loop, self.codec, request, self, threaded=False)
            self.run = run
            self._advance(run)
            return
        run = Run(loop, self.codec, request, self, threaded=True)
        if not loop.submit(self, run):
            self.requests.pop(request.id, None)
            stream.close()
            log.warning("overloaded: refused %s", request_label(environ))
            self.send(refusal(self.codec, request.id))
            return
        self.run = run

    def _advance(self, run: Run) -> None:
        """Step an inline run while the socket takes its output; park it when it does not."""
        loop = self.loop
        while True:
            # The run starts (or resumes) now: ``last_active`` was set a moment
            # ago, by the read that completed the request or the write that
            # made room, and it saves asking the clock again.
            loop.run_begins(run, self.last_active)
            try:
                ended = run.step()
            except Exception as exc:  # the gateway answers the app's errors: this is ours
                log.error("internal error running %s: %s: %s", request_label(run.request.environ),
                          type(exc).__name__, exc, exc_info=exc)
                run.ok = False
                ended = True
            if ended:
                # The loop is out of the app (request_done says so); the run's
                # output is all the transport's now.
                self._finish(run, run.output.pending)
                return
            loop.run_paused()
            pending = run.output.take_pending()
            if pending:
                self.send(pending)
            if self.closed or self.outbox is not None:
                return  # resumed by on_writable()

    def _finish(self, run: Run, out: list[OutItem]) -> None:
        """The app is done with ``run``: end the request on the wire and account for it."""
        request = run.request
        self.run = None
        self.requests.pop(request.id, None)
        now = self.last_active = time.monotonic()
        self.loop.request_done(run, now)
        if self.closed or run.output.cut:
            for item in out:
                if type(item) is FileSegment:
                    item.close()
            # Cut (max_reply_spool): what waits is dropped, and the close tells
            # the web server that the reply is not whole.
            self.close()
            return
        ok = run.ok
        codec = self.codec
        out += codec.send(ResponseEnd(request.id, 0 if ok else 1))
        # A request without keep-alive was the connection's last: no more are read.
        self.last_done = codec.should_close
        if self.loop.stopping and not self.requests and codec.idle:
            # The last reply before a stop: hold it back (TCP_CORK) so that its
            # END_REQUEST and our FIN leave in one segment. nginx reads both at
            # once and never puts the connection back in its keepalive cache,
            # where its very next request (a POST it cannot retry) would meet
            # the close. The close follows in close_soon() below.
            _cork(self.sock)
        self.send(out)
        if not ok and codec.head_style is not HeadStyle.CGI:
            # uwsgi/SCGI have no way to say "cut" but closing the connection.
            self.close_soon()
        elif self.loop.stopping and not self.requests and codec.idle:
            # Stopping: a kept connection closes right behind its END_REQUEST,
            # so the web server sees the close before it reuses the connection.
            self.close_soon()

    # -- errors ---------------------------------------------------------
    def request_failed(
        self,
        request_id: int | None,
        status: int,
        why: str,
        *,
        logged: bool = False,
        exc: ProtocolError | None = None,
    ) -> None:
        """Setting up a request failed on our side (spool full, a bug): answer it, close.

        ``exc``: our own error (not the peer's fault), logged with its traceback
        unless it is a known shortage (``SpoolError``: a full disk is no bug).
        """
        request = self.requests.get(request_id) if request_id is not None else None
        if not logged:
            label = request_label(request.environ) if request is not None else "a request"
            trace = exc if exc is not None and not isinstance(exc, SpoolError) else None
            log.error("%s from %s: %s; answered %d", label, peer_text(self.peer), why, status,
                      exc_info=trace)
        self.protocol_error(ProtocolError(why, status_hint=status, request_id=request_id),
                            request_id, logged=True)

    def protocol_error(
        self, exc: ProtocolError, request_id: int | None = None, *, logged: bool = False
    ) -> None:
        """The peer broke the protocol (``exc``; ``request_id`` when the error does not
        name its request): log it as the peer's fault, answer what can be, close."""
        if request_id is None:
            request_id = exc.request_id
        if not logged:
            self.loop.note_malformed(exc)
            shown = self.last_bytes.decode("latin-1").encode("unicode_escape").decode("ascii")
            log.warning(
                "%s protocol error from %s: %s (last bytes received: '%s'%s)",
                self.loop.config.driver.name,
                peer_text(self.peer),
                exc.msg,
                shown,
                "..." if len(self.last_bytes) >= _SHOWN_BYTES else "",
            )
        out: list[OutItem] = []
        if request_id is not None and not self.closed:
            try:
                out.extend(status_reply(self.codec, request_id, exc.status_hint))
            except ProtocolError:
                pass
        request = self.requests.pop(request_id or 0, None)
        if request is not None:
            request.body.discard()
        try:
            housekeeping = self.codec.data_to_send()
        except ProtocolError:
            housekeeping = b""
        if housekeeping:
            out.append(housekeeping)
        if out and not self.closed:
            self.send(out)
        self.close_soon(linger=True)

    # -- writing --------------------------------------------------------
    def send(self, items: Sequence[OutItem]) -> bool:
        """Write ``items`` now, or what the socket takes and park the rest; never blocks.

        True when everything went out. What waits goes out from ``on_writable``;
        meanwhile the connection reads nothing (one reply at a time, in order).
        """
        if self.closed:
            return False
        if self.outbox is not None:
            self.outbox.extend(items)
            self.outbox_bytes += sum(map(len, items))
            return False
        if type(items) is list and len(items) <= _IOV_MAX:
            size = 0
            for item in items:
                if type(item) is FileSegment:
                    break
                size += len(item)
            else:
                if not size:
                    return True  # nothing to write (the end of an SCGI or uwsgi reply)
                # The common case: one reply's buffers in one sendmsg(). (The
                # caller sets ``last_active`` when it matters: a reply's end.)
                try:
                    sent = self.sock.sendmsg(items, _NO_ANCILLARY, _DONTWAIT)
                except (BlockingIOError, InterruptedError):
                    sent = 0
                except OSError as exc:
                    self._gone(exc)
                    return False
                left = size - sent
                if not left:
                    return True
                self.outbox = cut_buffers(items, sent)
                self.outbox_bytes = left
                self.outbox_since = time.monotonic()
                self.repoll()
                return False
        self.outbox = list(items)
        self.outbox_bytes = sum(map(len, items))
        if self._flush():
            return True
        self.outbox_since = time.monotonic()
        self.repoll()
        return False

    def _flush(self) -> bool:
        """Write the outbox until it is empty (True) or the socket is full (False)."""
        outbox = self.outbox
        if outbox is None:
            return True
        sock = self.sock
        while outbox:
            first = outbox[0]
            if type(first) is FileSegment:
                if sock.gettimeout() is None:
                    sock.setblocking(False)  # sendfile() takes no MSG_DONTWAIT
                try:
                    n = os.sendfile(self.fd, first.fd, first.offset,
                                    min(first.left, _SENDFILE_MAX))
                except (BlockingIOError, InterruptedError):
                    return False
                except OSError as exc:
                    self._gone(exc)
                    return False
                if n == 0:  # the file ended early: the reply cannot be completed
                    log.warning("a file being sent to %s ended early; connection closed",
                                peer_text(self.peer))
                    self.close()
                    return False
                first.offset += n
                first.left -= n
                self.last_active = self.outbox_since = time.monotonic()
                if not first.left:
                    first.close()
                    del outbox[0]
                elif n < _SENDFILE_MAX:
                    return False  # the socket is full
                continue
            batch: list[Buffer] = []
            size = 0
            for item in outbox:
                if type(item) is FileSegment or len(batch) == _IOV_MAX or size >= _BATCH_BYTES:
                    break
                batch.append(item)
                size += len(item)
            try:
                sent = sock.sendmsg(batch, _NO_ANCILLARY, _DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return False
            except OSError as exc:
                self._gone(exc)
                return False
            self.outbox_bytes -= sent
            self.last_active = self.outbox_since = time.monotonic()
            outbox[: len(batch)] = cut_buffers(batch, sent)
            if sent < size:
                return False
        self.outbox = None
        self.outbox_bytes = 0
        return True

    def _gone(self, exc: OSError) -> None:
        log.info("client %s went away: %s", peer_text(self.peer), exc.strerror)
        self.close()

    def repoll(self) -> None:
        """Tell the loop what to poll this socket for: writing, reading, or nothing."""
        if self.closed:
            return
        if self.outbox is not None:
            mask = WRITE
        elif self.run is not None:
            # A request runs: read nothing more meanwhile, but see the peer go
            # (threads; inline the loop is in the app, or waits to write).
            mask = self.hangup if self.run.threaded else 0
        else:
            mask = READ
        if mask != self.watching:
            self.loop.poll_for(self, mask)

    def close_soon(self, *, linger: bool = False) -> None:
        """Close once the outbox is written (at once when it is empty)."""
        if self.outbox is not None:
            self.close_after_flush = True
            self.close_linger = self.close_linger or linger
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
        run = self.run
        if run is not None:
            self.run = None
            run.abandon()
            self.loop.request_done(run)
        if self.requests:
            for request in self.requests.values():
                request.body.discard()
            self.requests.clear()
        if self.outbox is not None:
            for item in self.outbox:
                if type(item) is FileSegment:
                    item.close()
            self.outbox = None
            self.outbox_bytes = 0
        self.loop.forget(self)
        if linger:
            self.loop.linger(self.sock)
            return
        if self.loop.stopping:
            # Corked (see _finish): the rest of the reply goes out with the FIN.
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_WR)
        # (close_quietly(), less a call into an interpreted module per connection)
        try:
            self.sock.close()
        except OSError:
            pass


def _cork(sock: _socket.socket) -> None:
    if sock.family != socket.AF_UNIX:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)


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
            data = self.sock.recv(RECV_SIZE, _DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return True
        self.drained += len(data)
        return not data or self.drained > _LINGER_BYTES
