"""Operating ``wsgiwire serve``: the options an administrator relies on, end to end.

Each test starts the real command (``python -m wsgiwire serve``, staged) and checks
what an operator would see: pids, files, log lines, exit statuses, the status page.

* ``--max-requests 5`` recycles a worker after exactly five requests, losing none;
* ``--pid-file`` holds the master's pid while it runs and is removed at exit;
* ``--stats`` serves JSON over raw TCP and HTTP that matches what was sent;
* ``--request-timeout 1`` kills a worker stuck in a request, logs one line naming
  it, and a replacement serves the next request;
* ``--reload`` runs new code in new workers after a ``.py`` file changes;
* an app that raises at import: exit status 2 and one line naming the app's file:line,
  no fork loop; an unknown module: exit status 2 and one line;
* ``--threads 2 --queue 1``: overload is refused at once (FCGI_OVERLOADED; 503 for
  uwsgi), not queued;
* ``--access-log``: one line per request;
* ``--user nobody`` (as root): workers run as nobody; ``--socket-owner`` gives the
  unix socket to the web server's user, so nginx can connect.

Tests also guard the bugs these checks found: fast --max-requests recycling must not
stop the server, "errors" on the status page counts 500s from app exceptions, --reload
sees an edit made in its first second, requests arriving together at idle threads are
not refused with a small --queue, the status page's "queued" counts waiting requests,
and --user leaves no pid file or socket behind at exit.
"""

from __future__ import annotations

import grp
import itertools
import os
import pwd
import shutil
import signal
import socket
import stat
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from wsgiwire._client import ClientError, Target, build_params, parse_target, uwsgi_request
from wsgiwire._events import NEED_DATA
from wsgiwire.protocols._fastcgi import EndRequest, FastCGIClient

from ._ops_support import (
    OpsBackend,
    alive,
    background,
    children,
    fcgi,
    fcgi_until_closed,
    nginx_in_front,
    ops_backend,
    proc_status,
    wait_until,
)
from .servers import (
    LOOPBACK,
    ManagedProcess,
    NginxServer,
    Stage,
    server_user,
    unavailable,
    world_readable_tempdir,
)

pytestmark = pytest.mark.integration

FCGI_OVERLOADED = 2


def serve_argv(app: str, *options: str) -> list[str]:
    return [sys.executable, "-m", "wsgiwire", "serve", app, *options]


def run_to_exit(stage: Stage, tmp_path: Path, argv: list[str], timeout: float) -> tuple[
    int, str, float
]:
    """Run ``argv`` from the stage until it exits by itself (bounded): status, output,
    seconds. Stopped by its pid (and its group checked) whatever happens."""
    process = ManagedProcess(
        argv,
        log_path=tmp_path / "run.log",
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(stage.root),
             "PYTHONDONTWRITEBYTECODE": "1"},
        cwd=stage.root,
    )
    began = time.monotonic()
    with process:
        wait_until(lambda: process.returncode() is not None, timeout=timeout,
                   what=f"{argv[3:5]} exits by itself")
        elapsed = time.monotonic() - began
    code = process.returncode()
    assert code is not None
    return code, process.output(), elapsed


# ---------------------------------------------------------------------------------------
# --max-requests

MAX_REQUESTS = 5


def test_max_requests_recycles_each_worker_after_that_many_and_fails_none(
    stage: Stage, tmp_path: Path
) -> None:
    """Each worker serves --max-requests requests, then a fresh one takes over; none fails.

    nginx keeps its FastCGI connection open between requests. A request it has
    already sent on it when the worker decides to stop is still answered by that
    worker: closing the connection on it would make nginx fail it (a POST is not
    retried). Whether the next request gets there first is up to the scheduler,
    so a worker serves at least N requests, occasionally one or two more, and
    never again once replaced.
    """
    options = ("--workers", "1", "--max-requests", str(MAX_REQUESTS))
    with ops_backend(stage, tmp_path, options) as backend, nginx_in_front(backend) as nginx:
        pids: list[int] = []
        for i in range(8 * MAX_REQUESTS):  # bounded; three workers take far fewer
            status, headers, body = nginx.request("GET", f"/r{i}/hello")
            assert status == 200, (body, backend.output(), nginx.error_log_text())
            pids.append(int(dict(headers)["X-Worker-Pid"]))
            if len(set(pids)) == 3:
                break
        runs = [list(group) for _, group in itertools.groupby(pids)]
        assert len(runs) == 3, pids  # three workers, none of them serving twice
        assert len({run[0] for run in runs}) == 3, pids
        assert all(len(run) >= MAX_REQUESTS for run in runs[:-1]), pids
        assert backend.output().count(f"served {MAX_REQUESTS} requests; recycling it") >= 2


