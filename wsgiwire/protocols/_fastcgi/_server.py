"""The application's side of a FastCGI connection: the codec the runtime drives.

It cuts records out of the byte stream (``_wire.py``), classifies each one and
looks it up in the state table (``_state.py``), and performs the action the
table names: events for the runtime, replies of its own (management records,
refusals) in :meth:`FastCGIConnection.data_to_send`. A request buffered whole
and one that trickles in byte by byte take the same path, one record at a time.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import ClassVar, Final

from ..._errors import LocalProtocolError, RemoteProtocolError
from ..._events import (
    NEED_DATA,
    BodyData,
    BodyEnd,
    ConnectionClosed,
    Event,
    FilterData,
    FilterDataEnd,
    NeedData,
    OutEvent,
    RequestAborted,
    RequestRefused,
    RequestStarted,
    ResponseData,
    ResponseEnd,
    ResponseErrorData,
    Role,
    raw_pairs,
)
from ..._limitcheck import check_body_size, check_params_bytes
from ..._limits import DEFAULT_LIMITS, Limits
from ..._params import HeadStyle
from .._codec import Codec
from ._state import (
    ACTIVE_STATES,
    RECORD_KINDS,
    STARTED_STATES,
    STREAM_INPUTS,
    TRANSITIONS,
    Action,
    Input,
    RecordKind,
    State,
    begin_input,
    describe_unexpected,
    type_name,
)
from ._wire import (
    BEGIN_BODY,
    FCGI_CANT_MPX_CONN,
    FCGI_GET_VALUES_RESULT,
    FCGI_KEEP_CONN,
    FCGI_MAX_CONNS,
    FCGI_MAX_REQS,
    FCGI_MPXS_CONNS,
    FCGI_NULL_REQUEST_ID,
    FCGI_OVERLOADED,
    FCGI_REQUEST_COMPLETE,
    FCGI_STDERR,
    FCGI_STDOUT,
    FCGI_UNKNOWN_ROLE,
    FCGI_UNKNOWN_TYPE,
    UNKNOWN_TYPE_BODY,
    RecordReader,
    decode_pairs,
    encode_pairs,
    end_request_record,
    record,
    response_end_records,
    stream_chunks,
)

__all__ = ["FastCGIConnection"]

# Enum members as module constants: ``x is _BODY`` is a global lookup, where
# ``x is Action.BODY`` also looks the member up in its class (several times a record).
_STREAM: Final = RecordKind.STREAM
_BEGIN_RECORD: Final = RecordKind.BEGIN
_ABORT_RECORD: Final = RecordKind.ABORT
_GET_VALUES: Final = RecordKind.GET_VALUES
_OUTBOUND: Final = RecordKind.OUTBOUND
_NEW: Final = State.NEW
_IGNORED: Final = State.IGNORED
_DO_BEGIN: Final = Action.BEGIN
_DO_REJECT_ROLE: Final = Action.REJECT_ROLE
_DO_PARAMS: Final = Action.PARAMS
_DO_START: Final = Action.START
_DO_START_AUTH: Final = Action.START_AUTH
_DO_BODY: Final = Action.BODY
_DO_BODY_END: Final = Action.BODY_END
_DO_FDATA: Final = Action.FDATA
_DO_FDATA_END: Final = Action.FDATA_END
_DO_ABORT: Final = Action.ABORT
_DO_ABORT_EARLY: Final = Action.ABORT_EARLY
_DO_IGNORE: Final = Action.IGNORE
_IN_ABORT: Final = Input.ABORT

_ROLES: Final = {int(role): role for role in Role}
_PROTOCOL_STATUSES: Final = frozenset(
    (FCGI_REQUEST_COMPLETE, FCGI_CANT_MPX_CONN, FCGI_OVERLOADED, FCGI_UNKNOWN_ROLE)
)


class _Request:
    """What the codec remembers about one request id it has seen."""

    __slots__ = (
        "body_bytes",
        "data_bytes",
        "keep_conn",
        "need",
        "output",
        "params",
        "params_bytes",
        "pending",
        "role",
        "state",
        "stderr",
    )

    def __init__(self, state: State, role: Role, keep_conn: bool) -> None:
        self.state = state
        self.role = role
        self.keep_conn = keep_conn
        self.params: list[tuple[str, str]] = []
        # The start of a name-value pair split across FCGI_PARAMS records, and
        # how many bytes it needs before decoding it is worth another try.
        self.pending: bytearray | None = None
        self.need = 0
        self.params_bytes = 0
        self.body_bytes = 0
        self.data_bytes = 0
        self.output = False  # FCGI_STDOUT or FCGI_STDERR content sent
        self.stderr = False  # FCGI_STDERR content sent: its stream needs ending


class FastCGIConnection(Codec):
    """Server side of one FastCGI connection.

    Feed it what the socket gives with :meth:`receive_data` (``b""`` for EOF),
    then call :meth:`next_event` until it returns ``NEED_DATA``. Write what
    :meth:`data_to_send` returns after each round: the codec's own replies to
    management records and to requests it refused. Turn the response (and a
    refusal) into buffers with :meth:`send`.

    Any ``RemoteProtocolError`` (including ``LimitExceeded``) from
    :meth:`next_event` puts the connection in an ERROR state: every later
    call raises again, and ``should_close`` is true. Requests known at that
    point can still be answered (e.g. with a 400 or 413 page), then the
    front-end closes the connection.

    ``roles`` are the roles this application plays; ``multiplex`` says
    whether it runs several requests of one connection at once. ``max_conns``
    and ``max_reqs`` are reported through FCGI_GET_VALUES (defaults:
    ``limits.max_connections`` and ``limits.max_requests_per_connection``).
    """

    # Protocol facts the runtime reads (the same for every connection).
    head_style: ClassVar[HeadStyle] = HeadStyle.CGI  # a "Status:" header, CGI style
    one_request_per_connection: ClassVar[bool] = False  # FCGI_KEEP_CONN decides
    raw_body: ClassVar[bool] = False  # the body travels in FCGI_STDOUT records: no sendfile

    __slots__ = (
        "_active",
        "_close",
        "_error",
        "_events",
        "_ids",
        "_limits",
        "_max_active",
        "_max_conns",
        "_max_reqs",
        "_mpxs",
        "_multiplex",
        "_outbox",
        "_reader",
        "_roles",
    )

    def __init__(
        self,
        limits: Limits = DEFAULT_LIMITS,
        *,
        roles: Collection[Role] = (Role.RESPONDER, Role.AUTHORIZER, Role.FILTER),
        multiplex: bool = True,
        max_conns: int | None = None,
        max_reqs: int | None = None,
        mpxs: bool | None = None,
    ) -> None:
        if max_conns is not None and max_conns < 1:
            raise ValueError(f"max_conns must be positive, not {max_conns!r}")
        if max_reqs is not None and max_reqs < 1:
            raise ValueError(f"max_reqs must be positive, not {max_reqs!r}")
        self._limits = limits
        self._roles = frozenset(int(role) for role in roles)
        self._multiplex = multiplex
        # What FCGI_MPXS_CONNS reports: whether requests of one connection run
        # at once (default: ``multiplex``, which says whether they are accepted).
        self._mpxs = multiplex if mpxs is None else mpxs
        self._max_conns = limits.max_connections if max_conns is None else max_conns
        self._max_reqs = limits.max_requests_per_connection if max_reqs is None else max_reqs
        self._max_active = (
            min(self._max_reqs, limits.max_requests_per_connection)
            if multiplex and mpxs is None
            else limits.max_requests_per_connection if multiplex else 1
        )
        self._reader = RecordReader()
        # Every request id seen on this connection, with its state; an id
        # absent from it is State.NEW. Ended ids stay (State.IGNORED): at most
        # 65535 of them, the size of the id space.
        self._ids: dict[int, _Request] = {}
        self._active = 0  # ids in an active state
        # A few events at most between two reads (start, body, end): a list.
        self._events: list[Event] = []
        self._outbox: list[bytes] = []
        self._error: RemoteProtocolError | None = None
        self._close = False

    # --- Inbound ---------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Add bytes read from the web server; ``b""`` means it closed its side (EOF).

        Data arriving after an error is dropped: nothing more will be parsed.
        """
        if self._error is not None:
            if not data:
                self._reader.feed(data)
            return
        self._reader.feed(data)

    def next_event(self) -> Event | NeedData:
        """The next event, or ``NEED_DATA`` until more bytes arrive.

        Raises ``RemoteProtocolError`` (``LimitExceeded`` for a limit) when the
        web server breaks the protocol; the error carries the request id when
        the fault belongs to a request.
        """
        if self._error is not None:
            raise self._error.again()
        events = self._events
        if events:
            return events.pop(0)
        try:
            reader = self._reader
            while True:
                rec = reader.next_record()
                if rec is None:
                    break
                self._handle(rec[0], rec[1], rec[2])
                if events:
                    return events.pop(0)
            if reader.eof:
                return self._at_eof()
        except RemoteProtocolError as exc:
            self._error = exc.detached()
            raise
        return NEED_DATA

    def _at_eof(self) -> Event:
        if self._reader:
            raise RemoteProtocolError("connection closed mid-record")
        if self._active:
            request_id = next(rid for rid, req in self._ids.items() if req.state in ACTIVE_STATES)
            raise RemoteProtocolError("connection closed mid-request", request_id=request_id)
        return ConnectionClosed()

    def _handle(self, rtype: int, request_id: int, content: bytes) -> None:
        """Apply one record: classify it, look the transition up, run its action."""
        kind = RECORD_KINDS[rtype]
        role = flags = 0
        if kind is _STREAM:
            inputs = STREAM_INPUTS[rtype]
            inp = inputs[0] if content else inputs[1]
        elif kind is _BEGIN_RECORD:
            if len(content) != BEGIN_BODY.size:
                raise RemoteProtocolError(
                    f"FCGI_BEGIN_REQUEST content is {len(content)} bytes, not 8",
                    request_id=request_id or None,
                )
            body: tuple[int, int] = BEGIN_BODY.unpack(content)
            role, flags = body
            inp = begin_input(role, self._roles)
        elif kind is _ABORT_RECORD:
            inp = _IN_ABORT
        elif kind is _GET_VALUES:
            if request_id:
                raise RemoteProtocolError(
                    f"FCGI_GET_VALUES is a management record but has request id {request_id}",
                    request_id=request_id,
                )
            self._get_values(content)
            return
        elif kind is _OUTBOUND:
            raise RemoteProtocolError(
                f"{type_name(rtype)} records go from the application to the web server",
                request_id=request_id or None,
            )
        else:
            # Section 4.2: answer types we do not understand.
            self._outbox.append(
                record(FCGI_UNKNOWN_TYPE, FCGI_NULL_REQUEST_ID, UNKNOWN_TYPE_BODY.pack(rtype))
            )
            return
        if not request_id:
            raise RemoteProtocolError(
                f"{type_name(rtype)} is an application record but has the null request id"
            )

        req = self._ids.get(request_id)
        state = _NEW if req is None else req.state
        transition = TRANSITIONS[state][inp]
        if transition is None:
            raise RemoteProtocolError(
                describe_unexpected(state, inp, request_id), request_id=request_id
            )
        action, next_state = transition
        # The actions, the most frequent first.
        if req is None or action is _DO_BEGIN or action is _DO_REJECT_ROLE:
            self._begin(request_id, action, next_state, role, bool(flags & FCGI_KEEP_CONN))
            return
        if action is _DO_PARAMS:
            self._params(req, content, request_id)
        elif action is _DO_START or action is _DO_START_AUTH:
            if req.pending is not None:
                raise RemoteProtocolError(
                    "FCGI_PARAMS stream ended in the middle of a name-value pair",
                    request_id=request_id,
                )
            params = req.params
            req.params = []
            self._events.append(RequestStarted(request_id, params, req.keep_conn, req.role))
            if action is _DO_START_AUTH:
                self._events.append(BodyEnd(request_id))
        elif action is _DO_BODY_END:
            self._events.append(BodyEnd(request_id))
        elif action is _DO_BODY:
            req.body_bytes = check_body_size(
                self._limits, req.body_bytes + len(content), request_id
            )
            self._events.append(BodyData(request_id, content))
        elif action is _DO_IGNORE:
            pass
        elif action is _DO_FDATA:
            req.data_bytes = check_body_size(
                self._limits, req.data_bytes + len(content), request_id
            )
            self._events.append(FilterData(request_id, content))
        elif action is _DO_FDATA_END:
            self._events.append(FilterDataEnd(request_id))
        elif action is _DO_ABORT:
            self._events.append(RequestAborted(request_id))
        elif action is _DO_ABORT_EARLY:
            self._outbox.append(end_request_record(request_id, 0, FCGI_REQUEST_COMPLETE))
            self._finish(req)
            return
        req.state = next_state

    def _begin(
        self, request_id: int, action: Action, first_state: State, role: int, keep_conn: bool
    ) -> None:
        """Admit a new request, unless its role is refused or the connection is at its cap."""
        if action is _DO_REJECT_ROLE:
            self._refuse(request_id, keep_conn, FCGI_UNKNOWN_ROLE)
        elif self._active >= self._max_active:
            status = FCGI_OVERLOADED if self._multiplex else FCGI_CANT_MPX_CONN
            self._refuse(request_id, keep_conn, status)
        else:
            self._ids[request_id] = _Request(first_state, _ROLES[role], keep_conn)
            self._active += 1

    def _refuse(self, request_id: int, keep_conn: bool, protocol_status: int) -> None:
        """Reject a new request from the codec itself: END_REQUEST, then ignore the id."""
        self._outbox.append(end_request_record(request_id, 0, protocol_status))
        self._ids[request_id] = _Request(_IGNORED, Role.RESPONDER, keep_conn)
        if not keep_conn:
            self._close = True

    def _params(self, req: _Request, content: bytes, request_id: int) -> None:
        """Decode FCGI_PARAMS content as a continuation of the stream so far."""
        limits = self._limits
        req.params_bytes = check_params_bytes(
            limits, req.params_bytes + len(content), request_id
        )
        pending = req.pending
        if pending is not None:
            pending += content
            if len(pending) < req.need:
                return
            data = bytes(pending)
        else:
            data = content
        used, need = decode_pairs(data, req.params, limits, request_id)
        if need:
            req.pending = bytearray(data[used:])
            req.need = need
        else:
            req.pending = None

    def _get_values(self, content: bytes) -> None:
        """Answer FCGI_GET_VALUES with the variables we know, in the order asked."""
        pairs: list[tuple[str, str]] = []
        need = decode_pairs(content, pairs, self._limits, None)[1]
        asked = raw_pairs(pairs)
        if need:
            raise RemoteProtocolError("FCGI_GET_VALUES ends in the middle of a name-value pair")
        known = {
            FCGI_MAX_CONNS: str(self._max_conns).encode("ascii"),
            FCGI_MAX_REQS: str(self._max_reqs).encode("ascii"),
            FCGI_MPXS_CONNS: b"1" if self._mpxs else b"0",
        }
        answer: list[tuple[bytes, bytes]] = []
        for name, _ in asked:
            value = known.pop(name, None)
            if value is not None:
                answer.append((name, value))
        self._outbox.append(
            record(FCGI_GET_VALUES_RESULT, FCGI_NULL_REQUEST_ID, encode_pairs(answer))
        )

    # --- Outbound --------------------------------------------------------------

    def send(self, event: OutEvent) -> list[bytes | memoryview]:
        """The records for one outbound event, as buffers for ``socket.sendmsg``.

        * ``ResponseData``: FCGI_STDOUT records of at most 65535 content bytes
          (nothing at all for empty data: an empty record would end the
          stream); the payload is not copied, records carry ``memoryview``
          slices of it;
        * ``ResponseErrorData``: FCGI_STDERR records, likewise;
        * ``ResponseEnd``: the empty FCGI_STDOUT record ending stdout, the empty
          FCGI_STDERR record if stderr was used, and FCGI_END_REQUEST with
          ``app_status`` and FCGI_REQUEST_COMPLETE. The request id becomes
          inactive;
        * ``RequestRefused``: FCGI_END_REQUEST with its ``fcgi_protocol_status``
          (FCGI_OVERLOADED) and no output; only for a request that has sent
          none. The id becomes inactive.

        Raises ``LocalProtocolError`` for a request that is not active, or not
        started yet (its FCGI_PARAMS are not complete) while the connection is
        healthy.
        """
        if isinstance(event, ResponseData):
            req = self._sending(event.request_id)
            chunks = stream_chunks(FCGI_STDOUT, event.request_id, event.data)
            if chunks:
                req.output = True
            return chunks
        if isinstance(event, ResponseEnd):
            request_id = event.request_id
            app_status = event.app_status
            req = self._sending(request_id)
            if not -0x80000000 <= app_status <= 0xFFFFFFFF:
                raise LocalProtocolError(f"app_status {app_status} does not fit in 32 bits")
            self._finish(req)
            return [response_end_records(request_id, app_status & 0xFFFFFFFF, req.stderr)]
        if isinstance(event, ResponseErrorData):
            req = self._sending(event.request_id)
            chunks = stream_chunks(FCGI_STDERR, event.request_id, event.data)
            if chunks:
                req.output = req.stderr = True
            return chunks
        if isinstance(event, RequestRefused):
            status = event.fcgi_protocol_status
            return [self._refused(event.request_id, FCGI_OVERLOADED if status is None else status)]
        raise LocalProtocolError(f"cannot send {event!r} over FastCGI")

    def _sending(self, request_id: int) -> _Request:
        """The request a response event is for; raises unless it may send now."""
        req = self._ids.get(request_id)
        if req is None or req.state not in ACTIVE_STATES:
            raise LocalProtocolError(
                f"request {request_id} is not active (never begun, or already ended)"
            )
        if req.state not in STARTED_STATES and self._error is None:
            raise LocalProtocolError(
                f"request {request_id} has not started: its FCGI_PARAMS are not complete"
            )
        return req

    def _refused(self, request_id: int, protocol_status: int) -> bytes:
        """END_REQUEST refusing an active request the server will not run."""
        req = self._ids.get(request_id)
        if req is None or req.state not in ACTIVE_STATES:
            raise LocalProtocolError(
                f"request {request_id} is not active (never begun, or already ended)"
            )
        if req.output:
            raise LocalProtocolError(
                f"request {request_id} already sent output; end it with ResponseEnd"
            )
        if protocol_status not in _PROTOCOL_STATUSES:
            raise LocalProtocolError(f"unknown FastCGI protocolStatus {protocol_status}")
        self._finish(req)
        return end_request_record(request_id, 0, protocol_status)

    def _finish(self, req: _Request) -> None:
        """The id's END_REQUEST is out: it is inactive until begun again."""
        req.state = _IGNORED
        req.params = []
        req.pending = None
        self._active -= 1
        if not req.keep_conn:
            self._close = True

    def data_to_send(self) -> bytes:
        """Replies the codec queued by itself since the last call (then forgotten).

        FCGI_GET_VALUES_RESULT, FCGI_UNKNOWN_TYPE, and END_REQUEST for requests
        refused (unknown role, can't multiplex, overloaded) or aborted before
        they started.
        """
        if not self._outbox:
            return b""
        out = b"".join(self._outbox)
        self._outbox.clear()
        return out

    @property
    def should_close(self) -> bool:
        """Close the connection once what is pending has been written.

        True once an END_REQUEST went out for a request begun without
        FCGI_KEEP_CONN, after EOF, or after a protocol error.
        """
        return self._close or self._reader.eof or self._error is not None

    @property
    def idle(self) -> bool:
        """No request is open and no partial record is buffered (between requests)."""
        return not self._reader and not self._active

    @property
    def active_requests(self) -> int:
        """Requests begun and not yet ended (or rejected) on this connection."""
        return self._active

    @property
    def discarded_bytes(self) -> int:
        """Always 0: records say where everything ends, nothing is received past it."""
        return 0
