"""Runtime properties of ``wsgiwire serve --protocol fastcgi``, against real peers.

* Through nginx (upstream keepalive + ``fastcgi_keep_conn on``), 16 concurrent client
  connections to two prefork workers are all served, in bounded time; with ``--threads``
  a busy worker must hold extra requests, not refuse them.
* A listening socket on a descriptor above 1024 (and every other socket above it too)
  works: the loop never uses ``select()``.
* FCGI_GET_VALUES answers numbers the server actually runs with.
* ``FCGI_WEB_SERVER_ADDRS`` admits exactly the listed peers, IPv4 and IPv6 alike.
* A unix socket is created mode 0660; a regular file in the way is never replaced.
* An app failing after its head was sent ends with a nonzero FCGI appStatus and the
  worker keeps serving; failing before, it gets a 500 without traceback text.
* ``wsgi.errors`` goes out as FCGI_STDERR (nginx's error log: ``test_fastcgi_nginx``).

The backend is ``wsgiwire serve fcgi_apps`` (``apps/fcgi_apps.py``), started by PID
and stopped by PID; the client is ``wsgiwire._client`` unless said otherwise.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import re
import secrets
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path

import pytest

from wsgiwire._client import (
    ClientError,
    Reply,
    Target,
    build_params,
    fastcgi_request,
    parse_target,
)
from wsgiwire._limits import DEFAULT_LIMITS

from .servers import (
    LOOPBACK,
    NginxServer,
    Stage,
    WsgiwireBackend,
    unavailable,
)

pytestmark = pytest.mark.integration

REQUEST_TIMEOUT = 20.0
LOG_WAIT = 5.0
FD_ABOVE_SELECT_LIMIT = 1500
REFUSED = "refused by the allow-list"


@contextlib.contextmanager
def serve(
    stage: Stage,
    tmp_path: Path,
    binds: list[str],
    *,
    options: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    name: str = "backend",
) -> Iterator[WsgiwireBackend]:
    backend = WsgiwireBackend(
        stage,
        "fcgi_apps",
        binds,
        log_path=tmp_path / f"{name}.log",
        options=options,
        env=env,
    )
    with backend:
        yield backend


def ask(
    target: Target,
    path: str = "/x",
    *,
    sock: socket.socket | None = None,
    keep_conn: bool = False,
    body: bytes = b"",
    method: str = "GET",
) -> Reply:
    """One FastCGI request for ``path`` (query after ``?``) as nginx would send it."""
    path, _, query = path.partition("?")
    where = Target(target.protocol, target.family, target.address, path, query)
    params = build_params(where, method=method, body_length=len(body))
    return fastcgi_request(
        where, params, body, timeout=REQUEST_TIMEOUT, sock=sock, keep_conn=keep_conn
    )


def tcp_target(backend: WsgiwireBackend, host: str = LOOPBACK) -> Target:
    shown = f"[{host}]" if ":" in host else host
    return parse_target(f"fastcgi://{shown}:{backend.port}/")


def wait_for_count(backend: WsgiwireBackend, text: str, count: int) -> int:
    """Occurrences of ``text`` in the backend's log once there are ``count`` (bounded)."""
    deadline = time.monotonic() + LOG_WAIT
    while True:
        found = backend.output().count(text)
        if found >= count or time.monotonic() >= deadline:
            return found
        time.sleep(0.02)


def json_report(reply: Reply) -> dict[str, object]:
    assert reply.status == 200, reply.raw[:2000]
    report: dict[str, object] = json.loads(reply.body)
    return report


# ---------------------------------------------------------------------------------------
# (a) many concurrent connections through nginx's keepalive pool


CLIENTS = 16
REQUESTS_PER_CLIENT = 6