def test_max_requests_recycling_fast_never_stops_the_server(
    stage: Stage, tmp_path: Path
) -> None:
    with ops_backend(stage, tmp_path, ("--workers", "1", "--max-requests", "5")) as backend:
        target = backend.target()
        failed = []
        for i in range(40):  # eight recycles, each worker living well under a second
            try:
                outcome: object = fcgi(target, f"/fast{i}/hello", timeout=5.0).status
            except (OSError, ClientError) as exc:
                outcome = exc
            if outcome != 200:
                failed.append((i, outcome))
        assert not failed, f"{failed[:3]}\n{backend.output()}"
        assert backend.process.returncode() is None, backend.output()


# ---------------------------------------------------------------------------------------
# --pid-file


def test_pid_file_holds_the_master_pid_and_is_removed_at_exit(
    stage: Stage, tmp_path: Path
) -> None:
    pid_file = tmp_path / "wsgiwire.pid"
    options = ("--workers", "2", "--pid-file", str(pid_file))
    with ops_backend(stage, tmp_path, options) as backend:
        assert pid_file.read_text() == f"{backend.pid}\n"
        assert children(backend.pid) == backend.worker_pids()
        backend.signal(signal.SIGTERM)
        assert backend.wait_stopped(10.0) == 0, backend.output()
        assert not pid_file.exists()


# ---------------------------------------------------------------------------------------
# --stats

GOOD, CUT = 7, 2


def test_stats_page_reports_what_was_sent_over_raw_tcp_and_http(
    stage: Stage, tmp_path: Path
) -> None:
    began = time.monotonic()
    with ops_backend(stage, tmp_path, ("--workers", "2")) as backend:
        target = backend.target()
        for i in range(GOOD):
            assert fcgi(target, f"/s{i}/hello").status == 200
        for i in range(CUT):  # the app fails after its head: an incomplete response
            assert fcgi(target, f"/s{i}/cut").app_status != 0
        raw = backend.stats()
        over_http = backend.stats(http=True)
        elapsed = time.monotonic() - began
        for page in (raw, over_http):
            assert page["pid"] == backend.pid
            assert page["protocol"] == "fastcgi"
            assert page["generation"] == 0
            assert 0 < page["uptime"] <= elapsed
            assert len(page["workers"]) == 2
            assert {w["pid"] for w in page["workers"]} == children(backend.pid)
            assert all(w["state"] == "accepting" for w in page["workers"])
            assert (page["requests"], page["errors"]) == (GOOD + CUT, CUT), page
            assert sum(w["requests"] for w in page["workers"]) == GOOD + CUT
            assert (page["busy_threads"], page["queued"]) == (0, 0)
        assert over_http["uptime"] >= raw["uptime"]


def test_stats_counts_an_app_exception_answered_500_as_an_error(
    stage: Stage, tmp_path: Path
) -> None:
    with ops_backend(stage, tmp_path, ("--workers", "1")) as backend:
        assert fcgi(backend.target(), "/boom/fail").status == 500
        assert backend.stats()["errors"] == 1


# ---------------------------------------------------------------------------------------
# --request-timeout

STUCK = "/stuck/sleep?10"


def test_request_timeout_kills_the_stuck_worker_logs_it_once_and_a_replacement_serves(
    stage: Stage, tmp_path: Path
) -> None:
    options = ("--workers", "1", "--request-timeout", "1")
    with ops_backend(stage, tmp_path, options) as backend:
        (stuck_pid,) = backend.worker_pids()
        target = backend.target()
        received, cut_after = fcgi_until_closed(target, STUCK, timeout=8.0)
        assert received == b""  # nothing of the stuck request's answer was sent
        assert 1.0 <= cut_after < 2.0, cut_after
        reply = fcgi(target, "/after/hello")
        assert reply.status == 200
        assert int(reply.header("X-Worker-Pid") or 0) not in (0, stuck_pid)
        assert not alive(stuck_pid)
        lines = [line for line in backend.output().splitlines() if "request timeout" in line]
        assert len(lines) == 1, backend.output()
        assert f"worker {stuck_pid} killed: GET {STUCK} ran" in lines[0]
        print(f"request timeout: the stuck request was cut after {cut_after:.2f} s")


