"""``wsgiwire.flup.server.*``: flup's own example script, with only its import changed.

flup's documentation shows::

    from myapplication import app
    from flup.server.fcgi import WSGIServer
    WSGIServer(app).run()

Each module's version of that script runs where flup's would: the FastCGI ones under
Apache mod_fcgid (``.htaccess`` rewrite to ``app.fcgi``) or behind nginx
(``bindAddress``), the SCGI ones behind nginx, the CGI one under Apache mod_cgi. The
fork servers show their pool (``maxChildren`` worker PIDs under the script's PID) and
recycle each worker after ``maxRequests`` requests; ``fcgi_single`` runs two requests
sent together one after the other. Every process is stopped by its own PID.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .servers import (
    CONFIG_ROOT,
    LOOPBACK,
    ApacheServer,
    ManagedProcess,
    NginxServer,
    Stage,
    free_port,
    render_file,
    wait_for_port,
    world_readable_tempdir,
)

pytestmark = pytest.mark.integration

TIMEOUT = 20.0

# flup's example, the import line changed; SERVER_ARGS are the script's own arguments.
EXAMPLE = """#!{python}
import sys
sys.path.insert(0, {stage!r})
from flup_layout_app import app
from wsgiwire.flup.server.{module} import WSGIServer
WSGIServer(app{args}).run()
"""


def write_script(stage: Stage, directory: Path, module: str, args: str = "",
                 name: str = "app.fcgi") -> Path:
    path = directory / name
    path.write_text(EXAMPLE.format(python=stage.python, stage=str(stage.root), module=module,
                                   args=args))
    path.chmod(0o755)
    return path


@pytest.fixture
def work() -> Iterator[Path]:
    import shutil

    path = world_readable_tempdir("wsgiwire-flup-layout-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def report(server: NginxServer | ApacheServer, path: str) -> dict[str, Any]:
    status, _, body = server.request("GET", path, timeout=TIMEOUT)
    assert status == 200, (body[:500], server.error_log_text())
    answer: dict[str, Any] = json.loads(body)
    return answer


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def wait_children(pid: int, count: int) -> list[int]:
    deadline = time.monotonic() + TIMEOUT
    while True:
        found = children(pid)
        if len(found) == count:
            return found
        assert time.monotonic() < deadline, f"{pid} has children {found}, not {count}"
        time.sleep(0.02)


@pytest.mark.parametrize(
    ("module", "multithread", "multiprocess"),
    [("fcgi", True, False), ("fcgi_fork", False, True), ("fcgi_single", False, False)],
)
def test_fcgi_example_under_mod_fcgid(stage: Stage, work: Path, module: str,
                                      multithread: bool, multiprocess: bool) -> None:
    doc_root = work / "htdocs"
    doc_root.mkdir()
    doc_root.chmod(0o755)
    args = ", maxChildren=2" if module == "fcgi_fork" else ""
    write_script(stage, doc_root, module, args)
    render_file(CONFIG_ROOT / "apache" / "fcgid-htaccess.htaccess", doc_root / ".htaccess", {})
    apache_server = ApacheServer("fcgid-htaccess", doc_root=doc_root)
    apache_server.require_module("fcgid")
    with apache_server as apache:
        first = report(apache, "/hello/world")
        second = report(apache, "/again")
    assert (first["multithread"], first["multiprocess"]) == (multithread, multiprocess)
    assert first["path_info"] in ("/hello/world", "hello/world")
    assert second["run_once"] is False  # a FastCGI server, not a CGI run per request
    if module == "fcgi_fork":
        assert first["ppid"] != 1 and first["pid"] != first["ppid"]  # a worker, under a master


def start_bound(stage: Stage, work: Path, module: str, args: str) -> tuple[ManagedProcess, int]:
    port = free_port()
    script = write_script(stage, work, module, f", bindAddress=({LOOPBACK!r}, {port}){args}",
                          name=f"{module}.py")
    proc = ManagedProcess([sys.executable, str(script)], log_path=work / f"{module}.log",
                          cwd=work)
    proc.start()
    try:
        wait_for_port(port, process=proc)
    except BaseException:
        proc.stop()
        raise
    return proc, port


@pytest.mark.parametrize(("module", "config"),
                         [("fcgi_fork", "fastcgi-root"), ("scgi_fork", "scgi-root")])
def test_fork_servers_prefork_and_recycle(stage: Stage, work: Path, module: str,
                                          config: str) -> None:
    proc, port = start_bound(stage, work, module, ", maxChildren=3, maxRequests=2")
    try:
        first_pool = wait_children(proc.pid, 3)
        with NginxServer(config, values={"BACKEND": f"{LOOPBACK}:{port}"}) as nginx:
            answers = [report(nginx, f"/r{i}") for i in range(12)]
        served = Counter(a["pid"] for a in answers)
        assert all(a["ppid"] == proc.pid for a in answers)  # workers of the script's process
        assert all((a["multithread"], a["multiprocess"]) == (False, True) for a in answers)
        assert max(served.values()) <= 2, served  # maxRequests=2: then recycled
        assert len(served) >= 6, served  # 12 requests need at least 6 workers
        assert set(first_pool) & set(served)  # the first pool served, then was replaced
        wait_children(proc.pid, 3)  # the pool is full again
    finally:
        proc.stop()


def test_fcgi_single_serves_one_request_at_a_time(stage: Stage, work: Path) -> None:
    proc, port = start_bound(stage, work, "fcgi_single", "")
    try:
        with NginxServer("fastcgi-root", values={"BACKEND": f"{LOOPBACK}:{port}"}) as nginx:
            answers: list[dict[str, Any]] = []
            threads = [threading.Thread(target=lambda: answers.append(report(nginx, "/slow")))
                       for _ in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(TIMEOUT)
        assert len(answers) == 2
        first, second = sorted(answers, key=lambda a: a["started"])
        assert first["pid"] == second["pid"] == proc.pid  # no worker processes
        assert second["started"] >= first["ended"]  # not at the same time
        assert (first["multithread"], first["multiprocess"]) == (False, False)
    finally:
        proc.stop()


def test_scgi_example_behind_nginx(stage: Stage, work: Path) -> None:
    proc, port = start_bound(stage, work, "scgi", "")
    try:
        with NginxServer("scgi-root", values={"BACKEND": f"{LOOPBACK}:{port}"}) as nginx:
            answer = report(nginx, "/a/b")
        assert (answer["script_name"], answer["path_info"]) == ("", "/a/b")
        assert answer["pid"] == proc.pid and answer["multithread"] is True
    finally:
        proc.stop()


def test_cgi_example_under_mod_cgi(stage: Stage, work: Path) -> None:
    script = write_script(stage, work, "cgi", name="app.cgi")
    with ApacheServer("cgi-scriptalias", values={"MOUNT": "/app", "SCRIPT": str(script)}) as srv:
        first = report(srv, "/app/x")
        second = report(srv, "/app/y")
    assert first["run_once"] is True and first["path_info"] == "/x"
    assert first["pid"] != second["pid"]  # a process per request


@pytest.mark.parametrize("module", ["ajp", "ajp_fork", "ajp_base"])
def test_ajp_is_refused_clearly(module: str) -> None:
    import importlib

    with pytest.raises(ImportError, match="AJP is not supported by wsgiwire"):
        importlib.import_module(f"wsgiwire.flup.server.{module}")