def test_sixteen_concurrent_connections_through_nginx_keepalive_all_served(
    stage: Stage, tmp_path: Path
) -> None:
    NginxServer.require()
    with serve(stage, tmp_path, [f"{LOOPBACK}:0"], options=("--workers", "2")) as backend:
        values = {"BACKEND": f"{LOOPBACK}:{backend.port}"}
        with NginxServer("fastcgi-keepconn", values=values) as server:
            start = threading.Barrier(CLIENTS, timeout=REQUEST_TIMEOUT)

            def client(n: int) -> list[tuple[int, str, str]]:
                results = []
                conn = http.client.HTTPConnection(LOOPBACK, server.port, timeout=REQUEST_TIMEOUT)
                try:
                    start.wait()
                    for i in range(REQUESTS_PER_CLIENT):
                        path = f"/c{n}/r{i}/slow"
                        body = os.urandom(65536) if i % 3 == 2 else None
                        conn.request("POST" if body else "GET", path, body=body)
                        resp = conn.getresponse()
                        data = resp.read()
                        report = json.loads(data) if resp.status == 200 else {}
                        ok = report.get("PATH_INFO") == path and (
                            body is None
                            or report.get("body_sha256") == hashlib.sha256(body).hexdigest()
                        )
                        results.append((resp.status, path, "ok" if ok else repr(data[:300])))
                finally:
                    conn.close()
                return results

            began = time.monotonic()
            with ThreadPoolExecutor(CLIENTS) as pool:
                futures = [pool.submit(client, n) for n in range(CLIENTS)]
                results = [r for f in futures for r in f.result(timeout=60)]
            elapsed = time.monotonic() - began
            context = f"{server.error_log_text()}\n--- backend ---\n{backend.output()}"
            failed = [r for r in results if r[0] != 200 or r[2] != "ok"]
            assert not failed, f"{failed[:5]}\n{context}"
            assert len(results) == CLIENTS * REQUESTS_PER_CLIENT
            assert elapsed < 30, context
            severe = ("[error]", "[crit]", "[alert]", "[emerg]")  # 502s, resets, timeouts
            assert not any(level in server.error_log.read_text() for level in severe), context
        assert "exited" not in backend.output()  # no worker died and was replaced


GATE_OBSERVE = 1.0  # how long the gate stays shut while every request is in flight


def test_threaded_worker_holds_requests_beyond_its_threads_instead_of_refusing(
    stage: Stage, tmp_path: Path
) -> None:
    """Web servers do not multiplex: every request in flight is its own connection, and
    their number is already bounded (max_connections). A worker whose threads are all
    busy must make the next requests wait (as flup's thread pool and nginx's upstream
    do), not answer FCGI_OVERLOADED, which nginx turns into a 502 and lighttpd a 500."""
    threads = 2
    count = 3 * threads  # more than the threads plus the hand-off queue
    gate = tmp_path / "gate"
    options = ("--threads", str(threads))
    with serve(stage, tmp_path, [f"{LOOPBACK}:0"], options=options) as backend:
        target = tcp_target(backend)
        with ThreadPoolExecutor(count) as pool:
            try:
                futures = [pool.submit(ask, target, f"/q{i}/gate?{gate}") for i in range(count)]
                early, _ = wait(futures, timeout=GATE_OBSERVE, return_when=FIRST_COMPLETED)
            finally:
                gate.touch()  # let every held request finish, whatever happened
            replies = [f.result(timeout=REQUEST_TIMEOUT) for f in futures]
        refused = [(r.protocol_status, r.raw[:100]) for r in replies if r.status != 200]
        assert not refused, f"{refused}\n{backend.output()}"
        assert not early, "a request was answered while the gate was shut"
        assert all(r.app_status == 0 for r in replies)


# ---------------------------------------------------------------------------------------
# (b) descriptors above FD_SETSIZE

# Runs in the child before wsgiwire: raise RLIMIT_NOFILE, fill every free descriptor
# below the target with /dev/null (so the sockets wsgiwire opens later, accepted
# connections included, land above it too), move the listener there, exec the server.
FD_WRAPPER = """
import os, resource, sys
source, target = int(sys.argv[1]), int(sys.argv[2])
want = target + 256
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if soft < want:
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
os.dup2(source, target)
os.close(source)
filler = os.open(os.devnull, os.O_RDONLY)
os.set_inheritable(filler, True)
for fd in range(3, target):
    try:
        os.fstat(fd)
    except OSError:
        os.dup2(filler, fd)
os.execv(sys.argv[3], sys.argv[3:])
"""


