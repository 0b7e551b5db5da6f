"""``wsgiwire serve --chdir --env --pythonpath --virtualenv --reload-on-rss``, each in a
real ``wsgiwire serve`` process asked over its unix socket.

The app (``envapp.py``, found through ``--pythonpath`` or the working directory)
reports its working directory, one environment variable, where two probe modules come
from and its PID; ``/grow`` makes the worker keep 96 MiB, which ``--reload-on-rss 64``
must answer by recycling the worker after that request.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import venv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from wsgiwire._client import Target, build_params, uwsgi_request

from .servers import REPO_ROOT, ManagedProcess, wait_for_output

pytestmark = pytest.mark.integration

APP = textwrap.dedent(
    """
    import os, json
    _kept = []

    def application(environ, start_response):
        if environ["PATH_INFO"] == "/grow":
            _kept.append(bytearray(96 << 20))  # touched: resident, not just reserved
        try:
            import probe_lib
            lib = probe_lib.WHERE
        except ImportError:
            lib = None
        try:
            import probe_venv
            venv = probe_venv.WHERE
        except ImportError:
            venv = None
        body = json.dumps({
            "cwd": os.getcwd(), "mark": os.environ.get("WSGIWIRE_MARK"),
            "other": os.environ.get("WSGIWIRE_OTHER"), "lib": lib, "venv": venv,
            "virtual_env": os.environ.get("VIRTUAL_ENV"), "pid": os.getpid(),
        }).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    """
)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "envapp.py").write_text(APP)
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "probe_lib.py").write_text('WHERE = "lib"\n')
    (tmp_path / "work").mkdir()
    return tmp_path


@pytest.fixture
def serve(tree: Path) -> Iterator[Any]:
    started: list[ManagedProcess] = []

    def run(*options: str, cwd: Path | None = None) -> Path:
        sock = tree / f"s{len(started)}.sock"
        proc = ManagedProcess(
            [sys.executable, "-m", "wsgiwire", "serve", "envapp", "--protocol", "uwsgi",
             "--bind", f"unix:{sock}", *options],
            log_path=tree / f"serve{len(started)}.log",
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO_ROOT),
                 "PYTHONDONTWRITEBYTECODE": "1"},
            cwd=cwd or tree / "code",
        )
        started.append(proc)
        proc.start()
        wait_for_output(proc, "serving uwsgi")
        return sock

    try:
        yield run
    finally:
        for proc in reversed(started):
            proc.stop()


def ask(sock: Path, path: str = "/") -> dict[str, Any]:
    target = Target("uwsgi", socket.AF_UNIX, str(sock), path, "")
    reply = uwsgi_request(target, build_params(target), timeout=20)
    assert reply.status == 200, reply.raw[:2000]
    answer: dict[str, Any] = json.loads(reply.body)
    return answer


def test_chdir(serve: Any, tree: Path) -> None:
    # Started elsewhere; --chdir makes code/ the working dir, where the app is found.
    sock = serve("--chdir", str(tree / "code"), cwd=tree / "work")
    assert ask(sock)["cwd"] == str(tree / "code")


def test_env_repeatable(serve: Any) -> None:
    sock = serve("--env", "WSGIWIRE_MARK=a=b c", "--env", "WSGIWIRE_OTHER=")
    report = ask(sock)
    assert (report["mark"], report["other"]) == ("a=b c", "")


def test_pythonpath(serve: Any, tree: Path) -> None:
    sock = serve("--pythonpath", str(tree / "lib"))
    assert ask(sock)["lib"] == "lib"
    plain = serve()
    assert ask(plain)["lib"] is None  # the option, not luck, put lib/ on the path


def test_virtualenv(serve: Any, tree: Path) -> None:
    env_dir = tree / "venv"
    venv.create(env_dir, with_pip=False)
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    (env_dir / "lib" / version / "site-packages" / "probe_venv.py").write_text('WHERE = "venv"\n')
    sock = serve("--virtualenv", str(env_dir))
    report = ask(sock)
    assert report["venv"] == "venv"
    assert report["virtual_env"] == str(env_dir)


def test_virtualenv_for_another_python_is_refused(tree: Path) -> None:
    fake = tree / "old-venv" / "lib" / "python2.7" / "site-packages"
    fake.mkdir(parents=True)
    done = subprocess.run(
        [sys.executable, "-m", "wsgiwire", "serve", "envapp", "--virtualenv",
         str(tree / "old-venv"), "--bind", f"unix:{tree / 'never.sock'}"],
        capture_output=True, text=True, cwd=tree / "code", timeout=60, check=False,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO_ROOT)},
    )
    assert done.returncode == 2
    assert "lib/python2.7/site-packages" in done.stderr
    assert not (tree / "never.sock").exists()


def test_reload_on_rss_recycles_the_worker_after_its_request(serve: Any, tree: Path) -> None:
    sock = serve("--workers", "1", "--reload-on-rss", "64")
    first = ask(sock)["pid"]
    assert ask(sock)["pid"] == first  # a small worker stays
    grown = ask(sock, "/grow")
    assert grown["pid"] == first  # the request that grew it is answered in full
    deadline = time.monotonic() + 15
    while True:
        pid = ask(sock)["pid"]
        if pid != first:
            break
        assert time.monotonic() < deadline, "the worker was not recycled"
        time.sleep(0.05)
    log = (tree / "serve0.log").read_text()
    assert f"worker {first} uses" in log and "over --reload-on-rss 64 MiB" in log
