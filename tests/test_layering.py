"""Imports point one way: adapters -> core, protocols -> _events/_errors/_limits (DESIGN.md).

Read with ``ast`` (nothing is imported), every ``import`` anywhere in a module,
including inside functions and ``if TYPE_CHECKING:`` blocks, must obey:

* ``wsgiwire/core`` and ``wsgiwire/protocols`` are pure: they may import only
  the standard-library modules on the allow-lists below, the shared vocabulary
  (``_events``, ``_errors``, ``_limits`` with its compiled checks ``_limitcheck``,
  ``_params``) and their own package. An I/O
  module (socket, select, selectors, threading, signal, os, subprocess, asyncio,
  multiprocessing, ...) is named as such; anything else not on the list fails
  too, so adding a module is a decision made here, with its reason.
* core and protocols never import each other.
* Nothing but ``_cli`` (with ``_serve`` and ``_check``), ``__init__`` and ``__main__``
  (and the adapters themselves, and ``wsgiwire.flup``, flup's module layout over the
  adapters' servers) imports ``wsgiwire.adapters``.
* Middleware is plain WSGI: it imports neither protocols nor adapters.
* core and protocols never configure logging (handlers, levels, basicConfig).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "wsgiwire"

# Never in core or protocols: they do I/O, start threads/processes, or read the clock.
IO_MODULES = frozenset(
    {
        "socket", "ssl", "select", "selectors", "threading", "_thread", "signal", "os",
        "subprocess", "asyncio", "multiprocessing", "concurrent", "time", "queue",
        "fcntl", "mmap", "shutil", "pathlib", "socketserver", "http.server",
        "http.client", "urllib.request", "importlib",
    }
)

# Pure standard-library modules both layers may use ("urllib.parse" allows that
# submodule only; "http" is for HTTPStatus).
PURE_STDLIB = frozenset(
    {
        "__future__", "abc", "collections", "collections.abc", "dataclasses", "enum",
        "functools", "itertools", "operator", "typing", "types", "re", "struct", "io",
        "math", "binascii", "codecs", "string", "http", "urllib.parse",
    }
)

ALLOWED_STDLIB = {
    "core": PURE_STDLIB
    | {
        "logging",  # log lines about the app's failures; never configuration (checked below)
        "traceback",  # the debug 500 page
        "tempfile",  # core/_body.py spools a large request body to an anonymous temp file
        "sys",  # sys.stderr is the default wsgi.errors
        "errno",  # core/_body.py tells a full disk (507) from other spool failures (500)
    },
    "protocols": PURE_STDLIB,
}

# wsgiwire modules each pure layer may import (besides its own package).
# (_limitcheck: the per-request Limits checks, compiled; see its docstring.)
SHARED = frozenset({"_events", "_errors", "_limits", "_limitcheck", "_params"})

ADAPTER_IMPORTERS = frozenset(
    {
        "wsgiwire._cli",
        "wsgiwire._serve",
        "wsgiwire._check",
        "wsgiwire.__init__",
        "wsgiwire.__main__",
    }
)
LOGGING_CONFIG = frozenset({"basicConfig", "addHandler", "setLevel", "dictConfig", "fileConfig"})


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    return ".".join(rel.parts)


def _targets(node: ast.AST, module: str) -> Iterator[tuple[str, tuple[str, ...]]]:
    """(absolute module, imported names) for an import node in ``module``."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name, ()
    elif isinstance(node, ast.ImportFrom):
        names = tuple(alias.name for alias in node.names)
        if node.level == 0:
            yield node.module or "", names
            return
        parts = module.split(".")
        package = parts[:-1]  # the package a module (or an __init__) lives in
        base = package[: len(package) - (node.level - 1)]
        full = ".".join(base + ([node.module] if node.module else []))
        yield full, names


def _expand(target: str, names: tuple[str, ...]) -> list[str]:
    """A ``from X import a, b`` may import submodules X.a, X.b: consider both forms."""
    return [target, *(f"{target}.{name}" for name in names)] if names else [target]


def _stdlib_allowed(name: str, allowed: frozenset[str] | set[str]) -> bool:
    return any(name == a or name.startswith(a + ".") for a in allowed)


def _io_module(name: str) -> bool:
    return any(name == m or name.startswith(m + ".") for m in IO_MODULES)


