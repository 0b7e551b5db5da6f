"""Boot real web servers (nginx, Apache, lighttpd) for integration tests.

The configs are the files under ``server-configs/<server>/<name>.conf``: complete,
minimal files a user could copy, with ``{{NAME}}`` placeholders (upper case, digits,
underscores) that :func:`render` fills in. The harness boots a server with exactly the
rendered file; a placeholder left without a value is an error, never an empty string.

Placeholders every :class:`RunningServer` fills (callers add more through ``values``)::

    {{PORT}}         the loopback TCP port the server listens on (127.0.0.1)
    {{RUN_DIR}}      world-readable scratch dir: pid file, logs, sockets, rendered config
    {{TMP_DIR}}      {{RUN_DIR}}/tmp, mode 1777: temp files written after privileges drop
    {{DOC_ROOT}}     the static document root ({{RUN_DIR}}/htdocs unless given)
    {{USER}}         the user worker processes run as (www-data when root, else oneself)
    {{GROUP}}        that user's group
    {{MODULES_DIR}}  where the server's loadable modules live

Placeholders a caller passes when a config uses them::

    {{MOUNT}}        URL prefix the application is mounted at, no trailing slash ("/app")
    {{SCRIPT}}       absolute path of a CGI script or other program the server runs
    {{BACKEND}}      backend address for FastCGI/SCGI/uwsgi ("127.0.0.1:9000", a unix path)

Every process is started in its own session and stopped by its own PID: SIGTERM, a
bounded wait, then SIGKILL. Anything left in its process group afterwards is killed and
reported as an error, so a test never leaves a server running.

Typical use::

    with ApacheServer("cgi-scriptalias", values={"MOUNT": "/app", "SCRIPT": script}) as srv:
        status, headers, body = srv.request("GET", "/app/x?y=1")
"""

from __future__ import annotations

import contextlib
import getpass
import grp
import http.client
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import ClassVar, NamedTuple, NoReturn, TypeVar

import pytest

TESTS_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = TESTS_DIR.parent
CONFIG_ROOT = REPO_ROOT / "server-configs"
PACKAGE_DIR = REPO_ROOT / "wsgiwire"
APPS_DIR = Path(__file__).resolve().parent / "apps"

LOOPBACK = "127.0.0.1"
STARTUP_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
POLL_INTERVAL = 0.02
KEEP_RUN_DIRS_ENV = "WSGIWIRE_KEEP_RUN_DIRS"  # set to 1 to keep run dirs for debugging

_PLACEHOLDER = re.compile(r"\{\{([A-Z][A-Z0-9_]*)\}\}")
_BIND_ERRORS = ("Address already in use", "could not bind", "bind() to", "make_sock")


_S = TypeVar("_S", bound="RunningServer")


class HarnessError(RuntimeError):
    """The harness could not render, start or stop something."""


# ---------------------------------------------------------------------------------------
# CI policy: skip outside CI, fail inside it


def in_ci() -> bool:
    """True when the CI environment variable says so (CI=true)."""
    return os.environ.get("CI", "").lower() == "true"


def unavailable(reason: str) -> NoReturn:
    """Skip the test with a one-line reason, or fail it under CI, where nothing may skip."""
    reason = " ".join(reason.split())
    if in_ci():
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


def find_binary(name: str) -> str | None:
    """Path of an executable on PATH or in the sbin dirs (often missing from a user PATH)."""
    found = shutil.which(name)
    if found:
        return found
    for directory in ("/usr/sbin", "/sbin", "/usr/local/sbin"):
        candidate = Path(directory) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def require_binary(name: str) -> str:
    """The path of ``name``, or skip (fail in CI) with a one-line reason."""
    path = find_binary(name)
    if path is None:
        unavailable(f"{name} is not installed")
    return path


def require_path(path: Path | str, what: str) -> Path:
    """``path`` if it exists, or skip (fail in CI) naming ``what`` is missing."""
    p = Path(path)
    if not p.exists():
        unavailable(f"{what} not found at {p}")
    return p


# ---------------------------------------------------------------------------------------
# Rendering


