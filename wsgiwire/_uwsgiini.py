"""Reading a uWSGI ``.ini`` file and turning it into ``wsgiwire serve`` options.

``wsgiwire serve --ini uwsgi.ini`` and ``wsgiwire config --from-uwsgi uwsgi.ini``
use it. The file is read as uWSGI reads it, for what a WSGI deployment uses:

* the ``[uwsgi]`` section (``--ini-section`` picks another one); lines
  ``key = value``; ``;`` and ``#`` start comment lines; a key may repeat
  (``env``, ``pythonpath``, ``socket``), in file order;
* ``$(NAME)``: the environment variable NAME (empty when unset);
* ``%(key)``: the value of another key of the section (the last one given
  before, else the first one after); a name no key has is an error;
* the magic variables ``%d`` (the ini file's directory, with a trailing
  slash), ``%p`` (its absolute path), ``%s`` (its file name), ``%n`` (the file
  name without extension), ``%e`` (the extension), ``%c`` (the name of its
  directory), ``%x`` (the section), ``%v`` (the working directory), ``%k``
  (CPU count), ``%h`` (host name), ``%u``/``%U`` (uid, user name),
  ``%g``/``%G`` (gid, group name), ``%%`` (a percent sign).

:func:`translate` maps each key to argv-style ``serve`` options (parsed by the
same argparse parser as the command line, which then overrides the file), and
sorts the rest into *no-ops* (accepted, nothing to do here) and *unsupported*
keys, each with a one-line reason.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable, Iterable, Mapping
from typing import NamedTuple

__all__ = [
    "IniError",
    "Skipped",
    "Translation",
    "placeholders",
    "read_ini",
    "translate",
]

DEFAULT_SECTION = "uwsgi"
_MAX_FILE_BYTES = 1 << 20  # an ini file, not a data file: refuse anything larger


class IniError(Exception):
    """The ini file cannot be read or has a substitution that cannot be resolved."""


class Skipped(NamedTuple):
    """An ini key wsgiwire does not turn into an option, and why."""

    key: str
    value: str
    reason: str


class Translation(NamedTuple):
    """What an ini section means for ``wsgiwire serve``."""

    argv: list[str]  # serve options, in file order
    app: str | None  # module:callable, when the file names the app
    noops: list[Skipped]  # accepted: wsgiwire does this anyway, or it does not apply
    unsupported: list[Skipped]  # not mapped: listed at start, an error with --strict-ini
    warnings: list[str]  # mapped, but worth a line (a changed meaning)


# -- reading ----------------------------------------------------------------------------

_SECTION = re.compile(r"^\[([^\]]*)\]\s*$")
_ENV_REF = re.compile(r"\$\(([^)]*)\)")
_KEY_REF = re.compile(r"%\(([^)]*)\)")
_MAGIC = re.compile(r"%(.)")


def _magic_table(path: str, section: str) -> dict[str, str]:
    absolute = os.path.abspath(path)
    directory = os.path.dirname(absolute)
    name = os.path.basename(absolute)
    stem, ext = os.path.splitext(name)

    def user() -> str:
        try:
            import pwd

            return pwd.getpwuid(os.getuid()).pw_name
        except (ImportError, KeyError):
            return str(os.getuid())

    def group() -> str:
        try:
            import grp

            return grp.getgrgid(os.getgid()).gr_name
        except (ImportError, KeyError):
            return str(os.getgid())

    return {
        "d": directory.rstrip("/") + "/",
        "p": absolute,
        "s": name,
        "n": stem,
        "e": ext,
        "c": os.path.basename(directory),
        "x": section,
        "v": os.getcwd(),
        "k": str(os.cpu_count() or 1),
        "h": socket.gethostname(),
        "u": str(os.getuid()),
        "U": user(),
        "g": str(os.getgid()),
        "G": group(),
        "%": "%",
    }


def placeholders(path: str, section: str = DEFAULT_SECTION) -> set[str]:
    """The keys of ``section`` that other keys refer to with ``%(key)``."""
    return {name for _, value in _read_raw(path, section) for name in _KEY_REF.findall(value)}


def read_ini(
    path: str, section: str = DEFAULT_SECTION, *, environ: Mapping[str, str] | None = None
) -> list[tuple[str, str]]:
    """The ``(key, value)`` pairs of ``section``, in file order, substitutions done."""
    env = os.environ if environ is None else environ
    return _substitute(_read_raw(path, section), _magic_table(path, section), env, path)


def _read_raw(path: str, section: str) -> list[tuple[str, str]]:
    try:
        with open(path, "rb") as f:
            raw = f.read(_MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise IniError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(raw) > _MAX_FILE_BYTES:
        raise IniError(f"{path} is larger than {_MAX_FILE_BYTES} bytes; not an ini file")
    text = raw.decode("utf-8", "surrogateescape")
    pairs: list[tuple[str, str]] = []
    current: str | None = None
    seen_section = False
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped[0] in ";#":
            continue
        match = _SECTION.match(stripped)
        if match:
            current = match.group(1).strip()
            seen_section = seen_section or current == section
            continue
        if current != section:
            continue
        key, sep, value = stripped.partition("=")
        key = key.strip()
        if not sep:
            # uWSGI takes a bare key as a flag set to true ("master").
            value = "true"
        if not key:
            raise IniError(f"{path}:{number}: a line with no key: {stripped!r}")
        pairs.append((key, value.strip()))
    if not seen_section:
        raise IniError(f"{path} has no [{section}] section")
    return pairs


def _substitute(
    pairs: list[tuple[str, str]], magic: Mapping[str, str], env: Mapping[str, str], path: str
) -> list[tuple[str, str]]:
    # uWSGI's order: $(ENV) first, then %(key) references, then magic variables.
    pairs = [(k, _ENV_REF.sub(lambda m: env.get(m.group(1), ""), v)) for k, v in pairs]
    return [
        (key, _MAGIC.sub(lambda m: magic.get(m.group(1), m.group(0)),
                         _resolve_refs(pairs, index, magic, path)))
        for index, (key, _) in enumerate(pairs)
    ]


def _resolve_refs(
    pairs: list[tuple[str, str]], index: int, magic: Mapping[str, str], path: str
) -> str:
    """The value of ``pairs[index]`` with its ``%(key)`` references replaced."""
    key, value = pairs[index]

    def reference(match: re.Match[str]) -> str:
        name = match.group(1)
        before = [v for k, v in pairs[:index] if k == name]
        if before:
            return before[-1]
        after = [v for k, v in pairs[index + 1 :] if k == name]
        if after:
            return after[0]
        if len(name) == 1 and name in magic:
            return magic[name]
        raise IniError(f"{path}: {key} refers to %({name}), which no key of the section sets")

    return _KEY_REF.sub(reference, value)


# -- translating --------------------------------------------------------------------------

_TRUE = frozenset({"1", "true", "yes", "on", "y", "t"})

# Keys accepted with nothing to do: wsgiwire behaves this way anyway, or the
# key has no meaning for a pure-Python server.
NOOPS: dict[str, str] = {
    "master": "wsgiwire always runs a master over its workers",
    "enable-threads": "Python threads are always enabled",
    "single-interpreter": "wsgiwire runs one interpreter per process anyway",
    "thunder-lock": "workers take turns accepting without a lock",
    "vacuum": "wsgiwire removes its own socket files when it stops",
    "die-on-term": "SIGTERM always stops wsgiwire gracefully (uWSGI reloaded without this)",
    "need-app": "wsgiwire never starts without its app",
    "lazy-apps": "workers import the app themselves unless --preload is given",
    "lazy": "workers import the app themselves unless --preload is given",
    "post-buffering": "wsgiwire always buffers a request body (spooled to disk past 4 MiB)",
    "disable-logging": "the access log is off unless --access-log is given",
    "manage-script-name": "--mount sets SCRIPT_NAME and PATH_INFO from the mount point",
    "plugin": "wsgiwire is its own Python server",
    "plugins": "wsgiwire is its own Python server",
    "strict": "wsgiwire rejects unknown options itself (--strict-ini)",
    "auto-procname": "process names are set by wsgiwire",
    "procname-prefix": "process names are set by wsgiwire",
    "procname-prefix-spaced": "process names are set by wsgiwire",
    "memory-report": "the status page (--stats) reports memory",
    "optimize": "run python -O yourself if you want it",
    "py-call-osafterfork": "signals in workers work the Python way already",
    "hook-accepting1-once": "no hooks; nothing to do",
    "uwsgi-socket-default": "nothing to do",
}

# Keys wsgiwire does not map, with the reason shown at start.
UNSUPPORTED: dict[str, str] = {
    "http": "wsgiwire speaks no HTTP: put nginx (uwsgi_pass) in front",
    "http-socket": "wsgiwire speaks no HTTP: put nginx (uwsgi_pass) in front",
    "https": "wsgiwire speaks no HTTP: put nginx in front",
    "https-socket": "wsgiwire speaks no HTTP: put nginx in front",
    "http11-socket": "wsgiwire speaks no HTTP: put nginx in front",
    "static-map": "not needed behind a web server: let it serve static files",
    "static-map2": "not needed behind a web server: let it serve static files",
    "check-static": "not needed behind a web server: let it serve static files",
    "offload-threads": "not needed behind a web server",
    "cheaper": "wsgiwire runs a fixed number of workers",
    "cheaper-algo": "wsgiwire runs a fixed number of workers",
    "cheaper-initial": "wsgiwire runs a fixed number of workers",
    "cheaper-step": "wsgiwire runs a fixed number of workers",
    "emperor": "not supported: run one wsgiwire per app under systemd",
    "spooler": "not supported: use a task queue",
    "mule": "not supported: use a task queue",
    "cron": "not supported: use systemd timers or cron",
    "attach-daemon": "not supported: use systemd or supervisor",
    "attach-daemon2": "not supported: use systemd or supervisor",
    "smart-attach-daemon": "not supported: use systemd or supervisor",
    "route": "not supported: route in the web server",
    "route-uri": "not supported: route in the web server",
    "route-host": "not supported: route in the web server",
    "cache2": "not supported: the uWSGI cache framework",
    "logformat": "not supported: wsgiwire's access log has its own format",
    "log-format": "not supported: wsgiwire's access log has its own format",
    "daemonize": "not supported: run wsgiwire under systemd or supervisor",
    "daemonize2": "not supported: run wsgiwire under systemd or supervisor",
    "gevent": "not supported: wsgiwire runs threads, not greenlets",
    "async": "not supported: wsgiwire runs threads, not greenlets",
    "ugreen": "not supported: wsgiwire runs threads, not greenlets",
    "harakiri-verbose": "not supported (--request-timeout logs the hung request)",
    "reload-on-as": "not supported: use reload-on-rss",
    "evil-reload-on-rss": "not supported: use reload-on-rss",
    "uwsgi-socket-modifier1": "not supported",
    "ini": "included files are not read: merge them into this section",
    "inherit": "included files are not read: merge them into this section",
    "for": "uWSGI's ini loops are not supported",
    "if-env": "uWSGI's ini conditions are not supported",
    "if-exists": "uWSGI's ini conditions are not supported",
    "callable-file": "not supported",
}

_SOCKETS = {
    "socket": "uwsgi",
    "uwsgi-socket": "uwsgi",
    "s": "uwsgi",
    "fastcgi-socket": "fastcgi",
    "scgi-socket": "scgi",
}


def _bind(address: str) -> tuple[str, str | None]:
    """uWSGI's socket address as a ``--bind`` value, and a warning when its meaning moves."""
    if address.startswith("/") or address.startswith("./"):
        return f"unix:{os.path.abspath(address)}", None
    if address.startswith(":"):
        return (f"0.0.0.0{address}",
                f"{address} listens on every interface, as uWSGI did; "
                f"write 127.0.0.1{address} to keep it local")
    if address.startswith("=") or address.startswith("@"):
        raise ValueError("shared and abstract sockets are not supported")
    if ":" not in address:
        return f"unix:{os.path.abspath(address)}", None
    return address, None


