"""systemd (and supervisor) deployment: ``server-configs/systemd/wsgiwire.{socket,service}``.

* Socket activation exactly as systemd does it: a small activator creates the unix
  socket (mode 0660, as ``SocketMode=0660``), puts it on fd 3, sets ``LISTEN_FDS=1``,
  ``LISTEN_PID`` to its own pid and ``LISTEN_FDNAMES``, then execs (keeping its pid)
  the unit's own ``ExecStart`` line, rendered, in its ``WorkingDirectory``. Requests are
  served by both workers, a reload (``ExecReload``: SIGHUP) keeps serving from the
  inherited socket, and at exit the socket file, which systemd owns, is left alone.
* The units as ``wsgiwire config systemd`` prints them, with real values (the venv's
  ``wsgiwire``, existing dirs, through ``--set``), pass
  ``systemd-analyze verify`` with nothing to say; the ``ExecStart`` and supervisor
  ``command=`` lines parse with ``wsgiwire``'s own argument parser, and each stop
  timeout leaves room for the graceful timeout.
"""

from __future__ import annotations

import configparser
import os
import re
import shlex
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from wsgiwire._cli import build_parser
from wsgiwire._client import parse_target

from ._ops_support import alive, children, fcgi, wait_until
from .servers import (
    REPO_ROOT,
    ManagedProcess,
    Stage,
    find_binary,
    server_user,
    wait_for_output,
)

pytestmark = pytest.mark.integration


# What systemd does before exec'ing ExecStart for a socket-activated service.
ACTIVATOR = """
import os, socket, sys
path = sys.argv[1]
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
old = os.umask(0o777)
try:
    sock.bind(path)
finally:
    os.umask(old)
os.chmod(path, 0o660)  # SocketMode=0660
sock.listen(1024)  # Backlog=1024
fd = sock.detach()
if fd != 3:
    os.dup2(fd, 3)
    os.close(fd)
os.set_inheritable(3, True)
os.environ["LISTEN_FDS"] = "1"
os.environ["LISTEN_PID"] = str(os.getpid())
os.environ["LISTEN_FDNAMES"] = "wsgiwire.socket"
os.execv(sys.argv[2], sys.argv[2:])
"""


def wsgiwire_command(tmp_path: Path) -> str:
    """The installed ``wsgiwire`` script beside this interpreter, else an equivalent one."""
    installed = Path(sys.executable).parent / "wsgiwire"
    if installed.is_file() and os.access(installed, os.X_OK):
        return str(installed)
    script = tmp_path / "wsgiwire"
    script.write_text(
        f"#!{sys.executable}\nimport sys\nfrom wsgiwire._cli import main\nsys.exit(main())\n"
    )
    script.chmod(0o755)
    return str(script)


def unit_values(stage: Stage, tmp_path: Path, socket_path: Path) -> dict[str, str]:
    user, group = server_user()
    return {
        "APP_DIR": str(stage.root),
        "SOCKET_USER": user,
        "SOCKET_GROUP": group,
        "USER": user,
        "GROUP": group,
        "WSGIWIRE": wsgiwire_command(tmp_path),
    }


def config_output(target: str, values: dict[str, str], socket_path: Path) -> str:
    """What ``wsgiwire config TARGET --app ops_app --bind unix:SOCKET --set ...`` prints."""
    argv = [sys.executable, "-m", "wsgiwire", "config", target, "--app", "ops_app",
            "--bind", f"unix:{socket_path}", *(f"--set={k}={v}" for k, v in values.items())]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False,
                          cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert done.returncode == 0, done.stderr
    return done.stdout


def render_units(stage: Stage, tmp_path: Path, socket_path: Path) -> dict[str, Path]:
    """The two files ``wsgiwire config systemd`` prints, saved under their own names."""
    text = config_output("systemd", unit_values(stage, tmp_path, socket_path), socket_path)
    parts = re.split(r"^# ---- /etc/systemd/system/(\S+) ----\n", text, flags=re.M)
    assert parts[0] == "" and parts[1::2] == ["ops_app.socket", "ops_app.service"], text
    out = tmp_path / "units"
    out.mkdir(exist_ok=True)
    units = {}
    for name, unit in zip(parts[1::2], parts[2::2], strict=True):
        kind = name.rpartition(".")[2]
        units[f"wsgiwire.{kind}"] = out / name
        units[f"wsgiwire.{kind}"].write_text(unit)
    return units


def unit_section(path: Path, section: str) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser[section]


