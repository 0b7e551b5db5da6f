"""A bounded soak: mixed good and malformed traffic, through nginx and directly.

:func:`run_soak` starts two ``wsgiwire serve`` backends (``apps/ops_app.py``, each with
``--stats``): a FastCGI one (``--workers 2``) behind real nginx
(``server-configs/nginx/fastcgi-keepconn.conf``) and a uwsgi one (``--workers 1``).
For ``seconds`` it runs, concurrently, every loop bounded in count *and* time:

* ``http``: a few HTTP clients through nginx, each on a kept-alive connection,
  alternating ``GET /hello`` and a small ``POST /upload`` whose ``<length> <sha256>``
  answer is checked;
* ``fcgi``: good FastCGI requests straight to the backend (kept-alive connection, GET
  and POST, checked the same way);
* ``uwsgi``: good uwsgi requests straight to the second backend (GET and POST);
* ``fcgi-bad`` / ``uwsgi-bad``: malformed inputs at a steady rate, cycling through the
  hostile catalogue's cases (``tests/hostile/catalogue.py``) of that protocol whose
  expected outcome is a refusal or a drop that closes the connection with exactly one
  warning (no slow, disconnect or app cases; no xfail ones). Each is sent as its bytes
  (and half-close), then read until the backend closes (bounded).

Every second it samples each worker's VmRSS, descriptor count and thread count. The
figures come back as a :class:`SoakResult`; :meth:`SoakResult.problems` lists every
broken promise (the test asserts it is empty, ``bench/soak.py`` prints it):

* a good request that did not get its right answer (zero lost);
* a worker whose RSS grew 8 MiB or more after the warm-up (the first 25 % of the run),
  whose thread count changed, or whose descriptor count was not back to its pre-traffic
  baseline (± ``FD_SLACK``) once traffic stopped and nginx (its kept-alive upstream
  connections) was stopped;
* a worker replaced during the run;
* a malformed input the backend did not close within ``MALFORMED_TIMEOUT``;
* a backend log with more WARNING-or-above lines than malformed inputs sent to it, or
  none at all, or with a traceback.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.client
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.hostile.catalogue import CASES, Case
from tests.hostile.harness import HalfClose
from wsgiwire._client import ClientError, Target, build_params, parse_target, uwsgi_request

from ._ops_support import OpsBackend, fcgi, fd_count, nginx_in_front, ops_backend, proc_status
from .servers import LOOPBACK, Stage

__all__ = [
    "DEFAULT_SECONDS",
    "SoakResult",
    "malformed_cases",
    "rss_under_malformed",
    "run_soak",
    "soak_seconds",
]

DEFAULT_SECONDS = 20.0
SECONDS_ENV = "WSGIWIRE_SOAK_SECONDS"
WARMUP_FRACTION = 0.25
SAMPLE_EVERY = 1.0
RSS_GROWTH_LIMIT_KIB = 8 * 1024
FD_SLACK = 3
FD_SETTLE_TIMEOUT = 10.0
REQUEST_TIMEOUT = 10.0
MALFORMED_TIMEOUT = 5.0
MALFORMED_EVERY = 0.05  # per malformed sender: ~20 inputs a second
HTTP_CLIENTS = 3
# Hard caps on every loop, on top of the deadline (a runaway loop still ends).
MAX_PER_SECOND = 2000
JOIN_SLACK = 30.0

# wsgiwire's text format: an ISO 8601 time with its zone, [pid], the level.
_LOG_LINE = re.compile(r"^\S+ \[\d+\] (WARNING|ERROR|CRITICAL) ", re.MULTILINE)
_REFUSED_STATUSES = (None, 400, 413, 431, 501)


def rss_under_malformed(stage: Stage, workdir: Path, case_names: list[str],
                        seconds: float) -> tuple[int, int]:
    """One FastCGI worker fed only the named catalogue cases, back to back, for
    ``seconds``: its (RSS at the end of the warm-up, max RSS after it) in KiB."""
    cases = [case for case in malformed_cases("fastcgi") if case.name in case_names]
    assert len(cases) == len(case_names), case_names
    with ops_backend(stage, workdir, ["--workers", "1"], name="rss") as backend:
        pid = next(iter(backend.worker_pids()))
        series = WorkerSeries("fcgi", pid, fd_count(pid), 1)
        stop = threading.Event()
        channel = Channel("fcgi-bad", False)
        began = time.monotonic()
        with _sampler([series], began):
            _malformed_sender((LOOPBACK, backend.process.port), cases, channel, stop=stop,
                              deadline=began + seconds, limit=int(seconds * MAX_PER_SECOND),
                              every=0.0)
        assert channel.failed == 0, channel.wrong
        assert series.after_warmup(seconds), "no RSS samples after the warm-up"
        warm, _, top = series.rss_window(seconds)
        return warm, top


def soak_seconds() -> float:
    """The run's length: ``$WSGIWIRE_SOAK_SECONDS`` or 20 s."""
    value = os.environ.get(SECONDS_ENV, "")
    return float(value) if value else DEFAULT_SECONDS


