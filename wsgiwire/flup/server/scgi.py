"""``flup.server.scgi``: SCGI in one process with app threads.

The arguments are flup's (see :class:`wsgiwire.adapters.scgi.WSGIServer`):
``scriptName`` is the mount prefix, ``bindAddress`` defaults to
``('localhost', 4000)``; ``timeout`` caps one request's run time.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..._limits import DEFAULT_LIMITS, Limits
from ...adapters import scgi
from ...core._gateway import WSGIApp

__all__ = ["WSGIServer"]


class WSGIServer(scgi.WSGIServer):
    """flup's threaded SCGI ``WSGIServer``."""

    def __init__(  # noqa: PLR0917 - flup's positional signature
        self,
        application: WSGIApp,
        scriptName: str | None = None,
        environ: dict[str, Any] | None = None,
        multithreaded: bool = True,
        multiprocess: bool = False,
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
        if timeout:
            limits = limits.replace(request_timeout=float(timeout))
        super().__init__(application, scriptName, environ, multithreaded, multiprocess,
                         bindAddress, umask, allowedServers, loggingLevel, debug,
                         limits=limits, **kw)
