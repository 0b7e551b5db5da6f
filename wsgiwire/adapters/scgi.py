"""The SCGI front-end, with a flup-compatible ``WSGIServer``.

nginx ``scgi_pass``, Apache ``mod_proxy_scgi`` and lighttpd ``scgi.server``
open one connection per request; the response is CGI style (``Status:``
header) and raw on the socket, so ``wsgi.file_wrapper`` files go out with
``os.sendfile``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .._limits import DEFAULT_LIMITS, Limits
from ..core._gateway import WSGIApp
from ..middleware._mount import MountPrefix
from ._drivers import SCGIDriver
from ._flupserver import FlupServerBase

# Public: the flup-compatible server. SCGIDriver is the runtime's plumbing, used by
# wsgiwire's own modules.
__all__ = ["WSGIServer"]


class WSGIServer(FlupServerBase):
    """flup's ``flup.server.scgi.WSGIServer``, on wsgiwire's runtime.

    ``scriptName`` is the mount prefix (flup's meaning): SCRIPT_NAME becomes
    it and PATH_INFO the rest of the request path. ``bindAddress`` defaults to
    flup's ``('localhost', 4000)``; ``allowedServers`` lists the peers that may
    connect.
    """

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
        *,
        limits: Limits = DEFAULT_LIMITS,
        **kw: Any,
    ) -> None:
        if scriptName:
            application = MountPrefix(application, scriptName)
        if loggingLevel is not None:
            kw["loggingLevel"] = loggingLevel
        super().__init__(
            application, environ, multithreaded, multiprocess, bindAddress, umask, debug,
            allowedServers, limits, kw,
        )

    def run(self) -> bool:
        """Serve until stopped (SIGTERM/SIGINT)."""
        return self.serve(self.open_listener(), SCGIDriver())
