"""Running one catalogue case against an in-process server, over a real socket.

A :class:`ServerPool` starts ``Worker(ServerConfig(...)).serve()`` in a
thread per (protocol, limits profile) on a 127.0.0.1 ephemeral port.
:func:`run_case` sends a case's steps (whole, or one byte per ``send``),
reads what comes back, checks it against the case's :class:`Expect`, then
checks the post-conditions:

* the same worker answers a good request on a NEW connection, and, for a
  FastCGI connection the case leaves open, on the SAME connection (the first
  thing read there must be that answer: a smuggled second response would
  show up first);
* exactly ``expect.warnings`` log records at WARNING or above on the
  ``wsgiwire`` loggers (one for a malformed request);
* no file descriptor and no thread left behind (``/proc/self/fd`` and
  ``threading.active_count()`` back to where they were, within a bounded
  wait for lingering closes);
* no traceback text (nor the apps' secret) in any reply.

Every check raises :class:`CaseFailure` explicitly (never ``assert``): the
catalogue also runs under ``python -O`` (``run_all``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from tests.support import fcgi_spec as spec
from wsgiwire._limits import Limits
from wsgiwire.adapters._runtime import ServerConfig, Worker
from wsgiwire.adapters.fastcgi import FastCGIDriver
from wsgiwire.adapters.scgi import SCGIDriver
from wsgiwire.adapters.uwsgi import UWSGIDriver

from .apps import SECRET, router

__all__ = [
    "BYTEWISE_LIMIT",
    "PROFILES",
    "PROTOCOLS",
    "CaseFailure",
    "Expect",
    "HalfClose",
    "LogTap",
    "Pause",
    "ReadThenReset",
    "Reset",
    "RunningServer",
    "ServerPool",
    "Step",
    "Trickle",
    "base_params",
    "good_request",
    "run_case",
    "tapped",
]

PROTOCOLS = ("fastcgi", "scgi", "uwsgi")

# Limits profiles. "default" keeps the production sizes but short timeouts, so a
# stuck case fails in seconds; "tight" has the small sizes and one-second
# timeouts the limit and slow-client cases measure against.
PROFILES: dict[str, Limits] = {
    "default": Limits(
        header_timeout=10.0, body_idle_timeout=10.0, keepalive_timeout=10.0, write_timeout=5.0
    ),
    "tight": Limits(
        max_body_size=4096,
        spool_threshold=1024,
        header_timeout=1.0,
        body_idle_timeout=1.0,
        keepalive_timeout=3.0,
        write_timeout=1.0,
    ),
}

# Byte-by-byte mode sends this many bytes one per send(), then the rest at once:
# the interesting bytes (headers, lengths, the first records) come first.
BYTEWISE_LIMIT = 1024
# How long a reply may take unless the case says otherwise.
READ_TIMEOUT = 5.0
# Bounded wait for descriptors and threads to come back (lingering closes).
SETTLE_TIMEOUT = 3.0

TRACEBACK_MARKERS = (b"Traceback (most recent call last)", b'File "', SECRET.encode())


class CaseFailure(Exception):
    """A catalogue case did not get the outcome or the post-condition it expects."""


# --- Steps ----------------------------------------------------------------------


@dataclass(frozen=True)
class Pause:
    """Wait before the next step."""

    seconds: float


@dataclass(frozen=True)
class HalfClose:
    """``shutdown(SHUT_WR)``: the server sees EOF; the reply can still be read."""


@dataclass(frozen=True)
class Reset:
    """Close with SO_LINGER 0 (a TCP reset); nothing more is read."""


@dataclass(frozen=True)
class ReadThenReset:
    """Read ``count`` reply bytes, then reset the connection (mid-response disconnect)."""

    count: int


@dataclass(frozen=True)
class Trickle:
    """Send ``data`` one byte every ``interval`` seconds (a slow client)."""

    data: bytes
    interval: float


Step = bytes | Pause | HalfClose | Reset | ReadThenReset | Trickle


# --- Expected outcome -----------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    """What the server must answer.

    ``status``: the HTTP status of every response (FastCGI: the ``Status:``
    line in FCGI_STDOUT; SCGI: ``Status: NNN``; uwsgi: ``HTTP/1.1 NNN``), or
    ``None`` for no response at all. ``responses``: how many (FastCGI: END_REQUEST
    records carrying a response). ``app_status``/``protocol_status``: every
    FastCGI END_REQUEST's fields (``None``: not checked). ``ends``: extra
    FastCGI END_REQUEST records with no output (a refusal or an early abort),
    as ``(appStatus, protocolStatus)``. ``closed``: the server closes the
    connection (else it must stay usable: FastCGI only). ``echo``: environ
    keys the echo app must report (value ``None``: must be absent).
    """

    status: int | None = 200
    responses: int = 1
    app_status: int | None = 0
    protocol_status: int | None = 0
    ends: tuple[tuple[int, int], ...] = ()
    unknown_types: tuple[int, ...] = ()
    values: tuple[tuple[bytes, bytes], ...] | None = None
    closed: bool = True
    warnings: int = 0
    echo: tuple[tuple[str, str | None], ...] = ()
    body: bytes | None = None
    absent: tuple[bytes, ...] = ()
    within: float | None = None  # seconds from the first byte sent to the end of the reply
    read_timeout: float = READ_TIMEOUT
    probe_max_latency: float | None = None  # another client's requests during the case
    # A refusal may also be a plain close with no reply at all (smuggling cases:
    # what matters there is that nothing is served).
    or_silent_close: bool = False


# --- Logs -----------------------------------------------------------------------


class LogTap(logging.Handler):
    """Collects records at WARNING or above from the ``wsgiwire`` loggers.

    Attached to the ``wsgiwire`` logger itself, so it sees every record even if
    something turned propagation off. (Under pytest the tests use ``caplog``.)
    """

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []
        self._records_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._records_lock:
            self.records.append(record)

    def __enter__(self) -> LogTap:
        logging.getLogger("wsgiwire").addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("wsgiwire").removeHandler(self)

    def snapshot(self) -> list[logging.LogRecord]:
        with self._records_lock:
            return list(self.records)


LogSource = Callable[[], Sequence[logging.LogRecord]]


def warnings_in(records: Sequence[logging.LogRecord]) -> list[str]:
    return [
        f"{r.levelname} {r.getMessage()}"
        for r in records
        if r.levelno >= logging.WARNING and (r.name == "wsgiwire" or r.name.startswith("wsgiwire."))
    ]


# --- Servers --------------------------------------------------------------------


def _driver(protocol: str) -> FastCGIDriver | SCGIDriver | UWSGIDriver:
    if protocol == "fastcgi":
        return FastCGIDriver()
    if protocol == "scgi":
        return SCGIDriver()
    if protocol == "uwsgi":
        return UWSGIDriver()
    raise ValueError(protocol)


class RunningServer:
    """One in-process worker serving the router app on 127.0.0.1, in a thread."""

    def __init__(self, protocol: str, profile: str) -> None:
        self.protocol = protocol
        self.profile = profile
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.listener.setblocking(False)
        self.address: tuple[str, int] = self.listener.getsockname()
        config = ServerConfig(
            app=router,
            driver=_driver(protocol),
            listeners=[self.listener],
            limits=PROFILES[profile],
            graceful_timeout=2.0,
        )
        self.worker = Worker(config)
        self.crash: BaseException | None = None
        self.thread = threading.Thread(
            target=self._serve, name=f"hostile-{protocol}-{profile}", daemon=True
        )
        self.thread.start()

    def _serve(self) -> None:
        try:
            self.worker.serve()
        except BaseException as exc:  # reported by alive()
            self.crash = exc

    def alive(self) -> bool:
        return self.thread.is_alive() and self.crash is None

    def stop(self) -> None:
        self.worker.request_stop()
        self.thread.join(10)
        self.listener.close()


class ServerPool:
    """The servers of one run, started on first use; a crashed one is replaced."""

    def __init__(self) -> None:
        self.servers: dict[tuple[str, str], RunningServer] = {}
        self.crashes: list[str] = []

    def get(self, protocol: str, profile: str) -> RunningServer:
        key = (protocol, profile)
        server = self.servers.get(key)
        if server is not None and not server.alive():
            self.crashes.append(f"{protocol}/{profile}: {server.crash!r}")
            server.stop()
            server = None
        if server is None:
            server = self.servers[key] = RunningServer(protocol, profile)
        return server

    def start_all(self, keys: Sequence[tuple[str, str]]) -> None:
        for protocol, profile in keys:
            self.get(protocol, profile)

    def close(self) -> None:
        for server in self.servers.values():
            server.stop()
        self.servers.clear()

    def __enter__(self) -> ServerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- Good requests (the post-condition probes) ------------------------------------


def base_params(
    app: str = "echo",
    *,
    method: bytes = b"GET",
    path: bytes = b"/hostile",
    content_length: bytes | None = b"",
) -> list[tuple[bytes, bytes]]:
    """The CGI parameters nginx would send, routed to ``app``."""
    pairs = [
        (b"REQUEST_METHOD", method),
        (b"REQUEST_URI", path),
        (b"SCRIPT_NAME", b""),
        (b"PATH_INFO", path),
        (b"QUERY_STRING", b""),
        (b"SERVER_PROTOCOL", b"HTTP/1.1"),
        (b"SERVER_NAME", b"localhost"),
        (b"SERVER_PORT", b"80"),
        (b"REMOTE_ADDR", b"127.0.0.1"),
        (b"REMOTE_PORT", b"40000"),
        (b"HTTP_HOST", b"localhost"),
        (b"HTTP_X_HOSTILE_APP", app.encode("ascii")),
    ]
    if content_length is not None:
        pairs.insert(0, (b"CONTENT_LENGTH", content_length))
    return pairs


def good_request(protocol: str, request_id: int = 1, *, keep_conn: bool = False) -> bytes:
    """A plain GET for the echo app, as a web server sends it."""
    if protocol == "fastcgi":
        flags = spec.KEEP_CONN if keep_conn else 0
        return spec.request(request_id, base_params(), role=spec.RESPONDER, flags=flags)
    if protocol == "scgi":
        pairs = base_params(content_length=None)
        block = b"".join(n + b"\0" + v + b"\0" for n, v in
                         [(b"CONTENT_LENGTH", b"0"), (b"SCGI", b"1"), *pairs])
        return str(len(block)).encode() + b":" + block + b","
    pairs = base_params(content_length=b"0")
    block = b"".join(
        struct.pack("<H", len(n)) + n + struct.pack("<H", len(v)) + v for n, v in pairs
    )
    return struct.pack("<BHB", 0, len(block), 0) + block


# --- Reading replies ------------------------------------------------------------


@dataclass
class FcgiReply:
    stdout: dict[int, bytes] = field(default_factory=dict)
    stderr: dict[int, bytes] = field(default_factory=dict)
    ends: list[tuple[int, int, int]] = field(default_factory=list)  # (id, app, protocol)
    unknown_types: list[int] = field(default_factory=list)
    values: list[tuple[tuple[bytes, bytes], ...]] = field(default_factory=list)
    other: list[int] = field(default_factory=list)
    rest: bytes = b""  # an incomplete record at the end


def parse_fastcgi(data: bytes) -> FcgiReply:
    """Group an application's records, tolerating an incomplete last record."""
    reply = FcgiReply()
    i = 0
    while len(data) - i >= 8:
        clen = data[i + 4] * 256 + data[i + 5]
        total = 8 + clen + data[i + 6]
        if len(data) - i < total:
            break
        try:
            (rec,) = spec.parse_records(data[i : i + total])
        except spec.Truncated:  # pragma: no cover - checked above
            break
        i += total
        if rec.version != 1 or total % 8:
            reply.other.append(-1)
        if rec.type == spec.STDOUT:
            if rec.content:  # the empty record only ends the stream
                reply.stdout[rec.request_id] = reply.stdout.get(rec.request_id, b"") + rec.content
        elif rec.type == spec.STDERR:
            reply.stderr[rec.request_id] = reply.stderr.get(rec.request_id, b"") + rec.content
        elif rec.type == spec.END_REQUEST and len(rec.content) == 8:
            app_status, proto = spec.parse_end_request(rec.content)
            reply.ends.append((rec.request_id, app_status, proto))
        elif rec.type == spec.UNKNOWN_TYPE and len(rec.content) == 8:
            reply.unknown_types.append(rec.content[0])
        elif rec.type == spec.GET_VALUES_RESULT:
            reply.values.append(tuple(spec.parse_pairs(rec.content)))
        else:
            reply.other.append(rec.type)
    reply.rest = data[i:]
    return reply