# ---------------------------------------------------------------------------------------
# --reload

RELOAD_WITHIN = 5.0
FIRST_SCAN = 1.3  # the master takes its first snapshot of mtimes a second after start


def reload_stage(stage: Stage, tmp_path: Path) -> Stage:
    workdir = tmp_path / "app"
    workdir.mkdir()
    shutil.copyfile(stage.root / "ops_versioned.py", workdir / "ops_versioned.py")
    return Stage(workdir, stage.python)


def set_version(module: Path, version: str) -> None:
    text = module.read_text()
    module.write_text(text.replace('VERSION = "v1"', f'VERSION = "{version}"'))
    later = time.time() + 2  # a different mtime even on a coarse-grained filesystem
    os.utime(module, (later, later))


def answer_version(target: Target) -> str:
    """The version the app answers, or "" when the request was lost in the hand-over
    between generations (a separate bug: see test_runtime_faults
    test_a_stopping_worker_leaves_waiting_connections_to_its_replacement)."""
    try:
        reply = fcgi(target, "/v")
    except (OSError, ClientError):
        return ""
    assert reply.status == 200
    return reply.body.decode().strip()


def test_reload_runs_new_code_after_a_source_file_changes(stage: Stage, tmp_path: Path) -> None:
    workdir = reload_stage(stage, tmp_path)
    options = ("--workers", "1", "--reload")
    with ops_backend(
        stage, tmp_path, options, app="ops_versioned", stage_for_cwd=workdir
    ) as backend:
        target = backend.target()
        assert answer_version(target) == "version v1"
        old = backend.worker_pids()
        time.sleep(FIRST_SCAN)
        set_version(workdir.root / "ops_versioned.py", "v2")
        changed = time.monotonic()
        wait_until(lambda: answer_version(target) == "version v2", timeout=RELOAD_WITHIN,
                   what="new code answers", interval=0.05)
        took = time.monotonic() - changed
        # The new worker serves as soon as it is ready; the master then tells the old
        # one to drain (within a loop turn).
        wait_until(lambda: not backend.worker_pids() & old, timeout=2.0,
                   what="the old worker stops accepting")
        assert "reloading (a source file changed)" in backend.output()
        print(f"--reload: new code answered {took:.2f} s after the edit")


def test_reload_notices_an_edit_made_right_after_start(stage: Stage, tmp_path: Path) -> None:
    workdir = reload_stage(stage, tmp_path)
    with ops_backend(
        stage, tmp_path, ("--workers", "1", "--reload"), app="ops_versioned",
        stage_for_cwd=workdir,
    ) as backend:
        target = backend.target()
        assert answer_version(target) == "version v1"  # the worker runs v1 already
        set_version(workdir.root / "ops_versioned.py", "v2")
        wait_until(lambda: answer_version(target) == "version v2", timeout=3.0,
                   what="new code answers", interval=0.05)


# ---------------------------------------------------------------------------------------
# Applications that cannot be loaded


def test_an_app_failing_at_import_exits_2_with_one_line_and_no_fork_loop(
    stage: Stage, tmp_path: Path
) -> None:
    argv = serve_argv("ops_broken", "--workers", "2", f"--bind={LOOPBACK}:0")
    code, output, elapsed = run_to_exit(stage, tmp_path, argv, timeout=10.0)
    assert code == 2, output
    assert elapsed < 5.0, output
    source = (stage.root / "ops_broken.py").read_text().splitlines()
    line = next(n for n, text in enumerate(source, 1) if text.startswith("raise "))
    # Once, not once per worker; the app's own frame, no importlib noise, no traceback.
    assert output.strip().splitlines() == [
        f"wsgiwire: cannot load the application: ops_broken.py:{line}: RuntimeError: "
        "ops_broken: this module refuses to import"
    ], output
    print(f"broken app: exit 2 after {elapsed:.2f} s")


def test_an_unknown_module_exits_2_with_one_line(stage: Stage, tmp_path: Path) -> None:
    argv = serve_argv("ops_no_such_module", "--workers", "2", f"--bind={LOOPBACK}:0")
    code, output, _ = run_to_exit(stage, tmp_path, argv, timeout=10.0)
    assert code == 2, output
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    assert lines[0].startswith("wsgiwire: cannot import module 'ops_no_such_module'"), output


# ---------------------------------------------------------------------------------------
# --threads 2 --queue 1

