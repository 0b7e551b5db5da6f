"""The public API is what ``wsgiwire.__all__`` lists: pinned here, so a change is deliberate."""

from __future__ import annotations

import subprocess
import sys

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
