"""Every size, count and time the peer controls, in one frozen object.

Each default is a module constant with the precedents it was chosen from.
Sizes are in bytes, times in seconds. ``Limits()`` validates itself, so a
bad configuration fails at start-up, not on the first request.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

__all__ = ["Limits", "DEFAULT_LIMITS"]

# Total bytes of the request parameter block (FastCGI PARAMS stream, SCGI
# netstring, uwsgi vars). nginx sends request headers of up to 4 x 8 KiB by
# default (large_client_header_buffers); Apache caps 100 fields of 8190 bytes;
# uWSGI's buffer-size is 4 KiB by default and at most 64 KiB (the u16 datasize
# of its own protocol); waitress allows 256 KiB of headers. 64 KiB leaves room
# for nginx's worst default case plus its ~30 CGI params.
MAX_PARAMS_BYTES = 65536

# Number of name-value pairs. Apache LimitRequestFields is 100, gunicorn's
# limit_request_fields is 100 (max 32768); servers add ~30 CGI variables.
MAX_PARAM_COUNT = 512

# Length of one parameter name. Header names beyond a few hundred bytes are
# never legitimate; gunicorn limits a whole header line to 8190 bytes.
MAX_NAME_LENGTH = 1024

# Length of one parameter value. Apache LimitRequestFieldSize is 8190 and
# gunicorn's limit_request_field_size 8190; nginx lets one header use a whole
# 8 KiB buffer, but a REQUEST_URI or cookie may be longer. Bounded by the
# block size anyway.
MAX_VALUE_LENGTH = 32768

# Request body. waitress's max_request_body_size is 1 GiB; nginx's
# client_max_body_size is 1 MiB by default but commonly raised. A 1 GiB upload
# must pass, so the bound is inclusive.
MAX_BODY_SIZE = 1 << 30

# Bodies above this many bytes are spooled to a temporary file instead of
# memory. waitress's inbuf_overflow is 512 KiB, nginx keeps 8-16 KiB in memory;
# a temp file per upload costs an open, a write per record and a read back
# (measured: most of a 1 MiB upload's CPU), so typical form and file uploads
# stay in memory: at most this much per request in flight.
SPOOL_THRESHOLD = 4 * 1024 * 1024

# Concurrent requests on one multiplexed FastCGI connection (FCGI_MAX_REQS).
# No mainstream web server multiplexes; the bound keeps a hostile peer from
# opening unbounded request state.
MAX_REQUESTS_PER_CONNECTION = 16

# FCGI_MAX_CONNS as reported through FCGI_GET_VALUES. PHP-FPM reports its
# pm.max_children; we report the accept limit of one worker.
MAX_CONNECTIONS = 1024

# Requests waiting for a free app thread (``--threads``), per worker. Each
# waits with its connection paused; past this many the request is refused at
# once (FCGI_OVERLOADED / 503) rather than queued without bound. uWSGI's listen
# queue is 100 by default, gunicorn's backlog 2048, waitress's backlog 1024.
MAX_QUEUED_REQUESTS = 1024

# Timeouts. nginx client_header_timeout and client_body_timeout are 60 s,
# keepalive_timeout 75 s, send_timeout 60 s; gunicorn's keepalive is 2 s and
# its worker timeout 30 s. The web server in front already enforces its own,
# so ours only catch stuck or hostile peers.
HEADER_TIMEOUT = 60.0
BODY_IDLE_TIMEOUT = 60.0
KEEPALIVE_TIMEOUT = 75.0
WRITE_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what a peer may send; see the module constants for precedents.

    ``request_timeout`` (a hard cap on one request's run time) is off (``None``)
    by default, as in nginx and waitress.
    """

    max_params_bytes: int = MAX_PARAMS_BYTES
    max_param_count: int = MAX_PARAM_COUNT
    max_name_length: int = MAX_NAME_LENGTH
    max_value_length: int = MAX_VALUE_LENGTH
    max_body_size: int = MAX_BODY_SIZE
    spool_threshold: int = SPOOL_THRESHOLD
    max_requests_per_connection: int = MAX_REQUESTS_PER_CONNECTION
    max_connections: int = MAX_CONNECTIONS
    max_queued_requests: int = MAX_QUEUED_REQUESTS
    header_timeout: float = HEADER_TIMEOUT
    body_idle_timeout: float = BODY_IDLE_TIMEOUT
    keepalive_timeout: float = KEEPALIVE_TIMEOUT
    write_timeout: float = WRITE_TIMEOUT
    request_timeout: float | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None and f.name == "request_timeout":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"Limits.{f.name} must be a number, not {value!r}")
            if value <= 0:
                raise ValueError(f"Limits.{f.name} must be positive, not {value!r}")
            if f.type == "int" and not isinstance(value, int):
                raise TypeError(f"Limits.{f.name} must be an integer, not {value!r}")
        if self.max_name_length > self.max_params_bytes:
            raise ValueError("Limits.max_name_length cannot exceed max_params_bytes")
        if self.max_value_length > self.max_params_bytes:
            raise ValueError("Limits.max_value_length cannot exceed max_params_bytes")

    def replace(self, **changes: int | float | None) -> Limits:
        """A copy with some limits changed (validated like the original)."""
        return replace(self, **changes)  # type: ignore[arg-type]


DEFAULT_LIMITS = Limits()