OVERLOAD_SLEEP = 0.6
REFUSED_WITHIN = 0.05


def asker(protocol: str, port: int) -> Callable[[str], tuple[int, int | None]]:
    """``ask(path) -> (HTTP status, FastCGI protocolStatus or None)``, direct to the backend."""

    def ask(path: str) -> tuple[int, int | None]:
        target = parse_target(f"{protocol}://{LOOPBACK}:{port}{path}")
        if protocol == "fastcgi":
            reply = fcgi(target, path)
            return reply.status, reply.protocol_status
        return uwsgi_request(target, build_params(target), timeout=20.0).status, None

    return ask


def busy_threads(backend: OpsBackend, count: int) -> None:
    wait_until(lambda: backend.stats()["busy_threads"] == count, timeout=5.0,
               what=f"{count} app thread(s) busy")


@pytest.mark.parametrize("protocol", ["fastcgi", "uwsgi"])
def test_overload_is_refused_at_once_not_queued(
    stage: Stage, tmp_path: Path, protocol: str
) -> None:
    options = ("--protocol", protocol, "--workers", "1", "--threads", "2", "--queue", "1")
    with ops_backend(stage, tmp_path, options) as backend:
        ask = asker(protocol, backend.process.port)
        slow = f"/sleep?{OVERLOAD_SLEEP}"
        with background(lambda: ask(slow)) as first:
            busy_threads(backend, 1)
            with background(lambda: ask(slow)) as second:
                busy_threads(backend, 2)
                with background(lambda: ask(slow)) as queued:
                    time.sleep(0.1)  # read by the loop and queued: both threads are busy
                    began = time.monotonic()
                    refused = ask("/refused/hello")
                    took = time.monotonic() - began
                    answered = queued()
                assert second()[0] == 200
            assert first()[0] == 200
        assert answered[0] == 200, answered  # the queued request was served after all
        if protocol == "fastcgi":
            assert refused == (0, FCGI_OVERLOADED), refused
        else:
            assert refused == (503, None), refused
        assert took < REFUSED_WITHIN, f"refused after {took * 1000:.1f} ms"
        assert backend.output().count("overloaded: refused") == 1, backend.output()
        assert "overloaded: refused GET /refused/hello" in backend.output()
        print(f"{protocol} overload: refused in {took * 1000:.1f} ms")


RACE_THREADS = 4
RACE_ROUNDS = 20


def end_request(sock: socket.socket) -> EndRequest | None:
    """Read one FastCGI reply from ``sock``; its FCGI_END_REQUEST (None if closed first)."""
    codec = FastCGIClient()
    while data := sock.recv(65536):
        codec.receive_data(data)
        while (event := codec.next_event()) is not NEED_DATA:
            if isinstance(event, EndRequest):
                return event
    return None


def test_requests_arriving_together_at_idle_threads_are_never_refused(
    stage: Stage, tmp_path: Path
) -> None:
    options = ("--workers", "1", "--threads", str(RACE_THREADS), "--queue", "1")
    with ops_backend(stage, tmp_path, options) as backend:
        target = backend.target("/together/sleep?0.02")
        codec = FastCGIClient()
        request = codec.begin(1, build_params(target), keep_conn=True) + codec.end_stdin(1)
        for round_ in range(RACE_ROUNDS):  # one refusal is a failure; a fix runs them all
            socks = [target.connect(20.0) for _ in range(RACE_THREADS)]
            try:
                # Accepted and idle first, then one request on each at once: as many
                # requests as idle threads, so none has to wait, let alone be refused.
                wait_until(lambda: backend.stats()["workers"][0]["connections"] == RACE_THREADS,
                           timeout=5.0, what="connections accepted")
                for sock in socks:
                    sock.sendall(request)
                ends = [end_request(sock) for sock in socks]
            finally:
                for sock in socks:
                    sock.close()
            statuses = [None if end is None else end.protocol_status for end in ends]
            assert statuses == [0] * RACE_THREADS, (round_, statuses)
            wait_until(lambda: backend.stats()["workers"][0]["connections"] == 0,
                       timeout=5.0, what="connections closed")


def test_stats_show_a_request_waiting_for_a_thread_as_queued(
    stage: Stage, tmp_path: Path
) -> None:
    options = ("--workers", "1", "--threads", "1", "--queue", "4")
    with ops_backend(stage, tmp_path, options) as backend:
        ask = asker("fastcgi", backend.process.port)
        with background(lambda: ask("/sleep?0.5")) as first:
            busy_threads(backend, 1)
            with background(lambda: ask("/waiting/hello")) as waiting:
                time.sleep(0.1)
                page = backend.stats()
                assert waiting() == (200, 0)
            assert first() == (200, 0)
        assert page["queued"] == 1, page


