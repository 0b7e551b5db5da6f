#!/usr/bin/env python3
"""Memory per idle connection: what one more open, idle connection costs a worker.

    .venv/bin/python bench/connmem.py [--counts 500,1000] [--json PATH]

Run from the repository root with the venv's Python (Linux only: it reads /proc).

Method. For each case a fresh ``wsgiwire serve --workers 1`` serves ``bench.apps:hello``
on a unix socket in a temporary directory, with its ``--stats`` page on another; the
status page names the worker's pid and counts its connections. Then:

1. warm-up: a few complete requests (FastCGI: several per connection, kept alive),
   and a few connections of the measured kind opened and closed, so that one-time
   allocations (imports, caches, the first environ, pymalloc arenas) are done;
2. baseline: once the worker reports 0 connections and a short settle, the worker's
   ``VmRSS`` (``/proc/PID/status``) and ``Pss`` and ``Private_Dirty``
   (``/proc/PID/smaps_rollup``), sampled until two samples agree;
3. connections are opened up to each count in ``--counts`` in turn (the worker must
   report exactly that many), every one checked still open (no EOF, no stray bytes),
   and memory sampled again;
4. all are closed, and memory sampled once more (is it given back?).

Per connection = (memory at N - baseline) / N, in KiB; the slope between two counts
is shown too: if it matches, the growth is linear in N and not noise. The idle
worker's RSS is the baseline (after warm-up, no connection).

What "idle" means depends on the protocol:

* ``fastcgi kept-alive``: each connection carried one complete request with
  FCGI_KEEP_CONN (encoded with ``wsgiwire.protocols._fastcgi.FastCGIClient``; the
  params of nginx's stock fastcgi_params plus a browser's headers, from
  ``wsgiwire._client.build_params``), its reply was read and checked (200,
  ``Hello, World!``, FCGI_END_REQUEST), and it is left open: nginx's
  ``fastcgi_keep_conn on`` between requests;
* ``scgi``/``uwsgi``: one request per connection, so a connection is idle only before
  its request: ``nothing sent`` (connected, silent) or ``half a header`` (the first
  half of the request head nginx would send, then silence).

Bytecode: a process that compiles modules from source keeps the compiler's garbage as
free heap that later allocations fill (a stale ``__pycache__`` with
``PYTHONDONTWRITEBYTECODE`` set made a FastCGI worker 1.5 MiB larger and hid half the
per-connection cost), so the servers first run once per protocol with a private
``PYTHONPYCACHEPREFIX`` to compile everything they import; ``--bytecode-as-is`` skips
that. The server gets ``--keepalive-timeout``/``--header-timeout`` of an hour so that no
idle connection is swept during the run. A worker accepts at most
``Limits.max_connections`` connections (1024, FCGI_MAX_CONNS; there is no command-line
option for it), so the counts stay below that. Kernel memory (socket buffers, epoll
entries) is not in any of these figures: this is the worker's own memory.

Every process is stopped by its pid (SIGTERM, then SIGKILL after a timeout), every
socket closed and the temporary directory removed; the whole run is bounded by
``--timeout``. Prints a markdown table; ``--json PATH`` writes the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.apps import HELLO_BODY  # noqa: E402
from wsgiwire._client import (  # noqa: E402
    Target,
    build_params,
    encode_scgi,
    encode_uwsgi,
    parse_head,
)
from wsgiwire._events import NEED_DATA, ConnectionClosed  # noqa: E402
from wsgiwire._limits import DEFAULT_LIMITS  # noqa: E402
from wsgiwire.protocols._fastcgi import (  # noqa: E402
    FCGI_REQUEST_COMPLETE,
    EndRequest,
    FastCGIClient,
    StderrData,
    StdoutData,
)

DEFAULT_COUNTS = (500, 1000)
# Targets from the performance issue.
TARGET_KIB_PER_CONN = 16.0
TARGET_IDLE_RSS_MIB = 25.0

_IO_TIMEOUT = 10.0  # one socket operation
_START_TIMEOUT = 20.0  # the server's status page answers with an accepting worker
_WAIT_TIMEOUT = 30.0  # the worker reports the expected connection count
_STOP_TIMEOUT = 10.0  # SIGTERM to exit, before SIGKILL
_SETTLE = 0.3  # after the count is reached, before sampling
_WARM_REQUESTS = 4  # per warm-up connection
_WARM_CONNS = 8

CASES: tuple[tuple[str, str], ...] = (
    ("fastcgi", "kept-alive"),
    ("scgi", "nothing sent"),
    ("scgi", "half a header"),
    ("uwsgi", "nothing sent"),
    ("uwsgi", "half a header"),
)


class BenchError(Exception):
    """The server misbehaved or did not come up; the run stops."""


# --- Memory of a process ---------------------------------------------------------


@dataclass(frozen=True)
class Memory:
    """One sample, in KiB."""

    rss: int
    pss: int
    private_dirty: int


def _kib_fields(path: Path, names: Sequence[str]) -> dict[str, int]:
    """``Name:   123 kB`` lines of a /proc file, summed per name (smaps has many)."""
    found: dict[str, int] = {}
    with path.open() as f:
        for line in f:
            name, sep, rest = line.partition(":")
            if sep and name in names:
                found[name] = found.get(name, 0) + int(rest.split()[0])
    return found


def read_memory(pid: int) -> Memory:
    """VmRSS, Pss and Private_Dirty of ``pid`` (smaps_rollup, else summed smaps)."""
    status = _kib_fields(Path(f"/proc/{pid}/status"), ("VmRSS",))
    rollup = Path(f"/proc/{pid}/smaps_rollup")
    smaps = _kib_fields(
        rollup if rollup.exists() else Path(f"/proc/{pid}/smaps"), ("Pss", "Private_Dirty")
    )
    return Memory(status["VmRSS"], smaps["Pss"], smaps["Private_Dirty"])


def stable_memory(pid: int, *, tries: int = 10, interval: float = 0.1) -> Memory:
    """Sample until two successive samples agree within 8 KiB of RSS (or give the last)."""
    last = read_memory(pid)
    for _ in range(tries):
        time.sleep(interval)
        sample = read_memory(pid)
        if abs(sample.rss - last.rss) <= 8 and abs(sample.pss - last.pss) <= 8:
            return sample
        last = sample
    return last


def _stat_fields(pid: int) -> list[str]:
    """/proc/PID/stat from field 3 (state) on: the command name may hold spaces."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2 :].split()


