"""Every size, count and time the peer controls, in one frozen object.

Each default is a module constant with the precedents it was chosen from.
Sizes are in bytes, times in seconds. ``Limits()`` validates itself, so a
bad configuration fails at start-up, not on the first request.
"""

from __future__ import annotations

from . import _limitcheck

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

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

# A reply the application writes through ``write()`` faster than the web server
# reads it waits, past 1 MiB, in a temporary file (see adapters/_runner.py); this
# bounds that file. nginx buffers an upstream reply to fastcgi_temp_path up to
# fastcgi_max_temp_file_size, 1 GiB by default; uWSGI and gunicorn buffer
# nothing (the app blocks). Past it the reply is cut and the connection closed.
MAX_REPLY_SPOOL = 1 << 30

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


# (name, default, integer only): the fields of Limits, in order.
_FIELDS: tuple[tuple[str, int | float | None, bool], ...] = (
    ("max_params_bytes", MAX_PARAMS_BYTES, True),
    ("max_param_count", MAX_PARAM_COUNT, True),
    ("max_name_length", MAX_NAME_LENGTH, True),
    ("max_value_length", MAX_VALUE_LENGTH, True),
    ("max_body_size", MAX_BODY_SIZE, True),
    ("spool_threshold", SPOOL_THRESHOLD, True),
    ("max_reply_spool", MAX_REPLY_SPOOL, True),
    ("max_requests_per_connection", MAX_REQUESTS_PER_CONNECTION, True),
    ("max_connections", MAX_CONNECTIONS, True),
    ("max_queued_requests", MAX_QUEUED_REQUESTS, True),
    ("header_timeout", HEADER_TIMEOUT, False),
    ("body_idle_timeout", BODY_IDLE_TIMEOUT, False),
    ("keepalive_timeout", KEEPALIVE_TIMEOUT, False),
    ("write_timeout", WRITE_TIMEOUT, False),
    ("request_timeout", None, False),
)
_NAMES = tuple(name for name, _, _ in _FIELDS)


class Limits:
    """Bounds on what a peer may send; see the module constants for precedents.

    ``request_timeout`` (a hard cap on one request's run time) is off (``None``)
    by default, as in nginx and waitress. Frozen and compared by value. (A
    plain class, not a dataclass: ``dataclasses`` imports ``inspect``, which
    alone costs a CGI request more than the rest of wsgiwire's import.)
    """

    __slots__ = _NAMES

    max_params_bytes: int
    max_param_count: int
    max_name_length: int
    max_value_length: int
    max_body_size: int
    spool_threshold: int
    max_reply_spool: int
    max_requests_per_connection: int
    max_connections: int
    max_queued_requests: int
    header_timeout: float
    body_idle_timeout: float
    keepalive_timeout: float
    write_timeout: float
    request_timeout: float | None

    def __init__(
        self,
        *,
        max_params_bytes: int = MAX_PARAMS_BYTES,
        max_param_count: int = MAX_PARAM_COUNT,
        max_name_length: int = MAX_NAME_LENGTH,
        max_value_length: int = MAX_VALUE_LENGTH,
        max_body_size: int = MAX_BODY_SIZE,
        spool_threshold: int = SPOOL_THRESHOLD,
        max_reply_spool: int = MAX_REPLY_SPOOL,
        max_requests_per_connection: int = MAX_REQUESTS_PER_CONNECTION,
        max_connections: int = MAX_CONNECTIONS,
        max_queued_requests: int = MAX_QUEUED_REQUESTS,
        header_timeout: float = HEADER_TIMEOUT,
        body_idle_timeout: float = BODY_IDLE_TIMEOUT,
        keepalive_timeout: float = KEEPALIVE_TIMEOUT,
        write_timeout: float = WRITE_TIMEOUT,
        request_timeout: float | None = None,
    ) -> None:
        _assign(self, locals())

    def _values(self) -> tuple[int | float | None, ...]:
        return tuple(getattr(self, name) for name, _, _ in _FIELDS)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Limits is frozen: cannot set {name}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Limits is frozen: cannot delete {name}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Limits):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name, _, _ in _FIELDS)
        return f"Limits({inner})"

    def __reduce__(self) -> tuple[object, ...]:
        # pickle and copy: through the validating constructor (setattr is refused).
        return (_limits_from, (self._values(),))

    # The checks every codec and the core's body buffer make on every request;
    # the rule is in _limitcheck.py (compiled), which the codecs call directly.

    def check_body_size(self, size: int, request_id: int | None = None) -> int:
        """``size`` if a request body (declared, or received so far) of that many
        bytes is allowed; else ``LimitExceeded`` (413)."""
        return _limitcheck.check_body_size(self, size, request_id)

    def check_params_bytes(self, size: int, request_id: int | None = None) -> int:
        """``size`` if a parameter block of that many bytes (so far) is allowed;
        else ``LimitExceeded`` (431, as nginx answers a header too large)."""
        return _limitcheck.check_params_bytes(self, size, request_id)

    def check_param_count(self, count: int, request_id: int | None = None) -> int:
        """``count`` if that many name-value pairs are allowed (else 431)."""
        return _limitcheck.check_param_count(self, count, request_id)

    def check_name_length(self, length: int, request_id: int | None = None) -> int:
        """``length`` if a parameter name that long is allowed (else 431)."""
        return _limitcheck.check_name_length(self, length, request_id)

    def check_value_length(self, length: int, request_id: int | None = None) -> int:
        """``length`` if a parameter value that long is allowed (else 431)."""
        return _limitcheck.check_value_length(self, length, request_id)

    def replace(self, **changes: int | float | None) -> Limits:
        """A copy with some limits changed (validated like the original)."""
        unknown = set(changes) - set(self.__slots__)
        if unknown:
            raise TypeError(f"Limits has no {', '.join(sorted(unknown))}")
        current: dict[str, object] = dict(zip(_NAMES, self._values(), strict=True))
        current.update(changes)
        return _from_mapping(current)


def _assign(limits: Limits, values: Mapping[str, object]) -> None:
    """Check every field in ``values`` and set it on ``limits`` (the one validation)."""
    for name, _, integer in _FIELDS:
        value = values[name]
        if not (value is None and name == "request_timeout"):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"Limits.{name} must be a number, not {value!r}")
            if value <= 0:
                raise ValueError(f"Limits.{name} must be positive, not {value!r}")
            if integer and not isinstance(value, int):
                raise TypeError(f"Limits.{name} must be an integer, not {value!r}")
        object.__setattr__(limits, name, value)
    if limits.max_name_length > limits.max_params_bytes:
        raise ValueError("Limits.max_name_length cannot exceed max_params_bytes")
    if limits.max_value_length > limits.max_params_bytes:
        raise ValueError("Limits.max_value_length cannot exceed max_params_bytes")


def _from_mapping(values: Mapping[str, object]) -> Limits:
    """A ``Limits`` from its fields by name, validated as the constructor does."""
    limits: Limits = object.__new__(Limits)
    _assign(limits, values)
    return limits


def _limits_from(values: tuple[int | float | None, ...]) -> Limits:
    return _from_mapping(dict(zip(_NAMES, values, strict=True)))


DEFAULT_LIMITS = Limits()
