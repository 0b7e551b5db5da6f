"""The vocabulary every codec shares.

Inbound (``codec.next_event()`` returns one of these or ``NEED_DATA``):
``RequestStarted`` once the parameter block is complete, then ``BodyData``
chunks and one ``BodyEnd``; ``FilterData``/``FilterDataEnd`` for the FastCGI
FILTER role's FCGI_DATA stream; ``RequestAborted`` when the peer gives a
request up; ``ConnectionClosed`` once the peer closed its side cleanly.

Events are plain slotted dataclasses (made on every request, so cheap to
build); treat them as immutable. Each writes its ``__init__`` out
(``init=False``): the compiled build then builds events natively, where the
``__init__`` that dataclasses generates would run interpreted, through a
tuple of arguments, on every event. The dataclass gives ``==`` and ``repr``.

Outbound (``codec.send(event)`` returns the buffers to write, a list of
``bytes`` or ``memoryview`` ready for ``socket.sendmsg``; the one outbound call
of every codec): ``ResponseData`` (raw response bytes: the head and body as
the core rendered them), ``ResponseErrorData`` (FastCGI STDERR; other
protocols drop it), ``ResponseEnd``, and ``RequestRefused`` (the server will
not run a request it received: overloaded).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar, Final

from ._params import UNPARSED

__all__ = [
    "Role",
    "Params",
    "Vars",
    "pairs_of",
    "raw_pairs",
    "NEED_DATA",
    "NeedData",
    "RequestEvent",
    "RequestStarted",
    "BodyData",
    "BodyEnd",
    "FilterData",
    "FilterDataEnd",
    "RequestAborted",
    "ConnectionClosed",
    "Event",
    "ResponseData",
    "ResponseErrorData",
    "ResponseEnd",
    "RequestRefused",
    "OutEvent",
]


class Role(IntEnum):
    """FastCGI roles; every other protocol only knows RESPONDER."""

    RESPONDER = 1
    AUTHORIZER = 2
    FILTER = 3


class NeedData:
    """Sentinel type: the codec needs more bytes before it can say anything."""

    _instance: ClassVar[NeedData | None] = None

    def __new__(cls) -> NeedData:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = NeedData()

# Names and values as latin-1 native strings: one character per byte the
# server sent (PEP 3333's "bytes as str"), so nothing is lost or rejected.
Params = list[tuple[str, str]]
# The same, as a dict: what a codec delivers when no name came twice, the common
# case. SCGI and uwsgi build it as they decode, and the core makes it the
# environ itself: no pair per parameter made, then merged into a dict.
Vars = dict[str, str]


def pairs_of(params: Params | Vars) -> Params:
    """``params`` as name-value pairs, in the order the server sent them."""
    return list(params.items()) if isinstance(params, dict) else params


def raw_pairs(params: Params | Vars) -> list[tuple[bytes, bytes]]:
    """``params`` as the bytes that were sent (latin-1 maps each character back to its byte)."""
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in pairs_of(params)]


@dataclass(slots=True, init=False)
class RequestEvent:
    """What every event about one request shares (all but ``ConnectionClosed``):
    its ``request_id`` (FastCGI's id; 0 for the one-request protocols), so a
    caller reads it without knowing which event it holds."""

    request_id: int

    def __init__(self, request_id: int) -> None:
        self.request_id = request_id


@dataclass(slots=True, init=False)
class RequestStarted(RequestEvent):
    """A request's parameters, complete and in the order the server sent them.

    ``params`` keeps duplicates; the core translator decides which wins. When
    no name came twice, a codec may deliver them as a dict (``Vars``, in the
    same order), which the core takes over as the environ: read ``params``
    before handing the event on, not after. :func:`pairs_of` gives pairs either
    way. Each name and value is a latin-1 native string (see ``Params``);
    ``raw_params`` gives them back as the bytes that were sent.
    ``script_name_in_path_info`` is set by codecs whose peer asked for the
    SCRIPT_NAME prefix to be removed from PATH_INFO (uwsgi modifier1 30).
    ``content_length`` is CONTENT_LENGTH as the codec parsed it to frame the
    body (``None``: none declared), or ``UNPARSED`` when the codec did not
    read it (FastCGI); the core takes it as it is instead of parsing again.
    """

    params: Params | Vars
    keep_conn: bool
    role: Role
    script_name_in_path_info: bool
    content_length: int | None

    def __init__(  # noqa: PLR0917 - the fields in order, as a generated __init__ takes them
        self,
        request_id: int,
        params: Params | Vars,
        keep_conn: bool = False,
        role: Role = Role.RESPONDER,
        script_name_in_path_info: bool = False,
        content_length: int | None = UNPARSED,
    ) -> None:
        self.request_id = request_id
        self.params = params
        self.keep_conn = keep_conn
        self.role = role
        self.script_name_in_path_info = script_name_in_path_info
        self.content_length = content_length

    @property
    def raw_params(self) -> list[tuple[bytes, bytes]]:
        return raw_pairs(self.params)


@dataclass(slots=True, init=False)
class BodyData(RequestEvent):
    """A piece of the request body."""

    data: bytes

    def __init__(self, request_id: int, data: bytes) -> None:
        self.request_id = request_id
        self.data = data


@dataclass(slots=True, init=False)
class BodyEnd(RequestEvent):
    """The request body is complete."""


@dataclass(slots=True, init=False)
class FilterData(RequestEvent):
    """A piece of the FILTER role's FCGI_DATA stream (the file to filter)."""

    data: bytes

    def __init__(self, request_id: int, data: bytes) -> None:
        self.request_id = request_id
        self.data = data


@dataclass(slots=True, init=False)
class FilterDataEnd(RequestEvent):
    """The FILTER role's FCGI_DATA stream is complete."""


@dataclass(slots=True, init=False)
class RequestAborted(RequestEvent):
    """The web server gave the request up (FCGI_ABORT_REQUEST)."""


@dataclass(slots=True, init=False)
class ConnectionClosed:
    """The peer closed its sending side with no request left half-read."""


Event = (
    RequestStarted
    | BodyData
    | BodyEnd
    | FilterData
    | FilterDataEnd
    | RequestAborted
    | ConnectionClosed
)


@dataclass(slots=True, init=False)
class ResponseData(RequestEvent):
    """Response bytes for one request (head and body, already rendered)."""

    data: bytes | bytearray | memoryview

    def __init__(self, request_id: int, data: bytes | bytearray | memoryview) -> None:
        self.request_id = request_id
        self.data = data


@dataclass(slots=True, init=False)
class ResponseErrorData(RequestEvent):
    """Diagnostic text for the web server's error log (FastCGI FCGI_STDERR)."""

    data: bytes

    def __init__(self, request_id: int, data: bytes) -> None:
        self.request_id = request_id
        self.data = data


@dataclass(slots=True, init=False)
class ResponseEnd(RequestEvent):
    """The response is complete. ``app_status`` is FastCGI's appStatus (0 = success)."""

    app_status: int

    def __init__(self, request_id: int, app_status: int = 0) -> None:
        self.request_id = request_id
        self.app_status = app_status


@dataclass(slots=True, init=False)
class RequestRefused(RequestEvent):
    """The server will not run this request (no capacity); nothing was sent for it yet.

    Each codec answers as its protocol says: FastCGI with FCGI_END_REQUEST and
    ``fcgi_protocol_status`` (``None``: FCGI_OVERLOADED), and no output;
    SCGI and uwsgi with ``reply``, the complete response the core
    rendered (a 503 page in the codec's ``head_style``), then the end.
    """

    reply: bytes
    fcgi_protocol_status: int | None

    def __init__(
        self, request_id: int, reply: bytes = b"", fcgi_protocol_status: int | None = None
    ) -> None:
        self.request_id = request_id
        self.reply = reply
        self.fcgi_protocol_status = fcgi_protocol_status


OutEvent = ResponseData | ResponseErrorData | ResponseEnd | RequestRefused