def socket_fds(pid: int) -> list[int]:
    fds = []
    for entry in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            if os.readlink(entry).startswith("socket:"):
                fds.append(int(entry.name))
    return sorted(fds)


def worker_pids(master: int) -> list[int]:
    """``wsgiwire serve`` runs a master and its workers: the workers' pids."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(status.read_text().split("\nPPid:")[1].split()[0]) == master:
                found.append(int(status.parent.name))
    return found


def test_listening_socket_above_fd_1024(stage: Stage, tmp_path: Path) -> None:
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if os.geteuid() != 0 and hard < FD_ABOVE_SELECT_LIMIT + 256:
        unavailable(f"RLIMIT_NOFILE hard limit {hard} is too low to use fd 1500")
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((LOOPBACK, 0))
    listener.listen(64)
    port = listener.getsockname()[1]
    backend = WsgiwireBackend(
        stage,
        "fcgi_apps",
        [f"fd:{FD_ABOVE_SELECT_LIMIT}"],
        log_path=tmp_path / "backend.log",
        pass_fds=(listener.fileno(),),
        argv_prefix=(
            sys.executable, "-c", FD_WRAPPER, str(listener.fileno()),
            str(FD_ABOVE_SELECT_LIMIT),
        ),
    )  # fmt: skip
    try:
        with backend:
            listener.close()  # the server holds the only copy now
            target = parse_target(f"fastcgi://{LOOPBACK}:{port}/")
            with target.connect(REQUEST_TIMEOUT) as sock:
                for i in range(3):  # one kept connection, several requests
                    reply = ask(target, f"/fd/{i}", sock=sock, keep_conn=True)
                    assert json_report(reply)["PATH_INFO"] == f"/fd/{i}", backend.output()
                    assert reply.app_status == 0
                workers = worker_pids(backend.pid)
                assert len(workers) == 1, workers
                fds = socket_fds(workers[0])
            assert FD_ABOVE_SELECT_LIMIT in fds
            # Listener, wake-up pair, accepted connection: every socket is above 1024.
            assert len(fds) >= 4, fds
            assert min(fds) == FD_ABOVE_SELECT_LIMIT, fds
            big = ask(target, "/big/stream")  # a large reply written with poll(), not select()
            assert (big.status, len(big.body), big.app_status) == (200, 256 * 65536, 0)
    finally:
        listener.close()


# ---------------------------------------------------------------------------------------
# (c) FCGI_GET_VALUES


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_get_values_reports_the_numbers_the_server_runs_with(
    stage: Stage, tmp_path: Path, transport: str
) -> None:
    sock_path = tmp_path / "app.sock"
    bind = f"unix:{sock_path}" if transport == "unix" else f"{LOOPBACK}:0"
    with serve(stage, tmp_path, [bind]) as backend:
        url = (
            f"fastcgi+unix://{sock_path}/"
            if transport == "unix"
            else f"fastcgi://{LOOPBACK}:{backend.port}/"
        )
        proc = subprocess.run(
            [sys.executable, "-m", "wsgiwire", "request", "--get-values", url],
            capture_output=True,
            text=True,
            timeout=REQUEST_TIMEOUT,
            check=False,
            cwd=stage.root,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(stage.root)},
        )
        assert proc.returncode == 0, proc.stderr
        values = dict(line.split("=", 1) for line in proc.stdout.split())
        assert values == {
            "FCGI_MAX_CONNS": str(DEFAULT_LIMITS.max_connections),
            # one worker without threads runs one request at a time, and the
            # requests of one connection one after the other
            "FCGI_MAX_REQS": "1",
            "FCGI_MPXS_CONNS": "0",
        }
        # Management records are not requests: the same server still serves.
        target = (
            parse_target(f"fastcgi+unix://{sock_path}/")
            if transport == "unix"
            else tcp_target(backend)
        )
        assert ask(target, "/after").status == 200


# ---------------------------------------------------------------------------------------
# (d) FCGI_WEB_SERVER_ADDRS


def connect_from(source: str, target: Target) -> socket.socket:
    sock = socket.socket(target.family, socket.SOCK_STREAM)
    sock.settimeout(REQUEST_TIMEOUT)
    try:
        sock.bind((source, 0))
        sock.connect(target.address)
    except OSError:
        sock.close()
        raise
    return sock


def test_allow_list_refuses_unlisted_ipv4_peer(stage: Stage, tmp_path: Path) -> None:
    env = {"FCGI_WEB_SERVER_ADDRS": "127.0.0.2"}
    with serve(stage, tmp_path, [f"{LOOPBACK}:0"], env=env) as backend:
        target = tcp_target(backend)
        with pytest.raises((ClientError, ConnectionError)):
            ask(target, "/refused")  # from 127.0.0.1: closed without an answer
        assert wait_for_count(backend, REFUSED, 1) == 1, backend.output()
        (line,) = [ln for ln in backend.output().splitlines() if REFUSED in ln]
        assert "127.0.0.1:" in line
        # The listed address is let in (the whole 127/8 is loopback on Linux).
        with connect_from("127.0.0.2", target) as sock:
            reply = ask(target, "/listed", sock=sock)
        assert json_report(reply)["PATH_INFO"] == "/listed"
        assert backend.output().count(REFUSED) == 1  # one line per refused connection


def test_allow_list_admits_listed_ipv4_peer(stage: Stage, tmp_path: Path) -> None:
    env = {"FCGI_WEB_SERVER_ADDRS": "127.0.0.1"}
    with serve(stage, tmp_path, [f"{LOOPBACK}:0"], env=env) as backend:
        assert json_report(ask(tcp_target(backend), "/ok"))["PATH_INFO"] == "/ok"
        assert REFUSED not in backend.output()


def require_ipv6_loopback() -> None:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError as exc:
        unavailable(f"no IPv6 loopback (::1): {exc}")


@pytest.mark.parametrize(
    ("allowed", "admitted"),
    [("127.0.0.1, ::1", True), ("127.0.0.1", False)],
    ids=["listed", "unlisted"],
)
def test_allow_list_on_ipv6_listener(
    stage: Stage, tmp_path: Path, allowed: str, admitted: bool
) -> None:
    """``::1`` in the list admits ``::1`` (flup's fcgi.py refused it); absent, it is
    refused (flup's scgi_base.py admitted every IPv6 peer)."""
    require_ipv6_loopback()
    env = {"FCGI_WEB_SERVER_ADDRS": allowed}
    with serve(stage, tmp_path, ["[::1]:0"], env=env) as backend:
        target = tcp_target(backend, "::1")
        if admitted:
            assert json_report(ask(target, "/v6"))["PATH_INFO"] == "/v6"
            assert REFUSED not in backend.output()
        else:
            with pytest.raises((ClientError, ConnectionError)):
                ask(target, "/v6")
            assert wait_for_count(backend, REFUSED, 1) == 1, backend.output()
            assert "[::1]:" in backend.output()


# ---------------------------------------------------------------------------------------
# (e) unix sockets


def test_unix_socket_is_mode_0660(stage: Stage, tmp_path: Path) -> None:
    sock_path = tmp_path / "app.sock"
    with serve(stage, tmp_path, [f"unix:{sock_path}"]):
        st = sock_path.stat()
        assert stat.S_ISSOCK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o660
        assert not st.st_mode & stat.S_IWOTH
        reply = ask(parse_target(f"fastcgi+unix://{sock_path}/u"), "/u")
        assert json_report(reply)["PATH_INFO"] == "/u"


def run_serve_expecting_failure(stage: Stage, bind: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wsgiwire", "serve", "fcgi_apps", "--bind", bind],
        capture_output=True,
        text=True,
        timeout=REQUEST_TIMEOUT,
        check=False,
        cwd=stage.root,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(stage.root)},
    )


def test_binding_over_a_regular_file_fails_and_keeps_the_file(stage: Stage, tmp_path: Path) -> None:
    precious = tmp_path / "app.sock"
    content = secrets.token_bytes(64)
    precious.write_bytes(content)
    proc = run_serve_expecting_failure(stage, f"unix:{precious}")
    assert proc.returncode == 2, proc.stderr
    assert f"{precious} exists and is not a socket" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert precious.read_bytes() == content
    assert precious.is_file()


def test_binding_over_a_live_socket_fails_and_leaves_it_serving(
    stage: Stage, tmp_path: Path
) -> None:
    sock_path = tmp_path / "app.sock"
    with serve(stage, tmp_path, [f"unix:{sock_path}"]):
        proc = run_serve_expecting_failure(stage, f"unix:{sock_path}")
        assert proc.returncode == 2, proc.stderr
        assert "in use by another running server" in proc.stderr
        reply = ask(parse_target(f"fastcgi+unix://{sock_path}/still"), "/still")
        assert json_report(reply)["PATH_INFO"] == "/still"


# ---------------------------------------------------------------------------------------
# (f) application failures


def test_failure_after_head_sets_app_status_and_the_worker_goes_on(
    stage: Stage, tmp_path: Path
) -> None:
    with serve(stage, tmp_path, [f"{LOOPBACK}:0"], options=("--workers", "2")) as backend:
        target = tcp_target(backend)
        with target.connect(REQUEST_TIMEOUT) as sock:
            cut = ask(target, "/raise-after-head", sock=sock, keep_conn=True)
            assert cut.status == 200
            assert len(cut.body) == 65536  # the piece sent before the exception
            assert cut.app_status not in (None, 0), cut.app_status
            assert cut.protocol_status == 0  # FCGI_REQUEST_COMPLETE
            assert not cut.closed_by_backend
            after = ask(target, "/next", sock=sock, keep_conn=True)
        assert json_report(after)["PATH_INFO"] == "/next"
        assert after.app_status == 0
        assert after.header("X-Worker-Pid") == cut.header("X-Worker-Pid")
        output = backend.output()
        assert output.count("application error in GET /raise-after-head") == 1, output
        assert "exited" not in output


def test_failure_before_head_is_a_500_without_traceback(stage: Stage, tmp_path: Path) -> None:
    with serve(stage, tmp_path, [f"{LOOPBACK}:0"]) as backend:
        reply = ask(tcp_target(backend), "/raise-before-head")
        assert reply.status == 500
        assert reply.app_status == 0  # a complete (error) response
        for secret in (b"Traceback", b"RuntimeError", b"fcgi-apps-secret-before-head"):
            assert secret not in reply.raw
            assert secret not in reply.stderr
        assert wait_for_count(backend, "fcgi-apps-secret-before-head", 1) >= 1
        assert "Traceback" in backend.output()  # the details go to the server's log
        assert json_report(ask(tcp_target(backend), "/after"))["PATH_INFO"] == "/after"


# ---------------------------------------------------------------------------------------
# (g) wsgi.errors


def test_wsgi_errors_arrive_as_fcgi_stderr(stage: Stage, tmp_path: Path) -> None:
    token = secrets.token_hex(8)
    with serve(stage, tmp_path, [f"{LOOPBACK}:0"]) as backend:
        reply = ask(tcp_target(backend), f"/errors?{token}")
        assert (reply.status, reply.body, reply.app_status) == (200, b"logged\n", 0)
        assert reply.stderr == f"wsgi.errors: {token}\n".encode()
        assert b"wsgi.errors" not in reply.raw  # STDERR, never mixed into STDOUT
        assert re.search(rf"wsgi\.errors: {token}$", backend.output(), re.MULTILINE)