def _parent_pid(pid: int) -> int:
    return int(_stat_fields(pid)[1])


def _start_time(pid: int) -> int:
    """Field 22, starttime: with the pid, names one process (pids are reused)."""
    return int(_stat_fields(pid)[19])


# --- The server --------------------------------------------------------------------


def _wsgiwire_command() -> list[str]:
    script = Path(sys.executable).parent / "wsgiwire"
    return [str(script)] if script.exists() else [sys.executable, "-m", "wsgiwire"]


def _gone(pid: int) -> bool:
    """``pid`` has exited (no such process, or a zombie waiting for its parent)."""
    try:
        return _stat_fields(pid)[0] == "Z"
    except OSError:
        return True


def _stop_pid(pid: int, timeout: float) -> None:
    """SIGTERM ``pid`` (not a child of ours) and wait for it to go; SIGKILL when it will not."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _gone(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


class Server:
    """``wsgiwire serve --workers 1`` on a unix socket, with its status page."""

    def __init__(self, protocol: str, workdir: Path, env: dict[str, str]) -> None:
        self.protocol = protocol
        self.workdir = workdir
        self.env = env
        self.socket_path = str(workdir / "s.sock")
        self.stats_path = str(workdir / "stats.sock")
        self.log_path = workdir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.worker_pid = 0
        self.worker_started = 0

    def start(self) -> None:
        command = [
            *_wsgiwire_command(), "serve",
            "--protocol", self.protocol,
            "--workers", "1",
            "--bind", f"unix:{self.socket_path}",
            "--stats", f"unix:{self.stats_path}",
            "--keepalive-timeout", "3600",
            "--header-timeout", "3600",
            "--graceful-timeout", "3",
            "--log-level", "error",
            "bench.apps:hello",
        ]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                command, cwd=REPO_ROOT, env=self.env,
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            )
        deadline = time.monotonic() + _START_TIMEOUT
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"the server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                workers = self.stats()["workers"]
                last = repr(workers)
                if workers and workers[0]["state"] == "accepting" and workers[0]["pid"]:
                    self.worker_pid = int(workers[0]["pid"])
                    if _parent_pid(self.worker_pid) != self.proc.pid:
                        raise BenchError(f"pid {self.worker_pid} is not the master's child")
                    self.worker_started = _start_time(self.worker_pid)
                    return
            except (OSError, ValueError, KeyError, IndexError, BenchError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.05)
        raise BenchError(
            f"no accepting worker after {_START_TIMEOUT:.0f} s (last: {last}):\n{self.log()}"
        )

    def log(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-2000:]
        return ""

    def stats(self) -> dict[str, Any]:
        """The master's JSON status page."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(_IO_TIMEOUT)
            sock.connect(self.stats_path)
            sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
            raw = b"".join(iter(lambda: sock.recv(65536), b""))
        head, sep, body = raw.partition(b"\r\n\r\n")
        if not sep or not head.startswith(b"HTTP/1.0 200"):
            raise BenchError(f"unexpected status page: {raw[:200]!r}")
        result: dict[str, Any] = json.loads(body)
        return result

    def worker(self) -> dict[str, Any]:
        workers: list[dict[str, Any]] = self.stats()["workers"]
        for info in workers:
            if info["pid"] == self.worker_pid:
                return info
        raise BenchError(f"worker {self.worker_pid} is gone: {workers!r}\n{self.log()}")

    def wait_connections(self, count: int) -> None:
        deadline = time.monotonic() + _WAIT_TIMEOUT
        seen = -1
        while time.monotonic() < deadline:
            seen = int(self.worker()["connections"])
            if seen == count:
                return
            time.sleep(0.02)
        raise BenchError(f"the worker holds {seen} connections, expected {count}")

    def stop(self) -> None:
        # The run's deadline (SIGALRM) waits until the processes are stopped.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        try:
            self._stop()
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGALRM})

    def _stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        self.proc = None
        if proc.poll() is None:
            proc.terminate()  # SIGTERM to the master's own pid
            try:
                proc.wait(timeout=_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=_STOP_TIMEOUT)
        # The master stops its worker; if it did not (it was killed), stop that pid too.
        if self.worker_pid and not _gone(self.worker_pid):
            with contextlib.suppress(OSError, ValueError, IndexError):
                if _start_time(self.worker_pid) == self.worker_started:
                    _stop_pid(self.worker_pid, _STOP_TIMEOUT)


