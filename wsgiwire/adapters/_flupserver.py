"""What the flup-compatible ``WSGIServer`` classes share (one per protocol module)."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterable
from typing import Any

from .._limits import Limits
from ..core._gateway import WSGIApp
from ._listeners import BindSpec, PeerFilter, open_listener, parse_bind
from ._runtime import ProtocolDriver, Server, ServerConfig

__all__ = ["FlupServerBase", "bind_spec"]

# flup keyword arguments that tune its own thread/process pools; accepted so
# old scripts keep working, mapped where wsgiwire has an equivalent.
FLUP_POOL_KWARGS = frozenset(
    {
        "minSpare",
        "maxSpare",
        "maxChildren",
        "maxRequests",
        "maxThreads",
        "minThreads",
        "jobClass",
        "jobArgs",
        "loggingLevel",
    }
)


def bind_spec(bind_address: object) -> BindSpec:
    """flup's ``bindAddress``: a unix socket path or a ``(host, port)`` tuple."""
    if isinstance(bind_address, str):
        return parse_bind(bind_address if bind_address.startswith(("unix:", "fd:"))
                          else f"unix:{bind_address}")
    if isinstance(bind_address, tuple) and len(bind_address) == 2:
        host, port = bind_address
        host = str(host) or "127.0.0.1"
        return BindSpec("tcp", host="127.0.0.1" if host == "localhost" else host, port=int(port))
    raise TypeError(f"bindAddress must be a path or a (host, port) tuple, not {bind_address!r}")


def _owned_path(listener: socket.socket) -> list[str]:
    """The unix socket file this process bound (not one inherited on fd 0)."""
    if listener.family != socket.AF_UNIX or listener.fileno() == 0:
        return []
    name = listener.getsockname()
    return [name] if isinstance(name, str) and name else []


class FlupServerBase:
    """Constructor plumbing common to the FastCGI, SCGI and uwsgi ``WSGIServer``.

    ``environ`` holds defaults for keys the web server does not send; unlike
    flup, they never override a request's own parameters. ``maxThreads`` sets
    the app threads per worker when ``multithreaded``; ``maxChildren`` the
    worker processes when ``multiprocess``. ``allowedServers`` is the peer
    allow-list (default: ``FCGI_WEB_SERVER_ADDRS``, else everyone).
    ``loggingLevel`` sets the level of the ``wsgiwire`` logger, as flup's sets
    its own; without it the level is left as the script configured it.
    """

    def __init__(  # noqa: PLR0917 - the flup arguments every subclass passes on
        self,
        application: WSGIApp,
        environ: dict[str, Any] | None,
        multithreaded: bool,
        multiprocess: bool,
        bind_address: object,
        umask: int | None,
        debug: bool,
        allowed_servers: Iterable[str] | None,
        limits: Limits,
        extra: dict[str, Any],
        /,
    ) -> None:
        """The arguments flup's servers share, in this order; ``extra`` holds the
        other keyword arguments (flup's pool settings)."""
        unknown = set(extra) - FLUP_POOL_KWARGS
        if unknown:
            raise TypeError(f"unexpected keyword argument(s): {', '.join(sorted(unknown))}")
        level = extra.get("loggingLevel")
        if level is not None:
            logging.getLogger("wsgiwire").setLevel(level)
        self.application = application
        self.environ = dict(environ or {})
        self.multithreaded = multithreaded
        self.multiprocess = multiprocess
        self.bind_address = bind_address
        self.umask = umask
        self.debug = debug
        self.limits = limits
        self.threads = int(extra.get("maxThreads", 8)) if multithreaded else 0
        self.workers = int(extra.get("maxChildren", os.cpu_count() or 2)) if multiprocess else 0
        self.peer_filter = (
            PeerFilter(allowed_servers)
            if allowed_servers is not None
            else PeerFilter.from_environ(os.environ)
        )

    def open_listener(self) -> socket.socket:
        return open_listener(bind_spec(self.bind_address), umask=self.umask)

    def serve(self, listener: socket.socket, driver: ProtocolDriver, **options: Any) -> bool:
        config = ServerConfig(
            app=self.application,
            driver=driver,
            listeners=[listener],
            workers=self.workers,
            threads=self.threads,
            limits=self.limits,
            debug=self.debug,
            peer_filter=self.peer_filter,
            base_environ=self.environ,
            owned_paths=_owned_path(listener),
            **options,
        )
        Server(config).serve()
        return True