def render(text: str, values: Mapping[str, str], *, source: str = "<template>") -> str:
    """Replace every ``{{NAME}}`` in ``text``; fail on any name without a value."""
    missing: set[str] = set()

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            missing.add(name)
            return match.group(0)
        return str(values[name])

    result = _PLACEHOLDER.sub(substitute, text)
    if missing:
        raise HarnessError(f"{source}: no value for placeholder(s) {sorted(missing)}")
    # A malformed placeholder ("{{ PORT }}", "{{port}}") would otherwise slip through.
    leftover = re.search(r"\{\{|\}\}", _PLACEHOLDER.sub("", text))
    if leftover:
        line = text.count("\n", 0, leftover.start()) + 1
        raise HarnessError(f"{source}:{line}: malformed placeholder near {leftover.group(0)!r}")
    return result


def render_file(template: Path, dest: Path, values: Mapping[str, str], mode: int = 0o644) -> Path:
    """Render ``template`` into ``dest`` with ``mode``; returns ``dest``."""
    dest.write_text(render(template.read_text(), values, source=str(template)))
    dest.chmod(mode)
    return dest


def config_path(server: str, name: str) -> Path:
    """``server-configs/<server>/<name>.conf``, which must exist."""
    path = CONFIG_ROOT / server / f"{name}.conf"
    if not path.is_file():
        raise HarnessError(f"no such config: {path}")
    return path


# ---------------------------------------------------------------------------------------
# World-readable staging (servers drop privileges and cannot read /root)


def world_readable_tempdir(prefix: str) -> Path:
    """A new dir under /tmp, mode 0755, that a dropped-privilege server can traverse."""
    base = "/tmp" if os.path.isdir("/tmp") else None
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    path.chmod(0o755)
    return path


def make_world_readable(root: Path) -> None:
    """chmod a+rX on ``root`` and everything below it."""
    for path in [root, *root.rglob("*")]:
        mode = path.stat().st_mode
        extra = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
        if path.is_dir() or mode & stat.S_IXUSR:
            extra |= stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH
        path.chmod(stat.S_IMODE(mode) | extra)


def stage_package(dest: Path) -> Path:
    """Copy the ``wsgiwire`` package source into ``dest``; returns ``dest/wsgiwire``.

    The copy is of the build this run tests: in ``./dev test``'s compiled run the
    package folder holds the extension modules and mypyc's shared library
    (``wsgiwire/_compiled__mypyc*.so``) beside the sources, so the scripts a web
    server runs load the compiled build (when ``script_python()`` is the Python
    version it was built for; another version ignores them and runs pure); in the
    pure run there are none.

    ``dest`` (and the copy) are made world-readable, so ``sys.path.insert(0, dest)`` in a
    script run by a dropped-privilege server finds the package.
    """
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / "wsgiwire"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(PACKAGE_DIR, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    make_world_readable(dest)
    return target


def stage_file(source: Path, dest_dir: Path, name: str | None = None, mode: int = 0o644) -> Path:
    """Copy one file (e.g. a test app module) into ``dest_dir`` with ``mode``."""
    target = dest_dir / (name or source.name)
    shutil.copyfile(source, target)
    target.chmod(mode)
    return target


def script_python() -> str:
    """The interpreter for scripts a web server runs.

    ``/usr/bin/python3`` when it is 3.10+ (world-executable, stdlib only is enough);
    otherwise this interpreter, which works when servers run as the current user.
    """
    system = "/usr/bin/python3"
    if os.access(system, os.X_OK):
        probe = subprocess.run(
            [system, "-c", "import sys; print(sys.version_info >= (3, 10))"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if probe.stdout.strip() == "True":
            return system
    return sys.executable


def precompile(python: str, root: Path) -> None:
    """Byte-compile ``root`` with ``python`` so each CGI process skips compiling."""
    subprocess.run(
        [python, "-m", "compileall", "-q", str(root)],
        check=True,
        timeout=120,
        stdout=subprocess.DEVNULL,
    )
    make_world_readable(root)


def server_user() -> tuple[str, str]:
    """(user, group) for worker processes: www-data (or nobody) as root, else oneself."""
    if os.geteuid() != 0:
        user = getpass.getuser()
        return user, grp.getgrgid(os.getegid()).gr_name
    for user in ("www-data", "nobody"):
        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            continue
        return user, grp.getgrgid(entry.pw_gid).gr_name
    raise HarnessError("running as root but neither www-data nor nobody exists")


# ---------------------------------------------------------------------------------------
# Processes


def free_port() -> int:
    """An ephemeral loopback port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group ``pgid``."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            data = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        fields = data[data.rfind(")") + 2 :].split()
        if len(fields) >= 3 and fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


class ManagedProcess:
    """A child process in its own session, stopped by its own PID (a context manager
    that starts and stops it, or call ``start()``/``stop()``).

    Output (stdout and stderr together) goes to ``log_path``. ``stop()`` sends
    ``stop_signal`` to the PID it started, waits up to ``stop_timeout``, then SIGKILLs
    it; it then waits for the rest of the process group (children the process forked)
    to go, kills any left with SIGKILL and raises :class:`HarnessError` naming them.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        stop_signal: int = signal.SIGTERM,
        stop_timeout: float = STOP_TIMEOUT,
        pass_fds: Sequence[int] = (),
        stdin: int | None = subprocess.DEVNULL,
    ) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.stop_signal = stop_signal
        self.stop_timeout = stop_timeout
        self.pass_fds = tuple(pass_fds)
        self.stdin = stdin
        self._popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self._popen is None:
            raise HarnessError("process not started")
        return self._popen.pid

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self._popen = subprocess.Popen(
                self.argv,
                stdin=self.stdin,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
                pass_fds=self.pass_fds,
            )

    def __enter__(self) -> ManagedProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def returncode(self) -> int | None:
        """None while running, else the exit status."""
        return None if self._popen is None else self._popen.poll()

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self) -> int | None:
        """Stop the process and its process group; returns its exit status."""
        popen = self._popen
        if popen is None:
            return None
        pid = popen.pid
        if popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, self.stop_signal)
            try:
                popen.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                popen.wait(self.stop_timeout)
        # The session leader is gone; its children (workers, CGI scripts) must follow.
        members = _wait_group_empty(pid, self.stop_timeout)
        if members:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            survivors = _wait_group_empty(pid, self.stop_timeout)
            raise HarnessError(
                f"{self.argv[0]} (pid {pid}) left processes {members} running; killed them"
                + (f", but {survivors} survived SIGKILL" if survivors else "")
            )
        return popen.returncode