def split_head(raw: bytes, protocol: str) -> tuple[int, bytes, bytes]:
    """``(status, head, body)`` of one CGI-style or HTTP-style response."""
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        raise CaseFailure(f"no end of head in the reply: {raw[:120]!r}")
    head, body = raw[:end], raw[end + 4 :]
    first = head.split(b"\r\n", 1)[0]
    if protocol == "uwsgi":
        if not first.startswith(b"HTTP/1.") or len(first) < 12:
            raise CaseFailure(f"uwsgi reply does not start with an HTTP status line: {first!r}")
        code = first[9:12]
    else:
        if not first.startswith(b"Status: "):
            raise CaseFailure(f"reply does not start with 'Status: ': {first!r}")
        code = first[8:11]
    if not code.isdigit():
        raise CaseFailure(f"bad status in {first!r}")
    return int(code), head, body


def _recv(sock: socket.socket, timeout: float) -> bytes | None:
    """Bytes, ``b""`` at EOF (or reset), ``None`` on timeout."""
    sock.settimeout(max(timeout, 0.001))
    try:
        return sock.recv(262144)
    except TimeoutError:
        return None
    except (ConnectionResetError, BrokenPipeError):
        return b""


def _fcgi_complete(data: bytes, expect: Expect) -> bool:
    reply = parse_fastcgi(data)
    responses = [e for e in reply.ends if e[0] in reply.stdout]
    wanted_values = 0 if expect.values is None else 1
    return (
        len(responses) >= (expect.responses if expect.status is not None else 0)
        and len(reply.ends) >= len(responses) + len(expect.ends)
        and len(reply.unknown_types) >= len(expect.unknown_types)
        and len(reply.values) >= wanted_values
    )


