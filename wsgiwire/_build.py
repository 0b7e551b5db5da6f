"""Which build of wsgiwire runs: the compiled one (mypyc) or the pure one.

The same ``.py`` files make both builds. ``setup.py`` compiles the modules in
:data:`COMPILED` into extension modules beside their sources when a C compiler
is there (``WSGIWIRE_PURE=1`` forces the pure build); Python's import system
then prefers the extension module. :func:`name` looks at what this process
imports, so ``wsgiwire --version`` and the startup log line say which build
really runs. Standard library only, as both builds are at run time.
"""

from __future__ import annotations

import sys

__all__ = ["COMPILED", "COMPILED_NAME", "PURE_NAME", "name", "compiled_modules"]

# The modules mypyc compiles (setup.py reads this list; the reasons are there).
COMPILED = (
    "wsgiwire._events",
    "wsgiwire._limitcheck",
    "wsgiwire._params",
    "wsgiwire.protocols._codec",
    "wsgiwire.protocols._oneshot",
    "wsgiwire.protocols._scgi",
    "wsgiwire.protocols._uwsgi",
    "wsgiwire.protocols._fastcgi._wire",
    "wsgiwire.protocols._fastcgi._state",
    "wsgiwire.protocols._fastcgi._server",
    "wsgiwire.protocols._fastcgi._client",
    "wsgiwire.core._body",
    "wsgiwire.core._environ",
    "wsgiwire.core._gateway",
    "wsgiwire.core._lazylog",
    "wsgiwire.core._response",
    "wsgiwire.adapters._base",
    "wsgiwire.adapters._connection",
    "wsgiwire.adapters._drivers",
    "wsgiwire.adapters._poller",
    "wsgiwire.adapters._runner",
    "wsgiwire.adapters._scoreboard",
    "wsgiwire.adapters._worker",
)

COMPILED_NAME = "compiled (mypyc)"
PURE_NAME = "pure"


def _is_extension(module: str) -> bool:
    loaded = sys.modules.get(module)
    if loaded is not None:
        spec = loaded.__spec__
    else:
        from importlib.util import find_spec  # only when not imported yet

        spec = find_spec(module)
    origin = spec.origin if spec is not None else None
    if origin is None:
        return False
    import _imp

    return origin.endswith(tuple(_imp.extension_suffixes()))


def compiled_modules() -> list[str]:
    """The modules of :data:`COMPILED` that this process imports as extension modules."""
    return [module for module in COMPILED if _is_extension(module)]


def name() -> str:
    """``"compiled (mypyc)"``, ``"pure"``, or ``"mixed (N of M compiled)"``: a
    half-compiled tree (a stale or partial build) is named, never passed off as
    either build."""
    count = len(compiled_modules())
    if count == len(COMPILED):
        return COMPILED_NAME
    if count == 0:
        return PURE_NAME
    return f"mixed ({count} of {len(COMPILED)} compiled)"