def _wait_group_empty(pgid: int, timeout: float) -> list[int]:
    """Poll until process group ``pgid`` has no live member; returns those left."""
    deadline = time.monotonic() + timeout
    members = group_members(pgid)
    while members and time.monotonic() < deadline:
        time.sleep(POLL_INTERVAL)
        members = group_members(pgid)
    return members


def wait_until_accepting(
    address: tuple[str, int] | Path | str,
    *,
    timeout: float = STARTUP_TIMEOUT,
    process: ManagedProcess | None = None,
) -> None:
    """Poll every 20 ms until ``address`` (``(host, port)`` or a unix socket path) accepts
    a connection. Raises TimeoutError, or HarnessError when ``process`` exits first."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.returncode() is not None:
            raise HarnessError(f"exited with status {process.returncode()} before listening")
        try:
            if isinstance(address, tuple):
                socket.create_connection(address, timeout=1.0).close()
            else:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                    sock.settimeout(1.0)
                    sock.connect(str(address))
        except OSError:
            pass
        else:
            # Something accepts; if our process died meanwhile, it is not ours.
            if process is not None and process.returncode() is not None:
                raise HarnessError(f"exited with status {process.returncode()}")
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"nothing accepting on {address} after {timeout:.1f}s")
        time.sleep(POLL_INTERVAL)


def wait_for_port(
    port: int,
    *,
    host: str = LOOPBACK,
    timeout: float = STARTUP_TIMEOUT,
    process: ManagedProcess | None = None,
) -> None:
    """:func:`wait_until_accepting` for ``host:port``."""
    wait_until_accepting((host, port), timeout=timeout, process=process)


def wait_for_path(path: Path, *, timeout: float = STARTUP_TIMEOUT) -> None:
    """Poll until ``path`` exists (a unix socket, a pid file)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{path} did not appear after {timeout:.1f}s")
        time.sleep(POLL_INTERVAL)


# ---------------------------------------------------------------------------------------
# HTTP client


