"""Chaos at the master: signals, reloads and kills under load, with nginx in front.

Each case runs ``wsgiwire serve`` (staged) behind a real nginx (``fastcgi-keepconn``)
while another process (``_chaos_load.py``) sends a bounded HTTP load through nginx and
counts every answer that is not 2xx:

* 10 SIGHUPs in 2 s, also while a slow request keeps an old worker draining: zero
  errors, the slow request answered, the master alive, and in the end exactly
  ``--workers`` workers, of the newest generation;
* SIGHUP with a syntax error appended to the app, then fixed, then SIGHUP: zero errors
  throughout, the old code serves until the fixed code is ready, the failure is logged
  once and shown on the status page;
* ``kill -9`` of the master: its workers are gone within 2 s, and a new server starts
  on the same unix socket and serves;
* ``kill -9`` of a worker: replaced within 1 s, counted in ``respawns``;
* SIGUSR1: every worker reopens its log file (the app's ``FileHandler``); nothing else
  changes (same workers, same generation, zero errors);
* SIGTTIN/SIGTTOU: the worker count follows;
* SIGUSR2, SIGALRM, SIGPIPE: logged and ignored; SIGQUIT: stops at once, even with a
  request in flight;
* ``--touch-reload FILE``: touching FILE reloads, with zero errors.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ._ops_support import OpsBackend, alive, children, nginx_in_front, ops_backend, wait_until
from .servers import LOOPBACK, NginxServer, Stage, server_user, world_readable_tempdir

pytestmark = pytest.mark.integration

LOAD_SCRIPT = Path(__file__).with_name("_chaos_load.py")
LOAD_THREADS = 6
LOAD_MAX_SECONDS = 30.0
LOAD_MAX_REQUESTS = 20000
# Requests answered before the chaos starts: the load is known to be running then.
LOAD_READY = 60
FAST_PATHS = "/a/hello,/b/hello?x=1,/c/sleep?0.01"
SETTLE = 8.0


@dataclass
class LoadResult:
    total: int
    ok: int
    failures: list[list[Any]]
    pids: dict[str, int]

    def summary(self) -> str:
        return f"{self.total} requests, {len(self.failures)} not 2xx: {self.failures[:5]}"


@contextlib.contextmanager
def load(port: int, paths: str = FAST_PATHS) -> Iterator[list[LoadResult]]:
    """Run ``_chaos_load.py`` against nginx for the body of the ``with``; the list it
    yields holds the result once the block ends (stdin closed: "stop now")."""
    process = subprocess.Popen(
        [sys.executable, str(LOAD_SCRIPT), str(port), paths, str(LOAD_THREADS),
         str(LOAD_MAX_SECONDS), str(LOAD_MAX_REQUESTS), str(LOAD_READY)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    box: list[LoadResult] = []
    try:
        # The chaos starts once the clients are connected and answered, on a slow
        # machine too (a fixed pause let a busy machine's load miss the chaos).
        assert process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            assert selector.select(LOAD_MAX_SECONDS), "the load answered nothing"
        assert process.stdout.readline() == b"ready\n", "the load ended before it ran"
        yield box
    finally:
        try:
            out, _ = process.communicate(b"", timeout=LOAD_MAX_SECONDS + 10)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(5)
    data = json.loads(out)
    box.append(LoadResult(data["total"], data["ok"], data["failures"], data["pids"]))
    assert data["total"] >= LOAD_READY, f"the load barely ran: {data}"


def settled(backend: OpsBackend, workers: int) -> set[int]:
    """The master's children once they are exactly ``workers`` accepting workers (none
    booting or draining); empty until then."""
    accepting = backend.worker_pids()
    if len(accepting) == workers and children(backend.pid) == accepting:
        return accepting
    return set()


def newest_generation(output: str) -> int:
    started = [int(line.split("generation ")[1].split()[0]) for line in output.splitlines()
               if "reloading (" in line]
    return max(started, default=0)


def context(backend: OpsBackend, nginx: NginxServer) -> str:
    return f"--- wsgiwire\n{backend.output()[-6000:]}\n--- nginx\n{nginx.error_log_text()}"


# ---------------------------------------------------------------------------------------
# SIGHUP storms

HUPS = 10
HUP_EVERY = 0.2
SLOW_SECONDS = 2.5


@pytest.mark.parametrize(
    ("every", "slow"),
    [(HUP_EVERY, False), (HUP_EVERY, True), (0.01, True)],
    ids=["every-0.2s", "every-0.2s-while-draining-a-slow-request", "burst-while-draining"],
)
def test_ten_sighups_in_two_seconds_lose_nothing_and_end_with_the_newest_generation(
    stage: Stage, tmp_path: Path, every: float, slow: bool
) -> None:
    options = ("--workers", "2", "--graceful-timeout", "10")
    with ops_backend(stage, tmp_path, options) as backend, nginx_in_front(backend) as nginx:
        first = backend.worker_pids()
        slow_answer: list[int] = []

        def slow_request() -> None:
            conn = http.client.HTTPConnection(LOOPBACK, nginx.port, timeout=20)
            try:
                conn.request("GET", f"/slow/sleep?{SLOW_SECONDS}")
                response = conn.getresponse()
                response.read()
                slow_answer.append(response.status)
            finally:
                conn.close()

        slow_thread = threading.Thread(target=slow_request, daemon=True)
        with load(nginx.port) as result:
            if slow:
                slow_thread.start()
                wait_until(lambda: any(
                    w["request"].startswith("GET /slow") for w in backend.workers("")
                ), timeout=3.0, what="the slow request runs")
            began = time.monotonic()
            for _ in range(HUPS):
                backend.signal(signal.SIGHUP)
                time.sleep(every)
            sent_in = time.monotonic() - began
            final = wait_until(lambda: settled(backend, 2) - first, timeout=SETTLE,
                               what="two new workers and nothing else")
            settled_in = time.monotonic() - began
        if slow:
            slow_thread.join(20)
            assert slow_answer == [200], context(backend, nginx)
        run = result[0]
        assert not run.failures, f"{run.summary()}\n{context(backend, nginx)}"
        assert alive(backend.pid)
        stats = backend.stats()
        assert settled(backend, 2) == final
        assert stats["generation"] == newest_generation(backend.output()) > 0
        assert stats["reload_failures"] == 0 and stats["respawns"] == 0
        assert "Traceback" not in backend.output()
        print(f"{HUPS} SIGHUPs in {sent_in:.2f} s{' with a slow request' if slow else ''}: "
              f"{run.total} requests, 0 errors; settled on generation {stats['generation']} "
              f"{settled_in:.2f} s after the first")


# ---------------------------------------------------------------------------------------
# A reload with broken code


def editable_app(stage: Stage, tmp_path: Path) -> tuple[Path, str]:
    """A copy of ``ops_versioned.py`` the test may break and mend; (path, its text)."""
    workdir = tmp_path / "app"
    workdir.mkdir()
    module = workdir / "ops_versioned.py"
    shutil.copyfile(stage.root / "ops_versioned.py", module)
    return module, module.read_text()


def versioned_backend(
    stage: Stage, tmp_path: Path, module: Path, *options: str
) -> contextlib.AbstractContextManager[OpsBackend]:
    """``ops_backend`` serving ``module`` from its own directory (a reload re-reads it)."""
    return ops_backend(stage, tmp_path, options, app="ops_versioned",
                       stage_for_cwd=Stage(module.parent, stage.python))


def test_a_reload_with_a_syntax_error_keeps_the_old_code_serving_until_it_is_fixed(
    stage: Stage, tmp_path: Path
) -> None:
    module, good = editable_app(stage, tmp_path)
    with versioned_backend(stage, tmp_path, module, "--workers", "2") as backend, \
            nginx_in_front(backend) as nginx:
        first = backend.worker_pids()
        with load(nginx.port, "/v1/a,/v1/b") as result:
            module.write_text(good + "\nbroken = (\n")
            backend.signal(signal.SIGHUP)
            stats = wait_until(lambda: (s := backend.stats())["reload_failures"] and s,
                               timeout=SETTLE, what="the reload fails")
            assert backend.worker_pids() == first
            time.sleep(0.5)  # the old generation goes on serving under the load
            assert settled(backend, 2) == first
            module.write_text(good.replace('VERSION = "v1"', 'VERSION = "v2"'))
            backend.signal(signal.SIGHUP)
            final = wait_until(lambda: settled(backend, 2) - first, timeout=SETTLE,
                               what="the fixed code serves")
            assert nginx.request("GET", "/after/fix")[2] == b"version v2\n"
        run = result[0]
        assert not run.failures, f"{run.summary()}\n{context(backend, nginx)}"
        error = stats["last_reload_error"]
        assert error.startswith("ops_versioned.py:"), error
        assert "SyntaxError" in error, error
        failed = [line for line in backend.output().splitlines() if "reload failed" in line]
        assert len(failed) == 1, backend.output()
        assert error in failed[0]
        assert "Traceback" not in backend.output()
        after = backend.stats()
        assert after["reload_failures"] == 1 and after["last_reload_error"] == error
        assert after["generation"] == 2 and backend.worker_pids() == final
        print(f"broken reload: {run.total} requests, 0 errors; logged once: {failed[0]}")


def test_a_reload_that_hangs_at_import_times_out_and_the_old_code_serves(
    stage: Stage, tmp_path: Path
) -> None:
    module, good = editable_app(stage, tmp_path)
    # 3 s: long enough for the first boot on a busy machine that compiles every
    # import from source (PYTHONDONTWRITEBYTECODE), short against SETTLE.
    with versioned_backend(stage, tmp_path, module, "--workers", "2",
                           "--boot-timeout", "3") as backend, \
            nginx_in_front(backend) as nginx:
        first = backend.worker_pids()
        with load(nginx.port, "/v1/a,/v1/b") as result:
            module.write_text(good + "\nimport time\ntime.sleep(60)\n")
            backend.signal(signal.SIGHUP)
            stats = wait_until(lambda: (s := backend.stats())["reload_failures"] and s,
                               timeout=SETTLE, what="the reload times out")
            # The hung workers are killed; the old generation serves on, alone.
            assert wait_until(lambda: settled(backend, 2), timeout=SETTLE,
                              what="two workers") == first
        run = result[0]
        assert not run.failures, f"{run.summary()}\n{context(backend, nginx)}"
        assert "--boot-timeout 3 s" in stats["last_reload_error"], stats
        assert children(backend.pid) == first
        print(f"hung reload: {run.total} requests, 0 errors; {stats['last_reload_error']}")


# ---------------------------------------------------------------------------------------
# kill -9


def test_kill_9_of_the_master_takes_its_workers_and_frees_the_socket(
    stage: Stage, tmp_path: Path
) -> None:
    NginxServer.require()
    web_user, web_group = server_user()
    sockdir = world_readable_tempdir("wsgiwire-chaos-")
    sock = sockdir / "app.sock"
    options = ("--workers", "2", "--socket-owner", f"{web_user}:{web_group}")
    try:
        with contextlib.ExitStack() as stack:
            nginx = stack.enter_context(
                NginxServer("fastcgi-keepconn", values={"BACKEND": f"unix:{sock}"})
            )
            first_stack = stack.enter_context(contextlib.ExitStack())
            first = first_stack.enter_context(
                ops_backend(stage, tmp_path, options, binds=[f"unix:{sock}"], name="first")
            )
            workers = first.worker_pids()
            assert len(workers) == 2
            with load(nginx.port) as result:
                first.signal(signal.SIGKILL)
                killed = time.monotonic()
                wait_until(lambda: not any(alive(pid) for pid in workers), timeout=2.0,
                           what="the workers die with their master")
                gone_in = time.monotonic() - killed
                first_stack.close()  # checks that nothing of its process group is left
                with ops_backend(stage, tmp_path, options, binds=[f"unix:{sock}"],
                                 name="second") as second:
                    serving = time.monotonic()
                    assert len(second.worker_pids()) == 2
                    time.sleep(0.5)  # the load goes on against the new server
                    stopping = time.monotonic()
            run = result[0]
            # Requests fail while no server listens; none once the new one serves.
            late = [f for f in run.failures if serving < f[0] and f[1] < stopping]
            assert not late, f"{len(late)} failed after the restart\n{second.output()}"
            assert run.ok > 0
        gap = [f for f in run.failures if f[0] < serving]
        print(f"kill -9 master: workers gone {gone_in:.2f} s later; the new server served "
              f"{serving - killed:.2f} s after the kill; {len(gap)} of {run.total} requests "
              "failed in the gap")
    finally:
        shutil.rmtree(sockdir, ignore_errors=True)


def test_kill_9_of_a_worker_is_replaced_within_a_second(stage: Stage, tmp_path: Path) -> None:
    with ops_backend(stage, tmp_path, ("--workers", "2")) as backend, \
            nginx_in_front(backend) as nginx:
        first = backend.worker_pids()
        victim = min(first)
        with load(nginx.port, "/a/hello,/b/hello") as result:
            os.kill(victim, signal.SIGKILL)
            killed = time.monotonic()
            wait_until(lambda: len(settled(backend, 2) - {victim}) == 2, timeout=1.0,
                       what="a replacement accepts", interval=0.005)
            replaced_in = time.monotonic() - killed
            time.sleep(0.3)
        run = result[0]
        # A request the killed worker was running can fail (nginx does not retry a
        # request it already sent); at most one per client.
        assert len(run.failures) <= LOAD_THREADS, run.summary()
        assert backend.stats()["respawns"] == 1
        assert f"worker {victim} died (signal SIGKILL)" in backend.output()
        print(f"kill -9 worker: replaced in {replaced_in:.3f} s; {len(run.failures)} of "
              f"{run.total} requests failed")


# ---------------------------------------------------------------------------------------
# SIGUSR1, SIGTTIN, SIGTTOU, --touch-reload


def open_paths(pid: int) -> set[str]:
    found = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            found.add(os.readlink(fd))
    return found


def test_sigusr1_reopens_every_workers_log_file_and_changes_nothing_else(
    stage: Stage, tmp_path: Path
) -> None:
    logfile = tmp_path / "chaos.log"
    rotated = tmp_path / "chaos.log.1"
    # Each worker writes its access lines, "<pid> <request line>", to the file.
    options = ("--workers", "2", "--access-log-file", str(logfile),
               "--access-log-format", "%(p)s %(r)s")
    with ops_backend(stage, tmp_path, options) as backend, \
            nginx_in_front(backend) as nginx:
        first = backend.worker_pids()
        with load(nginx.port, "/a/hello,/b/hello") as result:
            wait_until(lambda: logfile.stat().st_size, timeout=2.0, what="the app logs")
            logfile.rename(rotated)  # logrotate
            backend.signal(signal.SIGUSR1)
            wait_until(lambda: all(str(logfile) in open_paths(pid) and
                                   str(rotated) not in open_paths(pid) for pid in first),
                       timeout=2.0, what="every worker writes to the new file")
            wait_until(lambda: logfile.exists() and logfile.stat().st_size, timeout=2.0,
                       what="lines in the new file")
        run = result[0]
        assert not run.failures, run.summary()
        assert settled(backend, 2) == first
        stats = backend.stats()
        assert (stats["generation"], stats["respawns"], stats["reload_failures"]) == (0, 0, 0)
        writers = {int(line.split()[0]) for line in logfile.read_text().splitlines()}
        assert writers <= first
        # The master holds the access log file too (opened before the workers fork).
        assert "SIGUSR1: 1 log file(s) reopened; telling the workers" in backend.output()
        print(f"SIGUSR1: {run.total} requests, 0 errors; both workers reopened their log")


def test_sigttin_and_sigttou_add_and_remove_one_worker_each(
    stage: Stage, tmp_path: Path
) -> None:
    with ops_backend(stage, tmp_path, ("--workers", "2")) as backend, \
            nginx_in_front(backend) as nginx:
        first = backend.worker_pids()
        with load(nginx.port) as result:
            for _ in range(2):
                backend.signal(signal.SIGTTIN)
                time.sleep(0.05)
            four = wait_until(lambda: settled(backend, 4), timeout=3.0, what="four workers")
            assert first < four
            for _ in range(3):
                backend.signal(signal.SIGTTOU)
                time.sleep(0.05)
            one = wait_until(lambda: settled(backend, 1), timeout=SETTLE, what="one worker")
            backend.signal(signal.SIGTTOU)  # never below one
            time.sleep(0.3)
        run = result[0]
        assert not run.failures, run.summary()
        assert settled(backend, 1) == one
        assert "SIGTTOU: keeping the last worker" in backend.output()
        print(f"TTIN/TTOU: 2 -> 4 -> 1 workers; {run.total} requests, 0 errors")


def test_touch_reload_starts_a_new_generation(stage: Stage, tmp_path: Path) -> None:
    touched = tmp_path / "reload.touch"
    touched.write_text("")
    options = ("--workers", "2", "--touch-reload", str(touched))
    with ops_backend(stage, tmp_path, options) as backend, nginx_in_front(backend) as nginx:
        first = backend.worker_pids()
        with load(nginx.port) as result:
            later = time.time() + 2
            os.utime(touched, (later, later))
            wait_until(lambda: settled(backend, 2) - first, timeout=SETTLE,
                       what="a new generation")
        run = result[0]
        assert not run.failures, run.summary()
        assert backend.stats()["generation"] == 1
        assert f"reloading ({touched} was touched)" in backend.output()


def test_other_signals_are_logged_and_ignored_and_sigquit_stops_at_once(
    stage: Stage, tmp_path: Path
) -> None:
    options = ("--workers", "2", "--graceful-timeout", "20")
    with ops_backend(stage, tmp_path, options) as backend, nginx_in_front(backend) as nginx:
        first = backend.worker_pids()
        with load(nginx.port, "/a/hello,/b/hello") as result:
            for signum in (signal.SIGUSR2, signal.SIGALRM, signal.SIGPIPE):
                backend.signal(signum)
            wait_until(lambda: "SIGALRM ignored" in backend.output(), timeout=2.0,
                       what="the master logs the signals it ignores")
            assert alive(backend.pid) and settled(backend, 2) == first
        run = result[0]
        assert not run.failures, run.summary()
        assert "SIGUSR2 ignored" in backend.output()
        # A request that would run for 10 s does not hold up a fast stop.
        def slow_request() -> None:
            with contextlib.suppress(OSError, http.client.HTTPException):
                nginx.request("GET", "/slow/sleep?10")

        slow = threading.Thread(target=slow_request, daemon=True)
        slow.start()
        wait_until(lambda: any(w["request"].startswith("GET /slow")
                               for w in backend.workers("")), timeout=3.0,
                   what="the slow request runs")
        backend.signal(signal.SIGQUIT)
        began = time.monotonic()
        assert backend.wait_stopped(3.0) == 0, backend.output()
        stopped_in = time.monotonic() - began
        assert not any(alive(pid) for pid in first)
        assert "SIGQUIT: stopping now" in backend.output()
        print(f"SIGQUIT: stopped in {stopped_in:.2f} s with a request in flight")