def malformed_cases(protocol: str) -> list[Case]:
    """The catalogue's ``protocol`` cases that are refused or dropped with one warning and
    a close, sent as plain bytes (and maybe a half-close): no pauses, trickles, resets,
    tight-profile limits, app behaviours or known bugs."""
    chosen = []
    for case in CASES:
        expect = case.expect
        if (
            case.protocol == protocol
            and case.xfail is None
            and case.profile == "default"
            and case.cls not in ("slow", "disconnect", "app", "response")
            and expect.closed
            and expect.warnings == 1
            and expect.status in _REFUSED_STATUSES
            and all(isinstance(step, (bytes, HalfClose)) for step in case.steps)
        ):
            chosen.append(case)
    if not chosen:
        raise AssertionError(f"no malformed {protocol} cases in the catalogue")
    return chosen


# ---------------------------------------------------------------------------------------
# Counting


@dataclass
class Channel:
    """One traffic loop's tally: how many sent, how many right, the first few wrong."""

    name: str
    good: bool
    sent: int = 0
    ok: int = 0
    wrong: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, ok: bool, detail: str = "") -> None:
        with self.lock:
            self.sent += 1
            if ok:
                self.ok += 1
            elif len(self.wrong) < 10:
                self.wrong.append(detail)

    @property
    def failed(self) -> int:
        return self.sent - self.ok


@dataclass
class WorkerSeries:
    """One worker's samples (seconds since traffic began, VmRSS KiB, fds, threads)."""

    backend: str
    pid: int
    fd_baseline: int
    threads_baseline: int
    times: list[float] = field(default_factory=list)
    rss_kib: list[int] = field(default_factory=list)
    fds: list[int] = field(default_factory=list)
    threads: list[int] = field(default_factory=list)
    fd_after: int | None = None

    def sample(self, at: float) -> None:
        status = proc_status(self.pid)
        rss = status.get("VmRSS", "")
        if not rss.endswith(" kB"):
            return  # gone: reported by the replaced-worker check
        try:
            fds = fd_count(self.pid)
        except OSError:
            return
        self.times.append(at)
        self.rss_kib.append(int(rss.split()[0]))
        self.fds.append(fds)
        self.threads.append(int(status.get("Threads", "0")))

    def after_warmup(self, seconds: float) -> list[int]:
        """Indexes of the samples past the warm-up."""
        return [i for i, t in enumerate(self.times) if t >= WARMUP_FRACTION * seconds]

    def rss_window(self, seconds: float) -> tuple[int, int, int]:
        """(RSS at the end of the warm-up, min and max after it), in KiB."""
        idx = self.after_warmup(seconds)
        if not idx:
            return 0, 0, 0
        values = [self.rss_kib[i] for i in idx]
        return values[0], min(values), max(values)

    @property
    def fd_peak(self) -> int:
        return max(self.fds, default=0)


