"""The ``wsgiwire`` command, run as a person runs it: ``python -m wsgiwire ...`` processes.

* ``wsgiwire request`` against a running ``wsgiwire serve`` for every protocol (TCP, and a
  unix socket for FastCGI): the raw response on stdout, exit status 0; ``--get-values``.
* ``wsgiwire serve`` refusing to start: an unimportable app, a ``--bind`` that is a
  regular file or malformed: exit status 2 and one line on stderr, no traceback.
* ``--help`` names the protocols; ``wsgiwire demo --once`` answers and leaves nothing
  running.

Every server is started in its own session and stopped by its own PID (``ManagedProcess``),
which also fails the test if any worker of its process group is left behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.servers import (
    ManagedProcess,
    group_members,
    wait_for_output,
)
from wsgiwire._client import parse_head

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 20.0
SERVING = re.compile(r"serving (\w+) on (.*)$", re.MULTILINE)


def env(**extra: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(REPO),
        "PYTHONDONTWRITEBYTECODE": "1",
        **extra,
    }


def wsgiwire(*args: str, cwd: Path | None = None, timeout: float = TIMEOUT,
             **extra_env: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "wsgiwire", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=env(**extra_env),
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


class Backend:
    """A ``wsgiwire serve`` process (the demo app) and where it listens."""

    def __init__(self, process: ManagedProcess, addresses: list[str]) -> None:
        self.process = process
        self.addresses = addresses

    @property
    def port(self) -> int:
        for address in self.addresses:
            # "127.0.0.1:9000", "[::1]:9000" (or an older "('127.0.0.1', 9000)")
            match = re.search(r"(?:\('[^']*', |\[[0-9a-fA-F:.]*\]:|[0-9.]+:)(\d+)", address)
            if match:
                return int(match.group(1))
        raise AssertionError(f"no TCP listener in {self.addresses}")


@contextlib.contextmanager
def serving(protocol: str, binds: list[str], log_dir: Path) -> Iterator[Backend]:
    process = ManagedProcess(
        [sys.executable, "-m", "wsgiwire", "serve", "--protocol", protocol,
         *(f"--bind={bind}" for bind in binds)],
        log_path=log_dir / f"serve-{protocol}.log",
        env=env(),
        cwd=log_dir,
    )
    with process:
        deadline = time.monotonic() + TIMEOUT
        found = SERVING.findall(wait_for_output(process, "serving", timeout=TIMEOUT))
        while len(found) < len(binds):  # one line per listening socket
            assert time.monotonic() < deadline, process.output()
            time.sleep(0.02)
            found = SERVING.findall(process.output())
        yield Backend(process, [address.strip() for _, address in found])
        code = process.stop()
        assert code == 0, process.output()


@pytest.fixture(scope="module")
def run_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="ww-cli-", dir="/tmp") as path:
        yield Path(path)


@pytest.fixture(scope="module")
def backends(run_dir: Path) -> Iterator[dict[str, Backend]]:
    """One ``wsgiwire serve`` per protocol on 127.0.0.1:0 and on a unix socket."""
    with contextlib.ExitStack() as stack:
        yield {
            protocol: stack.enter_context(
                serving(protocol, ["127.0.0.1:0", f"unix:{run_dir}/{protocol}.sock"], run_dir)
            )
            for protocol in ("fastcgi", "scgi", "uwsgi")
        }


PROTOCOLS = ["fastcgi", "scgi", "uwsgi"]


# -- wsgiwire request against wsgiwire serve ----------------------------------------------------
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_request_get(backends: dict[str, Backend], protocol: str) -> None:
    served = backends[protocol]
    result = wsgiwire("request", f"{protocol}://127.0.0.1:{served.port}/x/y?format=json")
    assert result.returncode == 0, result.stderr.decode()
    head = b"HTTP/1.1 200 OK\r\n" if protocol == "uwsgi" else b"Status: 200 OK\r\n"
    assert result.stdout.startswith(head)  # the raw response, byte for byte
    status, _, headers, body = parse_head(result.stdout)
    assert status == 200
    assert ("Content-Type", "application/json") in headers
    info = json.loads(body)
    assert (info["method"], info["path_info"], info["query_string"]) == (
        "GET", "/x/y", "format=json")
    if protocol == "fastcgi":
        assert "FCGI_END_REQUEST appStatus=0 protocolStatus=0" in result.stderr.decode()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_request_post_with_headers(backends: dict[str, Backend], protocol: str) -> None:
    served = backends[protocol]
    result = wsgiwire(
        "request", f"{protocol}://127.0.0.1:{served.port}/post?format=json",
        "-d", "hello body", "-H", "X-Probe: 42", "-H", "Content-Type: text/plain",
    )
    assert result.returncode == 0, result.stderr.decode()
    info = json.loads(parse_head(result.stdout)[3])
    assert info["method"] == "POST"
    assert info["body_length"] == len(b"hello body")
    assert info["body_sha256"] == hashlib.sha256(b"hello body").hexdigest()
    assert info["cgi"]["HTTP_X_PROBE"] == "42"
    assert info["cgi"]["CONTENT_TYPE"] == "text/plain"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_request_over_a_unix_socket(
    run_dir: Path, backends: dict[str, Backend], protocol: str
) -> None:
    path = f"{run_dir}/{protocol}.sock"
    assert any(path in address for address in backends[protocol].addresses)
    result = wsgiwire("request", f"{protocol}+unix://{path}/over/unix?format=json")
    assert result.returncode == 0, result.stderr.decode()
    status, _, _, body = parse_head(result.stdout)
    info = json.loads(body)
    assert (status, info["path_info"], info["query_string"]) == (200, "/over/unix", "format=json")


def test_request_get_values(backends: dict[str, Backend]) -> None:
    served = backends["fastcgi"]
    result = wsgiwire("request", "--get-values", f"fastcgi://127.0.0.1:{served.port}/")
    assert result.returncode == 0, result.stderr.decode()
    values = dict(line.split("=", 1) for line in result.stdout.decode().splitlines())
    assert set(values) == {"FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"}
    assert all(value.isdigit() for value in values.values())


def test_request_to_nothing_listening_exits_1_with_one_line() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))  # bound, not listening: refused
        port = unused.getsockname()[1]
        result = wsgiwire("request", f"scgi://127.0.0.1:{port}/")
    assert result.returncode == 1
    err = result.stderr.decode()
    assert err.startswith("wsgiwire: cannot connect")
    assert len(err.strip().splitlines()) == 1


def test_request_unknown_scheme_exits_1_with_one_line() -> None:
    result = wsgiwire("request", "http://127.0.0.1:80/")
    assert result.returncode == 1
    assert result.stderr.decode().strip().splitlines() == [
        "wsgiwire: unknown protocol 'http': use fastcgi://, scgi:// or uwsgi://"
    ]


# -- wsgiwire serve refusing to start ----------------------------------------------------------
def assert_one_line_error(result: subprocess.CompletedProcess[bytes], *words: str) -> None:
    err = result.stderr.decode()
    assert result.returncode == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("wsgiwire: ")
    for word in words:
        assert word in lines[0]


@pytest.mark.parametrize("workers", ["0", "1"])
def test_serve_unimportable_app_exits_2(tmp_path: Path, workers: str) -> None:
    result = wsgiwire("serve", "no_such_module_for_wsgiwire:app", "--bind", "127.0.0.1:0",
                      "--workers", workers, cwd=tmp_path)
    assert_one_line_error(result, "no_such_module_for_wsgiwire")


def test_serve_bind_to_a_regular_file_exits_2_and_keeps_it(tmp_path: Path) -> None:
    victim = tmp_path / "important.txt"
    victim.write_text("do not replace me\n")
    result = wsgiwire("serve", "--bind", f"unix:{victim}", cwd=tmp_path)
    assert_one_line_error(result, str(victim), "not a socket")
    assert victim.read_text() == "do not replace me\n"


@pytest.mark.parametrize("bind", ["localhost", "127.0.0.1:http", "unix:", "fd:x"])
def test_serve_malformed_bind_exits_2(tmp_path: Path, bind: str) -> None:
    result = wsgiwire("serve", "--bind", bind, cwd=tmp_path)
    assert_one_line_error(result)


# -- help -----------------------------------------------------------------------------------
def test_help_names_the_protocols_and_commands() -> None:
    result = wsgiwire("--help")
    assert result.returncode == 0
    text = result.stdout.decode()
    for word in ("CGI", "FastCGI", "SCGI", "uwsgi", "serve", "request", "demo"):
        assert word in text


def test_serve_help_lists_every_protocol() -> None:
    result = wsgiwire("serve", "--help")
    assert result.returncode == 0
    text = result.stdout.decode()
    match = re.search(r"--protocol \{([a-z,]+)\}", text)
    assert match is not None, text
    assert set(match.group(1).split(",")) == {"fastcgi", "scgi", "uwsgi", "cgi"}
    assert "--bind" in text


# -- demo ---------------------------------------------------------------------------------
def test_demo_once_answers_and_leaves_nothing_running(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "wsgiwire", "demo", "--once", "/x?format=json"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env(TMPDIR=str(tmp_path)),
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err.decode()
    status, _, headers, body = parse_head(out)
    assert status == 200
    assert ("Content-Type", "application/json") in headers
    info = json.loads(body)
    assert (info["path_info"], info["query_string"]) == ("/x", "format=json")
    # The backend it started (a master and its worker) is gone, and its run dir too.
    assert group_members(proc.pid) == []
    assert list(tmp_path.iterdir()) == []
