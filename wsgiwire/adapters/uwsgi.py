"""The uwsgi-protocol front-end: nginx ``uwsgi_pass``, Apache ``mod_proxy_uwsgi``,
lighttpd ``scgi.protocol = "uwsgi"``.

One connection per request; the response starts with an HTTP status line and
is raw on the socket (``wsgi.file_wrapper`` files go out with ``os.sendfile``).
``modifier1 30`` (the Flask docs' ``uwsgi_modifier1 30`` recipe) strips
SCRIPT_NAME from the front of PATH_INFO, as its name promises. The uwsgi
"magic variables" (UWSGI_SCRIPT, UWSGI_CHDIR, ...) are never honoured.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .._limits import DEFAULT_LIMITS, Limits
from ..core._gateway import WSGIApp
from ._drivers import UWSGIDriver
from ._flupserver import FlupServerBase

# Public: the flup-compatible server. UWSGIDriver is the runtime's plumbing, used by
# wsgiwire's own modules.
__all__ = ["WSGIServer"]


class WSGIServer(FlupServerBase):
    """A flup-style ``WSGIServer`` for the uwsgi protocol (flup has none; same arguments)."""

    def __init__(  # noqa: PLR0917 - flup-style positional signature
        self,
        application: WSGIApp,
        environ: dict[str, Any] | None = None,
        multithreaded: bool = True,
        multiprocess: bool = False,
        bindAddress: object = ("localhost", 3031),
        umask: int | None = None,
        allowedServers: Iterable[str] | None = None,
        debug: bool = False,
        *,
        trust_uwsgi_scheme: bool = False,
        limits: Limits = DEFAULT_LIMITS,
        **kw: Any,
    ) -> None:
        super().__init__(
            application, environ, multithreaded, multiprocess, bindAddress, umask, debug,
            allowedServers, limits, kw,
        )
        self.trust_uwsgi_scheme = trust_uwsgi_scheme

    def run(self) -> bool:
        """Serve until stopped (SIGTERM/SIGINT)."""
        driver = UWSGIDriver(trust_uwsgi_scheme=self.trust_uwsgi_scheme)
        return self.serve(self.open_listener(), driver)