@dataclass
class SoakResult:
    seconds: float
    elapsed: float
    channels: dict[str, Channel]
    workers: list[WorkerSeries]
    log_lines: dict[str, int]  # backend -> WARNING-or-above lines
    tracebacks: dict[str, int]
    replaced: dict[str, tuple[set[int], set[int]]]  # backend -> (before, after)
    cases: dict[str, int]  # protocol -> distinct malformed cases cycled

    @property
    def good_total(self) -> int:
        return sum(c.sent for c in self.channels.values() if c.good)

    @property
    def good_ok(self) -> int:
        return sum(c.ok for c in self.channels.values() if c.good)

    def malformed(self, backend: str) -> Channel:
        return self.channels[f"{backend}-bad"]

    def problems(self, *, rss_exempt: frozenset[str] = frozenset()) -> list[str]:
        """Every broken promise; ``rss_exempt`` names backends whose RSS is not judged."""
        found = []
        for channel in self.channels.values():
            if channel.sent == 0:
                found.append(f"{channel.name}: nothing sent")
            if channel.failed:
                kind = "good requests lost or wrong" if channel.good else (
                    "malformed inputs not closed in time")
                found.append(f"{channel.name}: {channel.failed} of {channel.sent} {kind}: "
                             f"{channel.wrong}")
        for series in self.workers:
            name = f"{series.backend} worker {series.pid}"
            warm, _, top = self.rss_window_of(series)
            if not series.after_warmup(self.seconds):
                found.append(f"{name}: no samples after the warm-up")
            elif top - warm >= RSS_GROWTH_LIMIT_KIB and series.backend not in rss_exempt:
                found.append(f"{name}: RSS grew {top - warm} KiB after the warm-up "
                             f"({warm} -> {top} KiB; limit {RSS_GROWTH_LIMIT_KIB})")
            if any(t != series.threads_baseline for t in series.threads):
                found.append(f"{name}: threads {sorted(set(series.threads))}, "
                             f"baseline {series.threads_baseline}")
            if series.fd_after is None or abs(series.fd_after - series.fd_baseline) > FD_SLACK:
                found.append(f"{name}: {series.fd_after} fds after traffic, baseline "
                             f"{series.fd_baseline} (± {FD_SLACK})")
        for backend, (before, after) in self.replaced.items():
            if before != after:
                found.append(f"{backend}: workers {sorted(before)} became {sorted(after)}")
        for backend, lines in self.log_lines.items():
            sent = self.malformed(backend).sent
            if lines > sent:
                found.append(f"{backend}: {lines} WARNING+ log lines for {sent} malformed inputs")
            if lines < 1:
                found.append(f"{backend}: no WARNING+ log line for {sent} malformed inputs")
            if self.tracebacks.get(backend):
                found.append(f"{backend}: {self.tracebacks[backend]} traceback(s) in its log")
        return found

    def rss_window_of(self, series: WorkerSeries) -> tuple[int, int, int]:
        return series.rss_window(self.seconds)

    def summary(self) -> str:
        """One line with every figure, for the CI log."""
        chans = " ".join(f"{c.name}={c.ok}/{c.sent}" for c in self.channels.values() if c.good)
        bad = " ".join(f"{c.name}={c.sent}" for c in self.channels.values() if not c.good)
        logs = " ".join(f"{b}={n}" for b, n in self.log_lines.items())
        workers = []
        for s in self.workers:
            warm, low, high = self.rss_window_of(s)
            workers.append(
                f"{s.backend}:{s.pid} rss_kib[warm={warm} min={low} max={high}] "
                f"fds[base={s.fd_baseline} peak={s.fd_peak} after={s.fd_after}] "
                f"threads={sorted(set(s.threads)) or [s.threads_baseline]}"
            )
        return (f"soak {self.elapsed:.1f}s: good {self.good_ok}/{self.good_total} ({chans}); "
                f"malformed sent {bad}; warning+ log lines {logs}; " + "; ".join(workers))

    def table(self) -> str:
        """The figures as plain-text tables (for ``bench/soak.py``)."""
        lines = [f"soak: {self.elapsed:.1f} s of traffic (warm-up {WARMUP_FRACTION:.0%})", "",
                 f"{'channel':<12} {'kind':<10} {'sent':>8} {'right':>8} {'wrong':>6}"]
        for c in self.channels.values():
            kind = "good" if c.good else "malformed"
            right = c.ok
            lines.append(f"{c.name:<12} {kind:<10} {c.sent:>8} {right:>8} {c.failed:>6}")
        lines += ["", f"{'backend':<8} {'malformed':>9} {'cases':>5} {'warn+ lines':>11}"]
        for backend, n in self.log_lines.items():
            lines.append(f"{backend:<8} {self.malformed(backend).sent:>9} "
                         f"{self.cases.get(backend, 0):>5} {n:>11}")
        lines += ["", f"{'worker':<14} {'samples':>7} {'rss warm':>9} {'rss min':>8} "
                      f"{'rss max':>8} {'growth':>7} {'fd base':>7} {'fd peak':>7} "
                      f"{'fd after':>8} {'threads':>7}"]
        for s in self.workers:
            warm, low, high = self.rss_window_of(s)
            threads = ",".join(str(t) for t in sorted(set(s.threads))) or "-"
            lines.append(
                f"{s.backend + ':' + str(s.pid):<14} {len(s.times):>7} {warm:>9} {low:>8} "
                f"{high:>8} {high - warm:>7} {s.fd_baseline:>7} {s.fd_peak:>7} "
                f"{s.fd_after!s:>8} {threads:>7}"
            )
        lines.append("(RSS in KiB; min/max/growth after the warm-up)")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# Traffic


