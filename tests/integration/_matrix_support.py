"""Helpers for the deployment matrix (``test_deploy_matrix.py``).

* :func:`matrix_stage`: a world-readable stage (``servers.staged``) that also holds
  Flask and its dependencies, copied from this interpreter's site-packages, so a
  script the web server runs with ``/usr/bin/python3`` (CGI, mod_fcgid, lighttpd
  ``bin-path``) imports the same Flask app as a ``wsgiwire serve`` backend.
* :func:`wsgiwire_config`: run ``python -m wsgiwire config ... --full`` (the standalone
  tested file; the snippets printed without ``--full`` are booted by
  ``test_deploy_snippets.py``) as a user would and
  split what it prints: the file (stdout), ``# tested file:``, ``# backend:`` and
  ``# note:`` (stderr). The harness's own placeholders (port, run dir, user...) are
  passed through as ``--set NAME={{NAME}}`` so the server harness fills them in when
  it boots the printed file; every other value (BACKEND, BACKEND_HOST, BACKEND_PORT,
  MOUNT, SCRIPT) is the one ``wsgiwire config`` derived from ``--bind``, ``--mount``
  and ``--app-file``.
* :class:`ServeCommand`: a ``wsgiwire serve`` command line (the ``# backend:`` line,
  or the ``#   wsgiwire serve ...`` line a config file documents), parsed.
* :class:`BackendPool`: ``wsgiwire serve`` backends started on demand and shared by
  every config whose command line is the same; each stopped by its own PID.
* :func:`check_page`: the checks every deployment passes, on one response.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .servers import (
    KEEP_RUN_DIRS_ENV,
    LOOPBACK,
    REPO_ROOT,
    HarnessError,
    Response,
    Stage,
    WsgiwireBackend,
    free_port,
    make_world_readable,
    precompile,
    server_user,
    staged,
    world_readable_tempdir,
)

APP = "matrix_app:app"
#: What Flask's url_for('page', name='z') must give: the mount, then this.
PAGE = "/page/z"

#: Flask and what it imports, all pure Python (markupsafe's C speedups are left out:
#: it falls back to its pure-Python implementation, whatever the interpreter).
FLASK_PACKAGES = ("flask", "werkzeug", "jinja2", "itsdangerous", "click", "blinker", "markupsafe")

#: Placeholders the server harness fills when it boots a file (servers.RunningServer).
HARNESS_PLACEHOLDERS = ("PORT", "RUN_DIR", "TMP_DIR", "DOC_ROOT", "USER", "GROUP", "MODULES_DIR")

CONFIG_TIMEOUT = 30.0


# ---------------------------------------------------------------------------------------
# Staging Flask for /usr/bin/python3


def stage_flask(stage: Stage) -> None:
    """Copy :data:`FLASK_PACKAGES` from this interpreter into ``stage.root``, compiled."""
    for name in FLASK_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise HarnessError(f"{name} is not installed in {sys.executable}")
        source = Path(next(iter(spec.submodule_search_locations)))
        target = stage.root / name
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(
            source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.so", "*.c")
        )
    make_world_readable(stage.root)
    precompile(stage.python, stage.root)


@contextlib.contextmanager
def matrix_stage() -> Iterator[Stage]:
    """``servers.staged()`` plus Flask: wsgiwire, ``apps/*.py`` and Flask in one dir."""
    with staged("wsgiwire-matrix-stage-") as stage:
        stage_flask(stage)
        yield stage


# ---------------------------------------------------------------------------------------
# `wsgiwire config`


@dataclass(frozen=True)
class ConfigOutput:
    """What one ``wsgiwire config`` run printed."""

    argv: tuple[str, ...]
    text: str  # stdout: the config file
    tested_file: str  # "nginx/fastcgi-prefix" (from "# tested file: server-configs/...conf")
    backend: str  # the text after "# backend: "
    note: str  # the text after "# note: ", or ""

    def serve_command(self) -> ServeCommand:
        """The backend line as a command (it must be a ``wsgiwire serve`` one)."""
        return ServeCommand.parse(self.backend)


_TESTED_FILE = re.compile(r"^# tested file: server-configs/(\w+/[\w-]+)\.conf$", re.MULTILINE)
_BACKEND = re.compile(r"^# backend: (.+)$", re.MULTILINE)
_NOTE = re.compile(r"^# note: (.+)$", re.MULTILINE)


def wsgiwire_config(server: str, *args: str, harness_values: bool = True) -> ConfigOutput:
    """Run ``python -m wsgiwire config SERVER ARGS --full`` (the repo's package); must succeed.

    With ``harness_values``, the harness's placeholders are passed through unfilled
    (``--set PORT={{PORT}}``...), for a :class:`~.servers.RunningServer` to fill.
    """
    passthrough = [f"--set={name}={{{{{name}}}}}" for name in HARNESS_PLACEHOLDERS]
    argv = (
        sys.executable, "-m", "wsgiwire", "config", server, *args, "--full",
        *(passthrough if harness_values else ()),
    )  # fmt: skip
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(REPO_ROOT),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    done = subprocess.run(
        argv, capture_output=True, text=True, cwd=REPO_ROOT, env=env,
        timeout=CONFIG_TIMEOUT, check=False,
    )  # fmt: skip
    command = shlex.join(argv[2:])
    if done.returncode != 0:
        raise HarnessError(f"{command} exited {done.returncode}:\n{done.stderr}")
    tested = _TESTED_FILE.search(done.stderr)
    backend = _BACKEND.search(done.stderr)
    if tested is None or backend is None:
        raise HarnessError(f"{command}: no '# tested file'/'# backend' line:\n{done.stderr}")
    note = _NOTE.search(done.stderr)
    return ConfigOutput(
        argv=argv,
        text=done.stdout,
        tested_file=tested.group(1),
        backend=backend.group(1),
        note=note.group(1) if note else "",
    )


def write_config(output: ConfigOutput, directory: Path, name: str) -> Path:
    """Save the printed file as ``directory/name`` for the harness to boot."""
    path = directory / name
    path.write_text(output.text)
    path.chmod(0o644)
    return path


# ---------------------------------------------------------------------------------------
# `wsgiwire serve` command lines


_DOCUMENTED = re.compile(r"^#\s+(wsgiwire serve [^(\n]*?)\s*(?:\(.*\))?$", re.MULTILINE)


@dataclass(frozen=True)
class ServeCommand:
    """``wsgiwire serve APP --bind ADDR [OPTIONS]``: the app, the binds, the rest."""

    app: str
    binds: tuple[str, ...]
    options: tuple[str, ...]

    @classmethod
    def parse(cls, line: str) -> ServeCommand:
        words = shlex.split(line)
        if words[:2] != ["wsgiwire", "serve"] or len(words) < 3 or words[2].startswith("-"):
            raise HarnessError(f"not a 'wsgiwire serve APP ...' command: {line!r}")
        binds: list[str] = []
        options: list[str] = []
        rest = iter(words[3:])
        for word in rest:
            if word in ("--bind", "-b"):
                binds.append(next(rest))
            elif word.startswith("--bind="):
                binds.append(word.partition("=")[2])
            else:
                options.append(word)
        return cls(words[2], tuple(binds), tuple(options))

    @classmethod
    def documented_in(cls, config_text: str) -> ServeCommand:
        """The ``#   wsgiwire serve ...`` line a server-configs file opens with."""
        match = _DOCUMENTED.search(config_text)
        if match is None:
            raise HarnessError("the config documents no 'wsgiwire serve' command")
        return cls.parse(match.group(1))

    def option(self, name: str) -> str | None:
        """The value of ``--name VALUE`` (or ``--name=VALUE``), or None."""
        words = iter(self.options)
        for word in words:
            if word == name:
                return next(words, "")
            if word.startswith(name + "="):
                return word.partition("=")[2]
        return None

    def with_app(self, app: str) -> ServeCommand:
        return ServeCommand(app, self.binds, self.options)


# ---------------------------------------------------------------------------------------
# Backends shared between configs


@dataclass
class BackendPool:
    """``wsgiwire serve`` backends from one stage, one per distinct command line.

    :meth:`address` hands out one bind address per key (protocol, transport and the
    options the backend will run with), so every config served by the same command
    gets the same ``--bind`` and so the same backend. A unix socket is chowned to the
    web server's user (``--socket-owner``): wsgiwire creates it mode 0660 and the
    servers' workers run as that user.
    """

    stage: Stage
    run_dir: Path = field(default_factory=lambda: world_readable_tempdir("wsgiwire-matrix-"))
    _addresses: dict[tuple[str, ...], str] = field(default_factory=dict)
    _running: dict[tuple[str, ...], tuple[tuple[str, ...], WsgiwireBackend]] = field(
        default_factory=dict
    )

    def address(self, protocol: str, transport: str, options: Sequence[str] = ()) -> str:
        key = (protocol, transport, *options)
        if key not in self._addresses:
            if transport == "unix":
                self._addresses[key] = f"unix:{self.run_dir}/{len(self._addresses)}.sock"
            else:
                self._addresses[key] = f"{LOOPBACK}:{free_port()}"
        return self._addresses[key]

    def forget(self, bind: str) -> None:
        """Stop handing out ``bind`` (another process took its port)."""
        for key, address in list(self._addresses.items()):
            if address == bind:
                del self._addresses[key]

    def start(self, command: ServeCommand, extra: Sequence[str] = ()) -> WsgiwireBackend:
        """The running backend for ``command`` + ``extra``, started if need be.

        A bind already served by another command line is a mistake in the caller's
        keys (two backends cannot share an address): it raises.
        """
        options = [*command.options, *extra]
        if command.option("--protocol") is None:
            options += ["--protocol", "fastcgi"]  # wsgiwire serve's default, made explicit
        if any(bind.startswith("unix:") for bind in command.binds):
            user, group = server_user()
            options += ["--socket-owner", f"{user}:{group}"]
        key = (command.app, *options)
        running = self._running.get(command.binds)
        if running is not None:
            if running[0] != key:
                raise HarnessError(f"{command.binds} already served by {running[0]}, not {key}")
            return running[1]
        backend = WsgiwireBackend(
            self.stage,
            command.app,
            command.binds,
            log_path=self.run_dir / f"backend-{len(self._running)}.log",
            options=options,
        )
        backend.start()
        self._running[command.binds] = (key, backend)
        return backend

    def stop(self) -> None:
        """Stop every backend by its PID; the first error is raised after all stopped."""
        errors: list[BaseException] = []
        for _, backend in self._running.values():
            try:
                backend.stop()
            except HarnessError as exc:
                errors.append(exc)
        self._running.clear()
        if os.environ.get(KEEP_RUN_DIRS_ENV) != "1":
            shutil.rmtree(self.run_dir, ignore_errors=True)
        if errors:
            raise errors[0]


# ---------------------------------------------------------------------------------------
# What every deployment must answer


def hex_of(text: str) -> str:
    """The hex of ``text``'s UTF-8 bytes (what the app reports as latin-1 bytes)."""
    return text.encode().hex()


def check_page(
    response: Response,
    *,
    mount: str,
    path_info: str,
    query: str = "",
    method: str = "GET",
    body: bytes = b"",
    context: str = "",
) -> dict[str, Any]:
    """One matrix_app report: a 200 JSON whose url_for is ``mount + PAGE``, whose
    SCRIPT_NAME is ``mount`` and whose PATH_INFO is ``path_info`` (decoded text)."""
    status, _, data = response
    where = f"{method} -> {status}\n{data[:1500]!r}\n{context}"
    assert status == 200, where
    assert response.header("Content-Type") == "application/json", where
    report: dict[str, Any] = json.loads(data)
    assert report["app"] == "matrix_app", where
    assert report["method"] == method, where
    got = (report["url_for"], report["SCRIPT_NAME_hex"], report["PATH_INFO_hex"])
    want = (mount + PAGE, hex_of(mount), hex_of(path_info))
    assert got == want, (
        f"url_for / SCRIPT_NAME / PATH_INFO: got {report['url_for']!r}, "
        f"{bytes.fromhex(report['SCRIPT_NAME_hex'])!r}, "
        f"{bytes.fromhex(report['PATH_INFO_hex'])!r}; want {mount + PAGE!r}, "
        f"{mount.encode()!r}, {path_info.encode()!r} (orig: {report['orig']})\n{where}"
    )
    assert report["QUERY_STRING"] == query, where
    assert (report["body_length"], report["body_sha256"]) == (
        len(body),
        hashlib.sha256(body).hexdigest(),
    ), where
    return report
