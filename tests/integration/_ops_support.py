"""Helpers for the runtime tests (faults, operations, memory, systemd).

* :func:`ops_backend` starts ``wsgiwire serve`` (by default ``apps/ops_app.py``) with a
  status page on an ephemeral port, a private TMPDIR (the body spool) and its log in
  ``tmp_path``; :class:`OpsBackend` reads the status page and finds the workers.
* ``/proc`` readers: children, liveness, descriptor counts, memory, uids.
* :func:`http_load`: bounded HTTP load (thread count, request count *and* time) that
  records every request's start, end and outcome, for "which requests failed, and
  were they in flight at the fault" questions.
* :func:`wait_until`: every wait in these tests is a bounded poll.

Everything started here is stopped by its own PID (``ManagedProcess.stop``), which also
fails the test if any process of the backend's group is left behind.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import os
import re
import resource
import shutil
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from wsgiwire._client import Reply, Target, build_params, fastcgi_request, parse_target
from wsgiwire.protocols._fastcgi import FastCGIClient

from .servers import LOOPBACK, NginxServer, Stage, WsgiwireBackend, wait_for_output

__all__ = [
    "OpsBackend",
    "Outcome",
    "alive",
    "children",
    "fcgi",
    "fcgi_until_closed",
    "fd_count",
    "http_load",
    "nginx_in_front",
    "ops_backend",
    "percentile",
    "proc_status",
    "raised_nofile",
    "read_stats",
    "wait_until",
    "waiting_in_epoll",
]

T = TypeVar("T")

POLL = 0.01
REQUEST_TIMEOUT = 20.0
_STATS_LINE = re.compile(r"status page on \(?'?([0-9.]+)'?(?::|, )(\d+)")


# ---------------------------------------------------------------------------------------
# Waiting


def wait_until(
    probe: Callable[[], T], *, timeout: float, what: str, interval: float = POLL
) -> T:
    """Call ``probe`` every ``interval`` s until it returns something truthy; return it.

    Raises AssertionError naming ``what`` after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not true after {timeout:.1f} s (last: {value!r})")
        time.sleep(interval)