def violations(source: str, module: str) -> list[str]:
    """Every layering rule ``source`` (the text of ``module``) breaks."""
    tree = ast.parse(source)
    parts = module.split(".")
    layer = parts[1] if len(parts) > 2 else None  # core, protocols, adapters, middleware
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id == "__import__":
                found.append(f"{module}: dynamic __import__")
            if (
                layer in ("core", "protocols")
                and isinstance(func, ast.Attribute)
                and func.attr in LOGGING_CONFIG
                and "log" in ast.unparse(func.value).lower()
            ):
                found.append(f"{module}: configures logging ({ast.unparse(func)})")
            continue
        for target, names in _targets(node, module):
            candidates = _expand(target, names)
            if target == "wsgiwire" or target.startswith("wsgiwire."):
                # the wsgiwire modules touched: "from wsgiwire import a" touches a
                if target == "wsgiwire":
                    subpackages = set(names) or {"__init__"}
                else:
                    subpackages = {target.split(".")[1]}
                if (
                    "adapters" in subpackages
                    and layer not in ("adapters", "flup")
                    and module not in ADAPTER_IMPORTERS
                ):
                    found.append(f"{module}: imports wsgiwire.adapters ({target})")
                if layer in ("core", "protocols"):
                    other = "protocols" if layer == "core" else "core"
                    if other in subpackages:
                        found.append(f"{module}: {layer} imports {other} ({target})")
                    outside = subpackages - SHARED - {layer, "core", "protocols", "adapters"}
                    if outside:
                        found.append(f"{module}: imports wsgiwire.{sorted(outside)} ({target})")
                if layer == "middleware" and subpackages & {"protocols", "adapters"}:
                    found.append(f"{module}: middleware imports {target}")
                continue
            if layer not in ("core", "protocols"):
                continue
            if _io_module(target):
                found.append(f"{module}: imports the I/O module {target}")
                continue
            allowed = ALLOWED_STDLIB[layer]
            if not (
                _stdlib_allowed(target, allowed)
                or (names and all(_stdlib_allowed(c, allowed) for c in candidates[1:]))
            ):
                found.append(f"{module}: imports {target}, not on the {layer} allow-list")
    return found


PURE = sorted((PACKAGE / "core").glob("*.py")) + sorted((PACKAGE / "protocols").glob("*.py"))
EVERYTHING = sorted(PACKAGE.rglob("*.py"))


def test_the_layers_exist() -> None:
    names = {module_name(p) for p in PURE}
    assert {"wsgiwire.core._environ", "wsgiwire.core._body", "wsgiwire.core._response",
            "wsgiwire.core._gateway"} <= names


@pytest.mark.parametrize("path", EVERYTHING, ids=[module_name(p) for p in EVERYTHING])
def test_layering(path: Path) -> None:
    assert violations(path.read_text(encoding="utf-8"), module_name(path)) == []


# -- the checker itself can fail ------------------------------------------------------------
@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("wsgiwire.core.x", "import socket", "I/O module socket"),
        ("wsgiwire.core.x", "def f():\n    import os\n", "I/O module os"),
        ("wsgiwire.protocols.x", "from select import select", "I/O module select"),
        ("wsgiwire.protocols.x", "import threading as t", "I/O module threading"),
        ("wsgiwire.protocols.x", "import tempfile", "not on the protocols allow-list"),
        ("wsgiwire.protocols.x", "import logging", "not on the protocols allow-list"),
        ("wsgiwire.core.x", "import json", "not on the core allow-list"),
        ("wsgiwire.core.x", "import urllib.request", "I/O module urllib.request"),
        ("wsgiwire.core.x", "from ..protocols import _fastcgi", "core imports protocols"),
        ("wsgiwire.core.x", "from .. import protocols", "core imports protocols"),
        ("wsgiwire.protocols.x", "from ..core._environ import EnvironBuilder",
         "protocols imports core"),
        ("wsgiwire.protocols.x", "import wsgiwire.core", "protocols imports core"),
        ("wsgiwire.core.x", "from ..adapters.cgi import run", "imports wsgiwire.adapters"),
        ("wsgiwire.core.x", "from .._apploader import load_app", "imports wsgiwire.['_apploader']"),
        ("wsgiwire._demo", "from .adapters import cgi", "imports wsgiwire.adapters"),
        ("wsgiwire._apploader", "import wsgiwire.adapters.cgi", "imports wsgiwire.adapters"),
        ("wsgiwire.middleware.x", "from ..protocols._uwsgi import X", "middleware imports"),
        ("wsgiwire.core.x", "m = __import__('socket')", "dynamic __import__"),
        ("wsgiwire.core.x", "import logging\nlogging.basicConfig()", "configures logging"),
        ("wsgiwire.core.x", "import logging\nlog = logging.getLogger()\nlog.addHandler(h)",
         "configures logging"),
    ],
)
def test_checker_catches(module: str, source: str, expected: str) -> None:
    found = violations(source, module)
    assert any(expected in message for message in found), found


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("wsgiwire.core.x", "from .._errors import BadRequest\nfrom .._params import x"),
        ("wsgiwire.core.x", "from ._response import Response\nimport tempfile, logging, sys"),
        ("wsgiwire.core.x", "from urllib.parse import quote\nfrom http import HTTPStatus"),
        ("wsgiwire.protocols.x", "from ._buffer import ReceiveBuffer\nfrom .._events import X"),
        ("wsgiwire.protocols.x", "import struct\nfrom collections.abc import Iterable"),
        ("wsgiwire._cli", "from .adapters.cgi import run"),
        ("wsgiwire.__init__", "from .adapters import cgi"),
        ("wsgiwire.adapters.fastcgi", "import socket\nfrom ._runtime import Server"),
        ("wsgiwire.middleware.x", "from ..core._environ import split_script_name"),
    ],
)
def test_checker_allows(module: str, source: str) -> None:
    assert violations(source, module) == []