def _size(value: str) -> str:
    """A uWSGI byte count (plain digits) checked as such."""
    if not value.isdigit():
        raise ValueError(f"expected a number of bytes, got {value!r}")
    return value


def _number(value: str) -> str:
    if not value.lstrip("-").isdigit():
        raise ValueError(f"expected a number, got {value!r}")
    return value


def translate(
    pairs: Iterable[tuple[str, str]],
    *,
    known: Callable[[str], bool] = lambda option: True,
    placeholders: Iterable[str] = (),
) -> Translation:
    """Map ini ``pairs`` to serve options; ``known(option)`` says whether this
    wsgiwire has an option (one another part of it may add later). Keys named
    in ``placeholders`` (referred to by ``%(key)``) are values, not options."""
    referenced = frozenset(placeholders)
    argv: list[str] = []
    noops: list[Skipped] = []
    unsupported: list[Skipped] = []
    warnings: list[str] = []
    module: str | None = None
    wsgi_file: str | None = None
    callable_name: str | None = None
    mount_app: str | None = None
    protocol: str | None = None
    mounts = 0

    def option(key: str, value: str, name: str, *values: str) -> None:
        if known(name):
            argv.extend([name, *values])
        else:
            unsupported.append(Skipped(key, value, f"this wsgiwire has no {name} option"))

    for raw_key, value in pairs:
        key = raw_key.lower().replace("_", "-")
        try:
            if key in _SOCKETS:
                wanted = _SOCKETS[key]
                if protocol is not None and wanted != protocol:
                    unsupported.append(Skipped(key, value, f"one protocol per server: this "
                                               f"one already speaks {protocol}"))
                    continue
                if protocol is None:
                    protocol = wanted
                    argv.extend(["--protocol", wanted])
                bind, warning = _bind(value)
                if warning:
                    warnings.append(f"{key} = {value}: {warning}")
                argv.extend(["--bind", bind])
            elif key in ("module", "wsgi", "w"):
                module = value
            elif key in ("wsgi-file", "file"):
                wsgi_file = value
            elif key == "callable":
                callable_name = value
            elif key == "mount":
                mounts += 1
                prefix, sep, mounted = value.partition("=")
                if not sep or mounts > 1:
                    unsupported.append(Skipped(key, value, "one app per server, at one "
                                               "mount point (mount = /prefix=app)"))
                    continue
                mount_app = mounted.strip()
                if prefix.strip() not in ("", "/"):
                    argv.extend(["--mount", prefix.strip().rstrip("/")])
            elif key in ("chmod-socket",):
                mode = value if value not in ("", "true") else "666"
                if not mode or any(c not in "01234567" for c in mode):
                    raise ValueError(f"expected an octal mode, got {value!r}")
                argv.extend(["--socket-mode", mode])
                if value in ("", "true", "666", "777") or value.endswith(("6", "7")):
                    warnings.append(f"{key} = {value}: the socket is world-writable; "
                                    "chown-socket with mode 660 keeps it to the web server")
            elif key == "chown-socket":
                argv.extend(["--socket-owner", value])
            elif key in ("processes", "workers", "p"):
                argv.extend(["--workers", _number(value)])
            elif key == "threads":
                argv.extend(["--threads", _number(value)])
            elif key == "harakiri":
                option(key, value, "--request-timeout", _number(value))
            elif key == "max-requests":
                argv.extend(["--max-requests", _number(value)])
            elif key == "max-requests-delta":
                argv.extend(["--max-requests-jitter", _number(value)])
                warnings.append(f"{key} = {value}: each worker adds a random 0..{value} "
                                "(uWSGI added worker id times the delta)")
            elif key == "reload-on-rss":
                option(key, value, "--reload-on-rss", _number(value))
            elif key == "buffer-size":
                argv.extend(["--max-params", _size(value)])
            elif key == "limit-post":
                if value != "0":  # uWSGI's 0 is "no limit": keep wsgiwire's 1 GiB
                    argv.extend(["--max-body", _size(value)])
            elif key == "listen":
                argv.extend(["--backlog", _number(value)])
            elif key == "chdir":
                option(key, value, "--chdir", value)
            elif key == "env":
                if "=" not in value:
                    raise ValueError("env takes NAME=VALUE")
                option(key, value, "--env", value)
            elif key in ("pythonpath", "python-path", "pp"):
                option(key, value, "--pythonpath", value)
            elif key in ("virtualenv", "home", "venv", "pyhome", "H"):
                option(key, value, "--virtualenv", value)
            elif key == "uid":
                argv.extend(["--user", value])
            elif key == "gid":
                argv.extend(["--group", value])
            elif key in ("pidfile", "pidfile2"):
                argv.extend(["--pid-file", value])
            elif key == "stats":
                bind, warning = _bind(value)
                if warning:
                    warnings.append(f"{key} = {value}: {warning}")
                argv.extend(["--stats", bind])
            elif key in ("logto", "logto2", "daemonize-log"):
                option(key, value, "--log-file", value)
            elif key == "touch-reload":
                option(key, value, "--touch-reload", value)
            elif key == "py-autoreload":
                if value not in ("0", "false"):
                    argv.append("--reload")
            elif key == "log-x-forwarded-for":
                noops.append(Skipped(key, value, "use --trusted-proxy to trust X-Forwarded-For"))
            elif key in NOOPS:
                noops.append(Skipped(key, value, NOOPS[key]))
            elif raw_key in referenced and key not in UNSUPPORTED:
                noops.append(Skipped(key, value, "a placeholder other keys refer to"))
            elif key in UNSUPPORTED:
                unsupported.append(Skipped(key, value, UNSUPPORTED[key]))
            else:
                unsupported.append(Skipped(key, value, "not supported by wsgiwire"))
        except ValueError as exc:
            unsupported.append(Skipped(key, value, f"cannot be mapped: {exc}"))

    target = mount_app or module or wsgi_file
    app: str | None = None
    if target is not None:
        if target.endswith(".py") or "/" in target:
            directory, name = os.path.split(os.path.abspath(target))
            stem, ext = os.path.splitext(name)
            if ext != ".py" or not stem.isidentifier():
                unsupported.append(Skipped("wsgi-file", target,
                                           "name the file NAME.py (a module) or use module ="))
            else:
                option("wsgi-file", target, "--pythonpath", directory)
                app = stem
        else:
            app = target
        if app is not None:
            if ":" not in app:
                app = f"{app}:{callable_name or 'application'}"
            elif callable_name is not None:
                warnings.append(f"callable = {callable_name} is ignored: the module names it")
    return Translation(argv, app, noops, unsupported, warnings)
