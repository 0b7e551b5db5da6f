"""Each socket protocol's hooks into the shared runtime: its name and its codec.

A connection asks its driver for a new codec as it is set up. Here, in a
compiled module, that is a direct call of the codec's class; from an
interpreted driver it was a Python call with keyword arguments on every
connection (in the compiled build about 9,000 instructions for FastCGI and
3,000 for uwsgi, a third of what setting up a connection cost). The public
front-ends (``fastcgi.py``, ``scgi.py``, ``uwsgi.py``) re-export them beside
their flup-compatible ``WSGIServer`` classes, which stay interpreted so that
users can subclass them.
"""

from __future__ import annotations

from collections.abc import Iterable

from .._events import Role
from ..protocols._codec import Codec
from ..protocols._fastcgi import FastCGIConnection
from ..protocols._scgi import SCGIConnection
from ..protocols._uwsgi import UWSGIConnection
from ._base import ProtocolDriver, ServerConfig

__all__ = ["FastCGIDriver", "SCGIDriver", "UWSGIDriver"]


class FastCGIDriver(ProtocolDriver):
    """FastCGI's hooks into the shared runtime."""

    def __init__(self, roles: Iterable[Role] = (Role.RESPONDER,)) -> None:
        self.name = "fastcgi"
        self.head_style = FastCGIConnection.head_style
        self.raw_body = FastCGIConnection.raw_body
        self.one_request_per_connection = FastCGIConnection.one_request_per_connection
        self.roles = tuple(roles)

    def new_codec(self, config: ServerConfig) -> Codec:
        # What FCGI_GET_VALUES reports is what this configuration does: the
        # requests of one connection run one after the other (interleaved ones are
        # accepted and queued), so FCGI_MPXS_CONNS is 0; FCGI_MAX_REQS is how many
        # requests the server runs at once (workers x threads, 1 per worker
        # without threads); FCGI_MAX_CONNS how many connections it holds.
        workers = config.workers if config.workers > 1 else 1
        return FastCGIConnection(
            config.limits,
            roles=self.roles,
            multiplex=config.multiplex,
            max_conns=workers * config.limits.max_connections,
            max_reqs=workers * config.threads if config.threads > 1 else workers,
            mpxs=False,
        )


class SCGIDriver(ProtocolDriver):
    """SCGI's hooks into the shared runtime."""

    def __init__(self) -> None:
        self.name = "scgi"
        self.head_style = SCGIConnection.head_style
        self.raw_body = SCGIConnection.raw_body
        self.one_request_per_connection = SCGIConnection.one_request_per_connection

    def new_codec(self, config: ServerConfig) -> Codec:
        return SCGIConnection(config.limits)


class UWSGIDriver(ProtocolDriver):
    """uwsgi's hooks into the shared runtime."""

    def __init__(self, *, trust_uwsgi_scheme: bool = False) -> None:
        self.name = "uwsgi"
        self.head_style = UWSGIConnection.head_style
        self.raw_body = UWSGIConnection.raw_body
        self.one_request_per_connection = UWSGIConnection.one_request_per_connection
        self.trust_uwsgi_scheme = trust_uwsgi_scheme

    def new_codec(self, config: ServerConfig) -> Codec:
        return UWSGIConnection(config.limits, trust_uwsgi_scheme=self.trust_uwsgi_scheme)
