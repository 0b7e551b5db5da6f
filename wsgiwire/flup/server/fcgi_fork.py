"""``flup.server.fcgi_fork``: FastCGI served by a prefork pool of worker processes.

``maxChildren`` workers (else ``maxSpare``, flup's default 5) under a master, each
serving one request at a time and recycled after ``maxRequests`` requests (0:
never); see :mod:`wsgiwire.flup.server._fork`. Otherwise as
:mod:`wsgiwire.flup.server.fcgi`: fd 0, ``bindAddress``, or one CGI request.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..._limits import DEFAULT_LIMITS, Limits
from ...adapters import fastcgi
from ...adapters._runtime import ProtocolDriver
from ...adapters.fastcgi import FCGI_AUTHORIZER, FCGI_FILTER, FCGI_RESPONDER
from ...core._gateway import WSGIApp
from ._fork import take_pool_arguments

__all__ = ["FCGI_AUTHORIZER", "FCGI_FILTER", "FCGI_RESPONDER", "WSGIServer"]


class WSGIServer(fastcgi.WSGIServer):
    """flup's prefork FastCGI ``WSGIServer``."""

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
        timeout: float | None = None,
        *,
        limits: Limits = DEFAULT_LIMITS,
        **kw: Any,
    ) -> None:
        workers, self.max_requests, limits = take_pool_arguments(kw, timeout, limits)
        super().__init__(application, environ, False, True, bindAddress, umask, multiplexed,
                         debug, roles, forceCGI, limits=limits, **kw)
        self.workers = workers

    def serve(self, listener: Any, driver: ProtocolDriver, **options: Any) -> bool:
        return super().serve(listener, driver, max_requests=self.max_requests, **options)
