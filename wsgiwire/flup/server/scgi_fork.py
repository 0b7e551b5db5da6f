"""``flup.server.scgi_fork``: SCGI served by a prefork pool of worker processes.

``maxChildren`` workers (else ``maxSpare``, flup's default 5), each serving one
request at a time and recycled after ``maxRequests`` requests; see
:mod:`wsgiwire.flup.server._fork`. ``scriptName`` and ``bindAddress`` as in
:mod:`wsgiwire.flup.server.scgi`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..._limits import DEFAULT_LIMITS, Limits
from ...adapters import scgi
from ...adapters._runtime import ProtocolDriver
from ...core._gateway import WSGIApp
from ._fork import take_pool_arguments

__all__ = ["WSGIServer"]


class WSGIServer(scgi.WSGIServer):
    """flup's prefork SCGI ``WSGIServer``."""

    def __init__(  # noqa: PLR0917 - flup's positional signature
        self,
        application: WSGIApp,
        scriptName: str | None = None,
        environ: dict[str, Any] | None = None,
        bindAddress: object = ("localhost", 4000),
        umask: int | None = None,
        allowedServers: Iterable[str] | None = None,
        loggingLevel: int | None = None,
        debug: bool = False,
        timeout: float | None = None,
        *,
        limits: Limits = DEFAULT_LIMITS,
        **kw: Any,
    ) -> None:
        workers, self.max_requests, limits = take_pool_arguments(kw, timeout, limits)
        super().__init__(application, scriptName, environ, False, True, bindAddress, umask,
                         allowedServers, loggingLevel, debug, limits=limits, **kw)
        self.workers = workers

    def serve(self, listener: Any, driver: ProtocolDriver, **options: Any) -> bool:
        return super().serve(listener, driver, max_requests=self.max_requests, **options)