class Response(NamedTuple):
    """What came back: unpacks as ``status, headers, body``."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        """The first header called ``name`` (case-insensitive), or None."""
        lower = name.lower()
        for key, value in self.headers:
            if key.lower() == lower:
                return value
        return None


def request(
    method: str,
    url_path: str,
    headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
    body: bytes | Iterable[bytes] | None = None,
    *,
    port: int,
    host: str = LOOPBACK,
    timeout: float = 30.0,
) -> Response:
    """One HTTP/1.1 request; ``url_path`` goes on the wire exactly as given.

    ``body`` as bytes is sent with Content-Length; any other iterable of bytes is sent
    with ``Transfer-Encoding: chunked``, one chunk per item.
    """
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers or [])
        names = {k.lower() for k, _ in pairs}
        conn.putrequest(
            method,
            url_path,
            skip_host="host" in names,
            skip_accept_encoding="accept-encoding" in names,
        )
        chunked = body is not None and not isinstance(body, (bytes, bytearray, memoryview))
        if isinstance(body, (bytes, bytearray, memoryview)) and "content-length" not in names:
            pairs.append(("Content-Length", str(len(body))))
        if chunked and "transfer-encoding" not in names:
            pairs.append(("Transfer-Encoding", "chunked"))
        for key, value in pairs:
            conn.putheader(key, value)
        conn.endheaders()
        if isinstance(body, (bytes, bytearray, memoryview)):
            conn.send(bytes(body))
        elif body is not None:
            for chunk in body:
                if chunk:
                    conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            conn.send(b"0\r\n\r\n")
        resp = conn.getresponse()
        data = resp.read()
        return Response(resp.status, resp.getheaders(), data)
    finally:
        conn.close()


def raw_exchange(data: bytes, *, port: int, host: str = LOOPBACK, timeout: float = 30.0) -> bytes:
    """Send ``data`` as is, then read until the server closes; returns every byte read.

    Send ``Connection: close`` in ``data`` or the read waits for the keep-alive timeout.
    """
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks: list[bytes] = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


# ---------------------------------------------------------------------------------------
# Web servers


class RunningServer:
    """A web server booted from ``server-configs/<server>/<config>.conf``.

    Use as a context manager. ``config`` is a name in the server's config dir or a
    path to any file; ``values`` adds or overrides placeholders; ``doc_root`` replaces
    the default ``{{RUN_DIR}}/htdocs``. By convention each config logs errors to
    ``{{RUN_DIR}}/error.log``; the server's own stdout/stderr go to
    ``{{RUN_DIR}}/server-output.log``. The run dir is deleted on exit unless
    ``WSGIWIRE_KEEP_RUN_DIRS=1``.
    """

    server: ClassVar[str]
    binary_names: ClassVar[tuple[str, ...]]
    modules_dirs: ClassVar[tuple[str, ...]] = ()
    config_file_name: ClassVar[str] = "server.conf"
    bind_attempts: ClassVar[int] = 3

    def __init__(
        self,
        config: str | Path,
        *,
        values: Mapping[str, str] | None = None,
        doc_root: Path | None = None,
        startup_timeout: float = STARTUP_TIMEOUT,
    ) -> None:
        self.template = (
            Path(config) if isinstance(config, Path) else config_path(self.server, config)
        )
        self.extra_values = dict(values or {})
        self._doc_root = doc_root
        self.startup_timeout = startup_timeout
        self.port = 0
        self.run_dir = Path()
        self.config_file = Path()
        self.values: dict[str, str] = {}
        self.process: ManagedProcess | None = None

    # -- subclass hooks -----------------------------------------------------------------

    @classmethod
    def binary(cls) -> str | None:
        for name in cls.binary_names:
            found = find_binary(name)
            if found:
                return found
        return None

    @classmethod
    def modules_dir(cls) -> str:
        for candidate in cls.modules_dirs:
            if Path(candidate).is_dir():
                return candidate
        return cls.modules_dirs[0] if cls.modules_dirs else ""

    @classmethod
    def require(cls) -> str:
        """The binary's path, or skip (fail in CI)."""
        found = cls.binary()
        if found is None:
            unavailable(f"{cls.server} is not installed ({' / '.join(cls.binary_names)})")
        return found

    def argv(self, binary: str) -> list[str]:
        raise NotImplementedError

    # -- public -------------------------------------------------------------------------

    @property
    def error_log(self) -> Path:
        return self.run_dir / "error.log"

    @property
    def output_log(self) -> Path:
        return self.run_dir / "server-output.log"

    @property
    def doc_root(self) -> Path:
        return Path(self.values["DOC_ROOT"])

    def url(self, path: str = "/") -> str:
        return f"http://{LOOPBACK}:{self.port}{path}"

    def error_log_text(self) -> str:
        """The error log, then the server's own output, labelled (empty ones omitted)."""
        parts = []
        for path in (self.error_log, self.output_log):
            with contextlib.suppress(OSError):
                text = path.read_text(errors="replace")
                if text.strip():
                    parts.append(f"--- {path.name} ---\n{text.rstrip()}")
        return "\n".join(parts) or "(server logs are empty)"

    def request(
        self,
        method: str,
        url_path: str,
        headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
        body: bytes | Iterable[bytes] | None = None,
        *,
        timeout: float = 30.0,
    ) -> Response:
        return request(method, url_path, headers, body, port=self.port, timeout=timeout)

    def raw_exchange(self, data: bytes, *, timeout: float = 30.0) -> bytes:
        return raw_exchange(data, port=self.port, timeout=timeout)

    # -- lifecycle ----------------------------------------------------------------------

    def __enter__(self: _S) -> _S:
        binary = self.require()
        self.run_dir = world_readable_tempdir(f"wsgiwire-{self.server}-")
        try:
            self._prepare()
            self._start(binary)
        except BaseException:
            self._cleanup()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._cleanup()

    def _prepare(self) -> None:
        tmp_dir = self.run_dir / "tmp"
        tmp_dir.mkdir()
        tmp_dir.chmod(0o1777)
        if self._doc_root is None:
            doc_root = self.run_dir / "htdocs"
            doc_root.mkdir()
            doc_root.chmod(0o755)
        else:
            doc_root = self._doc_root
        user, group = server_user()
        # Some servers (lighttpd) open their error log after dropping privileges.
        self.error_log.touch(mode=0o644)
        if os.geteuid() == 0:
            os.chown(self.error_log, pwd.getpwnam(user).pw_uid, grp.getgrnam(group).gr_gid)
        self.values = {
            "RUN_DIR": str(self.run_dir),
            "TMP_DIR": str(tmp_dir),
            "DOC_ROOT": str(doc_root),
            "USER": user,
            "GROUP": group,
            "MODULES_DIR": self.modules_dir(),
            "PORT": "0",
            **self.extra_values,
        }

    def _start(self, binary: str) -> None:
        for attempt in range(1, self.bind_attempts + 1):
            self.port = free_port()
            self.values["PORT"] = str(self.port)
            self.config_file = render_file(
                self.template, self.run_dir / self.config_file_name, self.values
            )
            self.process = ManagedProcess(
                self.argv(binary), log_path=self.output_log, cwd=self.run_dir
            )
            self.process.start()
            try:
                wait_for_port(self.port, timeout=self.startup_timeout, process=self.process)
                return
            except (HarnessError, TimeoutError) as exc:
                self.process.stop()
                logs = self.error_log_text()
                lost_race = any(marker in logs for marker in _BIND_ERRORS)
                if lost_race and attempt < self.bind_attempts:
                    # Another process took the port between free_port() and bind().
                    for path in (self.error_log, self.output_log):
                        with contextlib.suppress(FileNotFoundError):
                            path.write_bytes(b"")  # truncate: keeps the owner
                    continue
                raise HarnessError(
                    f"{self.server} ({self.config_file}) did not start: {exc}\n{logs}"
                ) from None

    def _cleanup(self) -> None:
        try:
            if self.process is not None:
                self.process.stop()
        finally:
            self.process = None
            keep = os.environ.get(KEEP_RUN_DIRS_ENV) == "1"
            if self.run_dir != Path() and not keep:
                shutil.rmtree(self.run_dir, ignore_errors=True)


