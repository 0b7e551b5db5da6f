#!/usr/bin/env python3
"""Side-by-side benchmark: the same WSGI apps behind one nginx, backend by backend.

    .venv/bin/python bench/run.py [--duration 10] [--only NAMES] [--scenarios NAMES]
                                  [--out bench/results]

For every (backend, scenario) cell the runner starts, from scratch and in a fresh run
dir under /tmp:

1. the backend (2 worker processes) on a unix socket, in its own process group;
2. nginx (1 worker process) on 127.0.0.1:<ephemeral port>, from the templates in
   ``bench/nginx/``, passing to the backend over that socket;
3. one real request, checked byte for byte (status 200, the exact body);
4. a short wrk warm-up, then the measured ``wrk -t1 -c16 -d<duration>`` run;
5. one more checked request, then it stops nginx and the backend by their own PIDs
   (SIGTERM, a bounded wait, SIGKILL), then whatever is left of their process trees,
   by PID.

A run in which wrk saw any socket error, any status above 399 or no response at all,
nginx logged an error, or the answer after it was wrong, is reported as ERRORS and
never as throughput. Results go to
``<out>/latest.md``, ``latest.json`` and ``latest.png``. Only ratios measured in the
same run mean anything: see bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import http.client
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from types import FrameType
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
NGINX_DIR = BENCH_DIR / "nginx"
VENV_BIN = Path(sys.prefix) / "bin"
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench import apps  # noqa: E402 - needs the repo root on sys.path first

LOOPBACK = "127.0.0.1"
WORKERS = 2
WRK_THREADS = 1
WRK_CONNECTIONS = 16
# wrk's default. A response slower than this counts as an error (a stall shorter than the
# run would otherwise go unnoticed: wrk counts timeouts only once they expire).
WRK_TIMEOUT_S = 2
# flup 1.0.3's prefork master never leaves select() on SIGTERM under Python 3 (PEP 475
# retries the call and nothing else wakes it), so it is killed after this grace.
FLUP_PREFORK_GRACE_S = 2.0
STARTUP_TIMEOUT_S = 30.0  # Flask import + two forks on a busy 2-core box
READY_TIMEOUT_S = 15.0  # nginx up but the backend still answering 502
STOP_TIMEOUT_S = 10.0
QUIET_THRESHOLD_PCT = 10.0  # before a cell, wait until others use less of the CPUs than this
DISTURBED_PCT = 5.0  # a cell during which others used more CPU than this gets a note
MIB = 1 << 20
CLK_TCK = os.sysconf("SC_CLK_TCK")
_PLACEHOLDER = re.compile(r"\{\{([A-Z][A-Z0-9_]*)\}\}")
_NGINX_BAD = re.compile(r"\[(error|crit|alert|emerg)\]")


class BenchError(RuntimeError):
    """A cell could not be set up or checked (the message says why)."""


# ------------------------------------------------------------------------------------
# Scenarios


@dataclass(frozen=True)
class Scenario:
    name: str
    app: str  # "bench.apps:NAME"
    method: str
    expected_body: bytes
    lua: Path  # wrk script (report.lua prints the machine-readable summary)
    request_body: bytes = b""
    # What "MiB/s" counts: the response bytes wrk received, or the request bodies sent.
    payload: str = "response"
    description: str = ""


_UPLOAD_BODY = bytes(range(256)) * (apps.UPLOAD_SIZE // 256)  # the same bytes post.lua sends

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("hello", "bench.apps:hello", "GET", apps.HELLO_BODY, BENCH_DIR / "report.lua",
                 description="GET, 13-byte body"),
        Scenario("flask", "bench.apps:flask_app", "GET", apps.FLASK_BODY,
                 BENCH_DIR / "report.lua", description="GET, a Flask route returning a str"),
        Scenario("download", "bench.apps:download", "GET", apps.DOWNLOAD_BODY,
                 BENCH_DIR / "report.lua", description="GET, 1 MiB body (one bytes object)"),
        Scenario("upload", "bench.apps:upload", "POST", str(apps.UPLOAD_SIZE).encode(),
                 BENCH_DIR / "post.lua", request_body=_UPLOAD_BODY, payload="request",
                 description="POST 1 MiB, the app reads all of wsgi.input"),
    )
}


# ------------------------------------------------------------------------------------
# Backends

Command = Callable[[Scenario, Path], list[str]]


@dataclass(frozen=True)
class Backend:
    name: str
    site: str  # template under bench/nginx/ for nginx's server block
    command: Command | None  # argv to start it (None: nginx answers by itself)
    description: str
    scenarios: tuple[str, ...] | None = None  # None: every scenario
    requires: Callable[[], str | None] = lambda: None  # reason it cannot run, or None
    group: str = ""  # "flup" for the "best of flup" ratio
    stop_grace: float = STOP_TIMEOUT_S  # seconds after SIGTERM before SIGKILL


def _build_name() -> str:
    """The build the ``wsgiwire-*`` backends run, as their own ``wsgiwire --version``
    says: the venv's console script, which may import another tree than this
    script's directory (a copy of the checkout run with this venv measures the
    venv's wsgiwire, not the copy)."""
    out = subprocess.run(
        [_venv("wsgiwire"), "--version"], capture_output=True, text=True,
        check=False, cwd=REPO_ROOT, timeout=30,
    ).stdout
    match = re.search(r"\((.*)\)\s*$", out)
    return match.group(1) if match else f"unknown ({out.strip() or 'no --version'})"


def interpreter() -> str:
    """The interpreter every Python backend runs (this venv's), and how it was built.

    What matters for speed and is readable here: where it lives (a distribution's
    build or one compiled by pyenv), whether libpython is linked into the executable
    or loaded as a shared library, and the C optimisation flags."""
    executable = os.path.realpath(sys.executable)
    shared = "shared libpython"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        libs = subprocess.run(["ldd", executable], capture_output=True, text=True,
                              check=False, timeout=10).stdout
        shared = "shared libpython" if "libpython" in libs else "libpython in the executable"
    opt = " ".join(flag for flag in str(sysconfig.get_config_var("OPT") or "").split()
                   if flag.startswith(("-O", "-flto", "-fprofile")))
    return f"{platform.python_version()} ({executable}, {shared}, {opt or 'no -O flag'})"


def _venv(tool: str) -> str:
    return str(VENV_BIN / tool)


def _wsgiwire(protocol: str) -> Command:
    def command(scenario: Scenario, sock: Path) -> list[str]:
        return [
            _venv("wsgiwire"), "serve", scenario.app, "--protocol", protocol,
            "--bind", f"unix:{sock}", "--workers", str(WORKERS), "--log-level", "warning",
        ]

    return command


def _wsgiwire_access_log(protocol: str) -> Command:
    """The same backend writing an access log (default format) next to its socket."""
    plain = _wsgiwire(protocol)

    def command(scenario: Scenario, sock: Path) -> list[str]:
        return [*plain(scenario, sock), "--access-log-file", str(sock.parent / "access.log")]

    return command


# ``python -m wsgiwire`` without the working directory on sys.path (as in the console
# script, whose sys.path[0] is the venv's bin/): the checkout's own ``__main__`` finds
# its own CLI module, whatever that checkout names it (the console script names this
# checkout's, ``wsgiwire._cli``, which an older checkout does not have).
_BASE_MAIN = ("import sys, runpy; sys.path.pop(0); "
              "runpy.run_module('wsgiwire', run_name='__main__', alter_sys=True)")

def _wsgiwire_base(protocol: str, checkout: Path) -> Command:
    """``wsgiwire serve`` as for the current checkout, importing wsgiwire from ``checkout``.

    The same interpreter, with ``PYTHONPATH`` before the editable install of this
    checkout, running the checkout's ``__main__``; the app is the same ``bench.apps``
    object, found in the working directory. Bytecode goes to a cache outside
    ``checkout``, which is never written to.
    """
    plain = _wsgiwire(protocol)

    def command(scenario: Scenario, sock: Path) -> list[str]:
        _script, *args = plain(scenario, sock)
        return ["env", "-u", "PYTHONDONTWRITEBYTECODE",  # see compile_bytecode
                f"PYTHONPATH={checkout}", f"PYTHONPYCACHEPREFIX={BASE_PYCACHE}",
                _venv("python"), "-c", _BASE_MAIN, *args]

    return command


