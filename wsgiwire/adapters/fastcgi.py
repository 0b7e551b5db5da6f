"""The FastCGI front-end, with a flup-compatible ``WSGIServer``.

An existing flup ``.fcgi`` script changes only its import line::

    #!/usr/bin/env python3
    from wsgiwire.adapters.fastcgi import WSGIServer
    from myapp import app
    WSGIServer(app).run()

``bindAddress=None`` means: serve on the listening socket found on fd 0
(mod_fcgid, lighttpd ``bin-path``, spawn-fcgi, systemd
``StandardInput=socket``); when fd 0 is not a listening socket the script
runs once as a CGI program, so ``python app.fcgi`` in a shell prints the page
(or the traceback) for a person to read.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .._events import Role
from .._limits import DEFAULT_LIMITS, Limits
from ..core._gateway import WSGIApp
from . import cgi
from ._drivers import FastCGIDriver
from ._flupserver import FlupServerBase
from ._listeners import inherited_fd0

# Public: the flup-compatible server and its role constants (the ``roles``
# argument). FastCGIDriver is the runtime's plumbing, used by wsgiwire's own modules.
__all__ = [
    "FCGI_AUTHORIZER",
    "FCGI_FILTER",
    "FCGI_RESPONDER",
    "WSGIServer",
]

FCGI_RESPONDER = int(Role.RESPONDER)
FCGI_AUTHORIZER = int(Role.AUTHORIZER)
FCGI_FILTER = int(Role.FILTER)


class WSGIServer(FlupServerBase):
    """flup's ``flup.server.fcgi.WSGIServer``, on wsgiwire's runtime.

    Arguments follow flup: ``application``, ``environ``, ``multithreaded``,
    ``multiprocess``, ``bindAddress`` (``None``: fd 0, else CGI; a path: unix
    socket; ``(host, port)``: TCP), ``umask``, ``multiplexed``, ``debug``
    (tracebacks in error pages), ``roles``, ``forceCGI``; see
    :class:`~wsgiwire.adapters._flupserver.FlupServerBase` for the rest.
    """

    def __init__(  # noqa: PLR0917 - flup's positional signature
        self,
        application: WSGIApp,
        environ: dict[str, Any] | None = None,
        multithreaded: bool = True,
        multiprocess: bool = False,
        bindAddress: object = None,
        umask: int | None = None,
        multiplexed: bool = False,
        debug: bool = False,
        roles: Iterable[int] = (FCGI_RESPONDER,),
        forceCGI: bool = False,
        *,
        limits: Limits = DEFAULT_LIMITS,
        allowedServers: Iterable[str] | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(
            application, environ, multithreaded, multiprocess, bindAddress, umask, debug,
            allowedServers, limits, kw,
        )
        self.multiplexed = multiplexed
        self.roles = tuple(Role(r) for r in roles)
        self.force_cgi = forceCGI

    def run(self) -> bool:
        """Serve until stopped (SIGTERM/SIGINT); in CGI mode, serve one request.

        Returns True, as flup's does, when the server stopped normally.
        """
        listener = None
        if not self.force_cgi:
            listener = inherited_fd0() if self.bind_address is None else self.open_listener()
        if listener is None:
            return cgi.run(self.application, debug=self.debug, limits=self.limits)
        return self.serve(listener, FastCGIDriver(self.roles), multiplex=self.multiplexed)