class NginxServer(RunningServer):
    """nginx in the foreground: ``nginx -p RUN_DIR -e error.log -c conf -g 'daemon off;'``."""

    server = "nginx"
    binary_names = ("nginx",)
    modules_dirs = ("/usr/lib/nginx/modules", "/usr/lib64/nginx/modules")
    config_file_name = "nginx.conf"

    def argv(self, binary: str) -> list[str]:
        return [
            binary,
            "-p", str(self.run_dir),
            "-e", str(self.error_log),
            "-c", str(self.config_file),
            "-g", "daemon off;",
        ]  # fmt: skip


class ApacheServer(RunningServer):
    """Apache httpd in the foreground: ``apache2 -DFOREGROUND -f conf``.

    The config is self-contained (ServerRoot, PidFile, Mutex, DefaultRuntimeDir in the
    run dir), so Debian's ``envvars`` is not needed. As root, Apache runs its children
    as {{USER}}; it refuses to serve as root.
    """

    server = "apache"
    binary_names = ("apache2", "httpd")
    modules_dirs = (
        "/usr/lib/apache2/modules",
        "/usr/lib64/httpd/modules",
        "/usr/lib/httpd/modules",
    )
    config_file_name = "apache2.conf"

    def argv(self, binary: str) -> list[str]:
        return [binary, "-DFOREGROUND", "-f", str(self.config_file)]

    def require_module(self, name: str) -> Path:
        """Skip (fail in CI) when ``mod_<name>.so`` is missing."""
        return require_path(Path(self.modules_dir()) / f"mod_{name}.so", f"Apache mod_{name}")