def _flup(kind: str) -> Command:
    def command(scenario: Scenario, sock: Path) -> list[str]:
        return [_venv("python"), "-m", "bench.serve_flup", kind, scenario.app, str(sock)]

    return command


def _ceiling(scenario: Scenario, sock: Path) -> list[str]:
    return [_venv("python"), "-m", "bench.ceiling", scenario.app, str(sock), str(WORKERS)]


def _uwsgi(scenario: Scenario, sock: Path) -> list[str]:
    return [
        _venv("uwsgi"), "--master", "--processes", str(WORKERS), "--socket", str(sock),
        "--module", scenario.app, "--pythonpath", str(REPO_ROOT), "--chdir", str(REPO_ROOT),
        "--single-interpreter", "--need-app", "--die-on-term", "--disable-logging",
    ]


def _gunicorn(scenario: Scenario, sock: Path) -> list[str]:
    return [
        _venv("gunicorn"), "--workers", str(WORKERS), "--worker-class", "sync",
        "--bind", f"unix:{sock}", "--chdir", str(REPO_ROOT), "--graceful-timeout", "5",
        "--log-level", "warning", scenario.app,
    ]


_wsgiwire_protocols: list[str] | None = None


def wsgiwire_protocols() -> list[str]:
    """The ``--protocol`` choices ``wsgiwire serve --help`` lists (asked once)."""
    global _wsgiwire_protocols
    if _wsgiwire_protocols is None:
        out = subprocess.run(
            [_venv("wsgiwire"), "serve", "--help"], capture_output=True, text=True,
            check=False, cwd=REPO_ROOT, timeout=30,
        ).stdout
        match = re.search(r"--protocol \{([^}]*)\}", out)
        _wsgiwire_protocols = match.group(1).split(",") if match else []
    return _wsgiwire_protocols


def _needs_protocol(protocol: str) -> Callable[[], str | None]:
    def check() -> str | None:
        if protocol in wsgiwire_protocols():
            return None
        return f"`wsgiwire serve --help` does not list --protocol {protocol} yet"

    return check


def _needs_module(module: str) -> Callable[[], str | None]:
    def check() -> str | None:
        import importlib.util

        return None if importlib.util.find_spec(module) else f"{module} is not installed"

    return check


BACKENDS: dict[str, Backend] = {
    b.name: b
    for b in (
        Backend("wsgiwire-fastcgi", "fastcgi-keepalive", _wsgiwire("fastcgi"),
                "wsgiwire serve --protocol fastcgi, 2 workers; nginx keepalive 32 + "
                "fastcgi_keep_conn on", requires=_needs_protocol("fastcgi")),
        Backend("wsgiwire-fastcgi-nokeep", "fastcgi", _wsgiwire("fastcgi"),
                "the same, one FastCGI connection per request",
                requires=_needs_protocol("fastcgi")),
        # Hooks for the next front-ends: they run as soon as the CLI lists the protocol.
        Backend("wsgiwire-scgi", "scgi", _wsgiwire("scgi"),
                "wsgiwire serve --protocol scgi, 2 workers", requires=_needs_protocol("scgi")),
        Backend("wsgiwire-uwsgi", "uwsgi", _wsgiwire("uwsgi"),
                "wsgiwire serve --protocol uwsgi, 2 workers", requires=_needs_protocol("uwsgi")),
        Backend("wsgiwire-fastcgi-accesslog", "fastcgi-keepalive",
                _wsgiwire_access_log("fastcgi"),
                "wsgiwire-fastcgi with --access-log-file (the default combined format)",
                requires=_needs_protocol("fastcgi"), scenarios=("hello",)),
        Backend("wsgiwire-uwsgi-accesslog", "uwsgi", _wsgiwire_access_log("uwsgi"),
                "wsgiwire-uwsgi with --access-log-file (the default combined format)",
                requires=_needs_protocol("uwsgi"), scenarios=("hello",)),
        Backend("scgi-ceiling", "scgi", _ceiling,
                "not a server: wsgiwire's SCGI codec, environ and response in a bare "
                "accept loop, 2 processes (bench/ceiling.py): the least CPU any Python "
                "SCGI server built on them could use", scenarios=("hello",)),
        Backend("flup-fcgi", "fastcgi", _flup("fcgi"),
                "flup.server.fcgi WSGIServer: 1 process, a thread per connection",
                requires=_needs_module("flup"), group="flup"),
        Backend("flup-fcgi-keep", "fastcgi-keepalive", _flup("fcgi"),
                "the same with nginx keepalive 32 + fastcgi_keep_conn on",
                requires=_needs_module("flup"), group="flup"),
        Backend("flup-fcgi_fork", "fastcgi", _flup("fcgi_fork"),
                "flup.server.fcgi_fork: prefork, exactly 2 children",
                requires=_needs_module("flup"), group="flup", stop_grace=FLUP_PREFORK_GRACE_S),
        Backend("flup-scgi_fork", "scgi", _flup("scgi_fork"),
                "flup.server.scgi_fork: prefork, exactly 2 children (scgi_pass)",
                requires=_needs_module("flup"), group="flup", stop_grace=FLUP_PREFORK_GRACE_S),
        Backend("uwsgi", "uwsgi", _uwsgi,
                "uWSGI 2.0 (C, pyuwsgi wheel): --master --processes 2, uwsgi_pass",
                requires=_needs_module("pyuwsgi")),
        Backend("gunicorn", "proxy", _gunicorn,
                "gunicorn: 2 sync workers on a unix socket, proxy_pass (HTTP/1.0)",
                requires=_needs_module("gunicorn")),
        Backend("nginx-alone", "alone", None,
                'nginx answering `return 200 "Hello, World!"` itself: the ceiling',
                scenarios=("hello",)),
    )
}

# --base DIR: each of these again as base-NAME, running the wsgiwire of another checkout
# (DIR, e.g. `git worktree add --detach DIR COMMIT`) in the same rounds.
BASE_OF = {"wsgiwire-fastcgi": "fastcgi", "wsgiwire-fastcgi-nokeep": "fastcgi",
           "wsgiwire-scgi": "scgi", "wsgiwire-uwsgi": "uwsgi"}
BASE_PREFIX = "base-"
BASE_PYCACHE = Path(tempfile.gettempdir()) / "wsgiwire-bench-base-pycache"


def _probe_base(checkout: Path, code: str) -> str:
    """What ``code`` prints in a base backend's interpreter (started the way it starts)."""
    proc = subprocess.run(
        [_venv("python"), "-c", "import sys; sys.path.pop(0); " + code],
        capture_output=True, text=True, check=False, cwd=REPO_ROOT, timeout=30,
        env={**os.environ, "PYTHONPATH": str(checkout), "PYTHONPYCACHEPREFIX": str(BASE_PYCACHE)},
    )
    return proc.stdout.strip() or proc.stderr.strip()[-200:]


def base_import_path(checkout: Path) -> str:
    """Where a base backend's interpreter finds ``wsgiwire``."""
    return _probe_base(checkout, "import wsgiwire; print(wsgiwire.__file__)")


def base_build(checkout: Path) -> str:
    """Which build (``wsgiwire._build.name()``) a base backend's interpreter runs."""
    return _probe_base(checkout, "from wsgiwire._build import name; print(name())")


def use_compiled_as_base() -> None:
    """``--compiled DIR``: the base twins are the compiled build, named compiled-NAME."""
    global BASE_PREFIX
    BASE_PREFIX = COMPILED_PREFIX


COMPILED_PREFIX = "compiled-"