def percentile(samples: Sequence[float], pct: float) -> float:
    """The nearest-rank percentile (p99 of 50 samples is the largest)."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


# ---------------------------------------------------------------------------------------
# /proc


def proc_status(pid: int) -> dict[str, str]:
    """``/proc/PID/status`` as a dict (empty when the process is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    state = proc_status(pid).get("State", "")
    return bool(state) and not state.startswith(("Z", "X"))


def children(pid: int) -> set[int]:
    """Live child processes of ``pid``."""
    found = set()
    for status in Path("/proc").glob("[0-9]*/status"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            text = status.read_text()
            if int(text.split("\nPPid:")[1].split()[0]) == pid and "\nState:\tZ" not in text:
                found.add(int(status.parent.name))
    return found


def waiting_in_epoll(pid: int) -> bool:
    """True while ``pid`` sleeps in epoll_wait (its event loop is idle)."""
    try:
        return "epoll" in Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        return False


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def memory_kib(pid: int, field_name: str) -> int:
    """``VmRSS`` / ``VmHWM`` of ``pid`` in KiB."""
    value = proc_status(pid).get(field_name, "")
    if not value.endswith(" kB"):
        raise AssertionError(f"no {field_name} for pid {pid}: {value!r}")
    return int(value.split()[0])


@contextlib.contextmanager
def raised_nofile(wanted: int) -> Iterator[int]:
    """Raise this process's RLIMIT_NOFILE soft limit to ``wanted`` (or the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = soft if soft >= wanted else (wanted if hard == resource.RLIM_INFINITY else
                                          min(wanted, hard))
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    try:
        yield target
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# ---------------------------------------------------------------------------------------
# The status page


def read_stats(address: tuple[str, int], *, http: bool = False) -> dict[str, Any]:
    """The master's JSON status: over raw TCP (send nothing) or as an HTTP GET."""
    if http:
        conn = http_client(address)
        try:
            conn.request("GET", "/")
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200 or resp.getheader("Content-Type") != "application/json":
                raise AssertionError(f"status page answered {resp.status}: {body[:200]!r}")
        finally:
            conn.close()
    else:
        with socket.create_connection(address, timeout=5.0) as sock:
            sock.shutdown(socket.SHUT_WR)  # nothing to say: the page comes at once
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
            body = b"".join(chunks)
    stats: dict[str, Any] = json.loads(body)
    return stats


def http_client(address: tuple[str, int]) -> http.client.HTTPConnection:
    return http.client.HTTPConnection(address[0], address[1], timeout=REQUEST_TIMEOUT)


# ---------------------------------------------------------------------------------------
# The backend


@dataclass
class OpsBackend:
    process: WsgiwireBackend
    stats_address: tuple[str, int] | None
    tmpdir: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.process.output()

    def stats(self, *, http: bool = False) -> dict[str, Any]:
        if self.stats_address is None:
            raise AssertionError("this backend runs without --stats")
        return read_stats(self.stats_address, http=http)

    def workers(self, state: str = "accepting") -> list[dict[str, Any]]:
        """The status page's workers in ``state`` (``""``: every one)."""
        return [w for w in self.stats()["workers"] if not state or w["state"] == state]

    def worker_pids(self, state: str = "accepting") -> set[int]:
        return {w["pid"] for w in self.workers(state) if w["pid"] > 0}

    def target(self, path: str = "/") -> Target:
        return parse_target(f"fastcgi://{LOOPBACK}:{self.process.port}{path}")

    def wait_stopped(self, timeout: float) -> int:
        """Wait (bounded) for the master to exit; returns its status."""
        wait_until(
            lambda: self.process.returncode() is not None,
            timeout=timeout,
            what=f"wsgiwire master {self.pid} exits",
        )
        code = self.process.returncode()
        assert code is not None
        return code

    def signal(self, signum: int) -> None:
        os.kill(self.pid, signum)


@contextlib.contextmanager
def ops_backend(
    stage: Stage,
    tmp_path: Path,
    options: Sequence[str] = (),
    *,
    app: str = "ops_app",
    binds: Sequence[str] = (f"{LOOPBACK}:0",),
    stats: bool = True,
    env: dict[str, str] | None = None,
    name: str = "backend",
    stage_for_cwd: Stage | None = None,
    python: str | None = None,
) -> Iterator[OpsBackend]:
    """``wsgiwire serve APP`` with ``--stats`` on an ephemeral port and its own TMPDIR.

    ``stage_for_cwd`` runs it from another (world-readable) directory, e.g. for
    ``--reload``; the staged package stays importable through PYTHONPATH. ``python``
    replaces this interpreter (e.g. ``stage.python`` when workers drop to a user who
    cannot read this one's standard library).
    """
    tmpdir = tmp_path / f"{name}-tmp"
    tmpdir.mkdir(mode=0o1777)
    tmpdir.chmod(0o1777)
    full_env = {"TMPDIR": str(tmpdir), **(env or {})}
    where = stage
    if stage_for_cwd is not None:
        where = stage_for_cwd
        full_env.setdefault("PYTHONPATH", f"{stage_for_cwd.root}{os.pathsep}{stage.root}")
    argv = [*options, *(("--stats", f"{LOOPBACK}:0") if stats else ())]
    process = WsgiwireBackend(
        where, app, list(binds), log_path=tmp_path / f"{name}.log", options=argv, env=full_env
    )
    if python is not None:
        process.argv[process.argv.index(sys.executable)] = python
    try:
        with process:
            address = None
            if stats:
                output = wait_for_output(process, "status page on")
                match = _STATS_LINE.search(output)
                assert match, output
                address = (match.group(1), int(match.group(2)))
            backend = OpsBackend(process, address, tmpdir)
            if stats:
                # The master logs its binds before forking: wait for the workers.
                workers = _workers_from_options(argv)
                wait_until(
                    lambda: len(backend.worker_pids()) >= workers,
                    timeout=10.0,
                    what=f"{workers} worker(s) accepting",
                )
            yield backend
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def _workers_from_options(options: Sequence[str]) -> int:
    for i, option in enumerate(options):
        if option in ("--workers", "-w") and i + 1 < len(options):
            return int(options[i + 1])
        if option.startswith("--workers="):
            return int(option.split("=", 1)[1])
    return 1


@contextlib.contextmanager
def nginx_in_front(backend: OpsBackend, config: str | Path = "fastcgi-keepconn") -> Iterator[
    NginxServer
]:
    """nginx from ``server-configs/nginx/<config>.conf`` passing to ``backend``'s TCP port."""
    NginxServer.require()
    with NginxServer(config, values={"BACKEND": f"{LOOPBACK}:{backend.process.port}"}) as srv:
        yield srv


def fcgi(
    target: Target,
    path: str = "/hello",
    *,
    body: bytes = b"",
    method: str | None = None,
    sock: socket.socket | None = None,
    keep_conn: bool = False,
    timeout: float = REQUEST_TIMEOUT,
) -> Reply:
    """One FastCGI request for ``path`` (query after ``?``) with nginx's parameters."""
    path, _, query = path.partition("?")
    where = Target(target.protocol, target.family, target.address, path, query)
    params = build_params(where, method=method or ("POST" if body else "GET"),
                          body_length=len(body))
    return fastcgi_request(where, params, body, timeout=timeout, sock=sock, keep_conn=keep_conn)


def fcgi_until_closed(target: Target, path: str, *, timeout: float) -> tuple[bytes, float]:
    """Send one FastCGI request and read until the backend closes (bounded by ``timeout``);
    returns every byte received and the seconds it took: for requests whose worker dies
    or whose connection is dropped, where what matters is what (if anything) came back."""
    path, _, query = path.partition("?")
    where = Target(target.protocol, target.family, target.address, path, query)
    codec = FastCGIClient()
    request = codec.begin(1, build_params(where), keep_conn=False) + codec.end_stdin(1)
    chunks = []
    began = time.monotonic()
    with where.connect(timeout) as sock:
        sock.sendall(request)
        while True:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks), time.monotonic() - began


# ---------------------------------------------------------------------------------------
# HTTP load


@dataclass(frozen=True)
class Outcome:
    """One request of a load run: when it started and ended, and what came back."""

    started: float
    ended: float
    status: int  # 0: no HTTP answer (see error)
    pid: int  # X-Worker-Pid, 0 if none
    error: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300 and not self.error


@dataclass
class LoadRun:
    outcomes: list[Outcome] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]


