"""The ``--stats`` listener: a JSON status uwsgitop reads, and Prometheus ``/metrics``.

The master answers it from its own loop, reading the scoreboard (shared
memory the workers write as they go) and ``/proc``: a scrape costs the
workers nothing. What a listener gets:

* a client that sends nothing (``uwsgitop HOST:PORT``, ``nc``): the JSON
  status, then the connection closes, as uWSGI's stats server does;
* ``GET /`` (``uwsgitop http://HOST:PORT``, ``curl``): the same JSON over HTTP;
* ``GET /metrics``: the Prometheus text exposition format (version 0.0.4).

The JSON has uWSGI's keys where the meaning is the same (``workers[].id``,
``requests``, ``exceptions``, ``status``, ``rss``, ``vsz``, ``tx``,
``avg_rt``, ``running_time``, ``last_spawn``, ``respawn_count``, ``cores``,
``listen_queue``, ``sockets``), and wsgiwire's own beside them.

Counters survive worker recycling and reloads: when the master reaps a
worker it adds the worker's slot to :class:`Totals` (``master._reap``).
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._scoreboard import (
    ACCEPTING,
    BOOTING,
    DRAINING,
    DURATION_BUCKETS,
    MALFORMED_REASONS,
    STATUS_CLASSES,
    Scoreboard,
)

if TYPE_CHECKING:
    from ._master import Server

__all__ = ["Totals", "metrics_text", "reach", "serve_stats", "status"]

_STATES = {0: "free", ACCEPTING: "accepting", DRAINING: "draining", BOOTING: "booting"}
# uwsgitop's words for a worker's status (it colours busy, pause and cheap).
_UWSGI_STATUS = {ACCEPTING: "idle", DRAINING: "pause", BOOTING: "cheap"}
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
# The first line of a request to the listener; a longer one is refused.
_MAX_REQUEST_LINE = 1024
# How long a client that said nothing yet gets before the raw JSON goes out.
_FIRST_BYTES_WAIT = 0.2


@dataclass
class Totals:
    """What reaped workers counted, kept by the master (never reset while it runs)."""

    requests: int = 0
    errors: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    duration_sum: float = 0.0
    statuses: list[int] = field(default_factory=lambda: [0] * len(STATUS_CLASSES))
    buckets: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BUCKETS) + 1))
    malformed: list[int] = field(default_factory=lambda: [0] * len(MALFORMED_REASONS))
    reaped: int = 0
    # Per slot: how many workers it has held before the current one.
    respawns: dict[int, int] = field(default_factory=dict)

    def absorb(self, board: Scoreboard, slot: int) -> None:
        """Add the counters of a dead worker's ``slot`` (before the slot is freed)."""
        info = board.read(slot)
        counters = board.counters(slot)
        self.requests += info.requests
        self.errors += info.errors
        self.bytes_in += counters.bytes_in
        self.bytes_out += counters.bytes_out
        self.duration_sum += counters.duration_sum
        for totals, values in (
            (self.statuses, counters.statuses),
            (self.buckets, counters.buckets),
            (self.malformed, counters.malformed),
        ):
            for i, value in enumerate(values):
                totals[i] += value
        self.reaped += 1
        self.respawns[slot] = self.respawns.get(slot, 0) + 1


def _memory(pid: int) -> tuple[int, int]:
    """(RSS, VSZ) of ``pid`` in bytes, from /proc (0, 0 when unknown)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            size, resident = f.read().split()[:2]
        return int(resident) * _PAGE_SIZE, int(size) * _PAGE_SIZE
    except (OSError, ValueError):
        return 0, 0


_TCP_INFO = getattr(socket, "TCP_INFO", 11)
_TCP_LISTEN = 10

# Linux's sock_diag netlink interface (linux/sock_diag.h, linux/unix_diag.h): the one
# place the kernel reports a unix listener's accept queue (what ``ss -xl`` shows).
_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 1
_UDIAG_SHOW_RQLEN = 0x10
_UNIX_DIAG_RQLEN = 4
_NO_COOKIE = 0xFFFFFFFF
_NLMSG_HEADER = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
_UNIX_DIAG_REQ = struct.Struct("=BBHIIIII")  # family, protocol, pad, states, inode, show, cookie
_UNIX_DIAG_MSG_SIZE = 16  # family, type, state, pad, inode, cookie[2]


def _listen_queue(sock: socket.socket) -> tuple[int, int]:
    """(connections waiting, backlog) of a listening socket on Linux; (0, 0) otherwise."""
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        return _tcp_listen_queue(sock)
    if sock.family == socket.AF_UNIX:
        return _unix_listen_queue(sock)
    return 0, 0


def _tcp_listen_queue(sock: socket.socket) -> tuple[int, int]:
    """For a TCP listener, Linux's tcp_info reports the accept queue's length in
    ``tcpi_unacked`` and its limit in ``tcpi_sacked``."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, 32)
    except OSError:
        return 0, 0
    if len(info) < 32 or info[0] != _TCP_LISTEN:
        return 0, 0
    unacked, sacked = struct.unpack_from("=II", info, 24)
    return unacked, sacked


