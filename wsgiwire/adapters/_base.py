"""The contract between the shared runtime and each protocol: codec, driver, configuration."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .._events import RequestRefused, ResponseData, ResponseEnd
from .._limits import DEFAULT_LIMITS, Limits
from ..core._environ import EnvironBuilder
from ..core._gateway import WSGIApp
from ..core._response import HeadStyle, send_status
from ..protocols._codec import Codec
from ._listeners import PeerFilter

__all__ = [
    "Buffer",
    "Codec",
    "Loop",
    "ProtocolDriver",
    "ServerConfig",
    "Transport",
    "refusal",
    "status_reply",
]

log = logging.getLogger("wsgiwire")

Buffer = bytes | bytearray | memoryview


class ProtocolDriver(Protocol):
    """A protocol's hooks into the shared runtime: its name and its codec.

    ``head_style``, ``raw_body`` and ``one_request_per_connection`` are its
    codec's facts, repeated here for the code that runs before a connection
    exists (the worker's accept policy).
    """

    name: str
    head_style: HeadStyle
    raw_body: bool
    one_request_per_connection: bool

    def new_codec(self, config: ServerConfig) -> Codec: ...


class Loop(Protocol):
    """What a connection may ask of the worker loop that owns it (``worker.Worker``).

    The narrow interface between the transport (``_connection.py``) and the loop,
    so that neither module imports the other's internals. Every method is for
    the loop thread only, but ``wake``, which app threads call; see
    ``_connection.py`` for who owns what. ``Worker`` names it as its base class,
    so the compiled build calls it directly (as ``Transport`` and ``Codec``).
    """

    __slots__ = ()

    config: ServerConfig
    app: WSGIApp
    builder: EnvironBuilder
    stopping: bool
    threaded: bool  # requests run on app threads (--threads)

    def poll_for(self, conn: Any, mask: int) -> None: ...
    def forget(self, conn: Any) -> None: ...
    def keeps(self, conn: Any) -> None: ...
    def linger(self, sock: Any) -> None: ...
    def submit(self, conn: Any, run: Any) -> bool: ...
    def wake(self, conn: Any) -> None: ...
    def run_begins(self, run: Any, now: float) -> None: ...
    def run_paused(self) -> None: ...
    def request_done(self, run: Any, now: float = 0.0) -> None: ...
    def note_malformed(self, exc: Any) -> None: ...


class Transport(Protocol):
    """What a request runner (``runner.Run``, ``runner.Output``) may use of its connection.

    ``write_now`` and ``label`` only from the loop thread, within an inline
    run's step; ``closed`` is set by the loop and only read by an app thread (a
    request whose peer has gone is not started).
    """

    __slots__ = ()

    closed: bool

    def write_now(self, buffers: list[Buffer]) -> int: ...
    def label(self, request_id: int) -> str: ...


def status_reply(codec: Codec, request_id: int, code: int, *, app_status: int = 1) -> list[Buffer]:
    """A complete short response with HTTP status ``code``, framed by ``codec``."""
    chunks: list[Buffer] = []
    send = codec.send
    send_status(
        lambda data: chunks.extend(send(ResponseData(request_id, data))),
        code,
        style=codec.head_style,
    )
    chunks.extend(send(ResponseEnd(request_id, app_status)))
    return chunks


def refusal(codec: Codec, request_id: int) -> list[Buffer]:
    """What refuses a received request for lack of capacity, framed by ``codec``
    (FastCGI: FCGI_OVERLOADED; SCGI, uwsgi: a 503 page)."""
    page: list[bytes] = []
    send_status(page.append, 503, style=codec.head_style)
    return list(codec.send(RequestRefused(request_id, b"".join(page))))


@dataclass
class ServerConfig:
    """Everything the master and its workers need; built by the CLI or a ``WSGIServer``.

    ``app`` is the application, or ``None`` with ``app_loader`` set: each
    worker then imports the app itself after it starts, so a graceful reload
    (SIGHUP) runs fresh code. ``workers`` 0 serves in this process (no master),
    N >= 1 runs a master and N worker processes.
    """

    app: WSGIApp | None
    driver: ProtocolDriver
    listeners: list[socket.socket]
    app_loader: Callable[[], WSGIApp] | None = None
    workers: int = 0
    threads: int = 0
    limits: Limits = DEFAULT_LIMITS
    debug: bool = False
    peer_filter: PeerFilter = field(default_factory=lambda: PeerFilter(None))
    graceful_timeout: float = 30.0
    # How long a worker may take to load the app before it counts as failed (0: no limit).
    boot_timeout: float = 120.0
    base_environ: dict[str, Any] = field(default_factory=dict)
    multiplex: bool = True
    # Unix socket files this server created: removed when it stops.
    owned_paths: list[str] = field(default_factory=list)
    # Recycle a worker after this many requests (0: never), plus up to
    # ``max_requests_jitter`` so workers do not all restart at once.
    max_requests: int = 0
    max_requests_jitter: int = 0
    # Recycle a worker after a request that leaves its RSS above this many bytes (0: never).
    reload_on_rss: int = 0
    access_log: bool = False
    # gunicorn-style atoms (wsgiwire._accesslog); None: combined + request time.
    access_log_format: str | None = None
    pid_file: str | None = None
    stats_listener: socket.socket | None = None
    user: str | None = None
    group: str | None = None
    # Development: restart workers when a Python file under these directories changes.
    reload_dirs: list[str] = field(default_factory=list)
    # Reload when one of these files is touched (its mtime changes): --touch-reload.
    touch_reload: list[str] = field(default_factory=list)

    def load_app(self) -> WSGIApp:
        if self.app is not None:
            return self.app
        if self.app_loader is None:
            raise ValueError("ServerConfig needs app or app_loader")
        return self.app_loader()