def http_load(
    port: int,
    paths: Sequence[str] | Callable[[int, int], tuple[str, bytes | None]],
    *,
    threads: int,
    duration: float,
    max_requests: int,
    stop: threading.Event | None = None,
    check: Callable[[bytes], bool] | None = None,
) -> LoadRun:
    """``threads`` clients, each on its own kept-alive HTTP connection, looping over
    ``paths`` until ``duration`` seconds pass, ``max_requests`` requests (per client)
    are sent, or ``stop`` is set. ``paths`` may be a function ``(client, i) ->
    (path, body or None)``. A failed connection is replaced. Runs to completion in
    this call (callers run it on a thread to act meanwhile)."""
    run = LoadRun()
    stop = stop or threading.Event()
    deadline = time.monotonic() + duration

    def pick(client: int, i: int) -> tuple[str, bytes | None]:
        if callable(paths):
            return paths(client, i)
        return paths[(client + i) % len(paths)], None

    def client(n: int) -> None:
        conn: http.client.HTTPConnection | None = None
        local: list[Outcome] = []
        try:
            for i in range(max_requests):
                if stop.is_set() or time.monotonic() >= deadline:
                    break
                path, body = pick(n, i)
                if conn is None:
                    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=REQUEST_TIMEOUT)
                started = time.monotonic()
                try:
                    conn.request("POST" if body is not None else "GET", path, body=body)
                    resp = conn.getresponse()
                    data = resp.read()
                    error = "" if check is None or resp.status != 200 or check(data) else (
                        f"bad body {data[:100]!r}"
                    )
                    local.append(Outcome(started, time.monotonic(), resp.status,
                                         int(resp.getheader("X-Worker-Pid") or 0), error))
                    if resp.will_close:
                        conn.close()
                        conn = None
                except (OSError, http.client.HTTPException) as exc:
                    local.append(Outcome(started, time.monotonic(), 0, 0, repr(exc)))
                    if conn is not None:
                        conn.close()
                    conn = None
        finally:
            if conn is not None:
                conn.close()
            with run.lock:
                run.outcomes.extend(local)

    workers = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(duration + 2 * REQUEST_TIMEOUT)
    if any(worker.is_alive() for worker in workers):
        stop.set()
        raise AssertionError("a load client did not finish in time")
    run.outcomes.sort(key=lambda o: o.started)
    return run


@contextlib.contextmanager
def background(function: Callable[[], T]) -> Iterator[Callable[[], T]]:
    """Run ``function`` on a thread; yields ``result()`` which joins (bounded) and returns
    its value or re-raises its exception."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = function()
        except BaseException as exc:  # re-raised by result()
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()

    def result() -> T:
        thread.join(120.0)
        if thread.is_alive():
            raise AssertionError("background work did not finish within 120 s")
        if "error" in box:
            raise box["error"]
        value: T = box["value"]
        return value

    try:
        yield result
    finally:
        thread.join(120.0)
