"""wsgiwire: run WSGI applications behind web servers over CGI, FastCGI, SCGI and uwsgi.

The public API is what ``__all__`` lists (a test pins it); every other module
is an implementation detail that may change. The names are loaded on first
use (PEP 562), so ``import wsgiwire`` stays cheap: a CGI request that imports
``wsgiwire.adapters.cgi`` loads nothing else from here.

* servers: :class:`FastCGIServer`, :class:`SCGIServer`, :class:`UWSGIServer`
  (flup-compatible ``WSGIServer`` classes: ``FastCGIServer(app).run()``);
  :func:`run_cgi` serves one CGI request (``run_cgi(app)``);
* middleware: :class:`ScriptNameStripper`, :class:`MountPrefix`,
  :class:`LighttpdCGIRootFix`, :class:`ApacheProxyPathFix`,
  :class:`TrustedProxy`, :class:`SetupDetector`;
* :class:`Limits` (and :data:`DEFAULT_LIMITS`): every size and time a peer controls;
* the client: :func:`fastcgi_request`, :func:`scgi_request`,
  :func:`uwsgi_request`, :func:`fastcgi_get_values`, :func:`send_request`,
  :class:`Reply`, :class:`ClientError`;
* errors: :class:`WsgiwireError` (every error wsgiwire raises), :class:`ProtocolError`.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = [
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
]

# public name -> (module, attribute)
_LAZY: dict[str, tuple[str, str]] = {
    "FastCGIServer": ("wsgiwire.adapters.fastcgi", "WSGIServer"),
    "SCGIServer": ("wsgiwire.adapters.scgi", "WSGIServer"),
    "UWSGIServer": ("wsgiwire.adapters.uwsgi", "WSGIServer"),
    "run_cgi": ("wsgiwire.adapters.cgi", "run"),
    "ApacheProxyPathFix": ("wsgiwire.middleware", "ApacheProxyPathFix"),
    "LighttpdCGIRootFix": ("wsgiwire.middleware", "LighttpdCGIRootFix"),
    "MountPrefix": ("wsgiwire.middleware", "MountPrefix"),
    "ScriptNameStripper": ("wsgiwire.middleware", "ScriptNameStripper"),
    "SetupDetector": ("wsgiwire.middleware", "SetupDetector"),
    "TrustedProxy": ("wsgiwire.middleware", "TrustedProxy"),
    "DEFAULT_LIMITS": ("wsgiwire._limits", "DEFAULT_LIMITS"),
    "Limits": ("wsgiwire._limits", "Limits"),
    "ClientError": ("wsgiwire._client", "ClientError"),
    "Reply": ("wsgiwire._client", "Reply"),
    "fastcgi_get_values": ("wsgiwire._client", "fastcgi_get_values"),
    "fastcgi_request": ("wsgiwire._client", "fastcgi_request"),
    "scgi_request": ("wsgiwire._client", "scgi_request"),
    "send_request": ("wsgiwire._client", "send_request"),
    "uwsgi_request": ("wsgiwire._client", "uwsgi_request"),
    "ProtocolError": ("wsgiwire._errors", "ProtocolError"),
    "WsgiwireError": ("wsgiwire._errors", "WsgiwireError"),
}

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._client import (
        ClientError,
        Reply,
        fastcgi_get_values,
        fastcgi_request,
        scgi_request,
        send_request,
        uwsgi_request,
    )
    from ._errors import ProtocolError, WsgiwireError
    from ._limits import DEFAULT_LIMITS, Limits
    from .adapters.cgi import run as run_cgi
    from .adapters.fastcgi import WSGIServer as FastCGIServer
    from .adapters.scgi import WSGIServer as SCGIServer
    from .adapters.uwsgi import WSGIServer as UWSGIServer
    from .middleware import (
        ApacheProxyPathFix,
        LighttpdCGIRootFix,
        MountPrefix,
        ScriptNameStripper,
        SetupDetector,
        TrustedProxy,
    )


def __getattr__(name: str) -> object:
    """Load a public name on first use (PEP 562), then keep it in the module."""
    try:
        module, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'wsgiwire' has no attribute {name!r}") from None
    # Imported here: a CGI start-up (which imports this package) never pays for importlib.
    import importlib

    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
