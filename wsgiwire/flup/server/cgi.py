"""``flup.server.cgi``: serve the one request this CGI process was started for.

``WSGIServer(app).run()`` is :func:`wsgiwire.adapters.cgi.run` (bytes on stdout,
which flup's breaks on Python 3; the body never read past CONTENT_LENGTH).
"""

from __future__ import annotations

from ..._limits import DEFAULT_LIMITS, Limits
from ...adapters import cgi as _cgi
from ...core._gateway import WSGIApp

__all__ = ["WSGIServer"]


class WSGIServer:
    """flup's CGI ``WSGIServer``: ``WSGIServer(application).run()``."""

    def __init__(
        self, application: WSGIApp, *, debug: bool = False, limits: Limits = DEFAULT_LIMITS
    ) -> None:
        self.application = application
        self.debug = debug
        self.limits = limits

    def run(self) -> bool:
        """Serve one request; True when the response went out complete."""
        return _cgi.run(self.application, debug=self.debug, limits=self.limits)