def _sha_answer(body: bytes) -> bytes:
    return f"{len(body)} {hashlib.sha256(body).hexdigest()}\n".encode()


def _body(n: int, i: int) -> bytes:
    """A small deterministic POST body, 1..4 KiB, different per client and request."""
    seed = hashlib.sha256(b"soak-%d-%d" % (n, i)).digest()
    return seed * (32 + (i % 96))


def _check(status: int, body: bytes, posted: bytes | None) -> str:
    """'' when (status, body) is the right answer to GET /hello or POST ``posted``."""
    if status != 200:
        return f"status {status}: {body[:80]!r}"
    if posted is None:
        return "" if body.startswith(b"hello from ") else f"bad hello {body[:80]!r}"
    return "" if body == _sha_answer(posted) else f"bad upload answer {body[:80]!r}"


def _loop(stop: threading.Event, deadline: float, limit: int,
          step: Callable[[int], None], every: float = 0.0) -> None:
    """Call ``step(i)`` until ``stop``, ``deadline`` or ``limit`` calls; ``every`` paces."""
    for i in range(limit):
        if stop.is_set() or time.monotonic() >= deadline:
            return
        began = time.monotonic()
        step(i)
        if every:
            stop.wait(max(0.0, every - (time.monotonic() - began)))


def _http_client(port: int, channel: Channel, n: int, *, stop: threading.Event,
                 deadline: float, limit: int) -> None:
    conn: http.client.HTTPConnection | None = None

    def step(i: int) -> None:
        nonlocal conn
        posted = _body(n, i) if i % 2 else None
        if conn is None:
            conn = http.client.HTTPConnection(LOOPBACK, port, timeout=REQUEST_TIMEOUT)
        try:
            if posted is None:
                conn.request("GET", f"/hello?c={n}&i={i}")
            else:
                conn.request("POST", "/upload", body=posted,
                             headers={"Content-Type": "application/octet-stream"})
            resp = conn.getresponse()
            data = resp.read()
            wrong = _check(resp.status, data, posted)
            channel.record(not wrong, f"http {n}/{i}: {wrong}")
            if resp.will_close:
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException) as exc:
            channel.record(False, f"http {n}/{i}: {exc!r}")
            conn.close()
            conn = None

    try:
        _loop(stop, deadline, limit, step)
    finally:
        if conn is not None:
            conn.close()


