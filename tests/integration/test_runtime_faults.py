"""Faults under load: ``wsgiwire serve`` behind nginx while things go wrong.

Each test runs ``wsgiwire serve ops_app`` (``apps/ops_app.py``) with nginx in front
(``server-configs/nginx/fastcgi-keepconn.conf``: upstream keepalive and
``fastcgi_keep_conn on``) and a bounded load from client threads, then:

* SIGTERM with 16 connections mid-request (slow GETs and 1 MiB uploads): every one of
  them is answered 200 with the right body, the master exits 0 well inside the
  graceful timeout, and no worker is left;
* SIGHUP under load: no client error, a new generation of workers (new pids) serves,
  the old workers are gone;
* ``kill -9`` of a worker under load: a replacement appears within a second; the only
  failures are requests already in flight when it died;
* 1,000 idle kept-alive FastCGI connections held open against one worker: fresh
  requests still answer quickly, and the worker's descriptors return to their
  baseline once the idle peers leave;
* a client trickling its request head (one byte per 0.2 s) is cut at the header
  deadline and slows nobody else meanwhile.

Two tests guard bugs found on the way: a worker told to stop must not accept a
connection from the backlog and then drop it unread (seen as rare resets under SIGHUP
and --reload), and a replacement worker must not count as "accepting" while it is
still importing the app (a live worker would stop accepting in its favour).

A listening socket above fd 1024 is covered by ``test_fastcgi_runtime.py``.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import select
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from wsgiwire._client import build_params
from wsgiwire.protocols._fastcgi import FastCGIClient

from ._ops_support import (
    OpsBackend,
    alive,
    background,
    fcgi,
    fcgi_until_closed,
    fd_count,
    http_load,
    nginx_in_front,
    ops_backend,
    percentile,
    raised_nofile,
    wait_until,
    waiting_in_epoll,
)
from .servers import LOOPBACK, Stage

pytestmark = pytest.mark.integration

REQUEST_TIMEOUT = 20.0


def http_get(port: int, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=REQUEST_TIMEOUT)
    try:
        conn.request("POST" if body is not None else "GET", path, body=body)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def context(backend: OpsBackend, nginx_log: str = "") -> str:
    return f"--- backend ---\n{backend.output()}\n{nginx_log}"


# ---------------------------------------------------------------------------------------
# SIGTERM with requests in flight

IN_FLIGHT = 16
SLOW_SECONDS = 1.5  # long enough that all 16 are surely running at once
UPLOAD_SIZE = 1 << 20
GRACE = 5.0
STOP_MARGIN = 1.5


def test_sigterm_finishes_every_request_in_flight_and_exits_0(
    stage: Stage, tmp_path: Path
) -> None:
    # Enough threads that all 16 requests run at once, whichever worker takes them.
    options = ("--workers", "2", "--threads", str(IN_FLIGHT), "--graceful-timeout", str(GRACE))
    upload = os.urandom(UPLOAD_SIZE)
    expected = {
        "GET": f"0 {hashlib.sha256(b'').hexdigest()}\n".encode(),
        "POST": f"{UPLOAD_SIZE} {hashlib.sha256(upload).hexdigest()}\n".encode(),
    }
    with ops_backend(stage, tmp_path, options) as backend, nginx_in_front(backend) as nginx:
        workers = backend.worker_pids()
        assert len(workers) == 2

        def one(n: int) -> tuple[str, int, bytes]:
            body = upload if n % 2 else None
            status, data = http_get(nginx.port, f"/c{n}/sleep?{SLOW_SECONDS}", body)
            return ("POST" if body else "GET"), status, data

        with ThreadPoolExecutor(IN_FLIGHT) as pool:
            futures = [pool.submit(one, n) for n in range(IN_FLIGHT)]
            # Every request (uploads included) has reached the app: all are in flight.
            wait_until(
                lambda: backend.stats()["busy_threads"] == IN_FLIGHT,
                timeout=10.0,
                what=f"{IN_FLIGHT} requests running in the app",
            )
            sent = time.monotonic()
            backend.signal(signal.SIGTERM)
            code = backend.wait_stopped(GRACE + 5.0)
            stopped_in = time.monotonic() - sent
            results = [f.result(timeout=REQUEST_TIMEOUT) for f in futures]
        logs = context(backend, nginx.error_log_text())
        bad = [(m, s, d[:200]) for m, s, d in results if s != 200 or d != expected[m]]
        assert not bad, f"{bad}\n{logs}"
        assert code == 0, logs
        # Within the graceful timeout, and in fact as soon as the requests were done:
        # they had under SLOW_SECONDS left.
        assert stopped_in < GRACE + STOP_MARGIN, f"stopped in {stopped_in:.2f} s\n{logs}"
        assert stopped_in < SLOW_SECONDS + STOP_MARGIN, f"stopped in {stopped_in:.2f} s"
        assert "did not stop within" not in logs
        assert "mid-request; they are cut" not in logs
        assert not [pid for pid in workers if alive(pid)], logs
        print(f"SIGTERM: 16/16 in flight answered 200; master exited 0 in {stopped_in:.2f} s")


# ---------------------------------------------------------------------------------------
# SIGHUP under load

LOAD_THREADS = 8
LOAD_SECONDS = 3.0
HUP_AFTER = 1.0


def test_sighup_under_load_starts_a_new_generation_without_a_client_error(
    stage: Stage, tmp_path: Path
) -> None:
    options = ("--workers", "2", "--graceful-timeout", "5")
    with ops_backend(stage, tmp_path, options) as backend, nginx_in_front(backend) as nginx:
        old = backend.worker_pids()
        assert len(old) == 2
        with background(
            lambda: http_load(
                nginx.port,
                ["/a/sleep?0.02", "/b/hello?x=1"],
                threads=LOAD_THREADS,
                duration=LOAD_SECONDS,
                max_requests=20000,
            )
        ) as result:
            time.sleep(HUP_AFTER)
            backend.signal(signal.SIGHUP)
            hup_at = time.monotonic()
            wait_until(
                lambda: len(backend.worker_pids() - old) == 2,
                timeout=5.0,
                what="two new workers accepting",
            )
            new = backend.worker_pids() - old
            wait_until(
                lambda: not any(alive(pid) for pid in old), timeout=6.0, what="old workers exit"
            )
            old_gone_in = time.monotonic() - hup_at
            old_gone_at = time.monotonic()
            run = result()
        logs = context(backend, nginx.error_log_text())
        failures = run.failures()
        assert not failures, f"{len(failures)} failed: {failures[:5]}\n{logs}"
        assert backend.stats()["generation"] == 1
        assert backend.worker_pids() == new
        later = [o for o in run.outcomes if o.started > old_gone_at]
        assert later, "the load ended before the old workers did"
        assert {o.pid for o in later} <= new, logs
        served_by_old = sum(1 for o in run.outcomes if o.pid in old)
        served_by_new = sum(1 for o in run.outcomes if o.pid in new)
        assert served_by_old and served_by_new
        print(
            f"SIGHUP: {len(run.outcomes)} requests, 0 errors; {served_by_old} by the old "
            f"generation, {served_by_new} by the new; old workers gone {old_gone_in:.2f} s "
            "after the signal"
        )


def test_a_stopping_worker_leaves_waiting_connections_to_its_replacement(
    stage: Stage, tmp_path: Path
) -> None:
    """Deterministic form of a race seen under SIGHUP and --reload: a connection waiting
    in the listen backlog when a worker is told to stop must be served by the next one."""
    with ops_backend(stage, tmp_path, ("--workers", "1")) as backend:
        (old,) = backend.worker_pids()
        target = backend.target()
        # Served once: the worker has loaded the app and installed its signal handlers
        # (the status page calls a worker "accepting" from the moment it is forked).
        assert fcgi(target, "/ready/hello").status == 200
        # Then idle in select(), where the race is: freeze it there.
        wait_until(lambda: waiting_in_epoll(old), timeout=2.0, what="the worker idles")
        os.kill(old, signal.SIGSTOP)
        try:
            # The request waits in the backlog; the stop request waits for the worker.
            with background(
                lambda: fcgi_until_closed(target, "/waiting/hello", timeout=10.0)
            ) as reply:
                time.sleep(0.1)
                os.kill(old, signal.SIGTERM)
                os.kill(old, signal.SIGCONT)
                received, _ = reply()
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(old, signal.SIGCONT)  # never leave it frozen
        assert b"hello from" in received, (received, backend.output())


# ---------------------------------------------------------------------------------------
# kill -9 of one worker

KILL_AFTER = 0.8
MAX_CASUALTIES = 16
REPLACED_WITHIN = 1.0


def test_a_killed_worker_is_replaced_within_a_second_and_only_its_requests_fail(
    stage: Stage, tmp_path: Path
) -> None:
    with ops_backend(stage, tmp_path, ("--workers", "2")) as backend, nginx_in_front(
        backend
    ) as nginx:
        old = backend.worker_pids()
        with background(
            lambda: http_load(
                nginx.port,
                ["/k/sleep?0.02"],
                threads=LOAD_THREADS,
                duration=2.5,
                max_requests=5000,
            )
        ) as result:
            time.sleep(KILL_AFTER)
            victim = max(backend.workers(), key=lambda w: (w["connections"], w["pid"]))
            os.kill(victim["pid"], signal.SIGKILL)
            killed_at = time.monotonic()
            replacement = wait_until(
                lambda: backend.worker_pids() - old,
                timeout=REPLACED_WITHIN,
                what="a replacement worker",
            )
            replaced_in = time.monotonic() - killed_at
            wait_until(lambda: not alive(victim["pid"]), timeout=2.0, what="the victim is gone")
            dead_at = time.monotonic()
            run = result()
        logs = context(backend, nginx.error_log_text())
        failures = run.failures()
        assert replaced_in < REPLACED_WITHIN
        (new_pid,) = replacement
        # Only requests the dead worker held could fail: begun before it died, and at most
        # one per connection nginx had open to it (nginx never multiplexes).
        assert len(failures) <= MAX_CASUALTIES, f"{failures}\n{logs}"
        assert all(f.started <= dead_at for f in failures), f"{failures}\n{logs}"
        assert any(o.pid == new_pid for o in run.outcomes), "the replacement never served"
        assert sum(o.ok for o in run.outcomes if o.started > dead_at) > 0
        assert f"worker {victim['pid']} died (signal SIGKILL)" in logs
        print(
            f"kill -9: replacement in {replaced_in * 1000:.0f} ms; {len(failures)} of "
            f"{len(run.outcomes)} requests failed (the victim held "
            f"{victim['connections']} connection(s))"
        )


SLOW_BOOT = 1.5


def test_a_live_worker_keeps_accepting_while_a_replacement_boots(
    stage: Stage, tmp_path: Path
) -> None:
    flag = tmp_path / "slow-boot"
    env = {"OPS_SLOW_BOOT_FLAG": str(flag), "OPS_SLOW_BOOT_SECONDS": str(SLOW_BOOT)}
    with ops_backend(
        stage, tmp_path, ("--workers", "2"), app="ops_slowboot", env=env
    ) as backend:
        first, second = sorted(backend.worker_pids())
        target = backend.target()
        # Both booted (idle in select), whatever the status page says.
        wait_until(lambda: waiting_in_epoll(first) and waiting_in_epoll(second), timeout=5.0,
                   what="both workers booted")
        flag.touch()  # from now on an import takes SLOW_BOOT seconds
        os.kill(second, signal.SIGKILL)
        wait_until(lambda: backend.worker_pids() - {first, second}, timeout=2.0,
                   what="a replacement is forked")
        kept: list[socket.socket] = []
        try:
            for i in range(2):  # two kept-alive connections: both on the live worker
                sock = target.connect(REQUEST_TIMEOUT)
                kept.append(sock)
                assert fcgi(target, f"/kept{i}/hello", sock=sock, keep_conn=True).status == 200
            began = time.monotonic()
            reply = fcgi(target, "/third/hello", timeout=SLOW_BOOT + 5.0)
            took = time.monotonic() - began
        finally:
            for sock in kept:
                sock.close()
        assert reply.status == 200
        assert took < SLOW_BOOT / 4, f"a new connection waited {took:.2f} s"


# ---------------------------------------------------------------------------------------
# 1,000 idle kept-alive connections

IDLE = 1000
FRESH = 50
P99_LIMIT = 0.2
FD_SETTLE = 5.0


def test_a_thousand_idle_keepalive_connections_neither_slow_nor_leak(
    stage: Stage, tmp_path: Path
) -> None:
    with raised_nofile(IDLE + 1024), ops_backend(
        stage, tmp_path, ("--workers", "1")
    ) as backend, nginx_in_front(backend) as nginx:
        (worker,) = backend.worker_pids()
        for i in range(5):  # nginx's kept-alive upstream connection is part of the baseline
            assert http_get(nginx.port, f"/warm{i}/hello")[0] == 200
        baseline = fd_count(worker)
        target = backend.target()
        idle: list[socket.socket] = []
        try:
            began = time.monotonic()
            for i in range(IDLE):
                sock = target.connect(REQUEST_TIMEOUT)
                idle.append(sock)
                reply = fcgi(target, f"/idle{i}/hello", sock=sock, keep_conn=True)
                assert (reply.status, reply.closed_by_backend) == (200, False), reply.raw[:200]
            opened_in = time.monotonic() - began
            assert backend.stats()["workers"][0]["connections"] >= IDLE
            assert fd_count(worker) >= baseline + IDLE
            via_nginx, direct = [], []
            for i in range(FRESH):
                t0 = time.monotonic()
                status, _ = http_get(nginx.port, f"/fresh{i}/hello")
                via_nginx.append(time.monotonic() - t0)
                assert status == 200
                t0 = time.monotonic()
                reply = fcgi(target, f"/fresh{i}/direct/hello")  # a new connection each
                direct.append(time.monotonic() - t0)
                assert reply.status == 200
        finally:
            for sock in idle:
                sock.close()
        settled = wait_until(
            lambda: fd_count(worker) <= baseline, timeout=FD_SETTLE, what="fds back to baseline"
        )
        assert settled
        assert fd_count(worker) == baseline
        p99_nginx, p99_direct = percentile(via_nginx, 99), percentile(direct, 99)
        assert p99_nginx < P99_LIMIT, sorted(via_nginx)[-5:]
        assert p99_direct < P99_LIMIT, sorted(direct)[-5:]
        print(
            f"1000 idle: opened in {opened_in:.2f} s; fresh p50/p99 via nginx "
            f"{percentile(via_nginx, 50) * 1000:.1f}/{p99_nginx * 1000:.1f} ms, direct "
            f"{percentile(direct, 50) * 1000:.1f}/{p99_direct * 1000:.1f} ms; fds "
            f"{baseline} -> {baseline + IDLE}+ -> {fd_count(worker)}"
        )


# ---------------------------------------------------------------------------------------
# A client trickling its request head

TRICKLE_EVERY = 0.2
HEADER_TIMEOUT = 1.0
SWEEP = 1.0  # the worker checks deadlines once a second
LATENCY_LIMIT = 0.15  # a loop blocked by the trickler would show ~1 s


def trickle(address: tuple[str, int], data: bytes, give_up: float) -> tuple[float, int]:
    """Send ``data`` one byte per TRICKLE_EVERY s until the peer closes; returns (seconds
    from the first byte to the close, bytes sent)."""
    with socket.create_connection(address, timeout=REQUEST_TIMEOUT) as sock:
        first = time.monotonic()
        for sent, byte in enumerate(data):
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                return time.monotonic() - first, sent
            poller = select.poll()  # not select(): this process may hold fds above 1024
            poller.register(sock, select.POLLIN)
            if poller.poll(TRICKLE_EVERY * 1000):
                try:
                    closed = sock.recv(4096) == b""
                except OSError:
                    closed = True
                if closed:
                    return time.monotonic() - first, sent + 1
            if time.monotonic() - first > give_up:
                break
    raise AssertionError(f"the trickling connection was not closed within {give_up} s")


def test_a_trickling_client_is_cut_at_the_header_deadline_and_delays_no_one(
    stage: Stage, tmp_path: Path
) -> None:
    options = ("--workers", "1", "--header-timeout", str(HEADER_TIMEOUT))
    with ops_backend(stage, tmp_path, options) as backend, nginx_in_front(backend) as nginx:
        target = backend.target("/trickle/hello")
        codec = FastCGIClient()
        head = codec.begin(1, build_params(target), keep_conn=False) + codec.end_stdin(1)
        assert isinstance(target.address, tuple)
        address = target.address
        box: dict[str, tuple[float, int]] = {}

        def trickler() -> None:
            box["result"] = trickle(address, head, give_up=10.0)

        thread = threading.Thread(target=trickler, daemon=True)
        thread.start()
        latencies: list[float] = []
        for i in range(200):  # bounded: about 50 ms apart until the trickler is cut
            t0 = time.monotonic()
            status, _ = http_get(nginx.port, f"/meanwhile{i}/hello")
            latencies.append(time.monotonic() - t0)
            assert status == 200
            thread.join(0.05)
            if not thread.is_alive():
                break
        thread.join(15.0)
        assert "result" in box, "the trickler failed (see the captured output)"
        cut_after, sent = box["result"]
        assert HEADER_TIMEOUT <= cut_after <= HEADER_TIMEOUT + SWEEP + 0.5, cut_after
        assert sent < len(head)
        assert "took over 1 s to send a request head; closed" in backend.output()
        assert len(latencies) >= 10
        assert max(latencies) < LATENCY_LIMIT, sorted(latencies)[-5:]
        print(
            f"trickle: cut {cut_after:.2f} s after its first byte ({sent} of {len(head)} "
            f"bytes); {len(latencies)} requests meanwhile, max {max(latencies) * 1000:.1f} ms"
        )