def graceful_timeout(argv: list[str]) -> float:
    args = build_parser().parse_args(argv)
    assert args.command == "serve"
    value: float = args.graceful_timeout
    return value


# ---------------------------------------------------------------------------------------
# Socket activation


def test_socket_activation_as_systemd_does_it(stage: Stage, tmp_path: Path) -> None:
    sock_path = tmp_path / "app.sock"
    units = render_units(stage, tmp_path, sock_path)
    service = unit_section(units["wsgiwire.service"], "Service")
    exec_start = shlex.split(service["ExecStart"])
    assert "--bind" not in " ".join(exec_start)  # the socket comes from systemd
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    process = ManagedProcess(
        [sys.executable, "-c", ACTIVATOR, str(sock_path), *exec_start],
        log_path=tmp_path / "service.log",
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TMPDIR": str(tmpdir)},
        cwd=Path(service["WorkingDirectory"]),
    )
    with process:
        output = wait_for_output(process, "serving fastcgi on")
        assert str(sock_path) in output
        info = os.stat(sock_path)
        assert stat.S_ISSOCK(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o660
        # The exec kept the activator's pid: LISTEN_PID named the server itself.
        wait_until(lambda: len(children(process.pid)) == 2, timeout=10.0, what="two workers")
        workers = children(process.pid)
        target = parse_target(f"fastcgi+unix://{sock_path}/x")

        def served_by(rounds: int) -> set[int]:
            pids = set()
            for i in range(rounds):
                reply = fcgi(target, f"/activated/{i}/hello")
                assert reply.status == 200, process.output()
                pids.add(int(reply.header("X-Worker-Pid") or 0))
            return pids

        assert served_by(20) <= workers
        os.kill(process.pid, signal.SIGHUP)  # ExecReload=/bin/kill -HUP $MAINPID
        wait_until(lambda: not any(alive(pid) for pid in workers), timeout=10.0,
                   what="the old workers exit after a reload")
        new = children(process.pid)
        assert len(new) == 2 and not new & workers
        assert served_by(10) <= new
        os.kill(process.pid, signal.SIGTERM)  # KillSignal=SIGTERM
        wait_until(lambda: process.returncode() is not None, timeout=10.0, what="stopped")
    assert process.returncode() == 0, process.output()
    assert "LISTEN_FDS" not in process.output()
    # systemd owns the socket: it outlives the service, ready for the next activation.
    assert sock_path.exists()


# ---------------------------------------------------------------------------------------
# The unit files and the supervisor example


def test_rendered_units_pass_systemd_analyze_verify(stage: Stage, tmp_path: Path) -> None:
    # A tool check, not a server: where the tool is missing it skips, in CI too.
    analyze = find_binary("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed: the unit files were not verified")
    units = render_units(stage, tmp_path, Path("/run/wsgiwire/app.sock"))
    done = subprocess.run(
        [analyze, "verify", "--man=no", *map(str, units.values())],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    report = done.stdout + done.stderr
    assert done.returncode == 0, report
    # verify only warns (status 0) about unknown keys or unparsable values: none allowed.
    assert report.strip() == "", report


def test_exec_start_parses_and_stop_timeout_covers_the_graceful_timeout(
    stage: Stage, tmp_path: Path
) -> None:
    units = render_units(stage, tmp_path, Path("/run/wsgiwire/app.sock"))
    service = unit_section(units["wsgiwire.service"], "Service")
    argv = shlex.split(service["ExecStart"])
    assert os.access(argv[0], os.X_OK)
    grace = graceful_timeout(argv[1:])
    assert float(service["TimeoutStopSec"]) > grace
    socket_unit = unit_section(units["wsgiwire.socket"], "Socket")
    assert socket_unit["SocketMode"] == "0660"


def test_supervisor_command_parses_and_stopwaitsecs_covers_the_graceful_timeout(
    stage: Stage, tmp_path: Path
) -> None:
    values = unit_values(stage, tmp_path, Path("/run/wsgiwire/app.sock"))
    del values["GROUP"]  # supervisord runs a program as a user, with that user's group
    text = config_output("supervisor", values, Path("/run/wsgiwire/app.sock"))
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";",))
    parser.read_string(text)
    program = parser["program:ops_app"]
    # a stop reaches the workers too (supervisord signals the whole process group)
    assert (program["stopasgroup"], program["killasgroup"]) == ("true", "true")
    argv = shlex.split(program["command"])
    assert argv[0] == values["WSGIWIRE"]
    grace = graceful_timeout(argv[1:])
    assert float(program["stopwaitsecs"]) > grace
    assert program["stopsignal"] == "TERM"
