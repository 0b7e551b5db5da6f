"""The flup-compatible ``WSGIServer`` classes (``wsgiwire.adapters.fastcgi/.scgi/.uwsgi``).

An old flup script changes only its import line, so ``WSGIServer(app).run()`` must do
what flup's does in each place the script can find itself:

* run by hand in a shell (fd 0 is not a socket): one CGI request on stdout; a failing
  app gives a 500 page on stdout and the traceback on stderr, for the person to read;
* started by mod_fcgid / spawn-fcgi (fd 0 is a listening socket): a FastCGI server
  that stops on SIGTERM with exit status 0;
* ``bindAddress=(host, port)`` or a unix socket path (removed again on exit).

Each script runs in its own process, stopped by its PID (``ManagedProcess``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.servers import ManagedProcess, wait_for_output, wait_for_path
from wsgiwire._client import (
    Reply,
    Target,
    build_params,
    fastcgi_request,
    parse_head,
    scgi_request,
    uwsgi_request,
)
from wsgiwire.adapters import fastcgi, scgi, uwsgi

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 20.0
STOP_BOUND = 5.0

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from wsgiwire.adapters import fastcgi, scgi, uwsgi

    def app(environ, start_response):
        if environ["PATH_INFO"].endswith("/boom"):
            raise RuntimeError("boom-marker raised by the app")
        stream = environ["wsgi.input"]
        body = b"".join(iter(lambda: stream.read(65536), b""))
        payload = json.dumps({
            "script_name": environ["SCRIPT_NAME"],
            "path_info": environ["PATH_INFO"],
            "query": environ["QUERY_STRING"],
            "body": body.decode("latin-1"),
            "multithread": environ["wsgi.multithread"],
            "multiprocess": environ["wsgi.multiprocess"],
            "run_once": environ["wsgi.run_once"],
            "extra": environ.get("X_EXTRA"),
            "url_scheme": environ["wsgi.url_scheme"],
            "pid": os.getpid(),
        }).encode()
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(payload)))])
        return [payload]

    protocol = sys.argv[1]
    bind = json.loads(sys.argv[2])
    kwargs = json.loads(sys.argv[3])
    if isinstance(bind, list):
        bind = tuple(bind)
    base = {"fastcgi": fastcgi, "scgi": scgi, "uwsgi": uwsgi}[protocol].WSGIServer

    class Server(base):
        def open_listener(self):
            sock = super().open_listener()
            print("listening on", json.dumps(sock.getsockname()), file=sys.stderr, flush=True)
            return sock

    result = Server(app, bindAddress=bind, **kwargs).run()
    print("run() returned", result, file=sys.stderr, flush=True)
    """
)


def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"in-process"]


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "app.fcgi"
    path.write_text(SCRIPT)
    return path


def base_env(**extra: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(REPO),
        "PYTHONDONTWRITEBYTECODE": "1",
        **extra,
    }


def argv(script: Path, protocol: str, bind: object, **kwargs: object) -> list[str]:
    return [sys.executable, str(script), protocol, json.dumps(bind), json.dumps(kwargs)]


@contextlib.contextmanager
def server_process(
    script: Path, tmp_path: Path, protocol: str, bind: object, *,
    stdin: int | None = subprocess.DEVNULL, **kwargs: object,
) -> Iterator[ManagedProcess]:
    proc = ManagedProcess(
        argv(script, protocol, bind, **kwargs),
        log_path=tmp_path / f"{protocol}.log",
        env=base_env(),
        cwd=tmp_path,
        stdin=stdin,
    )
    with proc:
        yield proc


def listening_address(proc: ManagedProcess) -> Any:
    output = wait_for_output(proc, "listening on", timeout=TIMEOUT)
    match = re.search(r"listening on (.*)$", output, re.MULTILINE)
    assert match is not None
    return json.loads(match.group(1))


def stop_by_pid(proc: ManagedProcess) -> int | None:
    """SIGTERM to its own PID; the exit status, which must come within STOP_BOUND."""
    started = time.monotonic()
    code = proc.stop()  # raises if anything of its process group is left running
    assert time.monotonic() - started < STOP_BOUND
    with pytest.raises(ProcessLookupError):
        os.kill(proc.pid, 0)  # gone (and reaped)
    return code


