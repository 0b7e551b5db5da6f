"""Before anything serves: the process environment and the checks of the host.

:func:`prepare_process` applies ``--env``, ``--chdir``, ``--virtualenv`` and
``--pythonpath`` (uWSGI's options of the same names, for an ini file brought
along); :func:`check_options` finds the mistakes that need no socket and no
app (negative counts, an unknown user or group, a pid file or socket directory
that cannot be written), each as one :class:`StartupError` line.
"""

from __future__ import annotations

import argparse
import grp
import os
import pwd
import sys

__all__ = ["StartupError", "activate_virtualenv", "check_options", "prepare_process"]


def activate_virtualenv(path: str) -> str:
    """Put the virtualenv's site-packages (and its .pth files) first on sys.path."""
    import glob
    import site

    root = os.path.abspath(path)
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    site_dir = os.path.join(root, "lib", version, "site-packages")
    if not os.path.isdir(site_dir):
        found = sorted(os.path.relpath(p, root)
                       for p in glob.glob(os.path.join(root, "lib", "python*", "site-packages")))
        made = f" (it has {', '.join(found)})" if found else ""
        raise ValueError(f"--virtualenv {path}: no lib/{version}/site-packages{made}; "
                         f"make the virtualenv with this Python, {sys.executable}")
    before = list(sys.path)
    site.addsitedir(site_dir)
    added = [p for p in sys.path if p not in before]
    sys.path[:] = added + before
    os.environ["VIRTUAL_ENV"] = root
    os.environ["PATH"] = os.path.join(root, "bin") + os.pathsep + os.environ.get("PATH", "")
    return site_dir


def prepare_process(args: argparse.Namespace) -> None:
    """--env, --chdir, --virtualenv, --pythonpath, in that order (ValueError: refused)."""
    for item in args.env or ():
        name, sep, value = item.partition("=")
        if not sep or not name or "\0" in item:
            raise ValueError(f"--env takes NAME=VALUE, not {item!r}")
        os.environ[name] = value
    if args.chdir is not None:
        try:
            os.chdir(args.chdir)
        except OSError as exc:
            raise ValueError(f"--chdir {args.chdir}: {exc.strerror or exc}") from None
    if args.virtualenv is not None:
        activate_virtualenv(args.virtualenv)
    for directory in reversed(args.pythonpath or ()):
        full = os.path.abspath(directory)
        if not os.path.isdir(full):
            raise ValueError(f"--pythonpath {directory}: not a directory")
        if full in sys.path:
            sys.path.remove(full)
        sys.path.insert(0, full)
    if args.reload_on_rss < 0:
        raise ValueError("--reload-on-rss takes a number of MiB (0: off)")



class StartupError(Exception):
    """A mistake in the command line or the host, found before anything starts."""


def check_options(args: argparse.Namespace) -> None:
    """The checks that need no socket and no app: one line each, exit status 2."""
    for option, value in (("--workers", args.workers), ("--threads", args.threads),
                          ("--max-requests", args.max_requests),
                          ("--max-requests-jitter", args.max_requests_jitter),
                          ("--graceful-timeout", args.graceful_timeout),
                          ("--boot-timeout", args.boot_timeout),
                          ("--backlog", args.backlog)):
        if value < 0:
            raise StartupError(f"{option} must be 0 or more, not {value}")
    if args.user is not None and not args.user.isdigit():
        try:
            pwd.getpwnam(args.user)
        except KeyError:
            raise StartupError(f"--user {args.user}: no such user") from None
    if args.group is not None and not args.group.isdigit():
        try:
            grp.getgrnam(args.group)
        except KeyError:
            raise StartupError(f"--group {args.group}: no such group") from None
    if args.pid_file is not None:
        _check_writable("--pid-file", args.pid_file)
    for bind in args.bind or ():
        if bind.startswith("unix:") and len(bind) > 5:
            _check_writable("--bind", bind[5:], what="socket", shown=bind)


def _check_writable(option: str, path: str, what: str = "file", shown: str = "") -> None:
    """Can this process create ``path`` (or, for an existing file, rewrite it)? Tried for
    real, with a scratch file, as ``access()`` says yes to root on a read-only mount."""
    option = f"{option} {shown or path}"
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise StartupError(f"{option}: directory {directory} does not exist")
    if what == "file" and os.path.lexists(path):
        try:
            with open(path, "a"):
                return
        except OSError as exc:
            raise StartupError(f"{option}: cannot write it ({exc.strerror})") from None
    # A scratch file made as tempfile.mkstemp makes one (a random name, O_EXCL),
    # without importing tempfile into the master, and so into every worker forked
    # from it: only a reply spilled to disk needs it there.
    scratch = os.path.join(directory, f".wsgiwire-check-{os.urandom(6).hex()}")
    try:
        fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise StartupError(f"{option}: cannot create the {what} in {directory} "
                           f"({exc.strerror})") from None
    os.close(fd)
    os.unlink(scratch)