def _unix_listen_queue(sock: socket.socket) -> tuple[int, int]:
    """For a unix listener, one sock_diag request by the socket's inode: the
    UNIX_DIAG_RQLEN attribute holds the accept queue's length and its limit.

    Any failure (not Linux, no netlink in a sandbox, an answer of another shape)
    reads as (0, 0): the status page never fails for want of this figure.
    """
    netlink = getattr(socket, "AF_NETLINK", None)
    if netlink is None:
        return 0, 0
    try:
        inode = os.fstat(sock.fileno()).st_ino
        body = _UNIX_DIAG_REQ.pack(
            socket.AF_UNIX, 0, 0, 0, inode, _UDIAG_SHOW_RQLEN, _NO_COOKIE, _NO_COOKIE)
        header = _NLMSG_HEADER.pack(
            _NLMSG_HEADER.size + len(body), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST, 1, 0)
        with socket.socket(netlink, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as diag:
            diag.settimeout(1.0)
            diag.send(header + body)
            answer = diag.recv(8192)
    except OSError:
        return 0, 0
    if len(answer) < _NLMSG_HEADER.size:
        return 0, 0
    length, kind = _NLMSG_HEADER.unpack_from(answer)[:2]
    if kind != _SOCK_DIAG_BY_FAMILY:  # an NLMSG_ERROR, or an answer of another shape
        return 0, 0
    end = min(length, len(answer))
    offset = _NLMSG_HEADER.size + _UNIX_DIAG_MSG_SIZE
    while offset + 4 <= end:
        size, attribute = struct.unpack_from("=HH", answer, offset)
        if size < 4:
            break
        if attribute == _UNIX_DIAG_RQLEN and offset + 12 <= end:
            waiting, backlog = struct.unpack_from("=II", answer, offset + 4)
            return waiting, backlog
        offset += (size + 3) & ~3
    return 0, 0


def _generation(server: Server, pid: int) -> int | None:
    child = server.children.get(pid)
    return child.generation if child is not None else None


def status(server: Server) -> dict[str, Any]:
    """The JSON status page (see the README, "Operating wsgiwire")."""
    config = server.config
    board = server.board
    totals = server.totals
    now = time.monotonic()
    workers: list[dict[str, Any]] = []
    statuses = list(totals.statuses)
    malformed = list(totals.malformed)
    bytes_in, bytes_out = totals.bytes_in, totals.bytes_out
    if board is not None:
        for info in board.all():
            counters = board.counters(info.slot)
            rss, vsz = _memory(info.pid) if info.pid > 0 else (0, 0)
            bytes_in += counters.bytes_in
            bytes_out += counters.bytes_out
            for i, value in enumerate(counters.statuses):
                statuses[i] += value
            for i, value in enumerate(counters.malformed):
                malformed[i] += value
            threads = [
                {"thread": index, "request": label, "age": round(now - since, 3)}
                for index, since, label in board.thread_requests(info.slot)
            ]
            if info.busy_since:
                threads.insert(0, {"thread": 0, "request": info.label,
                                   "age": round(now - info.busy_since, 3)})
            busy = bool(threads) or info.busy_threads > 0
            state = _STATES.get(info.state, "?")
            workers.append({
                # uWSGI's keys (uwsgitop reads these)
                "id": info.slot + 1,
                "pid": info.pid,
                "accepting": int(info.state == ACCEPTING),
                "requests": info.requests,
                "delta_requests": 0,
                "exceptions": info.errors,
                "harakiri_count": 0,
                "signals": 0,
                "signal_queue": 0,
                "status": "busy" if busy and info.state == ACCEPTING
                else _UWSGI_STATUS.get(info.state, state),
                "rss": rss,
                "vsz": vsz,
                "running_time": int(counters.duration_sum * 1e6),
                "avg_rt": int(counters.duration_sum * 1e6 / info.requests)
                if info.requests else 0,
                "tx": counters.bytes_out,
                "last_spawn": int(counters.spawned),
                "respawn_count": totals.respawns.get(info.slot, 0),
                "apps": [],
                "cores": [
                    {"id": t["thread"], "in_request": 1, "requests": 0,
                     "static_requests": 0, "routed_requests": 0, "offloaded_requests": 0,
                     "write_errors": 0, "read_errors": 0, "vars": [], "req_info": {}}
                    for t in threads
                ],
                # wsgiwire's own
                "state": state,
                "generation": _generation(server, info.pid),
                "connections": info.connections,
                "errors": info.errors,
                "busy_threads": info.busy_threads,
                "queued": info.queued,
                "busy_for": round(now - info.busy_since, 3) if info.busy_since else 0,
                "request": info.label if info.busy_since else "",
                "threads": threads,
                "rx": counters.bytes_in,
            })
    sockets = []
    listen_queue = 0
    for listener in config.listeners:
        queue, backlog = _listen_queue(listener)
        listen_queue += queue
        name: object = "?"
        with contextlib.suppress(OSError):
            name = listener.getsockname()
        sockets.append({
            "name": _address_text(name), "proto": config.driver.name,
            "queue": queue, "max_queue": backlog, "shared": 0, "can_offload": 0,
        })
    in_flight = sum(
        w["busy_threads"] if w["busy_threads"] else int(bool(w["busy_for"])) for w in workers
    )
    return {
        # uWSGI's keys
        "version": _version(),
        "listen_queue": listen_queue,
        "listen_queue_errors": 0,
        "signal_queue": 0,
        "load": in_flight,
        "pid": os.getpid(),
        "uid": os.getuid(),
        "gid": os.getgid(),
        "cwd": os.getcwd(),
        "locks": [],
        "sockets": sockets,
        "workers": workers,
        # wsgiwire's own
        "protocol": config.driver.name,
        "uptime": round(time.time() - server.started, 3),
        "generation": server.generation,
        "requests": totals.requests + sum(w["requests"] for w in workers),
        "errors": totals.errors + sum(w["errors"] for w in workers),
        "in_flight": in_flight,
        "busy_threads": sum(w["busy_threads"] for w in workers),
        "queued": sum(w["queued"] for w in workers),
        "connections": sum(w["connections"] for w in workers),
        "respawns": server.respawns,
        "reload_failures": server.reload_failures,
        "last_reload_error": server.last_reload_error,
        "rx": bytes_in,
        "tx": bytes_out,
        "statuses": dict(zip(STATUS_CLASSES, statuses, strict=True)),
        "malformed": dict(zip(MALFORMED_REASONS, malformed, strict=True)),
    }


def _address_text(name: object) -> str:
    if isinstance(name, tuple) and len(name) >= 2:
        host = str(name[0])
        return f"[{host}]:{name[1]}" if ":" in host else f"{host}:{name[1]}"
    if isinstance(name, bytes):
        return name.decode("utf-8", "replace")
    return str(name) or "?"


# ---------------------------------------------------------------------------------------
# Prometheus


def _label(value: object) -> str:
    text = str(value)
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def metrics_text(server: Server) -> str:
    """The Prometheus text exposition format (0.0.4) of the same numbers."""
    page = status(server)
    board = server.board
    totals = server.totals
    protocol = _label(page["protocol"])
    buckets = list(totals.buckets)
    duration_sum = totals.duration_sum
    if board is not None:
        for info in board.all():
            counters = board.counters(info.slot)
            duration_sum += counters.duration_sum
            for i, value in enumerate(counters.buckets):
                buckets[i] += value
    lines: list[str] = []

    def metric(name: str, kind: str, text: str, samples: list[tuple[str, object]]) -> None:
        lines.append(f"# HELP {name} {text}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            lines.append(f"{name}{labels} {value}")

    metric("wsgiwire_info", "gauge", "The running wsgiwire: version and protocol.",
           [(f'{{version="{_label(page["version"])}",protocol="{protocol}"}}', 1)])
    metric("wsgiwire_start_time_seconds", "gauge", "When the master started (Unix time).",
           [("", round(server.started, 3))])
    metric("wsgiwire_requests_total", "counter",
           "Requests answered, by protocol and status class (none: no status was sent).",
           [(f'{{protocol="{protocol}",status="{cls}"}}', count)
            for cls, count in page["statuses"].items()])
    metric("wsgiwire_request_errors_total", "counter",
           "Requests whose app raised or whose response was cut.",
           [(f'{{protocol="{protocol}"}}', page["errors"])])
    samples: list[tuple[str, object]] = []
    cumulative = 0
    for bound, count in zip((*DURATION_BUCKETS, "+Inf"), buckets, strict=True):
        cumulative += count
        samples.append((f'_bucket{{protocol="{protocol}",le="{bound}"}}', cumulative))
    samples.append((f'_sum{{protocol="{protocol}"}}', round(duration_sum, 6)))
    samples.append((f'_count{{protocol="{protocol}"}}', cumulative))
    metric("wsgiwire_request_duration_seconds", "histogram",
           "Time from the request's start to its last response byte handed to the socket.",
           samples)
    metric("wsgiwire_request_body_bytes_total", "counter",
           "Request body bytes received (as declared by CONTENT_LENGTH).",
           [(f'{{protocol="{protocol}"}}', page["rx"])])
    metric("wsgiwire_response_body_bytes_total", "counter", "Response body bytes sent.",
           [(f'{{protocol="{protocol}"}}', page["tx"])])
    metric("wsgiwire_requests_in_flight", "gauge", "Requests the app is running now.",
           [("", page["in_flight"])])
    metric("wsgiwire_requests_queued", "gauge", "Requests waiting for an app thread.",
           [("", page["queued"])])
    metric("wsgiwire_listen_queue", "gauge",
           "Connections waiting in the listen backlog (TCP listeners).",
           [("", page["listen_queue"])])
    metric("wsgiwire_connections", "gauge", "Open connections from the web server.",
           [("", page["connections"])])
    states: dict[str, int] = {"accepting": 0, "draining": 0, "booting": 0}
    for worker in page["workers"]:
        states[worker["state"]] = states.get(worker["state"], 0) + 1
    metric("wsgiwire_workers", "gauge", "Worker processes, by state.",
           [(f'{{state="{_label(state)}"}}', count) for state, count in states.items()])
    metric("wsgiwire_worker_rss_bytes", "gauge", "Resident memory of each worker.",
           [(f'{{worker="{w["id"]}",pid="{w["pid"]}"}}', w["rss"]) for w in page["workers"]])
    metric("wsgiwire_worker_requests_total", "counter",
           "Requests of each live worker (its own count; restarts at a respawn).",
           [(f'{{worker="{w["id"]}",pid="{w["pid"]}"}}', w["requests"])
            for w in page["workers"]])
    metric("wsgiwire_worker_respawns_total", "counter",
           "Workers started to replace one that exited (recycled, crashed or killed).",
           [("", page["respawns"])])
    metric("wsgiwire_reloads_total", "counter", "Graceful reloads started (SIGHUP, --reload).",
           [("", page["generation"])])
    metric("wsgiwire_reload_failures_total", "counter",
           "Reloads whose new workers could not load the app.",
           [("", page["reload_failures"])])
    metric("wsgiwire_malformed_requests_total", "counter",
           "Requests refused as malformed, by reason (limit: a size limit was hit; "
           "bad_request: unusable parameters; protocol: broken framing).",
           [(f'{{protocol="{protocol}",reason="{reason}"}}', count)
            for reason, count in page["malformed"].items()])
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------
# The listener


def reach(address: object) -> str:
    """Who can reach the status listener at ``address``, said plainly."""
    if isinstance(address, tuple):
        host = str(address[0])
        if host.startswith("127.") or host in ("::1", "localhost"):
            return "loopback only"
        return "reachable from the network: put it behind a firewall"
    return "a unix socket, mode 660"


def serve_stats(server: Server, listener: socket.socket) -> None:
    """Answer one client of the stats listener (called by the master's loop)."""
    try:
        conn, _ = listener.accept()
    except OSError:
        return
    with conn:
        conn.settimeout(_FIRST_BYTES_WAIT)
        try:
            first = conn.recv(_MAX_REQUEST_LINE)
        except OSError:
            first = b""
        with contextlib.suppress(OSError):
            conn.settimeout(2.0)
            conn.sendall(_answer(server, first))


def _answer(server: Server, first: bytes) -> bytes:
    import json  # here, not at the top: the workers forked from the master never need it

    if not first:  # uWSGI's way: the JSON, no HTTP
        return json.dumps(status(server), indent=1).encode() + b"\n"
    line = first.split(b"\r\n", 1)[0].split(b"\n", 1)[0]
    parts = line.split()
    if len(parts) < 2 or parts[0] not in (b"GET", b"HEAD"):
        return _http(405, "text/plain; charset=utf-8", b"GET / or GET /metrics\n", False)
    head_only = parts[0] == b"HEAD"
    path = parts[1].split(b"?", 1)[0]
    if path == b"/metrics":
        body = metrics_text(server).encode()
        return _http(200, "text/plain; version=0.0.4; charset=utf-8", body, head_only)
    if path in (b"/", b"/stats", b"/stats.json"):
        body = json.dumps(status(server), indent=1).encode() + b"\n"
        return _http(200, "application/json", body, head_only)
    return _http(404, "text/plain; charset=utf-8", b"not found: try / or /metrics\n", head_only)


_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed"}


def _http(code: int, content_type: str, body: bytes, head_only: bool) -> bytes:
    head = (
        f"HTTP/1.0 {code} {_REASONS[code]}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    return head if head_only else head + body


def _version() -> str:
    from .. import __version__

    return __version__
