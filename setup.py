"""The build hook: the compiled build of wsgiwire (mypyc), or the pure one.

pyproject.toml holds the metadata; this file only decides which extension
modules a build makes. The same ``.py`` files ship in both builds: compiled
modules are extension modules beside their sources, which Python's import
system prefers; everything else, and every module when no compiler is there,
runs interpreted.

* ``WSGIWIRE_PURE=1``: the pure build (no mypy, no compiler needed).
* An editable install (``pip install -e``) is always pure: extension modules
  written next to the sources would run stale after the next edit.
* No mypy, no C compiler, or a failed compile: the pure build with one
  warning, never a failed install (``WSGIWIRE_REQUIRE_COMPILED=1`` makes it
  an error instead; ``./dev test`` sets it for the compiled run).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext


# What mypyc compiles (the list is wsgiwire._build.COMPILED, which also tells at
# run time which build runs): the per-request hot path, statically typed and free
# of the dynamic features mypyc does not support. The sans-I/O codecs and the
# core (parse, environ, start_response, response head) run for every request;
# events and params are what they pass around; the adapters listed are the
# worker's loop (connection, runner, worker, poller, scoreboard, base) and the
# protocol drivers (drivers: each connection gets its codec from one). Left
# interpreted:
# * the socket front-ends (adapters/fastcgi.py, scgi.py, uwsgi.py): they
#   define the public WSGIServer classes, which wsgiwire.flup and users subclass,
#   and an interpreted class cannot subclass a compiled one (compiling them
#   would need mypy_extensions' mypyc_attr(allow_interpreted_subclasses=True),
#   a run-time dependency); their drivers live in adapters/_drivers.py;
# * _errors.py: exceptions that copy their __dict__ (detached()), which native
#   classes have not; raised only for bad requests;
# * _limits.py: built once per process, validated through locals() and frozen by
#   __setattr__, which compiled code does not support;
# * package __init__ files: a compiled __init__ is not a package (no __path__);
# * core/_apptypes.py: its run-time fallback lives in the else-branch of
#   ``if TYPE_CHECKING``, which mypyc does not compile;
# * the CLI, configuration, app loading, middleware, logging set-up, the master
#   and the CGI runner: they run once per process (or, for CGI, pay the import
#   either way) and use dynamic features (getattr on user objects, importlib,
#   monkeypatching in tests) that compiled code makes slower or refuses.
def _compiled_paths() -> list[str]:
    namespace: dict[str, Any] = {}
    with open(os.path.join("wsgiwire", "_build.py"), encoding="utf-8") as source:
        exec(source.read(), namespace)
    return [module.replace(".", "/") + ".py" for module in namespace["COMPILED"]]


# mypyc's shared runtime library goes inside the package
# (wsgiwire/_compiled__mypyc.*.so), so a copied package folder is complete.
GROUP = "wsgiwire._compiled"


def _warn(message: str) -> None:
    print(f"wsgiwire: {message}; building the pure (interpreted) package", file=sys.stderr)


def _required() -> bool:
    return os.environ.get("WSGIWIRE_REQUIRE_COMPILED", "") not in ("", "0")


def _wants_compiled() -> bool:
    if os.environ.get("WSGIWIRE_PURE", "") not in ("", "0"):
        return False
    # sdist/egg_info/dist_info need no extensions; editable installs stay pure.
    building = {"build", "build_ext", "bdist_wheel", "install", "bdist"}
    return "editable_wheel" not in sys.argv and bool(building & set(sys.argv[1:]))


def _extensions() -> list[Any]:
    if not _wants_compiled():
        return []
    try:
        from mypyc.build import mypycify
    except ImportError as exc:
        if _required():
            raise
        _warn(f"mypyc is not available ({exc})")
        return []
    try:
        return list(mypycify(_compiled_paths(), opt_level="3", debug_level="0", group_name=GROUP))
    except BaseException as exc:  # mypyc reports type errors with SystemExit
        if _required() or isinstance(exc, KeyboardInterrupt):
            raise
        _warn(f"mypyc failed ({exc!r})")
        return []


class OptionalBuildExt(build_ext):
    """build_ext that falls back to the pure build when the C compile fails."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:
            if _required():
                raise
            _warn(f"the C compile failed ({exc})")
            for ext in self.extensions:  # a half-built set would not import
                for path in (self.get_ext_fullpath(ext.name),
                             os.path.join(self.build_lib, self.get_ext_filename(ext.name))):
                    if os.path.exists(path):
                        os.remove(path)
            self.extensions = []


setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