def _fcgi_client(target: Target, channel: Channel, *, stop: threading.Event,
                 deadline: float, limit: int) -> None:
    sock: socket.socket | None = None

    def step(i: int) -> None:
        nonlocal sock
        posted = _body(100, i) if i % 2 else None
        try:
            if sock is None:
                sock = target.connect(REQUEST_TIMEOUT)
                # The client writes BEGIN+PARAMS, STDIN and the empty STDIN apart: without
                # this, Nagle and delayed ACKs hold each request ~40 ms.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            reply = fcgi(target, "/upload" if posted is not None else f"/hello?i={i}",
                         body=posted or b"", sock=sock, keep_conn=True,
                         timeout=REQUEST_TIMEOUT)
            wrong = _check(reply.status, reply.body, posted)
            if not wrong and (reply.app_status, reply.protocol_status) != (0, 0):
                wrong = f"END_REQUEST {reply.app_status}/{reply.protocol_status}"
            channel.record(not wrong, f"fcgi {i}: {wrong}")
            if reply.closed_by_backend:
                sock.close()
                sock = None
        except (OSError, ClientError) as exc:
            channel.record(False, f"fcgi {i}: {exc!r}")
            if sock is not None:
                sock.close()
            sock = None

    try:
        _loop(stop, deadline, limit, step)
    finally:
        if sock is not None:
            sock.close()


def _uwsgi_client(target: Target, channel: Channel, *, stop: threading.Event,
                  deadline: float, limit: int) -> None:
    def step(i: int) -> None:
        posted = _body(200, i) if i % 2 else None
        path = "/upload" if posted is not None else "/hello"
        where = Target(target.protocol, target.family, target.address, path, f"i={i}")
        params = build_params(where, method="POST" if posted else "GET",
                              body_length=len(posted or b""))
        try:
            reply = uwsgi_request(where, params, posted or b"", timeout=REQUEST_TIMEOUT)
            wrong = _check(reply.status, reply.body, posted)
        except (OSError, ClientError) as exc:
            wrong = repr(exc)
        channel.record(not wrong, f"uwsgi {i}: {wrong}")

    _loop(stop, deadline, limit, step)


def send_malformed(address: tuple[str, int], case: Case) -> str:
    """Send one case's bytes (and half-close); read until the backend closes. Returns ''
    when it closed within ``MALFORMED_TIMEOUT``, else what went wrong."""
    began = time.monotonic()
    with socket.create_connection(address, timeout=MALFORMED_TIMEOUT) as sock:
        try:
            for step in case.steps:
                if isinstance(step, HalfClose):
                    sock.shutdown(socket.SHUT_WR)
                else:
                    sock.sendall(step)
        except (BrokenPipeError, ConnectionResetError):
            return ""  # refused mid-send (a long input cut early): closed
        while True:
            left = MALFORMED_TIMEOUT - (time.monotonic() - began)
            if left <= 0:
                return f"{case.name}: still open after {MALFORMED_TIMEOUT} s"
            sock.settimeout(left)
            try:
                if not sock.recv(65536):
                    return ""
            except ConnectionResetError:
                return ""
            except TimeoutError:
                return f"{case.name}: still open after {MALFORMED_TIMEOUT} s"


def _malformed_sender(address: tuple[str, int], cases: list[Case], channel: Channel,
                      *, stop: threading.Event, deadline: float, limit: int,
                      every: float = MALFORMED_EVERY) -> None:
    def step(i: int) -> None:
        case = cases[i % len(cases)]
        try:
            wrong = send_malformed(address, case)
        except OSError as exc:
            wrong = f"{case.name}: {exc!r}"
        channel.record(not wrong, wrong)

    _loop(stop, deadline, limit, step, every=every)


# ---------------------------------------------------------------------------------------
# The run


def _log_figures(backend: OpsBackend) -> tuple[int, int]:
    text = backend.output()
    return len(_LOG_LINE.findall(text)), text.count("Traceback (most recent call last)")


@contextlib.contextmanager
def _sampler(series: list[WorkerSeries], began: float) -> Iterator[None]:
    stop = threading.Event()

    def run() -> None:
        while True:
            at = time.monotonic() - began
            for s in series:
                s.sample(at)
            if stop.wait(SAMPLE_EVERY):
                return

    thread = threading.Thread(target=run, name="soak-sampler", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10.0)