def compile_bytecode(base: Path | None) -> None:
    """Write the bytecode the wsgiwire backends import before any of them starts, as
    ``pip install`` does. With PYTHONDONTWRITEBYTECODE set and no bytecode to read, a
    backend compiles what it imports from source at each start, and each worker
    carries the compiler's leftovers (an idle compiled worker measured 22.7 MiB
    instead of 18.4): this checkout's modules are compiled in its tree; the
    --base/--compiled backends read all their bytecode, the standard library's too,
    from BASE_PYCACHE, so they may write it there (see _wsgiwire_base), and one of
    them runs once, until its workers serve, before the first cell."""
    subprocess.run([_venv("python"), "-m", "compileall", "-q", str(REPO_ROOT / "wsgiwire"),
                    str(BENCH_DIR)], check=True, timeout=300, stdout=subprocess.DEVNULL)
    if base is None:
        return
    with run_dir(False) as rdir:
        sock, log = rdir / "backend.sock", rdir / "backend.log"
        argv = _wsgiwire_base("fastcgi", base)(SCENARIOS["hello"], sock)
        server = start_process([*argv, "--log-level", "info"], log, "bytecode")
        try:
            wait_for(lambda: "serving fastcgi on" in log.read_text(errors="replace"),
                     STARTUP_TIMEOUT_S, "the base backend writing its bytecode", server, log)
        finally:
            stop_process(server)


def add_base_backends(checkout: Path, *, probe: bool = True) -> None:
    """Register base-NAME for every BASE_OF backend; fails unless wsgiwire loads from DIR
    (and, for ``--compiled``, unless DIR's is the compiled build)."""
    found = base_import_path(checkout) if probe else ""
    if probe and Path(found).resolve() != (checkout / "wsgiwire" / "__init__.py").resolve():
        raise BenchError(f"--base {checkout}: wsgiwire loads from {found}, not from there")
    if probe and BASE_PREFIX == COMPILED_PREFIX:
        build = base_build(checkout)
        if not build.startswith("compiled"):
            raise BenchError(f"--compiled {checkout}: that wsgiwire is not compiled ({build})")
    for name, protocol in BASE_OF.items():
        current = BACKENDS[name]
        BACKENDS[BASE_PREFIX + name] = dataclasses.replace(
            current, name=BASE_PREFIX + name, command=_wsgiwire_base(protocol, checkout),
            description=(f"{name} with the compiled wsgiwire of {checkout}"
                         if BASE_PREFIX == COMPILED_PREFIX
                         else f"{name} with the wsgiwire of --base {checkout}"),
        )


REFERENCE_UWSGI = "uwsgi"
REFERENCE_CEILING = "nginx-alone"


# ------------------------------------------------------------------------------------
# Processes: each in its own session, stopped by its own PID, nothing left behind

_RUNNING: dict[int, str] = {}  # pid -> what it is, for the last-resort cleanup
# Every process ever seen in the tree of a process we started: pid -> its start time.
# A prefork server's workers may leave its process group (flup's call setpgid) and
# outlive their master; they are still ours, and are found and stopped by PID.
_FAMILY: dict[int, dict[int, int]] = {}
FAMILY_GRACE_S = 2.0  # after a master is gone, how long its workers get to exit


@dataclass
class ProcStat:
    pid: int
    ppid: int
    pgid: int
    state: str
    start: int  # start time in clock ticks since boot: tells a reused PID apart
    cpu_ticks: int  # utime + stime
    reaped_ticks: int  # cutime + cstime: children it has waited for


def proc_stat(pid: int) -> ProcStat | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm may contain spaces and parentheses: split after the last ')'.
    fields = raw[raw.rindex(")") + 2 :].split()
    return ProcStat(
        pid=pid, ppid=int(fields[1]), pgid=int(fields[2]), state=fields[0],
        start=int(fields[19]),
        cpu_ticks=int(fields[11]) + int(fields[12]),
        reaped_ticks=int(fields[13]) + int(fields[14]),
    )


def all_procs(*, zombies: bool = False) -> list[ProcStat]:
    stats = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = proc_stat(int(entry))
            if st is not None and (zombies or st.state != "Z"):
                stats.append(st)
    return stats


def family(root: int, *, zombies: bool = False) -> list[ProcStat]:
    """``root`` and every live process descended from it or in its process group,
    including descendants seen earlier that have since been re-parented.

    With ``zombies``, also the dead ones not yet reaped: their CPU time is still in
    their own /proc entry and not yet in their parent's (for CPU accounting).
    """
    procs = all_procs(zombies=zombies)
    seen = _FAMILY.setdefault(root, {})
    by_parent: dict[int, list[ProcStat]] = {}
    for p in procs:
        by_parent.setdefault(p.ppid, []).append(p)
    members = {
        p.pid: p for p in procs
        if root in (p.pid, p.pgid) or seen.get(p.pid) == p.start
    }
    todo = list(members)
    while todo:
        for child in by_parent.get(todo.pop(), []):
            if child.pid not in members:
                members[child.pid] = child
                todo.append(child.pid)
    for p in members.values():
        seen[p.pid] = p.start
    return list(members.values())


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def start_process(argv: Sequence[str], log: Path, what: str) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new session (its own process group), output to ``log``."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            list(argv), cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
    _RUNNING[proc.pid] = what
    _FAMILY[proc.pid] = {}
    return proc


def _kill_by_pid(procs: Sequence[ProcStat]) -> None:
    for p in procs:
        current = proc_stat(p.pid)
        if current is not None and current.start == p.start:  # still that process
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGKILL)


