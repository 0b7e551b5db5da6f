"""``flup.server.fcgi_single``: FastCGI in one process, one request at a time.

No threads and no worker processes: the app is called in the server's own loop,
so requests are served one after the other (``wsgi.multithread`` and
``wsgi.multiprocess`` are both false). fd 0, ``bindAddress`` or one CGI request,
as :mod:`wsgiwire.flup.server.fcgi`.
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
    """flup's single-request FastCGI ``WSGIServer``."""

    def __init__(  # noqa: PLR0917 - flup's positional signature
        self,
        application: WSGIApp,
        environ: dict[str, Any] | None = None,
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
        super().__init__(application, environ, False, False, bindAddress, umask, multiplexed,
                         debug, roles, forceCGI, limits=limits, **kw)