def run_soak(stage: Stage, workdir: Path, seconds: float) -> SoakResult:
    """Run the soak for ``seconds`` (see the module docstring); everything it starts is
    stopped (by its own PID) before it returns."""
    fcgi_cases = malformed_cases("fastcgi")
    uwsgi_cases = malformed_cases("uwsgi")
    limit = int(seconds * MAX_PER_SECOND) + 100
    channels = {name: Channel(name, good) for name, good in (
        ("http", True), ("fcgi", True), ("uwsgi", True),
        ("fcgi-bad", False), ("uwsgi-bad", False))}
    with ops_backend(stage, workdir, ["--workers", "2"], name="fcgi") as fb, \
            ops_backend(stage, workdir, ["--protocol", "uwsgi", "--workers", "1"],
                        name="uwsgi") as ub:
        backends = {"fcgi": fb, "uwsgi": ub}
        before = {name: b.worker_pids() for name, b in backends.items()}
        series = [
            WorkerSeries(name, pid, fd_count(pid), int(proc_status(pid)["Threads"]))
            for name, pids in before.items() for pid in sorted(pids)
        ]
        fcgi_address = (LOOPBACK, fb.process.port)
        uwsgi_address = (LOOPBACK, ub.process.port)
        uwsgi_target = parse_target(f"uwsgi://{LOOPBACK}:{ub.process.port}/")
        with nginx_in_front(fb) as nginx:
            stop = threading.Event()
            began = time.monotonic()
            deadline = began + seconds
            loop = {"stop": stop, "deadline": deadline, "limit": limit}
            jobs: list[Callable[[], None]] = [
                *(functools.partial(_http_client, nginx.port, channels["http"], n, **loop)
                  for n in range(HTTP_CLIENTS)),
                functools.partial(_fcgi_client, fb.target(), channels["fcgi"], **loop),
                functools.partial(_uwsgi_client, uwsgi_target, channels["uwsgi"], **loop),
                functools.partial(_malformed_sender, fcgi_address, fcgi_cases,
                                  channels["fcgi-bad"], **loop),
                functools.partial(_malformed_sender, uwsgi_address, uwsgi_cases,
                                  channels["uwsgi-bad"], **loop),
            ]
            errors: list[BaseException] = []

            def guarded(job: Callable[[], None]) -> None:
                try:
                    job()
                except BaseException as exc:  # reported below
                    errors.append(exc)
                    stop.set()

            threads = [threading.Thread(target=guarded, args=(job,), daemon=True,
                                        name="soak-traffic") for job in jobs]
            with _sampler(series, began):
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join(max(0.0, deadline + JOIN_SLACK - time.monotonic()))
                elapsed = time.monotonic() - began
            if any(thread.is_alive() for thread in threads):
                stop.set()
                raise AssertionError("a soak traffic loop did not finish in time")
            if errors:
                raise errors[0]
        # nginx is stopped: its kept-alive upstream connections are closed. Every
        # worker's descriptors must come back to the pre-traffic baseline.
        settle = time.monotonic() + FD_SETTLE_TIMEOUT
        for s in series:
            while True:
                with contextlib.suppress(OSError):
                    s.fd_after = fd_count(s.pid)
                if (s.fd_after is not None and abs(s.fd_after - s.fd_baseline) <= FD_SLACK) \
                        or time.monotonic() >= settle:
                    break
                time.sleep(0.05)
        after = {name: b.worker_pids() for name, b in backends.items()}
        logs = {name: _log_figures(b) for name, b in backends.items()}
    return SoakResult(
        seconds=seconds,
        elapsed=elapsed,
        channels=channels,
        workers=series,
        log_lines={name: n for name, (n, _) in logs.items()},
        tracebacks={name: t for name, (_, t) in logs.items()},
        replaced={name: (before[name], after[name]) for name in backends},
        cases={"fcgi": len(fcgi_cases), "uwsgi": len(uwsgi_cases)},
    )
