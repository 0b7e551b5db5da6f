"""Moving from uWSGI: the same ini file, the same nginx ``uwsgi_pass`` block.

One site dir holds a Flask app (``app/flaskapp.py``), a module on ``pythonpath``
(``lib/libmod.py``), a virtualenv with a module of its own, and ``uwsgi.ini`` with
every option wsgiwire maps (``touch-reload`` and ``logto`` in a file of their own,
below) plus a few it does not. Then:

* ``wsgiwire serve --ini uwsgi.ini`` behind nginx's ``uwsgi-root`` config (Debian's
  own ``/etc/nginx/uwsgi_params``, unchanged): the app sees the chdir, the env, the
  pythonpath, the virtualenv and the mount; the unsupported keys are listed once each;
* the real uWSGI (pyuwsgi) serves the same file: for the options both understand, the
  app sees the same (the environment is read with ``getenv(3)``, because an embedded
  interpreter's ``os.environ`` is a snapshot taken before uWSGI sets ``env``);
* ``--strict-ini`` refuses the file with exit status 2 and names every unsupported key;
* the command line overrides the file;
* ``logto`` sends wsgiwire's log to the file, and touching ``touch-reload``'s file
  starts a new generation of workers.

Each process is started by the harness and stopped by its own PID.
"""

from __future__ import annotations

import json
import os
import re
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

from .servers import (
    REPO_ROOT,
    ManagedProcess,
    NginxServer,
    wait_for_output,
    wait_for_path,
    world_readable_tempdir,
)

pytestmark = pytest.mark.integration

FLASK_APP = textwrap.dedent(
    """
    import ctypes, json, os, sys
    from flask import Flask, request, url_for
    import libmod

    app = Flask(__name__)
    _libc = ctypes.CDLL(None)
    _libc.getenv.restype = ctypes.c_char_p

    @app.route("/", defaults={"rest": ""})
    @app.route("/<path:rest>")
    def report(rest):
        try:
            import venvmod
            venv = venvmod.WHERE
        except ImportError:
            venv = None
        mark = _libc.getenv(b"MIGRATE_MARK")
        return json.dumps({
            "cwd": os.getcwd(),
            "env": mark.decode() if mark is not None else None,
            "lib": libmod.WHERE,
            "venv": venv,
            "script_root": request.script_root,
            "path": request.path,
            "url": url_for("report", rest="x/y"),
            "pid": os.getpid(),
        })
    """
)

# Options both servers understand, as a migrating user's file has them.
COMMON = """\
[uwsgi]
project = %d
chdir = %(project)app
module = flaskapp:app
socket = %dapp.sock
chmod-socket = 660
chown-socket = {web_user}:{web_group}
processes = 2
threads = 2
master = true
env = MIGRATE_MARK=from-%n
pythonpath = %(project)lib
mount = /app=flaskapp:app
manage-script-name = true
vacuum = true
die-on-term = true
need-app = true
lazy-apps = true
max-requests = 100
max-requests-delta = 5
reload-on-rss = 512
harakiri = 30
buffer-size = 32768
limit-post = 1048576
post-buffering = 8192
single-interpreter = true
thunder-lock = true
enable-threads = true
pidfile = %dapp.pid
disable-logging = true
uid = {user}
gid = {group}
stats = %dstats.sock
static-map = /static=%dstatic
offload-threads = 1
route-uri = ^/old$ redirect:/new
"""
UNSUPPORTED = ("static-map", "offload-threads", "route-uri")
# wsgiwire only: an embedded uWSGI (pyuwsgi) cannot switch virtualenvs.
WSGIWIRE_ONLY = "virtualenv = %dvenv\n"


def _me() -> tuple[str, str]:
    """uid/gid: oneself (the app's packages may not be readable by another user)."""
    import grp
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name


def _web() -> tuple[str, str]:
    """chown-socket: as root, nginx's workers run as www-data and must reach the socket."""
    return ("www-data", "www-data") if os.getuid() == 0 else _me()


@pytest.fixture
def site() -> Iterator[Path]:
    root = world_readable_tempdir("wsgiwire-migrate-")
    try:
        (root / "app").mkdir()
        (root / "lib").mkdir()
        (root / "app" / "flaskapp.py").write_text(FLASK_APP)
        (root / "lib" / "libmod.py").write_text('WHERE = "lib"\n')
        venv.create(root / "venv", with_pip=False)
        version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
        (root / "venv" / "lib" / version / "site-packages" / "venvmod.py").write_text(
            'WHERE = "venv"\n'
        )
        (user, group), (web_user, web_group) = _me(), _web()
        common = COMMON.format(user=user, group=group, web_user=web_user, web_group=web_group)
        (root / "uwsgi.ini").write_text(common + WSGIWIRE_ONLY)
        (root / "common.ini").write_text(common)
        for path in root.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        yield root
    finally:
        import shutil

        shutil.rmtree(root, ignore_errors=True)


def _env() -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(REPO_ROOT),
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def wsgiwire_ini(site: Path, *options: str, ini: str = "uwsgi.ini") -> ManagedProcess:
    return ManagedProcess(
        [sys.executable, "-m", "wsgiwire", "serve", "--ini", str(site / ini), *options],
        log_path=site / "wsgiwire.log", env=_env(), cwd=site,
    )


def ask(sock: Path, path: str) -> dict[str, Any]:
    """What the app reports for ``path``, asked as nginx's uwsgi_params would (no
    SCRIPT_NAME, PATH_INFO the whole decoded path)."""
    target = Target("uwsgi", socket.AF_UNIX, str(sock), path, "")
    reply = uwsgi_request(target, build_params(target), timeout=20)
    assert reply.status == 200, reply.raw[:1000]
    report: dict[str, Any] = json.loads(reply.body)
    return report