class LighttpdServer(RunningServer):
    """lighttpd in the foreground: ``lighttpd -D -f conf -m MODULES_DIR``.

    lighttpd has no config directive for its module dir, so the harness passes ``-m``.
    """

    server = "lighttpd"
    binary_names = ("lighttpd",)
    modules_dirs = ("/usr/lib/lighttpd", "/usr/lib64/lighttpd", "/usr/local/lib/lighttpd")
    config_file_name = "lighttpd.conf"

    def argv(self, binary: str) -> list[str]:
        return [binary, "-D", "-f", str(self.config_file), "-m", self.modules_dir()]


class HaproxyServer(RunningServer):
    """HAProxy in the foreground: ``haproxy -f conf -db`` (logs to stderr, so to
    ``server-output.log``). SIGTERM stops it at once."""

    server = "haproxy"
    binary_names = ("haproxy",)
    config_file_name = "haproxy.cfg"

    def argv(self, binary: str) -> list[str]:
        return [binary, "-f", str(self.config_file), "-db"]


class CaddyServer(RunningServer):
    """Caddy in the foreground: ``caddy run --config conf --adapter caddyfile``, with
    its home and data dirs in the run dir (it writes nothing elsewhere)."""

    server = "caddy"
    binary_names = ("caddy",)
    config_file_name = "Caddyfile"

    def argv(self, binary: str) -> list[str]:
        home = str(self.run_dir)
        return [
            "/usr/bin/env", f"HOME={home}", f"XDG_DATA_HOME={home}/data",
            f"XDG_CONFIG_HOME={home}/config",
            binary, "run", "--config", str(self.config_file), "--adapter", "caddyfile",
        ]  # fmt: skip


SERVER_CLASSES: dict[str, type[RunningServer]] = {
    cls.server: cls
    for cls in (NginxServer, ApacheServer, LighttpdServer, HaproxyServer, CaddyServer)
}


# ---------------------------------------------------------------------------------------
# A staged copy of the package and the test apps, for scripts a web server runs


@dataclass(frozen=True)
class Stage:
    """A world-readable dir holding ``wsgiwire/`` and the ``apps/*.py`` test modules.

    ``python`` is the interpreter scripts should name in their shebang.
    """

    root: Path
    python: str

    def script(
        self, template: str | Path, name: str, values: Mapping[str, str] | None = None
    ) -> Path:
        """Render ``template`` (a name in ``apps/`` or a path) to ``root/name``, mode 0755.

        Templates get ``{{PYTHON}}`` and ``{{STAGE_DIR}}`` besides ``values``.
        """
        source = template if isinstance(template, Path) else APPS_DIR / template
        filled = {"PYTHON": self.python, "STAGE_DIR": str(self.root), **(values or {})}
        return render_file(source, self.root / name, filled, mode=0o755)


