"""The public API is what ``wsgiwire.__all__`` lists, and the public modules are the ones
in PUBLIC_MODULES: both pinned here, so a change is deliberate. Every other module is
private by name (a leading underscore somewhere in its dotted path)."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import wsgiwire

PUBLIC = {
    "__version__",
    # servers
    "FastCGIServer",
    "SCGIServer",
    "UWSGIServer",
    "run_cgi",
    # middleware
    "ApacheProxyPathFix",
    "LighttpdCGIRootFix",
    "MountPrefix",
    "ScriptNameStripper",
    "SetupDetector",
    "TrustedProxy",
    # limits
    "DEFAULT_LIMITS",
    "Limits",
    # client
    "ClientError",
    "Reply",
    "fastcgi_get_values",
    "fastcgi_request",
    "scgi_request",
    "send_request",
    "uwsgi_request",
    # errors
    "ProtocolError",
    "WsgiwireError",
}


def test_all_is_pinned() -> None:
    assert len(wsgiwire.__all__) == len(set(wsgiwire.__all__)), "a name is listed twice"
    assert set(wsgiwire.__all__) == PUBLIC


def test_every_public_name_resolves_to_its_implementation() -> None:
    from wsgiwire._limits import Limits
    from wsgiwire.adapters import cgi, fastcgi, scgi, uwsgi
    from wsgiwire.middleware import ScriptNameStripper

    for name in wsgiwire.__all__:
        assert getattr(wsgiwire, name) is not None, name
    assert wsgiwire.FastCGIServer is fastcgi.WSGIServer
    assert wsgiwire.SCGIServer is scgi.WSGIServer
    assert wsgiwire.UWSGIServer is uwsgi.WSGIServer
    assert wsgiwire.run_cgi is cgi.run
    assert wsgiwire.Limits is Limits
    assert wsgiwire.ScriptNameStripper is ScriptNameStripper
    assert set(dir(wsgiwire)) >= PUBLIC


def test_unknown_names_raise_attribute_error() -> None:
    try:
        wsgiwire.no_such_name  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("wsgiwire.no_such_name resolved")


def test_importing_the_package_loads_no_server() -> None:
    """The names load on first use: ``import wsgiwire`` (and so every CGI run) stays cheap."""
    code = (
        "import sys, wsgiwire\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('wsgiwire.'))\n"
        "heavy = sorted(m for m in ('importlib', 'logging', 'socket') if m in sys.modules)\n"
        "print(loaded, heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()
    assert out.startswith("[] "), out


# Modules with no "_"-prefixed component in their dotted path. Everything else is
# private by name: a new module gets a leading underscore, or is added here on purpose.
PUBLIC_MODULES = {
    "wsgiwire",
    # the documented server entry points (.fcgi/.cgi scripts, server configs)
    "wsgiwire.adapters.cgi",
    "wsgiwire.adapters.fastcgi",
    "wsgiwire.adapters.scgi",
    "wsgiwire.adapters.uwsgi",
    # the middleware classes (re-exported by the root too)
    "wsgiwire.middleware",
    # flup's module layout, a drop-in for `from flup.server.fcgi import WSGIServer`
    "wsgiwire.flup",
    "wsgiwire.flup.server",
    "wsgiwire.flup.server.ajp",
    "wsgiwire.flup.server.ajp_base",
    "wsgiwire.flup.server.ajp_fork",
    "wsgiwire.flup.server.cgi",
    "wsgiwire.flup.server.fcgi",
    "wsgiwire.flup.server.fcgi_fork",
    "wsgiwire.flup.server.fcgi_single",
    "wsgiwire.flup.server.scgi",
    "wsgiwire.flup.server.scgi_fork",
    # the layers' package directories, named by the design (empty __init__)
    "wsgiwire.adapters",
    "wsgiwire.core",
    "wsgiwire.protocols",
}
PACKAGE_DIR = Path(wsgiwire.__file__).parent


def _all_modules(path: Path = PACKAGE_DIR, prefix: str = "wsgiwire") -> Iterator[str]:
    """Every module and package under ``path``, found by pkgutil from the files (nothing
    is imported, so the flup AJP stubs, which raise ImportError, are listed too)."""
    yield prefix
    for info in pkgutil.iter_modules([str(path)]):
        name = f"{prefix}.{info.name}"
        if info.ispkg:
            yield from _all_modules(path / info.name, name)
        else:
            yield name


def _is_public(module: str) -> bool:
    return not any(part.startswith("_") for part in module.split("."))


def test_walk_finds_the_package() -> None:
    modules = set(_all_modules())
    # the walk sees private modules and packages, at every depth
    assert {"wsgiwire._cli", "wsgiwire.core._environ", "wsgiwire.adapters._worker",
            "wsgiwire.protocols._fastcgi", "wsgiwire.protocols._fastcgi._wire",
            "wsgiwire.flup.server.fcgi", "wsgiwire.__main__"} <= modules
    assert len(modules) > 60


def test_public_modules_are_pinned() -> None:
    public = {module for module in _all_modules() if _is_public(module)}
    assert public - PUBLIC_MODULES == set(), (
        "a new module with a public name: give it a leading underscore, or add it to "
        "PUBLIC_MODULES on purpose"
    )
    assert PUBLIC_MODULES - public == set(), "a public module is gone"


# Names internal modules had before they were made private, as parts: written dotted,
# the rename script (which may be run again) would rewrite them to the new names.
OLD_NAMES = [("cli",), ("limits",), ("client",), ("errors",), ("core", "environ"),
             ("adapters", "worker"), ("middleware", "proxy"), ("protocols", "scgi")]


def test_old_internal_names_do_not_import() -> None:
    """The names internal modules had before they were made private do not load."""
    import importlib.util

    for parts in OLD_NAMES:
        old = ".".join(("wsgiwire", *parts))
        assert importlib.util.find_spec(old) is None, old
    old_package = ".".join(("wsgiwire", "protocols", "fastcgi"))
    try:
        importlib.util.find_spec(f"{old_package}._wire")
    except ModuleNotFoundError:
        pass
    else:
        raise AssertionError(f"{old_package} still imports")


def _module_file(module: str) -> Path:
    parts = module.split(".")[1:]
    package = PACKAGE_DIR.joinpath(*parts)
    return package / "__init__.py" if package.is_dir() else package.with_suffix(".py")


def _declared_all(module: str) -> list[str] | None:
    """The module's ``__all__`` as written in its source, or None when it has none."""
    tree = ast.parse(_module_file(module).read_text(encoding="utf-8"))
    for node in tree.body:
        target = node.target if isinstance(node, ast.AnnAssign) else (
            node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1
            else None)
        if isinstance(target, ast.Name) and target.id == "__all__":
            assert node.value is not None
            value = ast.literal_eval(node.value)
            assert isinstance(value, list), module
            return value
    return None