def test_ini_behind_nginx_uwsgi_pass(site: Path) -> None:
    with wsgiwire_ini(site) as backend:
        wait_for_path(site / "app.sock")
        wait_for_output(backend, "serving uwsgi")
        with NginxServer("uwsgi-root", values={"BACKEND": f"unix:{site / 'app.sock'}"}) as nginx:
            status, _, body = nginx.request("GET", "/app/hello/world")
            assert status == 200, (body, nginx.error_log_text(), backend.output()[-3000:])
            report = json.loads(body)
        assert report["cwd"] == str(site / "app")  # chdir = %(project)app
        assert report["env"] == "from-uwsgi"  # env = MIGRATE_MARK=from-%n
        assert report["lib"] == "lib"  # pythonpath
        assert report["venv"] == "venv"  # virtualenv
        assert (report["script_root"], report["path"]) == ("/app", "/hello/world")  # mount
        assert report["url"] == "/app/x/y"
        assert (site / "app.pid").read_text().strip() == str(backend.pid)  # pidfile
        assert (site / "app.sock").stat().st_mode & 0o777 == 0o660  # chmod-socket
        wait_for_path(site / "stats.sock")  # stats
        log = backend.output()
    for key in UNSUPPORTED:
        assert len(re.findall(rf"uwsgi\.ini: {key} = .* is ignored: ", log)) == 1, log
    assert "thunder-lock" not in log  # a no-op: a debug line only
    assert not (site / "app.sock").exists()  # vacuum, as wsgiwire always does


def test_same_ini_same_view_as_real_uwsgi(site: Path) -> None:
    probe = subprocess.run([sys.executable, "-c", "import pyuwsgi"], capture_output=True,
                           timeout=30, check=False)
    if probe.returncode != 0:
        from .servers import unavailable

        unavailable("pyuwsgi (the uWSGI server as a wheel) is not installed")
    sock = site / "app.sock"
    paths = ["/app/", "/app/a/b", "/app/%C3%A4"]
    uwsgi = ManagedProcess(
        [sys.executable, "-c", "import pyuwsgi; pyuwsgi.run()", "--ini",
         str(site / "common.ini")],
        log_path=site / "uwsgi.log", env=_env(), cwd=site, stop_signal=2,
    )
    with uwsgi:
        wait_for_output(uwsgi, "spawned uWSGI worker")
        wait_for_path(sock)
        theirs = [ask(sock, p) for p in paths]
    with wsgiwire_ini(site, ini="common.ini") as backend:
        wait_for_output(backend, "serving uwsgi")
        ours = [ask(sock, p) for p in paths]
    for mine, real in zip(ours, theirs, strict=True):
        mine.pop("pid")
        real.pop("pid")
        assert mine == real
    assert theirs[1]["env"] == "from-common"
    assert (theirs[1]["script_root"], theirs[1]["path"]) == ("/app", "/a/b")


def test_strict_ini_refuses_with_status_2(site: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "wsgiwire", "serve", "--ini", str(site / "uwsgi.ini"),
         "--strict-ini"],
        capture_output=True, text=True, env=_env(), cwd=site, timeout=60, check=False,
    )
    assert done.returncode == 2, done.stderr
    for key in UNSUPPORTED:
        assert f"{key} = " in done.stderr
    assert "3 option(s)" in done.stderr
    assert not (site / "app.sock").exists()  # refused before binding


def test_command_line_overrides_the_ini(site: Path) -> None:
    other = site / "other.sock"
    with wsgiwire_ini(site, "--bind", f"unix:{other}", "--env", "MIGRATE_MARK=cli",
                      "--workers", "1") as backend:
        wait_for_output(backend, "serving uwsgi")
        report = ask(other, "/app/x")
        assert report["env"] == "cli"
        assert report["cwd"] == str(site / "app")  # the rest of the file still applies
        assert not (site / "app.sock").exists()


def test_logto_and_touch_reload(site: Path) -> None:
    (site / "small.ini").write_text(textwrap.dedent("""\
        [uwsgi]
        chdir = %dapp
        module = flaskapp:app
        pythonpath = %d/lib
        socket = %dsmall.sock
        processes = 2
        logto = %dsmall.log
        touch-reload = %dreload.touch
        """))
    touched, logfile = site / "reload.touch", site / "small.log"
    touched.write_text("")
    with wsgiwire_ini(site, ini="small.ini") as backend:
        wait_for_path(site / "small.sock")
        wait_for_path(logfile)
        before = ask(site / "small.sock", "/x")["pid"]
        deadline = time.monotonic() + 20
        while "serving uwsgi" not in logfile.read_text():
            assert time.monotonic() < deadline, logfile.read_text()
            time.sleep(0.05)
        later = time.time() + 5
        os.utime(touched, (later, later))
        while "reload finished" not in logfile.read_text():
            assert time.monotonic() < deadline, logfile.read_text()
            time.sleep(0.05)
        log = logfile.read_text()
        assert f"reloading ({touched} was touched)" in log, log
        # The old workers drain and go: only the new generation answers now.
        pids = set()
        while before in pids or not pids:
            assert time.monotonic() < deadline, (before, pids)
            pids = {ask(site / "small.sock", "/x")["pid"] for _ in range(4)}
        assert "serving uwsgi" not in backend.output()  # logto: not on stderr