# --- Client side -------------------------------------------------------------------


def _connect(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(_IO_TIMEOUT)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        raise
    return sock


def _check_reply(raw: bytes, what: str) -> None:
    status, _, _, body = parse_head(raw)
    if status != 200 or body != HELLO_BODY:
        raise BenchError(f"{what}: expected 200 {HELLO_BODY!r}, got {raw[:200]!r}")


# A browser's request headers, as in bench/codec.py (which has nginx's exact params).
_HEADERS = (
    ("Host", "example.com"),
    ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"),
    ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
    ("Accept-Language", "en-US,en;q=0.5"),
    ("Accept-Encoding", "gzip, deflate, br, zstd"),
    ("Connection", "keep-alive"),
    ("Cookie", "session=3f2a9c1e7b6d4a0f8e5c2b1a9d8e7f6a; theme=dark"),
    ("Upgrade-Insecure-Requests", "1"),
    ("Sec-Fetch-Dest", "document"),
)


def _params(protocol: str) -> list[tuple[bytes, bytes]]:
    """What nginx's stock *_params send for ``GET /hello/world?name=wsgiwire&lang=en``."""
    target = Target(protocol, socket.AF_UNIX, "", "/hello/world", "name=wsgiwire&lang=en")
    return build_params(target, headers=_HEADERS)


_FCGI_REQUEST = FastCGIClient().begin(1, _params("fastcgi"), keep_conn=True) + (
    FastCGIClient().end_stdin(1)
)
_HEADS = {"scgi": encode_scgi(_params("scgi")), "uwsgi": encode_uwsgi(_params("uwsgi"))}


def fastcgi_exchange(sock: socket.socket) -> None:
    """One FCGI_KEEP_CONN request on ``sock``; the reply is read whole and checked."""
    sock.sendall(_FCGI_REQUEST)
    client = FastCGIClient()
    stdout: list[bytes] = []
    while True:
        data = sock.recv(65536)
        client.receive_data(data)
        while True:
            event = client.next_event()
            if event is NEED_DATA:
                break
            if isinstance(event, ConnectionClosed):
                raise BenchError("the worker closed a FCGI_KEEP_CONN connection")
            if isinstance(event, StdoutData):
                stdout.append(event.data)
            elif isinstance(event, StderrData):
                raise BenchError(f"FCGI_STDERR from the worker: {event.data!r}")
            elif isinstance(event, EndRequest):
                if event.app_status != 0 or event.protocol_status != FCGI_REQUEST_COMPLETE:
                    raise BenchError(f"unexpected {event!r}")
                if client.next_event() is not NEED_DATA:
                    raise BenchError("records after FCGI_END_REQUEST")
                _check_reply(b"".join(stdout), "fastcgi")
                return
        if not data:
            raise BenchError("EOF before FCGI_END_REQUEST")


def oneshot_exchange(path: str, protocol: str) -> None:
    """One complete SCGI/uwsgi request on a new connection, read to EOF and checked."""
    with _connect(path) as sock:
        sock.sendall(_HEADS[protocol])
        raw = b"".join(iter(lambda: sock.recv(65536), b""))
    _check_reply(raw, protocol)


def open_idle(path: str, protocol: str, state: str) -> socket.socket:
    """A connection left in ``state`` (see CASES)."""
    sock = _connect(path)
    try:
        if state == "kept-alive":
            fastcgi_exchange(sock)
        elif state == "half a header":
            head = _HEADS[protocol]
            sock.sendall(head[: len(head) // 2])
        elif state != "nothing sent":
            raise ValueError(state)
    except BaseException:
        sock.close()
        raise
    return sock


def check_open(socks: Sequence[socket.socket]) -> None:
    """Every connection still open and silent: no EOF, no unsolicited bytes."""
    poller = select.poll()
    by_fd = {sock.fileno(): sock for sock in socks}
    for fd in by_fd:
        poller.register(fd, select.POLLIN | select.POLLRDHUP)
    for fd, _ in poller.poll(0):
        sock = by_fd[fd]
        sock.settimeout(0.0)
        try:
            data = sock.recv(64, socket.MSG_PEEK)
        except OSError as exc:
            raise BenchError(f"an idle connection failed: {exc}") from None
        finally:
            sock.settimeout(_IO_TIMEOUT)
        raise BenchError(f"an idle connection got {repr(data) if data else 'EOF'}")


def _close_all(socks: list[socket.socket]) -> None:
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.close()
    socks.clear()


# --- One case ----------------------------------------------------------------------


@dataclass
class Point:
    connections: int
    memory: Memory
    rss_kib_per_conn: float
    pss_kib_per_conn: float
    private_dirty_kib_per_conn: float
    # From the previous point (the baseline for the first): the marginal cost.
    slope_rss_kib_per_conn: float


@dataclass
class CaseResult:
    protocol: str
    state: str
    fresh: Memory  # the worker as started, before any request
    baseline: Memory  # after warm-up, no connection: the idle worker
    points: list[Point] = field(default_factory=list)
    after_close: Memory | None = None

    @property
    def idle_rss_mib(self) -> float:
        return self.baseline.rss / 1024


def _per_conn(now: int, before: int, count: int) -> float:
    return (now - before) / count if count else 0.0


def server_env(pycache: Path | None) -> dict[str, str]:
    """The servers' environment: with ``pycache``, bytecode is written and read there.

    A process that compiles a module from source keeps the compiler's garbage as heap
    fragmentation (measured: +1.1 MiB in a FastCGI master, inherited by its worker).
    A stale ``__pycache__`` (a source edited since) with ``PYTHONDONTWRITEBYTECODE``
    set means every start compiles; ``PYTHONPYCACHEPREFIX`` in the temporary directory,
    filled by :func:`prime`, measures what a deployment with up-to-date bytecode runs.
    """
    env = dict(os.environ)
    if pycache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def prime(protocol: str, workdir: Path, env: dict[str, str]) -> None:
    """Start a server, send it one request, stop it: every module it imports is compiled."""
    server = Server(protocol, workdir, env)
    try:
        server.start()
        if protocol == "fastcgi":
            with _connect(server.socket_path) as sock:
                fastcgi_exchange(sock)
        else:
            oneshot_exchange(server.socket_path, protocol)
    finally:
        server.stop()


def run_case(
    protocol: str, state: str, counts: Sequence[int], workdir: Path, env: dict[str, str]
) -> CaseResult:
    server = Server(protocol, workdir, env)
    socks: list[socket.socket] = []
    try:
        server.start()
        pid = server.worker_pid
        fresh = stable_memory(pid)
        # 1. Warm-up.
        if protocol == "fastcgi":
            for _ in range(_WARM_CONNS):
                sock = _connect(server.socket_path)
                socks.append(sock)
                for _ in range(_WARM_REQUESTS):
                    fastcgi_exchange(sock)
        else:
            for _ in range(_WARM_CONNS * _WARM_REQUESTS):
                oneshot_exchange(server.socket_path, protocol)
        _close_all(socks)
        socks.extend(open_idle(server.socket_path, protocol, state) for _ in range(_WARM_CONNS))
        server.wait_connections(len(socks))
        _close_all(socks)
        server.wait_connections(0)
        time.sleep(_SETTLE)
        # 2. Baseline.
        baseline = stable_memory(pid)
        result = CaseResult(protocol, state, fresh, baseline)
        # 3. Up to each count.
        previous = (0, baseline)
        for count in counts:
            while len(socks) < count:
                socks.append(open_idle(server.socket_path, protocol, state))
            server.wait_connections(count)
            time.sleep(_SETTLE)
            check_open(socks)
            mem = stable_memory(pid)
            check_open(socks)
            server.wait_connections(count)
            result.points.append(Point(
                connections=count,
                memory=mem,
                rss_kib_per_conn=_per_conn(mem.rss, baseline.rss, count),
                pss_kib_per_conn=_per_conn(mem.pss, baseline.pss, count),
                private_dirty_kib_per_conn=_per_conn(
                    mem.private_dirty, baseline.private_dirty, count
                ),
                slope_rss_kib_per_conn=_per_conn(
                    mem.rss, previous[1].rss, count - previous[0]
                ),
            ))
            previous = (count, mem)
        # 4. All closed.
        _close_all(socks)
        server.wait_connections(0)
        time.sleep(_SETTLE)
        result.after_close = stable_memory(pid)
        return result
    finally:
        _close_all(socks)
        server.stop()


# --- Report --------------------------------------------------------------------------


def table(results: Sequence[CaseResult]) -> str:
    lines = [
        "| protocol | idle connection | N | RSS KiB/conn | Pss KiB/conn "
        "| Private_Dirty KiB/conn | slope KiB/conn | idle worker RSS MiB "
        "| RSS after close MiB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        closed = f"{r.after_close.rss / 1024:.1f}" if r.after_close else "-"
        for p in r.points:
            lines.append(
                f"| {r.protocol} | {r.state} | {p.connections} | {p.rss_kib_per_conn:.2f} "
                f"| {p.pss_kib_per_conn:.2f} | {p.private_dirty_kib_per_conn:.2f} "
                f"| {p.slope_rss_kib_per_conn:.2f} | {r.idle_rss_mib:.1f} | {closed} |"
            )
    return "\n".join(lines)


def verdict(results: Sequence[CaseResult]) -> list[str]:
    worst_conn = max(
        (max(p.rss_kib_per_conn, p.private_dirty_kib_per_conn, p.slope_rss_kib_per_conn)
         for r in results for p in r.points),
        default=0.0,
    )
    worst_rss = max((r.idle_rss_mib for r in results), default=0.0)
    return [
        f"worst per idle connection: {worst_conn:.2f} KiB (RSS, Private_Dirty or slope) "
        f"(target < {TARGET_KIB_PER_CONN:.0f} KiB): "
        + ("OK" if worst_conn < TARGET_KIB_PER_CONN else "OVER"),
        f"largest idle worker: {worst_rss:.1f} MiB RSS "
        f"(target < {TARGET_IDLE_RSS_MIB:.0f} MiB): "
        + ("OK" if worst_rss < TARGET_IDLE_RSS_MIB else "OVER"),
    ]


# --- Main ------------------------------------------------------------------------------


def _counts(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of integers: {text!r}") from None
    if not counts or counts[0] < 1:
        raise argparse.ArgumentTypeError("counts must be positive")
    return counts


def _raise_nofile(needed: int) -> None:
    """Raise the soft RLIMIT_NOFILE (inherited by the server) to at least ``needed``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            raise BenchError(f"RLIMIT_NOFILE hard limit {hard} is below the {needed} needed")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


@contextlib.contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Raise TimeoutError in the main thread after ``seconds`` (cleanup still runs)."""

    def expire(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError(f"the run took more than {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", type=_counts, default=DEFAULT_COUNTS,
                        help="idle connections to measure at, comma-separated "
                        f"(default: {','.join(map(str, DEFAULT_COUNTS))}; "
                        f"at most {DEFAULT_LIMITS.max_connections - 1})")
    parser.add_argument("--protocol", action="append",
                        choices=sorted({p for p, _ in CASES}),
                        help="only these protocols (repeatable; default: all)")
    parser.add_argument("--bytecode-as-is", action="store_true",
                        help="let the servers use __pycache__ and the environment as they "
                        "are (default: compile into a private PYTHONPYCACHEPREFIX first)")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="bound on the whole run, in seconds (default 300)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the results here")
    args = parser.parse_args(argv)
    counts: tuple[int, ...] = args.counts
    if counts[-1] >= DEFAULT_LIMITS.max_connections:
        parser.error(f"a worker accepts at most {DEFAULT_LIMITS.max_connections} connections "
                     "(Limits.max_connections); use smaller counts")
    if not sys.platform.startswith("linux"):
        print("connmem: needs Linux's /proc", file=sys.stderr)
        return 2
    cases = [(p, s) for p, s in CASES if not args.protocol or p in args.protocol]
    results: list[CaseResult] = []
    workdir = Path(tempfile.mkdtemp(prefix="wsgiwire-connmem-"))
    try:
        with _deadline(args.timeout):
            _raise_nofile(counts[-1] + _WARM_CONNS + 256)
            env = server_env(None if args.bytecode_as_is else workdir / "pycache")
            if not args.bytecode_as_is:
                for protocol in dict.fromkeys(p for p, _ in cases):
                    primedir = workdir / f"prime-{protocol}"
                    primedir.mkdir()
                    prime(protocol, primedir, env)
            for protocol, state in cases:
                casedir = workdir / f"{protocol}-{state.replace(' ', '-')}"
                casedir.mkdir()
                results.append(run_case(protocol, state, counts, casedir, env))
                print(f"connmem: {protocol} {state}: done", file=sys.stderr)
    except (BenchError, OSError, TimeoutError) as exc:
        print(f"connmem: FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(table(results))
    print()
    for line in verdict(results):
        print(line)
    if args.json is not None:
        payload = {
            "counts": list(counts),
            "python": sys.version.split()[0],
            "bytecode": "as-is" if args.bytecode_as_is else "primed PYTHONPYCACHEPREFIX",
            "max_connections": DEFAULT_LIMITS.max_connections,
            "results": [
                {**asdict(r), "idle_rss_mib": round(r.idle_rss_mib, 2)} for r in results
            ],
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