def ask(
    target: Target, path: str = "/x", body: bytes = b"", extra: tuple[tuple[str, str], ...] = ()
) -> Reply:
    path, _, query = path.partition("?")
    where = Target(target.protocol, target.family, target.address, path, query)
    params = build_params(
        where, method="POST" if body else "GET", body_length=len(body), extra=extra
    )
    if target.protocol == "scgi":
        return scgi_request(where, params, body, timeout=TIMEOUT)
    if target.protocol == "uwsgi":
        return uwsgi_request(where, params, body, timeout=TIMEOUT)
    return fastcgi_request(where, params, body, timeout=TIMEOUT)


def tcp(protocol: str, address: Any) -> Target:
    return Target(protocol, socket.AF_INET, (address[0], address[1]), "/", "")


# -- CGI fallback: run from a shell -------------------------------------------------------
def cgi_env(path_info: str) -> dict[str, str]:
    return base_env(
        GATEWAY_INTERFACE="CGI/1.1",
        REQUEST_METHOD="GET",
        SCRIPT_NAME="/app.fcgi",
        PATH_INFO=path_info,
        QUERY_STRING="a=1",
        SERVER_NAME="localhost",
        SERVER_PORT="80",
        SERVER_PROTOCOL="HTTP/1.1",
        SERVER_SOFTWARE="a shell",
        REMOTE_ADDR="127.0.0.1",
    )


def run_as_cgi(script: Path, path_info: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        argv(script, "fastcgi", None),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=cgi_env(path_info),
        timeout=TIMEOUT,
        check=False,
    )


def test_fastcgi_server_without_a_socket_on_stdin_acts_as_cgi(script: Path) -> None:
    result = run_as_cgi(script, "/x")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.startswith(b"Status: 200 OK\r\n")
    status, _, headers, body = parse_head(result.stdout)
    assert status == 200
    assert ("Content-Type", "application/json") in headers
    info = json.loads(body)
    assert (info["script_name"], info["path_info"], info["query"]) == ("/app.fcgi", "/x", "a=1")
    assert info["run_once"] is True
    assert "run() returned True" in result.stderr.decode()


def test_cgi_fallback_failing_app_500_on_stdout_traceback_on_stderr(script: Path) -> None:
    result = run_as_cgi(script, "/boom")
    assert result.returncode == 0, result.stderr.decode()
    status, _, _, body = parse_head(result.stdout)
    assert status == 500
    assert result.stdout.startswith(b"Status: 500 Internal Server Error\r\n")
    assert body == b"500 Internal Server Error\n"
    assert b"Traceback" not in result.stdout
    assert b"boom-marker" not in result.stdout
    err = result.stderr.decode()
    assert "Traceback (most recent call last)" in err
    assert "RuntimeError: boom-marker raised by the app" in err