@dataclass
class Exchange:
    sock: socket.socket | None
    data: bytes
    eof: bool
    elapsed: float
    send_error: str | None = None


def _send(sock: socket.socket, data: bytes, bytewise: bool) -> None:
    if not bytewise:
        sock.sendall(data)
        return
    head, tail = data[:BYTEWISE_LIMIT], data[BYTEWISE_LIMIT:]
    for i in range(len(head)):
        sock.sendall(head[i : i + 1])
    if tail:
        sock.sendall(tail)


def _reset(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def exchange(
    address: tuple[str, int],
    protocol: str,
    steps: Sequence[Step],
    expect: Expect,
    *,
    bytewise: bool,
) -> Exchange:
    """Send the steps, then read until the expected reply is complete or EOF."""
    sock = socket.create_connection(address, timeout=READ_TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    started = time.monotonic()
    received = bytearray()
    send_error: str | None = None
    try:
        for step in steps:
            if isinstance(step, Pause):
                time.sleep(step.seconds)
            elif isinstance(step, HalfClose):
                sock.shutdown(socket.SHUT_WR)
            elif isinstance(step, Reset):
                _reset(sock)
                return Exchange(None, bytes(received), True, time.monotonic() - started)
            elif isinstance(step, ReadThenReset):
                deadline = time.monotonic() + expect.read_timeout
                while len(received) < step.count and time.monotonic() < deadline:
                    chunk = _recv(sock, deadline - time.monotonic())
                    if not chunk:
                        break
                    received += chunk
                _reset(sock)
                return Exchange(None, bytes(received), True, time.monotonic() - started)
            elif isinstance(step, Trickle):
                for i in range(len(step.data)):
                    sock.sendall(step.data[i : i + 1])
                    time.sleep(step.interval)
            else:
                _send(sock, step, bytewise)
    except OSError as exc:
        # The server may close early (a refusal): what it answered is still readable.
        send_error = f"{type(exc).__name__}: {exc}"
    deadline = started + max(expect.read_timeout, expect.within or 0)
    eof = False
    wait_for_close = expect.closed or protocol != "fastcgi"
    while True:
        if not wait_for_close and _fcgi_complete(bytes(received), expect):
            break
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        chunk = _recv(sock, remaining)
        if chunk is None:
            break
        if not chunk:
            eof = True
            break
        received += chunk
    return Exchange(sock, bytes(received), eof, time.monotonic() - started, send_error)


# --- Checking -------------------------------------------------------------------


def _check_echo(body: bytes, expect: Expect) -> None:
    if not expect.echo:
        return
    try:
        environ = json.loads(body)
    except ValueError:
        raise CaseFailure(f"echo body is not JSON: {body[:200]!r}") from None
    for key, value in expect.echo:
        if value is None:
            if key in environ:
                raise CaseFailure(f"environ has {key}={environ[key]!r}; it must be absent")
        elif environ.get(key) != value:
            raise CaseFailure(f"environ[{key!r}] is {environ.get(key)!r}, expected {value!r}")


def check_reply(protocol: str, result: Exchange, expect: Expect) -> None:
    data = result.data
    for marker in TRACEBACK_MARKERS:
        if marker in data:
            raise CaseFailure(f"the reply leaks {marker!r}: {data[:300]!r}")
    for text in expect.absent:
        if text in data:
            raise CaseFailure(f"the reply contains {text!r}: {data[:300]!r}")
    if result.sock is None:
        # The client reset the connection itself (disconnect cases): it cannot see
        # the outcome; the post-conditions say whether the server coped.
        return
    if expect.within is not None and result.elapsed > expect.within:
        raise CaseFailure(f"the outcome took {result.elapsed:.2f} s, more than {expect.within} s")
    if expect.or_silent_close and not data and result.eof:
        return
    if protocol == "fastcgi":
        bodies = _check_fastcgi(result, expect)
    else:
        bodies = _check_stream(protocol, result, expect)
    if expect.body is not None and bodies and bodies[0] != expect.body:
        raise CaseFailure(f"body is {bodies[0][:200]!r}, expected {expect.body[:200]!r}")
    if bodies:
        _check_echo(bodies[0], expect)
    if expect.closed and not result.eof and result.sock is not None:
        raise CaseFailure(
            f"the server did not close the connection within {expect.read_timeout} s "
            f"(received {data[:200]!r})"
        )
    if not expect.closed and result.eof:
        raise CaseFailure(f"the server closed a connection that should stay open ({data[:200]!r})")


def _check_fastcgi(result: Exchange, expect: Expect) -> list[bytes]:
    reply = parse_fastcgi(result.data)
    if reply.other:
        raise CaseFailure(f"unexpected or malformed records from the server: {reply.other}")
    if reply.rest:
        raise CaseFailure(f"the server sent an incomplete record: {reply.rest[:80]!r}")
    responses = [e for e in reply.ends if e[0] in reply.stdout]
    bare = [(app, proto) for rid, app, proto in reply.ends if rid not in reply.stdout]
    orphan = set(reply.stdout) - {e[0] for e in reply.ends}
    if orphan and not (expect.status is None and result.sock is None):
        raise CaseFailure(f"FCGI_STDOUT without FCGI_END_REQUEST for request(s) {sorted(orphan)}")
    want = expect.responses if expect.status is not None else 0
    if len(responses) != want:
        raise CaseFailure(
            f"{len(responses)} response(s), expected {want}: ends={reply.ends}, "
            f"stdout={ {k: v[:80] for k, v in reply.stdout.items()} }"
        )
    if sorted(bare) != sorted(expect.ends):
        raise CaseFailure(f"bare END_REQUESTs {bare}, expected {list(expect.ends)}")
    if sorted(reply.unknown_types) != sorted(expect.unknown_types):
        raise CaseFailure(f"FCGI_UNKNOWN_TYPE for {reply.unknown_types}, "
                          f"expected {list(expect.unknown_types)}")
    if expect.values is not None and reply.values != [expect.values]:
        raise CaseFailure(f"FCGI_GET_VALUES_RESULT {reply.values}, expected {[expect.values]}")
    bodies = []
    for rid, app_status, proto in responses:
        status, head, body = split_head(reply.stdout[rid], "fastcgi")
        _check_length(head, body)
        if status != expect.status:
            raise CaseFailure(f"request {rid}: status {status}, expected {expect.status}: "
                              f"{reply.stdout[rid][:200]!r}")
        if expect.app_status is not None and app_status != expect.app_status:
            raise CaseFailure(f"request {rid}: appStatus {app_status}, "
                              f"expected {expect.app_status}")
        if expect.protocol_status is not None and proto != expect.protocol_status:
            raise CaseFailure(f"request {rid}: protocolStatus {proto}, "
                              f"expected {expect.protocol_status}")
        bodies.append(body)
    return bodies


def _check_stream(protocol: str, result: Exchange, expect: Expect) -> list[bytes]:
    data = result.data
    if expect.status is None:
        if data:
            raise CaseFailure(f"expected no reply, got {data[:200]!r}")
        return []
    if not data:
        raise CaseFailure(f"expected a {expect.status} reply, got nothing (eof={result.eof})")
    status, head, body = split_head(data, protocol)
    if status != expect.status:
        raise CaseFailure(f"status {status}, expected {expect.status}: {data[:200]!r}")
    _check_length(head, body)
    return [body]


def _check_length(head: bytes, body: bytes) -> None:
    """A declared Content-Length frames the whole rest: nothing may follow it."""
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            declared = int(value.strip())
            if len(body) > declared:
                raise CaseFailure(f"{len(body) - declared} byte(s) after the declared body "
                                  f"(a second response?): {body[declared:declared + 200]!r}")


def _fastcgi_round(sock: socket.socket, request_id: int, keep_conn: bool) -> None:
    sock.sendall(good_request("fastcgi", request_id, keep_conn=keep_conn))
    received = b""
    deadline = time.monotonic() + READ_TIMEOUT
    while True:
        reply = parse_fastcgi(received)
        if reply.ends or reply.other or reply.unknown_types or reply.values:
            break
        chunk = _recv(sock, deadline - time.monotonic())
        if not chunk:
            raise CaseFailure(f"good request {request_id}: no FCGI_END_REQUEST "
                              f"(got {received[:200]!r}, eof={chunk == b''})")
        received += chunk
    if reply.other or reply.unknown_types or reply.values or reply.rest:
        raise CaseFailure(f"good request {request_id}: stray records first: {received[:200]!r}")
    if reply.ends != [(request_id, 0, 0)] or set(reply.stdout) != {request_id}:
        raise CaseFailure(f"good request {request_id}: got {reply.ends} / "
                          f"{ {k: v[:80] for k, v in reply.stdout.items()} } first")
    status = split_head(reply.stdout[request_id], "fastcgi")[0]
    if status != 200:
        raise CaseFailure(f"good request {request_id}: status {status}")


def check_good_request(server: RunningServer, sock: socket.socket | None = None,
                       request_id: int = 1) -> None:
    """The worker answers a good request (on ``sock``, else on a new connection)."""
    protocol = server.protocol
    if sock is not None:
        _fastcgi_round(sock, request_id, keep_conn=True)
        return
    with socket.create_connection(server.address, timeout=READ_TIMEOUT) as fresh:
        if protocol == "fastcgi":
            _fastcgi_round(fresh, 1, keep_conn=False)
            return
        fresh.sendall(good_request(protocol))
        data = b""
        while True:
            chunk = _recv(fresh, READ_TIMEOUT)
            if not chunk:
                break
            data += chunk
    status = split_head(data, protocol)[0] if data else 0
    if status != 200:
        raise CaseFailure(f"good request on a new connection got {data[:200]!r}")


# --- Resources ------------------------------------------------------------------


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def settle(fds: int, threads: int, timeout: float = SETTLE_TIMEOUT) -> None:
    """Wait (bounded) for descriptors and threads to be back to the counts given."""
    deadline = time.monotonic() + timeout
    while True:
        now_fds, now_threads = fd_count(), threading.active_count()
        if now_fds <= fds and now_threads <= threads:
            return
        if time.monotonic() >= deadline:
            raise CaseFailure(
                f"resources left behind: {now_fds - fds} fd(s), {now_threads - threads} thread(s)"
            )
        time.sleep(0.01)


# --- Latency probe ----------------------------------------------------------------


class Probe:
    """Another client sending good requests while a case runs, timing each."""

    def __init__(self, server: RunningServer, interval: float = 0.1) -> None:
        self.server = server
        self.interval = interval
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="hostile-probe", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                check_good_request(self.server)
            except (CaseFailure, OSError) as exc:
                self.errors.append(str(exc))
            self.latencies.append(time.monotonic() - started)
            self._stop.wait(self.interval)

    def __enter__(self) -> Probe:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.thread.join(READ_TIMEOUT * 2)


# --- The runner -----------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """What one run of a case measured (for the summary)."""

    elapsed: float
    warnings: list[str]


def run_case(
    case: CaseLike,
    pool: ServerPool,
    logs: LogSource,
    *,
    bytewise: bool = False,
) -> Run:
    """Run ``case`` once and check everything; raises :class:`CaseFailure`."""
    server = pool.get(case.protocol, case.profile)
    expect = case.expect
    fds, threads = fd_count(), threading.active_count()
    seen = len(logs())
    started = time.monotonic()
    probe: Probe | None = None
    with contextlib.ExitStack() as stack:
        if expect.probe_max_latency is not None:
            probe = stack.enter_context(Probe(server))
        result = exchange(server.address, case.protocol, case.steps, expect, bytewise=bytewise)
    try:
        check_reply(case.protocol, result, expect)
        if probe is not None:
            _check_probe(probe, expect)
        if result.sock is not None and not expect.closed:
            check_good_request(server, result.sock, case.followup_id)
    finally:
        if result.sock is not None:
            result.sock.close()
    check_good_request(server)
    settle(fds, threads)
    if not server.alive():
        raise CaseFailure(f"the server thread died: {server.crash!r}")
    found = warnings_in(logs()[seen:])
    if len(found) != expect.warnings:
        raise CaseFailure(f"{len(found)} log line(s) at WARNING or above, expected "
                          f"{expect.warnings}: {found}")
    return Run(time.monotonic() - started, found)


def _check_probe(probe: Probe, expect: Expect) -> None:
    if probe.errors:
        raise CaseFailure(f"the other client's requests failed: {probe.errors[:3]}")
    if len(probe.latencies) < 3:
        raise CaseFailure(f"the other client got only {len(probe.latencies)} answer(s)")
    worst = max(probe.latencies)
    if expect.probe_max_latency is not None and worst > expect.probe_max_latency:
        raise CaseFailure(
            f"the other client waited {worst:.2f} s for an answer "
            f"(limit {expect.probe_max_latency} s): the slow client delayed it"
        )


class CaseLike:
    """What :func:`run_case` needs of a case (``catalogue.Case`` provides it)."""

    name: str
    protocol: str
    profile: str
    steps: tuple[Step, ...]
    expect: Expect
    followup_id: int


@contextlib.contextmanager
def tapped() -> Iterator[LogTap]:
    with LogTap() as tap:
        yield tap