@contextlib.contextmanager
def staged(prefix: str = "wsgiwire-stage-") -> Iterator[Stage]:
    """Stage the package and the test apps, byte-compiled; removed afterwards."""
    root = world_readable_tempdir(prefix)
    try:
        stage_package(root)
        for module in APPS_DIR.glob("*.py"):
            if module.name != "__init__.py":
                stage_file(module, root)
        python = script_python()
        precompile(python, root)
        yield Stage(root, python)
    finally:
        if os.environ.get(KEEP_RUN_DIRS_ENV) != "1":
            shutil.rmtree(root, ignore_errors=True)


# ---------------------------------------------------------------------------------------
# wsgiwire backends (``wsgiwire serve``) run from a Stage

# The line ``wsgiwire serve`` logs once per listening socket, after binding it:
#   "... wsgiwire 0.1.0 serving fastcgi on ('127.0.0.1', 9000)"
_SERVING = re.compile(r"serving (\w+) on (.*)$", re.MULTILINE)


def wait_for_output(process: ManagedProcess, text: str, *, timeout: float = STARTUP_TIMEOUT) -> str:
    """Poll ``process``'s log every 20 ms until it contains ``text``; returns the log.

    Raises HarnessError (with the log) when the process exits first, TimeoutError after
    ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        output = process.output()
        if text in output:
            return output
        if process.returncode() is not None:
            raise HarnessError(
                f"{process.argv[0]} exited with status {process.returncode()} before "
                f"logging {text!r}:\n{output}"
            )
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{text!r} not logged after {timeout:.1f}s:\n{output}")
        time.sleep(POLL_INTERVAL)


class WsgiwireBackend(ManagedProcess):
    """``python -m wsgiwire serve APP --bind ADDR... OPTIONS`` from a :class:`Stage`.

    Runs this interpreter with ``stage.root`` as working dir and ``PYTHONPATH``, so the
    staged package and ``apps/*.py`` are imported (``APP`` is e.g. ``fcgi_apps``). The
    environment is PATH plus ``env`` only (no stray ``FCGI_WEB_SERVER_ADDRS``).
    ``argv_prefix`` runs the command through a wrapper (e.g. one that moves fds).

    ``start()`` returns once every bind is listening (the server logs each one);
    :attr:`addresses` then holds what it logged, so ``--bind 127.0.0.1:0`` is race-free:
    ``backend.port`` is the port the kernel chose.
    """

    def __init__(
        self,
        stage: Stage,
        app: str,
        binds: Sequence[str],
        *,
        log_path: Path,
        options: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        pass_fds: Sequence[int] = (),
        stdin: int | None = subprocess.DEVNULL,
        argv_prefix: Sequence[str] = (),
        startup_timeout: float = STARTUP_TIMEOUT,
    ) -> None:
        full_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": str(stage.root),
            "PYTHONDONTWRITEBYTECODE": "1",
            **(env or {}),
        }
        argv = [
            *argv_prefix,
            sys.executable, "-m", "wsgiwire", "serve", app,
            *(f"--bind={bind}" for bind in binds),
            *options,
        ]  # fmt: skip
        super().__init__(
            argv, log_path=log_path, env=full_env, cwd=stage.root, pass_fds=pass_fds, stdin=stdin
        )
        self.binds = list(binds)
        self.startup_timeout = startup_timeout
        self.addresses: list[str] = []

    def start(self) -> None:
        super().start()
        try:
            deadline = time.monotonic() + self.startup_timeout
            expected = max(1, len(self.binds))
            while True:
                output = wait_for_output(
                    self, "serving", timeout=max(0.0, deadline - time.monotonic())
                )
                found = _SERVING.findall(output)
                if len(found) >= expected:
                    self.addresses = [address.strip() for _, address in found]
                    return
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"only {len(found)} of {expected} binds listening")
                time.sleep(POLL_INTERVAL)
        except BaseException:
            self.stop()
            raise

    @property
    def port(self) -> int:
        """The TCP port of the first listening socket (as logged by the server)."""
        for address in self.addresses:
            # "127.0.0.1:9000", "[::1]:9000" (or an older "('127.0.0.1', 9000)")
            match = re.search(r"(?:\('[^']*', |\[[0-9a-fA-F:.]*\]:|[0-9.]+:)(\d+)", address)
            if match:
                return int(match.group(1))
        raise HarnessError(f"no TCP listener among {self.addresses}")
