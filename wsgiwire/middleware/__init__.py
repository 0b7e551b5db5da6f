"""Plain-WSGI middleware for the deployments whose environ needs help.

Path fixes (each keeps SCRIPT_NAME + PATH_INFO naming the request path and
only moves the boundary; each is a no-op where the split is already right):

* :class:`MountPrefix` ``(app, prefix)``: split at a known mount prefix
  (``--mount``; nginx with only ``fastcgi_params``);
* :class:`ScriptNameStripper` ``(app, script_name="")``: a rewrite to
  ``app.fcgi`` (``.htaccess`` ``RewriteRule ^(.*)$ app.fcgi/$1``, lighttpd
  ``"/app.fcgi$1"``) leaves the script out of the URLs the app builds;
* :class:`LighttpdCGIRootFix` ``(app, app_root="/")``: lighttpd mounting the app
  at ``/`` sends the first segment as SCRIPT_NAME;
* :class:`ApacheProxyPathFix` ``(app, mount="")``: Apache mod_proxy_fcgi /
  mod_proxy_scgi without ``proxy-fcgi-pathinfo`` sends the whole path as
  SCRIPT_NAME.

Beside them, :class:`TrustedProxy` takes the client's address, scheme, host,
port and prefix from X-Forwarded-* for a server behind another proxy, and
:class:`SetupDetector` logs (once) which of the fixes a deployment needs.

Every class names the environ keys it reads and writes in its docstring and
keeps the values it replaces in ``environ["wsgiwire.orig"]`` (a dict; the
first original wins when stacked). Stack them, from the outside in, as
``PathFix(SetupDetector(TrustedProxy(app)))``: the path fix sets SCRIPT_NAME
outright, the detector judges what the app will see, and the forwarded prefix
goes in front last.
"""

from __future__ import annotations

__all__ = [
    "MountPrefix",
    "ScriptNameStripper",
    "LighttpdCGIRootFix",
    "ApacheProxyPathFix",
    "TrustedProxy",
    "SetupDetector",
]

# public name -> the module that defines it, imported on first use (PEP 562), as
# in the package root: ``wsgiwire serve`` wraps every app in SetupDetector alone
# by default, and TrustedProxy's module would bring ipaddress into every worker.
_LAZY: dict[str, str] = {
    "MountPrefix": "._mount",
    "ScriptNameStripper": "._paths",
    "LighttpdCGIRootFix": "._paths",
    "ApacheProxyPathFix": "._paths",
    "TrustedProxy": "._proxy",
    "SetupDetector": "._detect",
}

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._detect import SetupDetector
    from ._mount import MountPrefix
    from ._paths import ApacheProxyPathFix, LighttpdCGIRootFix, ScriptNameStripper
    from ._proxy import TrustedProxy


def __getattr__(name: str) -> object:
    """Load a public name on first use, then keep it in the module."""
    try:
        module = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