# ---------------------------------------------------------------------------------------
# --access-log


def test_access_log_writes_one_line_per_request(stage: Stage, tmp_path: Path) -> None:
    paths = {"/log/a/hello": 200, "/log/b/hello?q=1": 200, "/log/c/fail": 500}
    with ops_backend(stage, tmp_path, ("--workers", "1", "--access-log")) as backend:
        for path, status in paths.items():
            assert fcgi(backend.target(), path).status == status

        def access_lines() -> list[str]:
            # Access lines go out as they are (the combined format has its own time).
            return [line for line in backend.output().splitlines()
                    if line.startswith(f"{LOOPBACK} - - [")]

        lines = wait_until(lambda: len(access_lines()) >= len(paths) and access_lines(),
                           timeout=5.0, what="three access-log lines")
    assert len(lines) == len(paths), lines
    for path, status in paths.items():
        mine = [line for line in lines if f'"GET {path} HTTP/1.1" {status} ' in line]
        assert len(mine) == 1, (path, lines)


# ---------------------------------------------------------------------------------------
# --user / --group / --socket-owner (as root)


def test_user_nobody_runs_workers_as_nobody_and_socket_owner_lets_nginx_in(
    stage: Stage, tmp_path: Path
) -> None:
    if os.geteuid() != 0:
        unavailable("--user needs root")
    NginxServer.require()
    nobody = pwd.getpwnam("nobody")
    web_user, web_group = server_user()
    web_uid, web_gid = pwd.getpwnam(web_user).pw_uid, grp.getgrnam(web_group).gr_gid
    # The workers (and, see below, the master) run as nobody: the interpreter must be one
    # nobody can read (stage.python), not a virtualenv under /root.
    sockdir = world_readable_tempdir("wsgiwire-ops-user-")
    sock = sockdir / "app.sock"
    options = (
        "--workers", "2", "--user", "nobody", "--group", grp.getgrgid(nobody.pw_gid).gr_name,
        "--socket-owner", f"{web_user}:{web_group}",
    )  # fmt: skip
    try:
        with ops_backend(
            stage, tmp_path, options, binds=[f"unix:{sock}"], python=stage.python
        ) as backend:
            info = os.stat(sock)
            assert (info.st_uid, info.st_gid) == (web_uid, web_gid)
            assert stat.S_IMODE(info.st_mode) == 0o660
            workers = backend.worker_pids()
            assert len(workers) == 2
            for pid in workers:
                status = proc_status(pid)
                assert status["Uid"].split() == [str(nobody.pw_uid)] * 4, status["Uid"]
                assert status["Gid"].split() == [str(nobody.pw_gid)] * 4, status["Gid"]
            values = {"BACKEND": f"unix:{sock}"}
            with NginxServer("fastcgi-keepconn", values=values) as nginx:
                status_code, headers, _ = nginx.request("GET", "/as/nobody/hello")
                assert status_code == 200, nginx.error_log_text()
                assert int(dict(headers)["X-Worker-Pid"]) in workers
    finally:
        shutil.rmtree(sockdir, ignore_errors=True)


def test_user_nobody_still_removes_its_pid_file_and_socket_at_exit(
    stage: Stage, tmp_path: Path
) -> None:
    if os.geteuid() != 0:
        unavailable("--user needs root")
    rundir = world_readable_tempdir("wsgiwire-ops-run-")  # like /run/wsgiwire: root, 0755
    sock, pid_file = rundir / "app.sock", rundir / "wsgiwire.pid"
    options = ("--workers", "1", "--user", "nobody", "--pid-file", str(pid_file),
               "--socket-owner", "nobody")
    try:
        with ops_backend(
            stage, tmp_path, options, binds=[f"unix:{sock}"], python=stage.python
        ) as backend:
            assert fcgi(parse_target(f"fastcgi+unix://{sock}/x/hello")).status == 200
            backend.signal(signal.SIGTERM)
            assert backend.wait_stopped(10.0) == 0, backend.output()
        assert not pid_file.exists(), "the pid file was left behind"
        assert not sock.exists(), "the socket file was left behind"
    finally:
        shutil.rmtree(rundir, ignore_errors=True)