def test_public_modules_declare_all() -> None:
    """Each public module says what it exports; the layers' packages stay empty."""
    for module in sorted(PUBLIC_MODULES | {"wsgiwire.__main__"}):
        source = _module_file(module).read_text(encoding="utf-8")
        if module in ("wsgiwire.adapters", "wsgiwire.core", "wsgiwire.protocols"):
            assert source.strip() == "" or _declared_all(module) == [], module
        else:
            assert _declared_all(module) is not None, f"{module} has no __all__"


def test_server_modules_export_the_documented_names() -> None:
    from wsgiwire.adapters import cgi, fastcgi, scgi, uwsgi

    assert cgi.__all__ == ["run"]
    assert sorted(fastcgi.__all__) == [
        "FCGI_AUTHORIZER", "FCGI_FILTER", "FCGI_RESPONDER", "WSGIServer"]
    assert scgi.__all__ == ["WSGIServer"]
    assert uwsgi.__all__ == ["WSGIServer"]
    for module in (cgi, fastcgi, scgi, uwsgi):
        for name in module.__all__:
            assert getattr(module, name) is not None, f"{module.__name__}.{name}"


def test_middleware_names_load_on_first_use() -> None:
    """``wsgiwire.middleware`` loads each class's module when the class is asked for:
    SetupDetector alone (every ``wsgiwire serve`` worker's) brings no TrustedProxy."""
    code = (
        "import sys\n"
        "from wsgiwire.middleware import SetupDetector\n"
        "import wsgiwire.middleware as m\n"
        "print(SetupDetector.__module__, 'wsgiwire.middleware._proxy' in sys.modules,\n"
        "      m.TrustedProxy.__module__, sorted(set(m.__all__) - set(dir(m))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    assert out == ["wsgiwire.middleware._detect", "False", "wsgiwire.middleware._proxy", "[]"]
    import wsgiwire.middleware

    try:
        wsgiwire.middleware.no_such_name  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("wsgiwire.middleware.no_such_name resolved")
