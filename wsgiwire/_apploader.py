"""Finding the WSGI application a user named: ``module:callable`` or ``module:factory()``."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import traceback
from typing import cast

from .core._gateway import WSGIApp

__all__ = ["AppLoadError", "check_app_spec", "describe_load_error", "load_app"]

DEMO_APP = "wsgiwire._demo:app"


class AppLoadError(Exception):
    """The application could not be imported or is not callable (the message says why)."""


def load_app(spec: str | None, *, cwd: str | None = None) -> WSGIApp:
    """Import ``spec`` the way a server would: with the working directory on ``sys.path``.

    ``module`` alone means ``module:application`` (Django's and mod_wsgi's
    name) and falls back to ``module:app`` (Flask's).
    """
    spec = spec or DEMO_APP
    module_name, _, attr = spec.partition(":")
    if not module_name:
        raise AppLoadError(f"no module in {spec!r}; expected module:callable")
    directory = os.path.abspath(cwd or os.getcwd())
    if directory not in sys.path:
        sys.path.insert(0, directory)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        # Only when the missing module is the one named (or a package on its
        # dotted path): a missing dependency *inside* the user's module, even one
        # whose name is a string prefix of it ("app" for "app_settings"), is the
        # user's real error and propagates unchanged.
        missing = exc.name
        if missing is not None and (
            module_name == missing or module_name.startswith(missing + ".")
        ):
            raise AppLoadError(
                f"cannot import module {module_name!r} (searched {directory} and sys.path)"
            ) from exc
        raise
    call = attr.endswith("()")
    names = [attr[:-2] if call else attr] if attr else ["application", "app"]
    for name in names:
        obj: object = module
        try:
            for part in name.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            continue
        if call:
            if not callable(obj):
                raise AppLoadError(f"{module_name}:{name} is not a factory")
            obj = obj()
        if not callable(obj):
            raise AppLoadError(f"{module_name}:{name} is not callable (it is {type(obj).__name__})")
        return cast(WSGIApp, obj)
    raise AppLoadError(f"module {module_name!r} has no attribute {' or '.join(map(repr, names))}")


def check_app_spec(spec: str | None, *, cwd: str | None = None) -> None:
    """Fail early, without importing the app, when its module cannot be found at all.

    A prefork master uses this: the workers import the app themselves (so a
    reload runs fresh code), and an error inside the app's own import shows
    there, with its traceback.
    """
    spec = spec or DEMO_APP
    module_name = spec.partition(":")[0]
    if not module_name:
        raise AppLoadError(f"no module in {spec!r}; expected module:callable")
    directory = os.path.abspath(cwd or os.getcwd())
    if directory not in sys.path:
        sys.path.insert(0, directory)
    try:
        found = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        found = None
    if found is None:
        raise AppLoadError(
            f"cannot import module {module_name!r} (searched {directory} and sys.path)"
        )


_MESSAGE_LIMIT = 1000
_OURS = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _library_dirs() -> tuple[str, ...]:
    """The standard library's and installed packages' directories (sysconfig is
    imported here, for a failed load only: every worker would carry it)."""
    import sysconfig

    return tuple(
        os.path.abspath(path) + os.sep
        for path in {sysconfig.get_path(name) for name in ("stdlib", "platstdlib", "purelib",
                                                           "platlib")}
        if path
    )


def _shown_path(filename: str) -> str:
    """``filename`` relative to the working directory when it lies under it."""
    path = os.path.abspath(filename)
    here = os.getcwd() + os.sep
    return path[len(here):] if path.startswith(here) else filename


def describe_load_error(exc: BaseException) -> str:
    """One line for an application that failed to load: where, and what.

    ``app.py:12: RuntimeError: no DATABASE_URL`` names the deepest frame of the
    application's own code (not importlib's, not wsgiwire's; a library's frame
    only when the app has none); a ``SyntaxError`` names the line it points
    at. CR, LF and other control characters are escaped, and the line is
    bounded, so it is safe to log.
    """
    if isinstance(exc, AppLoadError):
        text = str(exc)
    else:
        where = ""
        if isinstance(exc, SyntaxError) and exc.filename:
            where = f"{_shown_path(exc.filename)}:{exc.lineno}"
            what = f"{type(exc).__name__}: {exc.msg}"
        else:
            what = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            frames = [
                frame for frame in traceback.extract_tb(exc.__traceback__)
                if not frame.filename.startswith(("<frozen ", _OURS))
            ]
            libraries = _library_dirs()
            own = [frame for frame in frames if not frame.filename.startswith(libraries)]
            chosen = (own or frames)[-1:]
            if chosen:
                where = f"{_shown_path(chosen[0].filename)}:{chosen[0].lineno}"
        text = f"{where}: {what}" if where else what
    text = text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text
    if len(text) > _MESSAGE_LIMIT:
        text = text[:_MESSAGE_LIMIT] + "..."
    return text
