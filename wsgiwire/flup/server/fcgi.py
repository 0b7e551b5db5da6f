"""``flup.server.fcgi``: FastCGI in one process with app threads.

``WSGIServer(app).run()`` serves the listening socket on fd 0 (mod_fcgid, lighttpd
``bin-path``, spawn-fcgi), or ``bindAddress`` (a unix socket path or a
``(host, port)`` tuple); run from a shell, it serves one request as a CGI program.
The arguments are flup's (see :class:`wsgiwire.adapters.fastcgi.WSGIServer`);
``timeout`` caps one request's run time.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..._limits import DEFAULT_LIMITS, Limits
from ...adapters import fastcgi
from ...adapters.fastcgi import FCGI_AUTHORIZER, FCGI_FILTER, FCGI_RESPONDER
from ...core._gateway import WSGIApp

__all__ = ["FCGI_AUTHORIZER", "FCGI_FILTER", "FCGI_RESPONDER", "WSGIServer"]


class WSGIServer(fastcgi.WSGIServer):
    """flup's threaded FastCGI ``WSGIServer``."""

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
        timeout: float | None = None,
        *,
        limits: Limits = DEFAULT_LIMITS,
        **kw: Any,
    ) -> None:
        if timeout:
            limits = limits.replace(request_timeout=float(timeout))
        super().__init__(application, environ, multithreaded, multiprocess, bindAddress,
                         umask, multiplexed, debug, roles, forceCGI, limits=limits, **kw)
