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

import logging
import os
from collections.abc import Iterable
from typing import Any

from ..core.gateway import WSGIApp
from ..core.response import HeadStyle
from ..events import Role
from ..limits import DEFAULT_LIMITS, Limits
from ..protocols.fastcgi import FCGI_OVERLOADED, FastCGIConnection
from . import cgi
from .listeners import (
    BindSpec,
    PeerFilter,
    inherited_fd0,
    open_listener,
    parse_bind,
)
from .runtime import Codec, Server, ServerConfig

__all__ = [
    "FCGI_AUTHORIZER",
    "FCGI_FILTER",
    "FCGI_RESPONDER",
    "FastCGIDriver",
    "WSGIServer",
]

log = logging.getLogger("wsgiwire")

FCGI_RESPONDER = int(Role.RESPONDER)
FCGI_AUTHORIZER = int(Role.AUTHORIZER)
FCGI_FILTER = int(Role.FILTER)

# flup keyword arguments that tune its own thread/process pools; accepted so
# old scripts keep working, mapped where there is an equivalent.
_FLUP_POOL_KWARGS = frozenset(
    {"minSpare", "maxSpare", "maxChildren", "maxRequests", "maxThreads", "minThreads"}
)


class FastCGIDriver:
    """FastCGI's hooks into the shared runtime."""

    name = "fastcgi"
    head_style = HeadStyle.CGI

    def __init__(self, roles: Iterable[Role] = (Role.RESPONDER,)) -> None:
        self.roles = tuple(roles)

    def new_codec(self, config: ServerConfig) -> Codec:
        return FastCGIConnection(
            config.limits,
            roles=self.roles,
            multiplex=config.multiplex,
            max_conns=config.limits.max_connections,
            max_reqs=config.limits.max_requests_per_connection,
        )

    def overload_reply(self, codec: Codec, request_id: int) -> bytes:
        assert isinstance(codec, FastCGIConnection)
        return codec.reject(request_id, FCGI_OVERLOADED)


def _bind_spec(bind_address: object) -> BindSpec:
    if isinstance(bind_address, str):
        return parse_bind(bind_address if ":" in bind_address else f"unix:{bind_address}")
    if isinstance(bind_address, tuple) and len(bind_address) == 2:
        host, port = bind_address
        return BindSpec("tcp", host=str(host) or "127.0.0.1", port=int(port))
    raise TypeError(f"bindAddress must be a path or a (host, port) tuple, not {bind_address!r}")


class WSGIServer:
    """flup's ``flup.server.fcgi.WSGIServer``, reimplemented on wsgiwire's runtime.

    Accepted arguments follow flup: ``application``, ``environ`` (defaults
    for keys the web server does not send; unlike flup they never override a
    request's own params), ``multithreaded``, ``multiprocess``,
    ``bindAddress`` (``None``: fd 0 or CGI; a path: unix socket; a
    ``(host, port)`` tuple: TCP), ``umask`` (for the unix socket),
    ``multiplexed``, ``debug`` (tracebacks in error pages), ``roles``,
    ``forceCGI``. flup's pool-size keywords are accepted: ``maxThreads``
    sets the app thread count, ``maxChildren`` the worker processes.
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
        **kw: Any,
    ) -> None:
        unknown = set(kw) - _FLUP_POOL_KWARGS
        if unknown:
            raise TypeError(f"unexpected keyword argument(s): {', '.join(sorted(unknown))}")
        self.application = application
        self.environ = dict(environ or {})
        self.multithreaded = multithreaded
        self.multiprocess = multiprocess
        self.bind_address = bindAddress
        self.umask = umask
        self.multiplexed = multiplexed
        self.debug = debug
        self.roles = tuple(Role(r) for r in roles)
        self.force_cgi = forceCGI
        self.limits = limits
        self.threads = int(kw.get("maxThreads", 8)) if multithreaded else 0
        self.workers = int(kw.get("maxChildren", 2)) if multiprocess else 0

    def run(self) -> bool:
        """Serve until stopped (SIGTERM/SIGINT). In CGI mode, serve one request.

        Returns True, as flup's does, when the server stopped normally.
        """
        listener = None
        if not self.force_cgi:
            if self.bind_address is None:
                listener = inherited_fd0()
            else:
                listener = open_listener(_bind_spec(self.bind_address), umask=self.umask)
        if listener is None:
            return cgi.run(self.application, debug=self.debug, limits=self.limits)
        config = ServerConfig(
            app=self.application,
            driver=FastCGIDriver(self.roles),
            listeners=[listener],
            workers=self.workers,
            threads=self.threads,
            limits=self.limits,
            debug=self.debug,
            peer_filter=PeerFilter.from_environ(os.environ),
            base_environ=self.environ,
            multiplex=self.multiplexed,
        )
        Server(config).serve()
        return True