def test_force_cgi_ignores_a_listening_stdin(script: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        result = subprocess.run(
            argv(script, "fastcgi", None, forceCGI=True),
            stdin=listener.fileno(),
            capture_output=True,
            env=cgi_env("/forced"),
            timeout=TIMEOUT,
            check=False,
        )
    assert result.returncode == 0, result.stderr.decode()
    assert json.loads(parse_head(result.stdout)[3])["path_info"] == "/forced"


# -- FastCGI on the socket inherited as fd 0 ---------------------------------------------------
def test_fastcgi_server_on_a_listening_stdin(script: Path, tmp_path: Path) -> None:
    """mod_fcgid / spawn-fcgi: the listening socket is fd 0; SIGTERM stops it, status 0."""
    listener = socket.socket()
    with listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        target = tcp("fastcgi", listener.getsockname())
        with server_process(script, tmp_path, "fastcgi", None, stdin=listener.fileno()) as proc:
            listener.close()  # the child has its own copy
            reply = ask(target, "/hello?q=1", body=b"posted")
            failed = ask(target, "/boom")
            assert (reply.status, reply.app_status) == (200, 0)
            info = json.loads(reply.body)
            assert info["pid"] == proc.pid
            assert (info["path_info"], info["query"], info["body"]) == ("/hello", "q=1", "posted")
            assert (info["multithread"], info["multiprocess"], info["run_once"]) == (
                True, False, False)
            assert failed.status == 500
            assert b"boom-marker" not in failed.raw
            code = stop_by_pid(proc)
    assert code == 0, proc.output()
    assert "run() returned True" in proc.output()
    assert "listening on" not in proc.output()  # fd 0 was used, nothing was bound


# -- bindAddress ------------------------------------------------------------------------------
def test_fastcgi_server_bind_address_tuple(script: Path, tmp_path: Path) -> None:
    with server_process(script, tmp_path, "fastcgi", ["127.0.0.1", 0]) as proc:
        address = listening_address(proc)
        assert address[0] == "127.0.0.1"
        reply = ask(tcp("fastcgi", address), "/tuple")
        assert json.loads(reply.body)["path_info"] == "/tuple"
        code = stop_by_pid(proc)
    assert code == 0, proc.output()


def test_fastcgi_server_bind_address_unix_path_removed_on_exit(
    script: Path, tmp_path: Path
) -> None:
    run_dir = Path(tempfile.mkdtemp(prefix="ww-flup-", dir="/tmp"))
    path = run_dir / "x.sock"
    try:
        with server_process(script, tmp_path, "fastcgi", str(path)) as proc:
            wait_for_path(path, timeout=TIMEOUT)
            assert listening_address(proc) == str(path)
            assert stat.S_ISSOCK(os.lstat(path).st_mode)
            assert stat.S_IMODE(os.lstat(path).st_mode) == 0o660
            target = Target("fastcgi", socket.AF_UNIX, str(path), "/", "")
            assert json.loads(ask(target, "/unix").body)["path_info"] == "/unix"
            code = stop_by_pid(proc)
        assert code == 0, proc.output()
        assert not path.exists()
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        run_dir.rmdir()


def test_sigint_stops_the_server_too(script: Path, tmp_path: Path) -> None:
    with server_process(script, tmp_path, "fastcgi", ["127.0.0.1", 0]) as proc:
        # Answered: the server runs and its signal handlers are in place ("listening
        # on" is printed when the socket is bound, before they are).
        assert ask(tcp("fastcgi", listening_address(proc)), "/ready").status == 200
        proc.stop_signal = signal.SIGINT
        code = stop_by_pid(proc)
    assert code == 0, proc.output()


def test_scgi_server_script_name_splits_the_path(script: Path, tmp_path: Path) -> None:
    with server_process(script, tmp_path, "scgi", ["localhost", 0], scriptName="/app") as proc:
        address = listening_address(proc)
        assert address[0] == "127.0.0.1"  # flup's default host "localhost" is loopback
        target = tcp("scgi", address)
        inside = ask(target, "/app/x/y?z=1")
        outside = ask(target, "/other/path")
        root = ask(target, "/app")
        code = stop_by_pid(proc)
    assert code == 0, proc.output()
    assert inside.raw.startswith(b"Status: 200 OK\r\n")
    info = json.loads(inside.body)
    assert (info["script_name"], info["path_info"], info["query"]) == ("/app", "/x/y", "z=1")
    other = json.loads(outside.body)
    assert (other["script_name"], other["path_info"]) == ("", "/other/path")
    top = json.loads(root.body)
    assert (top["script_name"], top["path_info"]) == ("/app", "")


def test_uwsgi_server_basic(script: Path, tmp_path: Path) -> None:
    environ = {"X_EXTRA": "server default", "PATH_INFO": "/never-used"}
    with server_process(script, tmp_path, "uwsgi", ["127.0.0.1", 0], environ=environ,
                        multithreaded=False) as proc:
        address = listening_address(proc)
        reply = ask(tcp("uwsgi", address), "/u/v", body=b"uwsgi body")
        code = stop_by_pid(proc)
    assert code == 0, proc.output()
    assert reply.raw.startswith(b"HTTP/1.1 200 OK\r\n")
    info = json.loads(reply.body)
    assert (info["path_info"], info["body"]) == ("/u/v", "uwsgi body")
    assert info["extra"] == "server default"  # environ= fills in keys the request lacks
    assert info["multithread"] is False


@pytest.mark.parametrize("trusted", [True, False])
def test_uwsgi_server_trusts_uwsgi_scheme_only_when_told(
    script: Path, tmp_path: Path, trusted: bool
) -> None:
    with server_process(script, tmp_path, "uwsgi", ["127.0.0.1", 0],
                        trust_uwsgi_scheme=trusted) as proc:
        target = tcp("uwsgi", listening_address(proc))
        reply = ask(target, "/s", extra=(("UWSGI_SCHEME", "https"),))
        code = stop_by_pid(proc)
    assert code == 0, proc.output()
    assert reply.status == 200
    assert json.loads(reply.body)["url_scheme"] == ("https" if trusted else "http")


# -- the constructor, in process ---------------------------------------------------------------
@pytest.mark.parametrize("module", [fastcgi, scgi, uwsgi], ids=lambda m: m.__name__)
def test_unknown_keyword_argument_is_a_type_error(module: Any) -> None:
    with pytest.raises(TypeError, match="bindAdress"):
        module.WSGIServer(app, bindAdress=("127.0.0.1", 9000))


@pytest.mark.parametrize("module", [fastcgi, scgi, uwsgi], ids=lambda m: m.__name__)
def test_flup_pool_keyword_arguments_are_accepted(module: Any) -> None:
    server = module.WSGIServer(
        app, minSpare=1, maxSpare=5, maxChildren=3, maxRequests=100, maxThreads=4,
        minThreads=1, multiprocess=True,
    )
    assert (server.threads, server.workers) == (4, 3)
    single = module.WSGIServer(app, multithreaded=False, maxThreads=4, maxChildren=3)
    assert (single.threads, single.workers) == (0, 0)


def test_fastcgi_server_flup_positional_signature() -> None:
    server = fastcgi.WSGIServer(app, {"X": "1"}, False, False, ("127.0.0.1", 0), 0o077,
                                False, True, (fastcgi.FCGI_RESPONDER, fastcgi.FCGI_FILTER))
    assert server.environ == {"X": "1"}
    assert (server.threads, server.debug, server.umask) == (0, True, 0o077)
    assert [int(r) for r in server.roles] == [1, 3]


def test_scgi_server_flup_positional_signature() -> None:
    # flup.server.scgi.WSGIServer(application, scriptName, environ, multithreaded,
    # multiprocess, bindAddress, umask, allowedServers, loggingLevel, debug)
    wsgiwire_log = logging.getLogger("wsgiwire")
    level = wsgiwire_log.level
    try:
        server = scgi.WSGIServer(app, "/app", {"X": "1"}, False, False, ("127.0.0.1", 0),
                                 0o077, ["127.0.0.1"], logging.ERROR, True)
        assert wsgiwire_log.level == logging.ERROR  # flup sets its logger's level
    finally:
        wsgiwire_log.setLevel(level)
    assert server.environ == {"X": "1"}
    assert (server.threads, server.workers, server.debug, server.umask) == (0, 0, True, 0o077)
    assert server.peer_filter.allows(("127.0.0.1", 5000))
    assert not server.peer_filter.allows(("10.0.0.1", 5000))


def test_logging_level_left_alone_unless_given() -> None:
    wsgiwire_log = logging.getLogger("wsgiwire")
    level = wsgiwire_log.level
    try:
        wsgiwire_log.setLevel(logging.DEBUG)
        scgi.WSGIServer(app)
        uwsgi.WSGIServer(app)
        assert wsgiwire_log.level == logging.DEBUG
        uwsgi.WSGIServer(app, loggingLevel=logging.WARNING)
        assert wsgiwire_log.level == logging.WARNING
    finally:
        wsgiwire_log.setLevel(level)


@pytest.mark.parametrize("bad", [9000, ("127.0.0.1",), ["127.0.0.1", 9000]])
def test_bad_bind_address_is_a_type_error(bad: object) -> None:
    with pytest.raises(TypeError, match="bindAddress"):
        fastcgi.WSGIServer(app, bindAddress=bad).open_listener()


@pytest.mark.parametrize(("umask", "mode"), [(None, 0o660), (0o077, 0o700), (0o002, 0o775)])
def test_unix_bind_address_umask(umask: int | None, mode: int) -> None:
    with tempfile.TemporaryDirectory(prefix="ww-flup-", dir="/tmp") as run_dir:
        path = os.path.join(run_dir, "s.sock")
        with scgi.WSGIServer(app, bindAddress=path, umask=umask).open_listener() as sock:
            assert sock.family == socket.AF_UNIX
            assert stat.S_IMODE(os.lstat(path).st_mode) == mode


def test_allowed_servers_default_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FCGI_WEB_SERVER_ADDRS", "192.0.2.5")
    server = fastcgi.WSGIServer(app)
    assert server.peer_filter.allows(("192.0.2.5", 1))
    assert not server.peer_filter.allows(("127.0.0.1", 1))
    explicit = fastcgi.WSGIServer(app, allowedServers=["127.0.0.1"])
    assert explicit.peer_filter.allows(("127.0.0.1", 1))
    monkeypatch.delenv("FCGI_WEB_SERVER_ADDRS")
    assert not scgi.WSGIServer(app).peer_filter.active