def stop_process(
    proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, grace: float = STOP_TIMEOUT_S
) -> list[str]:
    """Stop ``proc`` by its PID, then whatever of its process tree outlives it.

    ``sig`` first; SIGKILL after ``grace`` seconds. Its workers then get
    FAMILY_GRACE_S to exit by themselves before they are killed by PID.
    Returns warnings (e.g. a process that had to be killed).
    """
    warnings: list[str] = []
    what = _RUNNING.get(proc.pid, str(proc.pid))
    family(proc.pid)  # remember its tree as it is now
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            warnings.append(
                f"{what} did not exit within {grace:.0f} s of {signal.Signals(sig).name}; "
                "killed"
            )
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    deadline = time.monotonic() + FAMILY_GRACE_S
    left = family(proc.pid)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = family(proc.pid)
    if left:
        warnings.append(f"{what}: {len(left)} process(es) outlived it; killed by PID")
        _kill_by_pid(left)
        deadline = time.monotonic() + FAMILY_GRACE_S
        while family(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    _RUNNING.pop(proc.pid, None)
    _FAMILY.pop(proc.pid, None)
    return warnings


def stop_everything() -> None:
    """Last resort (Ctrl-C, crash): kill whatever this run started and is still alive."""
    for pid in list(_RUNNING):
        _kill_by_pid(family(pid))
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        _RUNNING.pop(pid, None)
        _FAMILY.pop(pid, None)


def _on_terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


# ------------------------------------------------------------------------------------
# nginx


def render(text: str, values: Mapping[str, str], source: str) -> str:
    """Fill every ``{{NAME}}`` (the convention of server-configs/); a missing one is an error."""
    missing = sorted({m for m in _PLACEHOLDER.findall(text) if m not in values})
    if missing:
        raise BenchError(f"{source}: no value for placeholder(s) {missing}")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def worker_user() -> tuple[str, str]:
    """nginx workers' user: www-data (or nobody) when run as root, else oneself."""
    import grp
    import pwd

    if os.geteuid() != 0:
        entry = pwd.getpwuid(os.geteuid())
        return entry.pw_name, grp.getgrgid(entry.pw_gid).gr_name
    for name in ("www-data", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return name, grp.getgrgid(entry.pw_gid).gr_name
    raise BenchError("running as root, but neither www-data nor nobody exists")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def write_nginx_config(run_dir: Path, site: str, port: int, sock: Path) -> Path:
    user, group = worker_user()
    tmp_dir = run_dir / "tmp"
    tmp_dir.mkdir()
    tmp_dir.chmod(0o1777)
    values = {
        "RUN_DIR": str(run_dir), "TMP_DIR": str(tmp_dir), "PORT": str(port),
        "SOCKET": str(sock), "USER": user, "GROUP": group,
    }
    for params in ("fastcgi_params", "scgi_params", "uwsgi_params"):
        shutil.copyfile(NGINX_DIR / params, run_dir / params)
    template = NGINX_DIR / f"{site}.conf"
    (run_dir / "site.conf").write_text(render(template.read_text(), values, str(template)))
    conf = run_dir / "nginx.conf"
    main = NGINX_DIR / "nginx.conf"
    conf.write_text(render(main.read_text(), values, str(main)))
    return conf


def nginx_binary() -> str:
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )
    if not found:
        raise BenchError("nginx not found")
    return found


def wait_for(check: Callable[[], bool], timeout: float, what: str,
             alive: subprocess.Popen[bytes] | None = None, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if alive is not None and alive.poll() is not None:
            raise BenchError(f"{what}: process exited with {alive.returncode}{_tail(log)}")
        if time.monotonic() > deadline:
            raise BenchError(f"{what}: not ready after {timeout:.0f} s{_tail(log)}")
        time.sleep(0.05)


def _tail_lines(log: Path | None, lines: int) -> list[str]:
    if log is None or not log.exists():
        return []
    return log.read_text(errors="replace").strip().splitlines()[-lines:]


def _tail(log: Path | None, lines: int = 8) -> str:
    text = _tail_lines(log, lines)
    return ("\n    " + "\n    ".join(text)) if text else ""


def can_connect_unix(path: Path) -> bool:
    if not path.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(str(path))
        except OSError:
            return False
    return True


def can_connect_tcp(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=1):
            return True
    except OSError:
        return False


# ------------------------------------------------------------------------------------
# Checking and loading


def one_request(port: int, scenario: Scenario) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=30)
    try:
        headers = {"Content-Type": "application/octet-stream"} if scenario.request_body else {}
        conn.request(scenario.method, "/", body=scenario.request_body or None, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def check_answer(port: int, scenario: Scenario, *, retry_for: float = 0.0) -> None:
    """One real request: status 200 and exactly the expected body, or BenchError."""
    deadline = time.monotonic() + retry_for
    while True:
        try:
            status, body = one_request(port, scenario)
        except (OSError, http.client.HTTPException) as exc:
            status, body = 0, repr(exc).encode()
        if status == 200 and body == scenario.expected_body:
            return
        # 502/503/504: nginx is up and the backend not (yet); worth a retry at start.
        if status in (0, 502, 503, 504) and time.monotonic() < deadline:
            time.sleep(0.1)
            continue
        shown = body[:120] if len(body) <= 120 else body[:120] + b"..."
        raise BenchError(
            f"wrong answer: status {status}, {len(body)} bytes {shown!r} "
            f"(expected 200, {len(scenario.expected_body)} bytes)"
        )


@dataclass
class WrkResult:
    duration_s: float
    requests: int
    bytes: int
    errors: dict[str, int]
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    wrk_cpu_s: float
    raw: str

    @property
    def error_total(self) -> int:
        return sum(self.errors.values())


def run_wrk(port: int, scenario: Scenario, duration: int, log: Path) -> WrkResult:
    argv = [
        "wrk", f"-t{WRK_THREADS}", f"-c{WRK_CONNECTIONS}", f"-d{duration}s",
        f"--timeout={WRK_TIMEOUT_S}s", "-s", str(scenario.lua), f"http://{LOOPBACK}:{port}/",
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = start_process(argv, log, "wrk")
    try:
        proc.wait(duration + 60)
    except subprocess.TimeoutExpired:
        raise BenchError(f"wrk did not finish within {duration + 60} s") from None
    finally:
        stop_process(proc)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    text = log.read_text(errors="replace")
    if proc.returncode != 0:
        raise BenchError(f"wrk exited with {proc.returncode}:{_tail(log)}")
    match = re.search(r"^WRK_RESULT (\{.*\})$", text, re.MULTILINE)
    if match is None:
        raise BenchError(f"no WRK_RESULT line in wrk's output:{_tail(log)}")
    data = json.loads(match.group(1))
    errors = {k: int(data[k]) for k in ("connect", "read", "write", "timeout", "status")}
    # Cross-check with wrk's own text report: the two must agree.
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if non2xx and int(non2xx.group(1)) != errors["status"]:
        errors["status"] = max(errors["status"], int(non2xx.group(1)))
    return WrkResult(
        duration_s=data["duration_us"] / 1e6,
        requests=int(data["requests"]),
        bytes=int(data["bytes"]),
        errors=errors,
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        mean_ms=data["mean_us"] / 1000,
        wrk_cpu_s=(after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
        raw=text,
    )


# ------------------------------------------------------------------------------------
# Measurements around a run: CPU of each party, machine load, memory


@dataclass
class GroupCPU:
    """CPU ticks of a process and its whole tree at one moment."""

    own: dict[int, int]  # pid -> utime + stime of each live member
    total: int  # sum of own + reaped ticks: a worker that exits and is reaped still counts

    @classmethod
    def of(cls, root: int | None) -> GroupCPU:
        if root is None:
            return cls({}, 0)
        members = family(root, zombies=True)
        return cls(
            {p.pid: p.cpu_ticks for p in members},
            sum(p.cpu_ticks + p.reaped_ticks for p in members),
        )


def system_cpu() -> tuple[int, int]:
    """(busy, total) jiffies over all CPUs; busy counts user, nice and system only."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system = fields[0], fields[1], fields[2]
    return user + nice + system, sum(fields[:8])


def wait_for_quiet(max_wait: float, threshold_pct: float) -> float:
    """Wait, at most ``max_wait`` s, until the CPUs are busy less than ``threshold_pct``.

    Called between cells, when none of this run's processes is left, so whatever keeps
    the CPUs busy belongs to someone else (other jobs on a shared machine). Returns the
    busy percentage last seen.
    """
    deadline = time.monotonic() + max_wait
    while True:
        before = system_cpu()
        time.sleep(1.0)
        after = system_cpu()
        busy = 100.0 * (after[0] - before[0]) / max(1, after[1] - before[1])
        if busy < threshold_pct or time.monotonic() >= deadline:
            return busy


@dataclass
class Memory:
    master_kib: int | None
    workers_kib: list[int]

    @property
    def total_kib(self) -> int:
        return sum(self.workers_kib)


def worker_pids(master: int) -> list[int]:
    """The backend's worker processes: the master's children, or the master if it has none."""
    children = sorted(p.pid for p in all_procs() if p.ppid == master)
    return children or [master]


def memory_of(master: int) -> Memory:
    workers = worker_pids(master)
    sizes = [rss_kib(pid) or 0 for pid in workers]
    return Memory(master_kib=None if workers == [master] else rss_kib(master), workers_kib=sizes)


@dataclass
class CellResult:
    backend: str
    scenario: str
    status: str  # "ok", "errors", "failed", "skipped"
    reason: str = ""
    req_per_s: float | None = None  # only when status == "ok"
    raw_req_per_s: float | None = None  # what wrk counted, errors or not
    mib_per_s: float | None = None
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    requests: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    error_total: int = 0
    nginx_errors: list[str] = field(default_factory=list)
    backend_cpu_us_per_req: float | None = None
    nginx_cpu_us_per_req: float | None = None
    wrk_cpu_us_per_req: float | None = None
    worker_cpu_share: list[float] = field(default_factory=list)  # balance across workers
    workers_replaced: int = 0  # backend processes that exited during the measured run
    machine_busy_pct: float | None = None  # user+system of all CPUs during the run
    foreign_cpu_pct: float | None = None  # CPU used by processes not part of this cell
    loadavg_before: float | None = None
    busy_before_pct: float | None = None  # CPU busy (others' processes) just before the cell
    rss_idle: dict[str, Any] | None = None
    rss_after: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    logs: dict[str, list[str]] = field(default_factory=dict)  # log tails when not ok
    round_req_per_s: list[float] = field(default_factory=list)  # every round, with --rounds
    round_backend_cpu_us: list[float] = field(default_factory=list)  # the same, CPU µs/req


def _mem_dict(mem: Memory) -> dict[str, Any]:
    return {"master_kib": mem.master_kib, "workers_kib": mem.workers_kib,
            "total_kib": mem.total_kib}


# ------------------------------------------------------------------------------------
# One cell


@contextlib.contextmanager
def run_dir(keep: bool) -> Iterator[Path]:
    # Under /tmp and world-traversable: nginx's workers (www-data) reach the sockets here.
    path = Path(tempfile.mkdtemp(prefix="wsgiwire-bench.", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        if keep:
            print(f"    (kept {path})")
        else:
            shutil.rmtree(path, ignore_errors=True)


def run_cell(backend: Backend, scenario: Scenario, args: argparse.Namespace) -> CellResult:
    result = CellResult(backend.name, scenario.name, "failed")
    if args.quiet_wait > 0:
        result.busy_before_pct = wait_for_quiet(args.quiet_wait, QUIET_THRESHOLD_PCT)
    result.loadavg_before = os.getloadavg()[0]
    with run_dir(args.keep_run_dirs) as rdir:
        try:
            _run_cell(backend, scenario, args, rdir, result)
        except BenchError as exc:
            result.status, result.reason = "failed", str(exc)
        if result.status != "ok":  # keep what explains it; the run dir is removed
            for name in ("backend.log", "error.log", "wrk.out"):
                tail = _tail_lines(rdir / name, 15)
                if tail:
                    result.logs[name] = tail
    return result


def _run_cell(
    backend: Backend, scenario: Scenario, args: argparse.Namespace, rdir: Path,
    result: CellResult,
) -> None:
    with contextlib.ExitStack() as stack:
        sock = rdir / "backend.sock"
        server: subprocess.Popen[bytes] | None = None
        if backend.command is not None:
            log = rdir / "backend.log"
            server = start_process(backend.command(scenario, sock), log, backend.name)
            stack.callback(
                lambda: result.warnings.extend(stop_process(server, grace=backend.stop_grace))
            )
            wait_for(lambda: can_connect_unix(sock), STARTUP_TIMEOUT_S,
                     f"{backend.name} socket", server, log)
            sock.chmod(0o666)  # nginx's workers run as www-data
        port = free_port()
        conf = write_nginx_config(rdir, backend.site, port, sock)
        nginx_log = rdir / "nginx.out"
        nginx = start_process(
            [nginx_binary(), "-p", str(rdir), "-c", str(conf), "-g", "daemon off;"],
            nginx_log, "nginx",
        )
        # Stopped before the backend (ExitStack is LIFO): it holds the upstream connections.
        stack.callback(lambda: result.warnings.extend(stop_process(nginx, signal.SIGQUIT)))
        wait_for(lambda: can_connect_tcp(port), STARTUP_TIMEOUT_S, "nginx", nginx, nginx_log)

        check_answer(port, scenario, retry_for=READY_TIMEOUT_S)
        if server is not None:
            time.sleep(0.5)  # let lazily started workers settle before reading their RSS
            check_answer(port, scenario)
            result.rss_idle = _mem_dict(memory_of(server.pid))

        if args.warmup > 0:
            warm = run_wrk(port, scenario, args.warmup, rdir / "wrk-warmup.out")
            if warm.error_total:
                result.warnings.append(f"warm-up saw errors: {warm.errors}")

        error_log = rdir / "error.log"
        log_offset = error_log.stat().st_size if error_log.exists() else 0
        backend_before = GroupCPU.of(server.pid if server else None)
        nginx_before = GroupCPU.of(nginx.pid)
        sys_before = system_cpu()
        wrk = run_wrk(port, scenario, args.duration, rdir / "wrk.out")
        sys_after = system_cpu()
        backend_after = GroupCPU.of(server.pid if server else None)
        nginx_after = GroupCPU.of(nginx.pid)
        if server is not None and scenario.name == "hello":
            result.rss_after = _mem_dict(memory_of(server.pid))

        # Everything after the run is checked before anything is counted.
        problems = []
        if server is not None and server.poll() is not None:
            problems.append(f"{backend.name} exited during the run ({server.returncode})")
        try:
            check_answer(port, scenario)
        except BenchError as exc:
            problems.append(f"after the run: {exc}")
        if error_log.exists():
            with open(error_log, errors="replace") as f:
                f.seek(log_offset)
                result.nginx_errors = [ln.strip() for ln in f if _NGINX_BAD.search(ln)]

        fill_result(
            result=result, scenario=scenario, wrk=wrk, backend_before=backend_before,
            backend_after=backend_after, nginx_before=nginx_before, nginx_after=nginx_after,
            sys_before=sys_before, sys_after=sys_after, server=server,
        )
        if problems:
            result.status = "errors"
            result.req_per_s = None
            result.reason = "; ".join(filter(None, [result.reason, *problems]))


def fill_result(
    *,
    result: CellResult, scenario: Scenario, wrk: WrkResult,
    backend_before: GroupCPU, backend_after: GroupCPU,
    nginx_before: GroupCPU, nginx_after: GroupCPU,
    sys_before: tuple[int, int], sys_after: tuple[int, int],
    server: subprocess.Popen[bytes] | None,
) -> None:
    duration = wrk.duration_s or 1.0
    requests = wrk.requests or 1  # no per-request figures make sense at 0; status says so
    result.requests = wrk.requests
    result.errors = wrk.errors
    result.error_total = wrk.error_total + len(result.nginx_errors)
    result.raw_req_per_s = wrk.requests / duration
    if scenario.payload == "request":
        result.mib_per_s = wrk.requests * len(scenario.request_body) / duration / MIB
    else:
        result.mib_per_s = wrk.bytes / duration / MIB
    result.p50_ms, result.p90_ms = wrk.p50_ms, wrk.p90_ms
    result.p99_ms, result.max_ms = wrk.p99_ms, wrk.max_ms

    tick_us = 1e6 / CLK_TCK
    backend_ticks = backend_after.total - backend_before.total
    nginx_ticks = nginx_after.total - nginx_before.total
    if server is not None:
        result.backend_cpu_us_per_req = backend_ticks * tick_us / requests
        # Worker balance: CPU of each worker that lived through the whole run.
        workers = [pid for pid in backend_after.own
                   if pid != server.pid and pid in backend_before.own]
        used = [backend_after.own[pid] - backend_before.own[pid] for pid in workers]
        if sum(used) > 0 and len(used) > 1:
            result.worker_cpu_share = [round(u / sum(used), 3) for u in used]
        result.workers_replaced = len(set(backend_before.own) - set(backend_after.own))
    result.nginx_cpu_us_per_req = nginx_ticks * tick_us / requests
    result.wrk_cpu_us_per_req = wrk.wrk_cpu_s * 1e6 / requests
    busy = sys_after[0] - sys_before[0]
    total = sys_after[1] - sys_before[1]
    if total > 0:
        result.machine_busy_pct = 100.0 * busy / total
        ours = backend_ticks + nginx_ticks + wrk.wrk_cpu_s * CLK_TCK
        result.foreign_cpu_pct = max(0.0, 100.0 * (busy - ours) / total)

    if wrk.requests == 0:
        result.status = "errors"
        result.reason = "no response completed during the run"
    elif result.error_total:
        result.status = "errors"
        parts = [f"{k} {v}" for k, v in wrk.errors.items() if v]
        if result.nginx_errors:
            parts.append(f"nginx error.log {len(result.nginx_errors)}")
        result.reason = ", ".join(parts)
    else:
        result.status = "ok"
        result.req_per_s = result.raw_req_per_s


# ------------------------------------------------------------------------------------
# Reporting


def ratios(results: list[CellResult]) -> dict[tuple[str, str], dict[str, float | None]]:
    """Per cell: req/s relative to uWSGI, to nginx alone (hello), to flup's best and,
    for a backend run with ``--base``, to its base-NAME twin.

    With several rounds a ratio is taken within each round (both cells of a round
    ran minutes apart, not hours), and the median of those ratios is reported.
    """
    by_scenario: dict[str, dict[str, list[float]]] = {}
    for r in results:
        if r.status == "ok" and r.req_per_s:
            by_scenario.setdefault(r.scenario, {})[r.backend] = (
                list(r.round_req_per_s) or [r.req_per_s]
            )
    out: dict[tuple[str, str], dict[str, float | None]] = {}
    for r in results:
        cells = by_scenario.get(r.scenario, {})
        mine = cells.get(r.backend)
        flup = [v for k, v in cells.items() if k in BACKENDS and BACKENDS[k].group == "flup"]
        flup_best = (
            [max(per_round) for per_round in zip(*flup, strict=True)]
            if flup and len({len(v) for v in flup}) == 1
            else None
        )
        refs = {
            "vs_uwsgi": cells.get(REFERENCE_UWSGI),
            "vs_nginx_alone": cells.get(REFERENCE_CEILING),
            "vs_flup_best": flup_best,
            "vs_base": cells.get(BASE_PREFIX + r.backend),
        }
        out[r.backend, r.scenario] = {k: _ratio(mine, ref) for k, ref in refs.items()}
    return out


def _ratio(mine: list[float] | None, ref: list[float] | None) -> float | None:
    """The median of the per-round ratios (one round: the plain ratio)."""
    if not mine or not ref or not all(ref):
        return None
    if len(mine) == len(ref):
        return statistics.median(a / b for a, b in zip(mine, ref, strict=True))
    return statistics.median(mine) / statistics.median(ref)


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def _mib(kib: int | None) -> str:
    return "-" if kib is None else f"{kib / 1024:.1f}"


def overview(results: list[CellResult], meta: dict[str, Any]) -> list[str]:
    """req/s per backend and scenario, with the ratio to uWSGI, in one table."""
    rel = ratios(results)
    scenarios = [s for s in meta["scenarios"] if any(r.scenario == s for r in results)]
    cells = {(r.backend, r.scenario): r for r in results}
    lines = [
        "## Overview: req/s (x uWSGI)",
        "",
        "| backend | " + " | ".join(scenarios) + " |",
        "|---|" + "---:|" * len(scenarios),
    ]
    for b in meta["backends"]:
        row = []
        for s in scenarios:
            r = cells.get((b, s))
            if r is None:
                row.append("")
            elif r.status == "ok" and r.req_per_s:
                ratio = rel[b, s]["vs_uwsgi"]
                row.append(f"{r.req_per_s:,.0f}" + (f" ({ratio:.2f}x)" if ratio else ""))
            else:
                row.append(r.status.upper())
        if any(row):
            lines.append(f"| {b} | " + " | ".join(row) + " |")
    return [*lines, ""]


def against_base(results: list[CellResult], meta: dict[str, Any]) -> list[str]:
    """Each backend next to its base-NAME twin (``--base``): req/s, CPU, ratio per round."""
    cells = {(r.backend, r.scenario): r for r in results}
    rows = []
    for r in results:
        base = cells.get((BASE_PREFIX + r.backend, r.scenario))
        if base is None:
            continue
        if r.status != "ok" or base.status != "ok" or not r.req_per_s or not base.req_per_s:
            rows.append(f"| {r.backend} | {r.scenario} | {r.status.upper()} | "
                        f"{base.status.upper()} | - | - | - | - |")
            continue
        mine = list(r.round_req_per_s) or [r.req_per_s]
        ref = list(base.round_req_per_s) or [base.req_per_s]
        per_round = (", ".join(f"{a / b:.2f}" for a, b in zip(mine, ref, strict=True))
                     if len(mine) == len(ref) else "-")
        cpu = list(r.round_backend_cpu_us) or [r.backend_cpu_us_per_req or 0.0]
        cpu_ref = list(base.round_backend_cpu_us) or [base.backend_cpu_us_per_req or 0.0]
        cpu_rounds = ", ".join(f"{a:.0f}/{b:.0f}" for a, b in zip(cpu, cpu_ref, strict=False))
        rows.append(
            f"| {r.backend} | {r.scenario} | {r.req_per_s:,.0f} | {base.req_per_s:,.0f} | "
            f"{_fmt(_ratio(mine, ref), '.2f', 'x')} | {per_round} | {cpu_rounds} | "
            f"{_fmt(_ratio(cpu, cpu_ref), '.2f', 'x')} |"
        )
    if not rows:
        return []
    where = meta.get("base") or {}
    if where.get("compiled"):
        return [
            f"## Pure against compiled ({where.get('dir', '?')})",
            "",
            "Each wsgiwire backend (this checkout: the pure build) over its `compiled-` twin "
            "(`--compiled`: the compiled build of the same source, from the directory above), "
            "in the same rounds. x compiled is the median of the per-round ratios (below 1: the "
            "pure build is slower); CPU: the backend's CPU µs per request, each round, pure / "
            "compiled, and their ratio.",
            "",
            "| backend | scenario | pure req/s | compiled req/s | x compiled | "
            "x compiled per round | CPU µs/req per round, pure/compiled | CPU x compiled |",
            "|---|---|---:|---:|---:|---|---|---:|",
            *rows,
            "",
        ]
    return [
        f"## Against the base checkout ({where.get('git', '?')}, {where.get('dir', '?')})",
        "",
        "Each backend over its `base-` twin: the same command and nginx site, wsgiwire "
        "imported from the `--base` checkout, in the same rounds. x base is the median of "
        "the per-round ratios; CPU: the backend's CPU µs per request, each round, this "
        "checkout's over the base's, and their ratio (above 1: more CPU than the base).",
        "",
        "| backend | scenario | req/s | base req/s | x base | x base per round | "
        "CPU µs/req per round / base | CPU x base |",
        "|---|---|---:|---:|---:|---|---|---:|",
        *rows,
        "",
    ]


def render_markdown(results: list[CellResult], meta: dict[str, Any]) -> str:
    rel = ratios(results)
    lines = [
        "# wsgiwire benchmark: latest run",
        "",
        f"{meta['date']} · {meta['machine']['cpus']} CPUs ({meta['machine']['cpu_model']}) · "
        f"Linux {meta['machine']['kernel']} · "
        f"Python {meta['machine'].get('interpreter', meta['machine']['python'])} · "
        f"{meta['versions']['nginx']} · wrk {meta['versions']['wrk']}",
        "",
        f"wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{meta['duration_s']}s after a "
        f"{meta['warmup_s']} s warm-up"
        + (f", {meta['rounds']} rounds run in turn: req/s is each cell's median round, a "
           "ratio the median of its ratios within each round"
           if meta.get("rounds", 1) > 1 else "")
        + f"; nginx 1 worker; every backend {WORKERS} worker "
        "processes on a unix socket. wsgiwire "
        f"{meta['versions']['wsgiwire']} at {meta['git']}.",
        "",
        "Figures move from run to run; only ratios within one run mean anything. "
        "ERRORS: wrk saw socket errors or HTTP errors, or nginx logged an error: "
        "such a run has no throughput. CPU µs/req: CPU time of the backend's processes "
        "(all workers and master) and of nginx's worker, per request. Others' CPU: the "
        "share of the machine's CPU used by processes outside the benchmark during the run.",
        "",
    ]
    if meta.get("code_digest_end", meta.get("code_digest")) != meta.get("code_digest"):
        lines += [f"**wsgiwire changed during the run** (at the end: {meta['git_end']}): "
                  "cells started later ran newer code.", ""]
    lines += overview(results, meta)
    lines += against_base(results, meta)
    for name in meta["scenarios"]:
        scenario = SCENARIOS[name]
        rows = [r for r in results if r.scenario == name]
        if not rows:
            continue
        mib_what = "request MiB/s" if scenario.payload == "request" else "MiB/s"
        lines += [
            f"## {name}: {scenario.description}",
            "",
            f"| backend | req/s | {mib_what} | p50 ms | p99 ms | errors | CPU µs/req "
            "backend + nginx | x uWSGI | x nginx alone | x flup best | others' CPU |",
            "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|",
        ]
        for r in rows:
            rr = rel[r.backend, r.scenario]
            if r.status == "ok":
                rps = f"{r.req_per_s:,.0f}"
                errors = "0"
            elif r.status == "errors":
                rps = f"ERRORS ({r.raw_req_per_s:,.0f} counted)"
                errors = r.reason
            else:
                rps = r.status.upper()
                errors = r.reason.splitlines()[0][:80] if r.reason else ""
            cpu = (
                f"{_fmt(r.backend_cpu_us_per_req, '.0f')} + {_fmt(r.nginx_cpu_us_per_req, '.0f')}"
                if r.status in ("ok", "errors") else "-"
            )
            lines.append(
                f"| {r.backend} | {rps} | {_fmt(r.mib_per_s if r.status == 'ok' else None, ',.1f')}"
                f" | {_fmt(r.p50_ms if r.status == 'ok' else None, '.2f')}"
                f" | {_fmt(r.p99_ms if r.status == 'ok' else None, '.2f')}"
                f" | {errors} | {cpu}"
                f" | {_fmt(rr['vs_uwsgi'], '.2f', 'x')}"
                f" | {_fmt(rr['vs_nginx_alone'], '.2f', 'x')}"
                f" | {_fmt(rr['vs_flup_best'], '.2f', 'x')}"
                f" | {_fmt(r.foreign_cpu_pct, '.0f', '%')} |"
            )
        lines.append("")

    mem_rows = [r for r in results if r.scenario == "hello" and r.rss_idle]
    if mem_rows:
        lines += [
            "## Memory (hello app; VmRSS from /proc/PID/status)",
            "",
            "| backend | workers | idle: sum MiB (per worker) | after hello run: sum MiB "
            "(per worker) | master MiB |",
            "|---|---:|---|---|---:|",
        ]
        for r in mem_rows:
            idle, after = r.rss_idle or {}, r.rss_after or {}

            def per(mem: Mapping[str, Any]) -> str:
                if not mem:
                    return "-"
                each = ", ".join(_mib(k) for k in mem["workers_kib"])
                return f"{_mib(mem['total_kib'])} ({each})"

            lines.append(
                f"| {r.backend} | {len(idle.get('workers_kib', []))} | {per(idle)} | "
                f"{per(after)} | {_mib(idle.get('master_kib'))} |"
            )
        lines.append("")

    balance = [r for r in results if r.worker_cpu_share and r.status in ("ok", "errors")]
    notes = []
    for r in balance:
        if max(r.worker_cpu_share) >= 0.75:
            share = " / ".join(f"{s:.0%}" for s in r.worker_cpu_share)
            notes.append(f"- {r.backend} · {r.scenario}: worker CPU split {share}")
    measured = [r for r in results if r.foreign_cpu_pct is not None]
    busy = [r for r in measured if (r.foreign_cpu_pct or 0) >= DISTURBED_PCT]
    if busy:
        notes.append(
            f"- {len(busy)} of {len(measured)} runs were disturbed: processes outside the "
            f"benchmark took more than {DISTURBED_PCT:.0f}% of the CPUs during the run "
            "(column \"others' CPU\"). Their req/s and ratios are unreliable; CPU µs/req "
            "much less so. Run again on a quiet machine before quoting them."
        )
    for r in results:
        if r.workers_replaced:
            notes.append(f"- {r.backend} · {r.scenario}: {r.workers_replaced} worker "
                         "process(es) exited and were replaced during the run")
    repeated: dict[tuple[str, str], list[str]] = {}
    for r in results:
        for w in r.warnings:
            repeated.setdefault((r.backend, w), []).append(r.scenario)
    notes.extend(f"- {b} · {', '.join(where)}: {w}" for (b, w), where in repeated.items())
    for r in results:
        if r.status == "skipped":
            notes.append(f"- {r.backend} · {r.scenario}: skipped: {r.reason}")
        if r.status == "failed":
            notes.append(f"- {r.backend} · {r.scenario}: FAILED: {r.reason}")
    if notes:
        lines += ["## Notes", "", *dict.fromkeys(notes), ""]
    lines += ["## Backends", ""]
    lines += [f"- **{b.name}**: {b.description}" for b in BACKENDS.values()
              if b.name in meta["backends"]]
    lines.append("")
    return "\n".join(lines)


def render_chart(results: list[CellResult], meta: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = [s for s in meta["scenarios"] if any(r.scenario == s for r in results)]
    backends = [b for b in meta["backends"] if any(r.backend == b for r in results)]
    if not scenarios or not backends:
        return
    colors = plt.get_cmap("tab10")
    fig, axes = plt.subplots(1, len(scenarios), figsize=(4.2 * len(scenarios), 4.8),
                             squeeze=False)
    for ax, name in zip(axes[0], scenarios, strict=True):
        cells = {r.backend: r for r in results if r.scenario == name}
        # The ceiling goes in the title: as a bar it would flatten every other one.
        ceiling = cells.pop(REFERENCE_CEILING, None)
        shown = [b for b in backends if b in cells]
        for i, b in enumerate(shown):
            r = cells[b]
            color = colors(backends.index(b) % 10)
            value = r.req_per_s or 0.0
            ax.bar(i, value, color=color, label=b)
            label = f"{value:,.0f}" if r.status == "ok" else r.status.upper()
            ax.text(i, value, label, ha="center", va="bottom", fontsize=7, rotation=90)
        title = name
        if ceiling is not None and ceiling.req_per_s:
            title += f" (nginx alone: {ceiling.req_per_s:,.0f})"
        ax.set_title(title, fontsize=9)
        ax.set_xticks(range(len(shown)))
        ax.set_xticklabels(shown, rotation=60, ha="right", fontsize=7)
        ax.set_ylabel("req/s")
        ax.margins(y=0.25)
    fig.suptitle(
        f"req/s behind nginx (wrk -c{WRK_CONNECTIONS}, {meta['duration_s']} s, "
        f"{meta['machine']['cpus']} CPUs; same-run ratios only)", fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------------------
# Metadata


def _version_of(argv: Sequence[str], pattern: str) -> str:
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, check=False, timeout=10)
    except OSError:
        return "?"
    match = re.search(pattern, proc.stdout + proc.stderr)
    return match.group(1) if match else "?"


def git_state(root: Path = REPO_ROOT) -> str:
    """The commit the wsgiwire code was at, and whether wsgiwire/ had local changes."""
    git = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True, check=False).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "wsgiwire"],
                           capture_output=True, text=True, check=False).stdout.strip()
    return (git or "?") + (" + uncommitted changes in wsgiwire/" if dirty else "")


def code_digest() -> str:
    """A digest of wsgiwire/'s sources: tells whether the code changed during a run."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted((REPO_ROOT / "wsgiwire").rglob("*.py")):
        digest.update(str(path.relative_to(REPO_ROOT)).encode())
        with contextlib.suppress(OSError):
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def collect_meta(args: argparse.Namespace, backends: list[str], scenarios: list[str]) -> dict[
    str, Any
]:
    versions: dict[str, str] = {
        "nginx": _version_of([nginx_binary(), "-v"], r"(nginx/[\d.]+)"),
        "wrk": _version_of(["wrk", "--version"], r"wrk (\S+)"),
    }
    for dist in ("wsgiwire", "flup", "pyuwsgi", "gunicorn", "flask"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    cpu_model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "rounds": args.rounds,
        "wrk": {"threads": WRK_THREADS, "connections": WRK_CONNECTIONS},
        "backend_workers": WORKERS,
        "machine": {
            "cpus": os.cpu_count(),
            "cpu_model": cpu_model,
            "kernel": platform.release(),
            "python": platform.python_version(),
            "interpreter": interpreter(),
        },
        "versions": versions,
        "git": git_state(),
        "code_digest": code_digest(),
        "base": (None if args.base is None
                 else {"dir": str(args.base), "git": git_state(args.base),
                       "compiled": bool(args.compiled)}),
        "build": _build_name(),
        "backends": backends,
        "scenarios": scenarios,
    }


# ------------------------------------------------------------------------------------
# Main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark wsgiwire against flup, uWSGI and gunicorn behind nginx.",
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up (0: none)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run the whole matrix this many times, cell after cell, and report "
                             "each cell's median round (a run with errors in any round is "
                             "reported as that failing round)")
    parser.add_argument("--only", default="", metavar="NAMES",
                        help=f"comma-separated backends (default: all): {', '.join(BACKENDS)}")
    parser.add_argument("--scenarios", default="", metavar="NAMES",
                        help=f"comma-separated scenarios (default: all): {', '.join(SCENARIOS)}")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results",
                        help="directory for latest.md/.json/.png (default: bench/results)")
    parser.add_argument("--quiet-wait", type=float, default=30.0, metavar="SECONDS",
                        help="before each run, wait up to this long for other processes to "
                        f"use less than {QUIET_THRESHOLD_PCT:.0f}%% of the CPUs (0: don't)")
    parser.add_argument("--no-codec", dest="codec", action="store_false",
                        help="skip the codec micro-benchmark (bench/codec.py) at the end")
    parser.add_argument("--render", type=Path, metavar="JSON",
                        help="run nothing: rewrite latest.md and latest.png in --out from a "
                        "saved latest.json")
    parser.add_argument("--keep-run-dirs", action="store_true",
                        help="keep each cell's run dir (configs, logs) for debugging")
    parser.add_argument("--base", type=Path, metavar="DIR",
                        help="another checkout of wsgiwire (e.g. a release point): adds "
                        f"{', '.join(BASE_PREFIX + n for n in BASE_OF)}, the same backends "
                        "running DIR's wsgiwire in the same rounds, and the ratios to them")
    parser.add_argument("--compiled", type=Path, metavar="DIR",
                        help="a tree holding the compiled build (./dev test makes "
                        f"build/compiled): adds {', '.join(COMPILED_PREFIX + n for n in BASE_OF)}"
                        ", those backends on the compiled build in the same rounds (this "
                        "checkout's run pure), and the ratios to them")
    args = parser.parse_args(argv)
    if args.compiled is not None:
        if args.base is not None:
            parser.error("--compiled and --base both name the twin: use one")
        use_compiled_as_base()
        args.base = args.compiled
    if args.base is not None and not args.render:
        args.base = args.base.resolve()
        try:
            add_base_backends(args.base)
        except BenchError as exc:
            parser.error(str(exc))
    if args.duration < 1 or args.warmup < 0:
        parser.error("--duration must be >= 1 and --warmup >= 0")
    for option, known in (("only", BACKENDS), ("scenarios", SCENARIOS)):
        names = [n.strip() for n in getattr(args, option).split(",") if n.strip()]
        unknown = [n for n in names if n not in known]
        if unknown:
            parser.error(f"--{option}: unknown {', '.join(unknown)}; known: {', '.join(known)}")
        setattr(args, option, names or list(known))
    return args


def rerender(saved: Path, out: Path) -> int:
    """Rewrite the markdown and the chart from a saved latest.json (after a format change)."""
    from bench import codec

    payload = json.loads(saved.read_text())
    if (payload["meta"].get("base") or {}).get("compiled"):
        use_compiled_as_base()
    if payload["meta"].get("base"):
        add_base_backends(Path(payload["meta"]["base"]["dir"]), probe=False)
    names = {f.name for f in dataclasses.fields(CellResult)}
    results = [CellResult(**{k: v for k, v in r.items() if k in names})
               for r in payload["results"]]
    codec_results = [codec.CaseResult(**c) for c in payload.get("codec", [])]
    write_outputs(results, payload["meta"], out, bool(payload["meta"].get("interrupted")),
                  codec_results)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render:
        return rerender(args.render, args.out)
    for tool in ("wrk",):
        if shutil.which(tool) is None:
            print(f"bench: {tool} is not installed", file=sys.stderr)
            return 2
    nginx_binary()
    try:
        compile_bytecode(args.base)
    except BenchError as exc:
        print(f"bench: {exc}; the base backends' first cells may compile from source",
              file=sys.stderr)
    # Ctrl-C, SIGTERM and SIGHUP all unwind through the finally blocks that stop what was
    # started (SIGINT explicitly: a shell starts background jobs with it ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _on_terminate)
    signal.signal(signal.SIGHUP, _on_terminate)

    backends: list[str] = args.only
    scenarios: list[str] = args.scenarios
    meta = collect_meta(args, backends, scenarios)
    results: list[CellResult] = []
    cells = [(SCENARIOS[s], BACKENDS[b]) for s in scenarios for b in backends
             if BACKENDS[b].scenarios is None or s in (BACKENDS[b].scenarios or ())]
    per_cell = args.duration + args.warmup + 3
    runs = len(cells) * args.rounds
    print(f"bench: {runs} runs, about {runs * per_cell / 60:.0f} min; "
          f"results in {args.out}/latest.md")
    interrupted = False
    rounds: dict[tuple[str, str], list[CellResult]] = {}
    try:
        for number in range(args.rounds):
            if args.rounds > 1:
                print(f" round {number + 1} of {args.rounds}")
            for scenario, backend in cells:
                reason = backend.requires()
                label = f"{scenario.name:9} {backend.name:24}"
                if reason:
                    rounds[backend.name, scenario.name] = [
                        CellResult(backend.name, scenario.name, "skipped", reason)
                    ]
                    print(f"  {label} skipped: {reason}")
                    continue
                try:
                    result = run_cell(backend, scenario, args)
                except BenchError as exc:
                    result = CellResult(backend.name, scenario.name, "failed", str(exc))
                rounds.setdefault((backend.name, scenario.name), []).append(result)
                print(f"  {label} {_summary(result)}", flush=True)
    except KeyboardInterrupt:
        interrupted = True
        print("\nbench: interrupted; stopping what was started", file=sys.stderr)
    finally:
        stop_everything()
    results.extend(median_round(cell_rounds) for cell_rounds in rounds.values())

    # Each cell starts fresh processes: wsgiwire code edited during the run changes later
    # cells. Say so when the tree moved.
    meta["git_end"] = git_state()
    meta["code_digest_end"] = code_digest()
    if meta["code_digest_end"] != meta["code_digest"]:
        print(f"bench: wsgiwire's code changed during the run (now {meta['git_end']})",
              file=sys.stderr)
    codec_results: list[Any] = []
    if args.codec and not interrupted:
        from bench import codec

        print("codec micro-benchmark (requests parsed per CPU-second):")
        codec_results = codec.run_all()
    if results:
        write_outputs(results, meta, args.out, interrupted, codec_results)
    return 130 if interrupted else 0


def median_round(cell_rounds: list[CellResult]) -> CellResult:
    """The round that stands for a cell: its median by req/s, or the first that was not ok."""
    for result in cell_rounds:
        if result.status != "ok":
            return result
    ordered = sorted(cell_rounds, key=lambda r: r.req_per_s or 0.0)
    chosen = ordered[(len(ordered) - 1) // 2]
    if len(ordered) > 1:
        chosen.round_req_per_s = [round(r.req_per_s or 0.0) for r in cell_rounds]
        chosen.round_backend_cpu_us = [round(r.backend_cpu_us_per_req or 0.0, 1)
                                       for r in cell_rounds]
    return chosen


def _summary(r: CellResult) -> str:
    if r.status == "ok":
        return (f"{r.req_per_s:10,.0f} req/s  {r.mib_per_s:8.1f} MiB/s  p50 {r.p50_ms:6.2f} ms  "
                f"p99 {r.p99_ms:6.2f} ms  cpu/req {r.backend_cpu_us_per_req or 0:.0f}+"
                f"{r.nginx_cpu_us_per_req or 0:.0f} us")
    if r.status == "errors":
        return f"ERRORS ({r.reason}); {r.raw_req_per_s or 0:,.0f} req/s not counted"
    return f"{r.status.upper()}: {r.reason}"


def write_outputs(results: list[CellResult], meta: dict[str, Any], out: Path,
                  interrupted: bool, codec_results: Sequence[Any] = ()) -> None:
    out.mkdir(parents=True, exist_ok=True)
    if interrupted:
        meta["interrupted"] = True
    rel = ratios(results)
    payload = {
        "meta": meta,
        "results": [{**asdict(r), **rel[r.backend, r.scenario]} for r in results],
        "codec": [asdict(c) for c in codec_results],
    }
    (out / "latest.json").write_text(json.dumps(payload, indent=2) + "\n")
    markdown = render_markdown(results, meta)
    if codec_results:
        from bench import codec

        markdown += (
            "\n## Codec micro-benchmark (bench/codec.py)\n\n"
            "The request nginx sends for a browser GET (30 FastCGI params), parsed from "
            "bytes with no I/O; requests per CPU-second, best of 5 rounds.\n\n"
            + codec.markdown(codec_results)
        )
    (out / "latest.md").write_text(markdown)
    try:
        render_chart(results, meta, out / "latest.png")
    except ImportError as exc:
        print(f"bench: no chart ({exc})", file=sys.stderr)
    print()
    print(markdown)


if __name__ == "__main__":
    sys.exit(main())
