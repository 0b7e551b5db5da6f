"""Startup mistakes: ``wsgiwire serve`` says what is wrong in exactly one line, exit 2.

Each case runs the real command (``python -m wsgiwire serve``) from a directory holding
small app modules. Checked before anything forks (options, users, groups, the pid file
and socket directories), or, for an application that cannot load, reported once by the
master for the first generation of workers (not once per worker, no traceback, the
app's own file:line, no importlib frames), with no worker left behind.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 20.0

APPS = {
    "goodapp.py": "VALUE = 1\n\ndef app(environ, start_response):\n    return []\n",
    "raising.py": "import os\n\n\nraise RuntimeError('no DATABASE_URL in the environment')\n",
    "helperraise.py": "def helper():\n    return {}['missing']\n\n\napp = helper()\n",
    "broken.py": "def app(environ, start_response):\n    return (\n",
    "needsdep.py": "import nosuchdependency_xyz\n",
    "hangs.py": "import time\n\ntime.sleep(60)  # a database that never answers\n",
}

LOAD = "wsgiwire: cannot load the application: "

CASES = [
    ("wrong-attribute", ["goodapp:nope"],
     LOAD + "module 'goodapp' has no attribute 'nope'"),
    ("not-callable", ["goodapp:VALUE"],
     LOAD + "goodapp:VALUE is not callable (it is int)"),
    ("raises-at-import", ["raising:app"],
     LOAD + "raising.py:4: RuntimeError: no DATABASE_URL in the environment"),
    ("raises-in-a-helper", ["helperraise:app"],
     LOAD + "helperraise.py:2: KeyError: 'missing'"),
    ("raises-at-import-workers-0", ["raising:app", "--workers", "0"],
     LOAD + "raising.py:4: RuntimeError: no DATABASE_URL in the environment"),
    ("raises-at-import-preload", ["raising:app", "--preload"],
     LOAD + "raising.py:4: RuntimeError: no DATABASE_URL in the environment"),
    ("syntax-error", ["broken:app"],
     LOAD + "broken.py:2: SyntaxError: '(' was never closed"),
    ("missing-dependency", ["needsdep:app"],
     LOAD + "needsdep.py:1: ModuleNotFoundError: No module named 'nosuchdependency_xyz'"),
    ("no-such-module", ["nosuchmodule_xyz:app"],
     "wsgiwire: cannot import module 'nosuchmodule_xyz' (searched {cwd} and sys.path)"),
    ("no-such-user", ["goodapp:app", "--user", "nosuchuser_xyz"],
     "wsgiwire: --user nosuchuser_xyz: no such user"),
    ("no-such-group", ["goodapp:app", "--group", "nosuchgroup_xyz"],
     "wsgiwire: --group nosuchgroup_xyz: no such group"),
    ("pid-file-no-directory", ["goodapp:app", "--pid-file", "/nonexistent-wsgiwire/x.pid"],
     "wsgiwire: --pid-file /nonexistent-wsgiwire/x.pid: directory /nonexistent-wsgiwire "
     "does not exist"),
    ("pid-file-unwritable-directory", ["goodapp:app", "--pid-file", "/proc/wsgiwire.pid"],
     re.compile(r"wsgiwire: --pid-file /proc/wsgiwire\.pid: cannot create the file in /proc "
                r"\((No such file or directory|Permission denied)\)")),
    ("socket-unwritable-directory", ["goodapp:app", "--bind", "unix:/proc/wsgiwire.sock"],
     re.compile(r"wsgiwire: --bind unix:/proc/wsgiwire\.sock: cannot create the socket in "
                r"/proc \((No such file or directory|Permission denied)\)")),
    ("socket-no-directory", ["goodapp:app", "--bind", "unix:/nonexistent-wsgiwire/a.sock"],
     "wsgiwire: --bind unix:/nonexistent-wsgiwire/a.sock: directory /nonexistent-wsgiwire "
     "does not exist"),
    ("hangs-at-import", ["hangs:app", "--boot-timeout", "1"],
     LOAD + "the application did not load within --boot-timeout 1 s (an import that hangs?)"),
    ("negative-boot-timeout", ["goodapp:app", "--boot-timeout", "-1"],
     "wsgiwire: --boot-timeout must be 0 or more, not -1.0"),
    ("negative-workers", ["goodapp:app", "--workers", "-1"],
     "wsgiwire: --workers must be 0 or more, not -1"),
    ("negative-threads", ["goodapp:app", "--threads", "-2"],
     "wsgiwire: --threads must be 0 or more, not -2"),
    ("negative-max-requests", ["goodapp:app", "--max-requests", "-1"],
     "wsgiwire: --max-requests must be 0 or more, not -1"),
    ("access-log-typo", ["goodapp:app", "--access-log", "--access-log-format", "%(h)s %(nope)s"],
     re.compile(r"wsgiwire: --access-log-format: '%\(nope\)s' is not an access log atom .*")),
    ("log-file-no-directory", ["goodapp:app", "--log-file", "/nonexistent-wsgiwire/w.log"],
     re.compile(r"wsgiwire: cannot open a log file: .*No such file or directory.*")),
]


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("startup-apps")
    for name, text in APPS.items():
        (path / name).write_text(text)
    return path


@pytest.mark.parametrize(("args", "expected"), [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])
def test_a_startup_mistake_is_one_line_and_exit_status_2(
    app_dir: Path, args: list[str], expected: str | re.Pattern[str]
) -> None:
    argv = [sys.executable, "-m", "wsgiwire", "serve", *args]
    if "--bind" not in args:
        argv += ["--bind", "127.0.0.1:0"]
    if "--workers" not in args and "--preload" not in args:
        argv += ["--workers", "2"]
    result = subprocess.run(
        argv, cwd=app_dir, capture_output=True, timeout=TIMEOUT, check=False,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO),
             "PYTHONDONTWRITEBYTECODE": "1"},
    )
    output = (result.stdout + result.stderr).decode()
    assert result.returncode == 2, output
    lines = output.splitlines()
    assert len(lines) == 1, output
    if isinstance(expected, str):
        assert lines[0] == expected.format(cwd=app_dir), output
    else:
        assert expected.fullmatch(lines[0]), output
    assert not list(app_dir.glob("*.sock")) and not list(app_dir.glob("*.pid"))


def test_the_writability_check_creates_nothing_it_leaves_behind(tmp_path: Path) -> None:
    """The pid file and socket directories are tried with a scratch file (O_EXCL, a
    random name), removed at once; an existing pid file is opened, never truncated."""
    from wsgiwire._prepare import _check_writable

    _check_writable("--pid-file", str(tmp_path / "x.pid"))
    _check_writable("--bind", str(tmp_path / "x.sock"), what="socket", shown="unix:x")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "old.pid").write_text("123\n")
    _check_writable("--pid-file", str(tmp_path / "old.pid"))
    assert [p.name for p in tmp_path.iterdir()] == ["old.pid"]
    assert (tmp_path / "old.pid").read_text() == "123\n"
