"""A sans-I/O FastCGI 1.0 codec: bytes in, events out; events in, bytes out.

The protocol (Open Market's "FastCGI Specification", version 1.0, 1996), as
this module implements it:

Records
    Everything on the connection travels in records: an 8-byte header
    (version, type, requestId, contentLength, paddingLength, reserved) followed
    by 0..65535 content bytes and 0..255 padding bytes, which the receiver
    skips. Only version 1 exists; anything else means the byte stream is not
    FastCGI (or lost sync), so the connection is unusable. Records may be split
    or coalesced arbitrarily by the transport: the codec parses a record only
    once all of it has arrived, whatever the pieces were. Records we send are
    padded to a multiple of 8 bytes, as the specification recommends.

Management records (requestId 0)
    FCGI_GET_VALUES asks for variables (name-value pairs with empty values);
    the answer is one FCGI_GET_VALUES_RESULT with the values of the names we
    know (FCGI_MAX_CONNS, FCGI_MAX_REQS, FCGI_MPXS_CONNS); other names are
    omitted. A record type we do not understand is answered with
    FCGI_UNKNOWN_TYPE. Both replies come from the codec itself and are
    collected by :meth:`FastCGIConnection.data_to_send`; the application never
    sees them.

Requests
    A request id becomes active with FCGI_BEGIN_REQUEST (role and the
    FCGI_KEEP_CONN flag) and inactive when the application sends
    FCGI_END_REQUEST. Its input arrives on streams: records of one type whose
    contents concatenate, ended by an empty record of that type. FCGI_PARAMS
    carries the CGI variables as name-value pairs; the pairs are decoded as
    one byte stream, so a pair (or even a 4-byte length) split across two
    records is decoded exactly as if it had come in one. Then FCGI_STDIN
    carries the request body, and for the FILTER role FCGI_DATA carries the
    file to filter. The order of the streams is fixed by the role; the rules
    live in one table, ``_TRANSITIONS``.

Responses
    FCGI_STDOUT (and optionally FCGI_STDERR) streams, each ended by an empty
    record, then FCGI_END_REQUEST with the appStatus and protocolStatus
    FCGI_REQUEST_COMPLETE. A request the application will not run is ended with
    only FCGI_END_REQUEST and protocolStatus FCGI_CANT_MPX_CONN,
    FCGI_OVERLOADED or FCGI_UNKNOWN_ROLE.

Where the specification is silent or loose, this codec decides as follows:

* Records for a request id that was never begun are a protocol error (the
  front-end and the web server disagree about the stream; flup drops them
  silently). Records for an id that has been *ended* (our END_REQUEST sent,
  or the request rejected) are ignored until a new FCGI_BEGIN_REQUEST for
  that id, as the specification says: the web server may still have STDIN or
  an FCGI_ABORT_REQUEST in flight when our END_REQUEST crosses them.
* FCGI_BEGIN_REQUEST content must be exactly 8 bytes; FCGI_ABORT_REQUEST
  content is ignored.
* Record types the web server is never supposed to send (END_REQUEST, STDOUT,
  STDERR, GET_VALUES_RESULT, UNKNOWN_TYPE) are a protocol error. Types the
  specification does not define (0 and 12..255) are answered with
  FCGI_UNKNOWN_TYPE whatever their request id, and otherwise skipped.
* AUTHORIZER requests get ``RequestStarted`` and ``BodyEnd`` together when
  FCGI_PARAMS ends: an Authorizer has no request body (section 6.3), and
  Apache's mod_authnz_fcgi sends no FCGI_STDIN at all. If a web server does
  send an FCGI_STDIN stream to an Authorizer anyway, its content is discarded
  and its empty record accepted; FCGI_STDIN after that is an error.
* FILTER input is strictly sequential (section 6.1): FCGI_DATA before the
  end of FCGI_STDIN is an error. The FCGI_DATA stream is bounded by
  ``max_body_size`` like the body.
* FCGI_ABORT_REQUEST for a request not yet started (still in FCGI_PARAMS) is
  answered by the codec with END_REQUEST (appStatus 0, REQUEST_COMPLETE) and
  no event; for a started one, ``RequestAborted`` is emitted and the
  front-end ends the request with ``ResponseEnd``. Input arriving for an
  aborted request is ignored.
* EOF is clean only with no record half-read and no request active; a
  request active at EOF (even one whose input was complete) means the web
  server gave it up, reported as ``RemoteProtocolError`` with its id.
* ``should_close`` becomes true whenever an END_REQUEST goes out for a
  request begun without FCGI_KEEP_CONN, including the codec's own rejections
  (the specification: "the application closes the connection after
  responding to this request").
* ``max_reqs`` and ``max_conns`` are what FCGI_GET_VALUES reports; the number
  of requests active at once on one connection is capped at the smaller of
  ``max_reqs`` and ``limits.max_requests_per_connection`` (1 when
  ``multiplex`` is false); past the cap a new request gets FCGI_OVERLOADED
  (FCGI_CANT_MPX_CONN when not multiplexing).
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Final

from ..errors import LimitExceeded, LocalProtocolError, RemoteProtocolError
from ..events import (
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
    RequestStarted,
    ResponseData,
    ResponseEnd,
    ResponseErrorData,
    Role,
    raw_pairs,
)
from ..limits import DEFAULT_LIMITS, Limits
from ._buffer import ReceiveBuffer

__all__ = [
    "FCGI_VERSION_1",
    "FCGI_HEADER_LEN",
    "FCGI_NULL_REQUEST_ID",
    "FCGI_BEGIN_REQUEST",
    "FCGI_ABORT_REQUEST",
    "FCGI_END_REQUEST",
    "FCGI_PARAMS",
    "FCGI_STDIN",
    "FCGI_STDOUT",
    "FCGI_STDERR",
    "FCGI_DATA",
    "FCGI_GET_VALUES",
    "FCGI_GET_VALUES_RESULT",
    "FCGI_UNKNOWN_TYPE",
    "FCGI_KEEP_CONN",
    "FCGI_REQUEST_COMPLETE",
    "FCGI_CANT_MPX_CONN",
    "FCGI_OVERLOADED",
    "FCGI_UNKNOWN_ROLE",
    "FCGI_MAX_CONNS",
    "FCGI_MAX_REQS",
    "FCGI_MPXS_CONNS",
    "MAX_RECORD_CONTENT",
    "FastCGIConnection",
    "FastCGIClient",
    "StdoutData",
    "StderrData",
    "EndRequest",
    "ValuesResult",
    "UnknownTypeResult",
    "ClientEvent",
    "encode_pairs",
]

# --- Constants of the specification (section 8) ------------------------------

FCGI_VERSION_1: Final = 1
FCGI_HEADER_LEN: Final = 8
FCGI_NULL_REQUEST_ID: Final = 0

FCGI_BEGIN_REQUEST: Final = 1
FCGI_ABORT_REQUEST: Final = 2
FCGI_END_REQUEST: Final = 3
FCGI_PARAMS: Final = 4
FCGI_STDIN: Final = 5
FCGI_STDOUT: Final = 6
FCGI_STDERR: Final = 7
FCGI_DATA: Final = 8
FCGI_GET_VALUES: Final = 9
FCGI_GET_VALUES_RESULT: Final = 10
FCGI_UNKNOWN_TYPE: Final = 11

FCGI_KEEP_CONN: Final = 1

FCGI_REQUEST_COMPLETE: Final = 0
FCGI_CANT_MPX_CONN: Final = 1
FCGI_OVERLOADED: Final = 2
FCGI_UNKNOWN_ROLE: Final = 3

FCGI_MAX_CONNS: Final = b"FCGI_MAX_CONNS"
FCGI_MAX_REQS: Final = b"FCGI_MAX_REQS"
FCGI_MPXS_CONNS: Final = b"FCGI_MPXS_CONNS"

# contentLength is a 16-bit field.
MAX_RECORD_CONTENT: Final = 65535

# A name-value length with the high bit set is 4 bytes long, of which 31 bits count.
_MAX_PAIR_LENGTH: Final = 0x7FFFFFFF

_TYPE_NAMES: Final = {
    FCGI_BEGIN_REQUEST: "FCGI_BEGIN_REQUEST",
    FCGI_ABORT_REQUEST: "FCGI_ABORT_REQUEST",
    FCGI_END_REQUEST: "FCGI_END_REQUEST",
    FCGI_PARAMS: "FCGI_PARAMS",
    FCGI_STDIN: "FCGI_STDIN",
    FCGI_STDOUT: "FCGI_STDOUT",
    FCGI_STDERR: "FCGI_STDERR",
    FCGI_DATA: "FCGI_DATA",
    FCGI_GET_VALUES: "FCGI_GET_VALUES",
    FCGI_GET_VALUES_RESULT: "FCGI_GET_VALUES_RESULT",
    FCGI_UNKNOWN_TYPE: "FCGI_UNKNOWN_TYPE",
}

# --- Wire structures, shared by the server and the client side ----------------

# version, type, requestId, contentLength, paddingLength, reserved
_HEADER: Final = struct.Struct(">BBHHBx")
# role, flags, reserved[5]
_BEGIN_BODY: Final = struct.Struct(">HB5x")
# appStatus, protocolStatus, reserved[3]
_END_BODY: Final = struct.Struct(">IB3x")
# type, reserved[7]
_UNKNOWN_TYPE_BODY: Final = struct.Struct(">B7x")
_U32: Final = struct.Struct(">I")
# An empty record, then FCGI_END_REQUEST: how every response ends.
_STDOUT_END_AND_END_REQUEST: Final = struct.Struct(">BBHHBxBBHHBxIB3x")

# _PADDING[n] is n padding bytes (records are padded to a multiple of 8: n = -size & 7).
_PADDING: Final = tuple(bytes(n) for n in range(8))
_SHORT_LENGTHS: Final = tuple(bytes((n,)) for n in range(128))


def _record(rtype: int, request_id: int, content: bytes = b"") -> bytes:
    """One record of at most 65535 content bytes, padded to a multiple of 8."""
    size = len(content)
    pad = -size & 7
    return _HEADER.pack(FCGI_VERSION_1, rtype, request_id, size, pad) + content + _PADDING[pad]


def _stream_chunks(
    rtype: int, request_id: int, data: bytes | bytearray | memoryview
) -> list[bytes | memoryview]:
    """Non-empty stream records carrying ``data``, as buffers ready for ``sendmsg``.

    Records carry at most 65535 bytes each; the payload is never copied: each
    record's content is a ``memoryview`` slice of ``data`` (a ``bytes`` that
    fits one record is passed through as it is), so framing is linear in the
    payload size. Each record's padding is merged with the next record's
    header. Empty ``data`` gives no records: an empty record would end the
    stream. (Only a non-contiguous ``memoryview`` is copied, to flatten it.)
    """
    view: memoryview | None = None
    payload: bytes | memoryview
    if isinstance(data, bytes):
        payload = data
    elif isinstance(data, bytearray):
        payload = view = memoryview(data)
    elif not data.c_contiguous:
        payload = data.tobytes()
    elif data.ndim != 1 or data.itemsize != 1:
        payload = view = data.cast("B")
    else:
        payload = view = data
    size = len(payload)
    if size <= MAX_RECORD_CONTENT:
        if not size:
            return []
        pad = -size & 7
        head = _HEADER.pack(FCGI_VERSION_1, rtype, request_id, size, pad)
        return [head, payload, _PADDING[pad]] if pad else [head, payload]
    if view is None:
        view = memoryview(payload)
    chunks: list[bytes | memoryview] = []
    pack = _HEADER.pack
    glue = b""
    for offset in range(0, size, MAX_RECORD_CONTENT):
        part = min(MAX_RECORD_CONTENT, size - offset)
        pad = -part & 7
        chunks.append(glue + pack(FCGI_VERSION_1, rtype, request_id, part, pad))
        chunks.append(view[offset : offset + part])
        glue = _PADDING[pad]
    if glue:
        chunks.append(glue)
    return chunks


def _encode_length(length: int) -> bytes:
    if length < 128:
        return _SHORT_LENGTHS[length]
    if length > _MAX_PAIR_LENGTH:
        raise LocalProtocolError(f"name-value length {length} does not fit in 31 bits")
    return _U32.pack(length | 0x80000000)


def encode_pairs(pairs: Iterable[tuple[bytes, bytes]]) -> bytes:
    """Name-value pairs in FastCGI encoding (section 3.4).

    Each pair is the name's length, the value's length, the name, the value.
    A length below 128 takes one byte; a longer one takes four, big-endian,
    with the high bit of the first byte set.
    """
    parts: list[bytes] = []
    for name, value in pairs:
        parts.append(_encode_length(len(name)))
        parts.append(_encode_length(len(value)))
        parts.append(name)
        parts.append(value)
    return b"".join(parts)


def _decode_pairs(
    data: bytes,
    out: list[tuple[str, str]],
    max_name: int,
    max_value: int,
    request_id: int | None,
    *,
    max_count: int = _MAX_PAIR_LENGTH,
) -> tuple[int, int]:
    """Append the complete name-value pairs at the start of ``data`` to ``out``.

    Names and values come out as latin-1 native strings (one character per
    byte, as PEP 3333 wants them): ``data`` is decoded once and sliced, which
    costs less than slicing bytes and decoding every piece.

    Returns ``(used, need)``: ``used`` bytes were decoded; if ``need`` is not
    zero, an incomplete pair starts at ``used`` and at least ``need`` bytes
    from there are required before decoding it can progress (its lengths, or
    the whole pair once the lengths are known). Each length is checked against
    its limit as soon as it is read, so a value claiming 2 GiB fails before
    any of it is waited for; and decoding stops at ``max_count`` pairs, so a
    record packed with tiny pairs is refused before it is all cut up.
    """
    text = data.decode("latin-1")
    pos = 0
    end = len(data)
    last = end - 1
    unpack_u32 = _U32.unpack_from
    append = out.append
    # Pairs with two 1-byte lengths (nearly all) take the short path, unless a
    # limit is below 128 and each length must be checked.
    short = max_name >= 127 and max_value >= 127
    while True:
        room = max_count - len(out)
        if room < 0:
            raise LimitExceeded(
                "max_param_count", len(out), max_count, status_hint=431, request_id=request_id
            )
        if short:
            # A pair takes at least 2 bytes: pairs starting before ``limit``
            # are at most one more than the count allows (then refused above),
            # so the loop needs no count check of its own.
            limit = min(last, pos + 2 * room + 2)
            start = pos
            while pos < limit:
                name_len = data[pos]
                value_len = data[pos + 1]
                if (name_len | value_len) & 0x80:
                    break
                start = pos + 2
                split = start + name_len
                pos = split + value_len
                append((text[start:split], text[split:pos]))
            if pos > end:
                # The last pair runs past the end (its slices came out short):
                # take it back and wait for the rest of it.
                out.pop()
                return start - 2, pos - start + 2
        if len(out) > max_count:
            continue  # refused at the top of the loop
        if pos >= end:
            return pos, 0
        # One pair, any length encoding.
        name_len = data[pos]
        if name_len & 0x80:
            if pos + 4 > end:
                return pos, 5
            name_len = unpack_u32(data, pos)[0] & _MAX_PAIR_LENGTH
            at = pos + 4
        else:
            at = pos + 1
        if name_len > max_name:
            raise LimitExceeded(
                "max_name_length", name_len, max_name, status_hint=431, request_id=request_id
            )
        if at >= end:
            return pos, at - pos + 1
        value_len = data[at]
        if value_len & 0x80:
            if at + 4 > end:
                return pos, at + 4 - pos
            value_len = unpack_u32(data, at)[0] & _MAX_PAIR_LENGTH
            at += 4
        else:
            at += 1
        if value_len > max_value:
            raise LimitExceeded(
                "max_value_length", value_len, max_value, status_hint=431, request_id=request_id
            )
        split = at + name_len
        stop = split + value_len
        if stop > end:
            return pos, stop - pos
        append((text[at:split], text[split:stop]))
        pos = stop


def _scan_stream(
    data: bytearray, pos: int, spans: list[tuple[int, int]], rtype: int, request_id: int
) -> int:
    """Find one whole input stream of ``request_id`` at ``data[pos:]``.

    Appends each non-empty record's content span to ``spans`` and returns the
    position after the stream's empty record; -1 when the stream is not all
    there or a record of another kind, request or version comes first.
    """
    unpack = _HEADER.unpack_from
    end = len(data)
    while end - pos >= FCGI_HEADER_LEN:
        version, kind, rid, size, pad = unpack(data, pos)
        if version != FCGI_VERSION_1 or kind != rtype or rid != request_id:
            return -1
        pos += FCGI_HEADER_LEN
        stop: int = pos + size
        after: int = stop + pad
        if after > end:
            return -1
        if not size:
            return after
        spans.append((pos, stop))
        pos = after
    return -1


class _RecordReader(ReceiveBuffer):
    """The receive buffer, cutting whole records out of the byte stream (both sides use it)."""

    __slots__ = ("eof",)

    def __init__(self) -> None:
        super().__init__()
        self.eof = False

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Buffer received bytes; ``b""`` marks the end of the stream."""
        if not data:
            self.eof = True
        elif self.eof:
            raise LocalProtocolError("received data after the end of the stream")
        else:
            self.append(data)

    def next_record(self) -> tuple[int, int, bytes] | None:
        """``(type, request_id, content)`` of the next whole record, or ``None``.

        Raises ``RemoteProtocolError`` as soon as a header with a version other
        than 1 is seen. Padding is skipped. (Parses the array in place: this
        runs once per record.)
        """
        data = self._data
        begin = self._start
        end = len(data)
        if end - begin < FCGI_HEADER_LEN:
            return None
        version, rtype, request_id, size, pad = _HEADER.unpack_from(data, begin)
        if version != FCGI_VERSION_1:
            raise RemoteProtocolError(
                f"unsupported FastCGI version {version} (only version 1 exists)"
            )
        begin += FCGI_HEADER_LEN
        stop = begin + size
        after = stop + pad
        if after > end:
            return None
        content = bytes(data[begin:stop]) if size else b""
        if after == end:
            data.clear()
            after = 0
        self._start = after
        return rtype, request_id, content


# --- The per-request state table ----------------------------------------------
#
# One entry per allowed (state, input) pair, giving (action, next state).
# Anything missing is a protocol error. Inputs are record types; stream records
# with empty content (the end of a stream) are inputs of their own, and
# FCGI_BEGIN_REQUEST is classified by role.

# States of one request id.
_NEW: Final = 0  # never begun on this connection
_IGNORED: Final = 1  # ended (our END_REQUEST sent) or rejected: input is dropped
_R_PARAMS: Final = 2  # RESPONDER reading FCGI_PARAMS
_A_PARAMS: Final = 3  # AUTHORIZER reading FCGI_PARAMS
_F_PARAMS: Final = 4  # FILTER reading FCGI_PARAMS
_R_STDIN: Final = 5  # RESPONDER reading FCGI_STDIN
_F_STDIN: Final = 6  # FILTER reading FCGI_STDIN
_A_STDIN: Final = 7  # AUTHORIZER started; an FCGI_STDIN stream may still come, discarded
_F_DATA: Final = 8  # FILTER reading FCGI_DATA
_DONE: Final = 9  # all input read; the response is being written
_ABORTED: Final = 10  # RequestAborted emitted; waiting for ResponseEnd

_STATE_NAMES: Final = (
    "never begun",
    "ended",
    "reading FCGI_PARAMS",
    "reading FCGI_PARAMS",
    "reading FCGI_PARAMS",
    "reading FCGI_STDIN",
    "reading FCGI_STDIN",
    "started (Authorizer)",
    "reading FCGI_DATA",
    "input complete",
    "aborted",
)

# Inputs. Non-empty stream records and ABORT use their record type.
_IN_ABORT: Final = FCGI_ABORT_REQUEST
_IN_PARAMS: Final = FCGI_PARAMS
_IN_STDIN: Final = FCGI_STDIN
_IN_DATA: Final = FCGI_DATA
_END: Final = 0x100  # added to a stream type for its empty record
_IN_PARAMS_END: Final = FCGI_PARAMS | _END
_IN_STDIN_END: Final = FCGI_STDIN | _END
_IN_DATA_END: Final = FCGI_DATA | _END
_IN_BEGIN_UNKNOWN_ROLE: Final = 0x200
_ROLES: Final = {int(role): role for role in Role}
_RESPONDER: Final = int(Role.RESPONDER)
_IN_BEGIN: Final = {
    int(Role.RESPONDER): 0x201,
    int(Role.AUTHORIZER): 0x202,
    int(Role.FILTER): 0x203,
}
_IN_BEGIN_RESPONDER: Final = _IN_BEGIN[Role.RESPONDER]
_IN_BEGIN_AUTHORIZER: Final = _IN_BEGIN[Role.AUTHORIZER]
_IN_BEGIN_FILTER: Final = _IN_BEGIN[Role.FILTER]

# Actions.
_DO_BEGIN: Final = 0  # admit the request (or reject it: overloaded, can't multiplex)
_DO_REJECT_ROLE: Final = 1  # queue END_REQUEST(FCGI_UNKNOWN_ROLE)
_DO_PARAMS: Final = 2  # decode name-value pairs
_DO_START: Final = 3  # emit RequestStarted
_DO_START_AUTH: Final = 4  # emit RequestStarted and BodyEnd
_DO_BODY: Final = 5  # emit BodyData
_DO_BODY_END: Final = 6  # emit BodyEnd
_DO_FDATA: Final = 7  # emit FilterData
_DO_FDATA_END: Final = 8  # emit FilterDataEnd
_DO_ABORT_EARLY: Final = 9  # queue END_REQUEST ourselves, no event
_DO_ABORT: Final = 10  # emit RequestAborted
_DO_IGNORE: Final = 11  # drop the record

_INPUT_STREAMS: Final = frozenset((FCGI_PARAMS, FCGI_STDIN, FCGI_DATA))
_PARAMS_STATES: Final = (_R_PARAMS, _A_PARAMS, _F_PARAMS)
_STARTED_STATES: Final = (_R_STDIN, _F_STDIN, _A_STDIN, _F_DATA, _DONE)
_ALL_INPUTS: Final = (
    _IN_ABORT,
    _IN_PARAMS,
    _IN_PARAMS_END,
    _IN_STDIN,
    _IN_STDIN_END,
    _IN_DATA,
    _IN_DATA_END,
)


def _build_transitions() -> dict[tuple[int, int], tuple[int, int]]:
    t: dict[tuple[int, int], tuple[int, int]] = {}
    # A request id is (re)used by FCGI_BEGIN_REQUEST, only while inactive.
    for state in (_NEW, _IGNORED):
        t[state, _IN_BEGIN_RESPONDER] = (_DO_BEGIN, _R_PARAMS)
        t[state, _IN_BEGIN_AUTHORIZER] = (_DO_BEGIN, _A_PARAMS)
        t[state, _IN_BEGIN_FILTER] = (_DO_BEGIN, _F_PARAMS)
        t[state, _IN_BEGIN_UNKNOWN_ROLE] = (_DO_REJECT_ROLE, _IGNORED)
    # Inactive ids ignore every other record (specification, section 3.3).
    for inp in _ALL_INPUTS:
        t[_IGNORED, inp] = (_DO_IGNORE, _IGNORED)
    # FCGI_PARAMS, then its empty record starts the request.
    for state in _PARAMS_STATES:
        t[state, _IN_PARAMS] = (_DO_PARAMS, state)
        t[state, _IN_ABORT] = (_DO_ABORT_EARLY, _IGNORED)
    t[_R_PARAMS, _IN_PARAMS_END] = (_DO_START, _R_STDIN)
    t[_F_PARAMS, _IN_PARAMS_END] = (_DO_START, _F_STDIN)
    t[_A_PARAMS, _IN_PARAMS_END] = (_DO_START_AUTH, _A_STDIN)
    # FCGI_STDIN: the body.
    t[_R_STDIN, _IN_STDIN] = (_DO_BODY, _R_STDIN)
    t[_R_STDIN, _IN_STDIN_END] = (_DO_BODY_END, _DONE)
    t[_F_STDIN, _IN_STDIN] = (_DO_BODY, _F_STDIN)
    t[_F_STDIN, _IN_STDIN_END] = (_DO_BODY_END, _F_DATA)
    t[_A_STDIN, _IN_STDIN] = (_DO_IGNORE, _A_STDIN)
    t[_A_STDIN, _IN_STDIN_END] = (_DO_IGNORE, _DONE)
    # FCGI_DATA: the FILTER's file, after FCGI_STDIN.
    t[_F_DATA, _IN_DATA] = (_DO_FDATA, _F_DATA)
    t[_F_DATA, _IN_DATA_END] = (_DO_FDATA_END, _DONE)
    # FCGI_ABORT_REQUEST once started: the application decides how to end.
    for state in _STARTED_STATES:
        t[state, _IN_ABORT] = (_DO_ABORT, _ABORTED)
    # Input still in flight for an aborted request is dropped.
    for inp in (_IN_ABORT, _IN_STDIN, _IN_STDIN_END, _IN_DATA, _IN_DATA_END):
        t[_ABORTED, inp] = (_DO_IGNORE, _ABORTED)
    return t


_TRANSITIONS: Final = _build_transitions()


def _input_name(inp: int) -> str:
    if inp >= _IN_BEGIN_UNKNOWN_ROLE:
        return "FCGI_BEGIN_REQUEST"
    if inp & _END:
        return f"empty {_TYPE_NAMES[inp & 0xFF]}"
    return _TYPE_NAMES[inp]


class _Request:
    """What the codec remembers about one active request id."""

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

    def __init__(self, state: int, role: Role, keep_conn: bool) -> None:
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


def _end_request_record(request_id: int, app_status: int, protocol_status: int) -> bytes:
    return _HEADER.pack(FCGI_VERSION_1, FCGI_END_REQUEST, request_id, 8, 0) + _END_BODY.pack(
        app_status, protocol_status
    )


class FastCGIConnection:
    """Server side of one FastCGI connection.

    Feed it what the socket gives with :meth:`receive_data` (``b""`` for EOF),
    then call :meth:`next_event` until it returns ``NEED_DATA``. Write what
    :meth:`data_to_send` returns after each round: the codec's own replies to
    management records and to requests it refused. Turn the response into
    bytes with :meth:`send` (or :meth:`send_chunks` for ``sendmsg``).

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

    __slots__ = (
        "_close",
        "_error",
        "_events",
        "_ignored",
        "_limits",
        "_max_active",
        "_max_conns",
        "_max_reqs",
        "_mpxs",
        "_multiplex",
        "_outbox",
        "_reader",
        "_requests",
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
        self._reader = _RecordReader()
        self._requests: dict[int, _Request] = {}
        self._ignored: set[int] = set()
        self._events: deque[Event] = deque()
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
            raise RemoteProtocolError(
                f"connection is in ERROR state after: {self._error.msg}",
                request_id=self._error.request_id,
            )
        events = self._events
        if events:
            return events.popleft()
        try:
            reader = self._reader
            if not self._requests and self._whole_request():
                return events.popleft()
            while True:
                record = reader.next_record()
                if record is None:
                    break
                self._handle(*record)
                if events:
                    return events.popleft()
            if reader.eof:
                return self._at_eof()
        except RemoteProtocolError as exc:
            self._error = exc.detached()
            raise
        return NEED_DATA

    def _whole_request(self) -> bool:
        """Take a whole ordinary request in one pass, if that is what is buffered.

        The common case on a connection between requests: FCGI_BEGIN_REQUEST
        (RESPONDER), its FCGI_PARAMS records and their empty one, its FCGI_STDIN
        records and their empty one, all received. The record headers are
        checked first, then the params decoded once; the same events are queued
        and the same state left as the record loop (``_handle``) would, at a
        fraction of the work. Anything else, including a limit that would be
        exceeded or a pair cut at the end, returns False without consuming a
        byte, and the record loop takes it (and raises the precise error).
        """
        reader = self._reader
        data = reader._data
        pos = reader._start
        end = len(data)
        # BEGIN_REQUEST (16 bytes), an empty PARAMS and an empty STDIN (8 each).
        if end - pos < 32:
            return False
        unpack = _HEADER.unpack_from
        version, rtype, request_id, size, pad = unpack(data, pos)
        if version != FCGI_VERSION_1 or rtype != FCGI_BEGIN_REQUEST or size != 8:
            return False
        role, flags = _BEGIN_BODY.unpack_from(data, pos + FCGI_HEADER_LEN)
        if not request_id or role != _RESPONDER or _RESPONDER not in self._roles:
            return False
        pos += 16 + pad
        params_spans: list[tuple[int, int]] = []
        pos = _scan_stream(data, pos, params_spans, FCGI_PARAMS, request_id)
        if pos < 0:
            return False
        body_spans: list[tuple[int, int]] = []
        pos = _scan_stream(data, pos, body_spans, FCGI_STDIN, request_id)
        if pos < 0:
            return False
        limits = self._limits
        if len(params_spans) == 1:
            first, stop = params_spans[0]
            block = bytes(data[first:stop])
        else:
            block = b"".join([data[first:stop] for first, stop in params_spans])
        if len(block) > limits.max_params_bytes:
            return False
        params: list[tuple[str, str]] = []
        try:
            _, need = _decode_pairs(
                block,
                params,
                limits.max_name_length,
                limits.max_value_length,
                request_id,
                max_count=limits.max_param_count,
            )
        except LimitExceeded:
            return False
        if need or len(params) > limits.max_param_count:
            return False
        body_size = 0
        if body_spans:
            body_size = sum([stop - first for first, stop in body_spans])
            if body_size > limits.max_body_size:
                return False
        # All good: consume the bytes and leave the state _handle would.
        events = self._events
        keep_conn = bool(flags & FCGI_KEEP_CONN)
        events.append(RequestStarted(request_id, params, keep_conn, Role.RESPONDER))
        for first, stop in body_spans:
            events.append(BodyData(request_id, bytes(data[first:stop])))
        events.append(BodyEnd(request_id))
        if pos >= end:
            data.clear()
            pos = 0
        reader._start = pos
        self._ignored.discard(request_id)
        req = _Request(_DONE, Role.RESPONDER, keep_conn)
        req.params_bytes = len(block)
        req.body_bytes = body_size
        self._requests[request_id] = req
        return True

    def _at_eof(self) -> Event:
        if self._reader:
            raise RemoteProtocolError("connection closed mid-record")
        if self._requests:
            request_id = next(iter(self._requests))
            raise RemoteProtocolError("connection closed mid-request", request_id=request_id)
        return ConnectionClosed()

    def _handle(self, rtype: int, request_id: int, content: bytes) -> None:
        """Apply one record: classify it, look the transition up, run its action."""
        if rtype in _INPUT_STREAMS:
            inp = rtype if content else rtype | _END
        elif rtype == FCGI_BEGIN_REQUEST:
            if len(content) != _BEGIN_BODY.size:
                raise RemoteProtocolError(
                    f"FCGI_BEGIN_REQUEST content is {len(content)} bytes, not 8",
                    request_id=request_id or None,
                )
            role, flags = _BEGIN_BODY.unpack(content)
            inp = (
                _IN_BEGIN.get(role, _IN_BEGIN_UNKNOWN_ROLE)
                if role in self._roles
                else _IN_BEGIN_UNKNOWN_ROLE
            )
        elif rtype == FCGI_ABORT_REQUEST:
            inp = _IN_ABORT
        elif rtype == FCGI_GET_VALUES:
            if request_id:
                raise RemoteProtocolError(
                    f"FCGI_GET_VALUES is a management record but has request id {request_id}",
                    request_id=request_id,
                )
            self._get_values(content)
            return
        elif rtype in _TYPE_NAMES:
            raise RemoteProtocolError(
                f"{_TYPE_NAMES[rtype]} records go from the application to the web server",
                request_id=request_id or None,
            )
        else:
            # Section 4.2: answer types we do not understand.
            self._outbox.append(
                _record(FCGI_UNKNOWN_TYPE, FCGI_NULL_REQUEST_ID, _UNKNOWN_TYPE_BODY.pack(rtype))
            )
            return
        if not request_id:
            raise RemoteProtocolError(
                f"{_TYPE_NAMES[rtype]} is an application record but has the null request id"
            )

        req = self._requests.get(request_id)
        if req is not None:
            state = req.state
        elif request_id in self._ignored:
            state = _IGNORED
        else:
            state = _NEW
        try:
            action, next_state = _TRANSITIONS[state, inp]
        except KeyError:
            raise self._unexpected(state, inp, request_id) from None

        if action == _DO_PARAMS:
            assert req is not None
            self._params(req, content, request_id)
        elif action == _DO_BODY:
            assert req is not None
            req.body_bytes = self._within_body_limit(req.body_bytes + len(content), request_id)
            self._events.append(BodyData(request_id, content))
        elif action == _DO_IGNORE:
            pass
        elif action in (_DO_START, _DO_START_AUTH):
            assert req is not None
            if req.pending is not None:
                raise RemoteProtocolError(
                    "FCGI_PARAMS stream ended in the middle of a name-value pair",
                    request_id=request_id,
                )
            params = req.params
            req.params = []
            self._events.append(RequestStarted(request_id, params, req.keep_conn, req.role))
            if action == _DO_START_AUTH:
                self._events.append(BodyEnd(request_id))
        elif action == _DO_BODY_END:
            self._events.append(BodyEnd(request_id))
        elif action == _DO_BEGIN:
            self._begin(request_id, _ROLES[role], flags & FCGI_KEEP_CONN, next_state)
            return
        elif action == _DO_FDATA:
            assert req is not None
            req.data_bytes = self._within_body_limit(req.data_bytes + len(content), request_id)
            self._events.append(FilterData(request_id, content))
        elif action == _DO_FDATA_END:
            self._events.append(FilterDataEnd(request_id))
        elif action == _DO_ABORT:
            self._events.append(RequestAborted(request_id))
        elif action == _DO_ABORT_EARLY:
            assert req is not None
            self._outbox.append(_end_request_record(request_id, 0, FCGI_REQUEST_COMPLETE))
            self._finish(request_id, req)
            return
        elif action == _DO_REJECT_ROLE:
            self._refuse(request_id, flags & FCGI_KEEP_CONN, FCGI_UNKNOWN_ROLE)
            return
        if req is not None:
            req.state = next_state

    def _within_body_limit(self, total: int, request_id: int) -> int:
        """``total``, the bytes of one input stream (FCGI_STDIN or FCGI_DATA) so far,
        if ``max_body_size`` allows that many; else ``LimitExceeded`` (413)."""
        limit = self._limits.max_body_size
        if total > limit:
            raise LimitExceeded(
                "max_body_size", total, limit, status_hint=413, request_id=request_id
            )
        return total

    def _unexpected(self, state: int, inp: int, request_id: int) -> RemoteProtocolError:
        what = _input_name(inp)
        if state == _NEW:
            msg = f"{what} for request {request_id}, which was never begun"
        elif inp >= _IN_BEGIN_UNKNOWN_ROLE:
            msg = f"duplicate FCGI_BEGIN_REQUEST for active request {request_id}"
        else:
            msg = f"unexpected {what} for request {request_id} ({_STATE_NAMES[state]})"
        return RemoteProtocolError(msg, request_id=request_id)

    def _begin(self, request_id: int, role: Role, keep_conn: int, first_state: int) -> None:
        """Admit a new request, unless the connection is at its cap."""
        if len(self._requests) >= self._max_active:
            status = FCGI_OVERLOADED if self._multiplex else FCGI_CANT_MPX_CONN
            self._refuse(request_id, keep_conn, status)
            return
        self._ignored.discard(request_id)
        self._requests[request_id] = _Request(first_state, role, bool(keep_conn))

    def _refuse(self, request_id: int, keep_conn: int, protocol_status: int) -> None:
        """Reject a new request from the codec itself: END_REQUEST, then ignore the id."""
        self._outbox.append(_end_request_record(request_id, 0, protocol_status))
        self._ignored.add(request_id)
        if not keep_conn:
            self._close = True

    def _params(self, req: _Request, content: bytes, request_id: int) -> None:
        """Decode FCGI_PARAMS content as a continuation of the stream so far."""
        limits = self._limits
        req.params_bytes += len(content)
        if req.params_bytes > limits.max_params_bytes:
            raise LimitExceeded(
                "max_params_bytes",
                req.params_bytes,
                limits.max_params_bytes,
                status_hint=431,
                request_id=request_id,
            )
        pending = req.pending
        if pending is not None:
            pending += content
            if len(pending) < req.need:
                return
            data = bytes(pending)
        else:
            data = content
        params = req.params
        used, need = _decode_pairs(
            data,
            params,
            limits.max_name_length,
            limits.max_value_length,
            request_id,
            max_count=limits.max_param_count,
        )
        if len(params) > limits.max_param_count:
            raise LimitExceeded(
                "max_param_count",
                len(params),
                limits.max_param_count,
                status_hint=431,
                request_id=request_id,
            )
        if need:
            req.pending = bytearray(data[used:])
            req.need = need
        else:
            req.pending = None

    def _get_values(self, content: bytes) -> None:
        """Answer FCGI_GET_VALUES with the variables we know, in the order asked."""
        pairs: list[tuple[str, str]] = []
        limits = self._limits
        max_name, max_value = limits.max_name_length, limits.max_value_length
        need = _decode_pairs(content, pairs, max_name, max_value, None)[1]
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
            _record(FCGI_GET_VALUES_RESULT, FCGI_NULL_REQUEST_ID, encode_pairs(answer))
        )

    # --- Outbound --------------------------------------------------------------

    def send(self, event: OutEvent) -> bytes:
        """The records for one response event, as one ``bytes``.

        * ``ResponseData``: FCGI_STDOUT records of at most 65535 content bytes
          (nothing at all for empty data: an empty record would end the stream);
        * ``ResponseErrorData``: FCGI_STDERR records, likewise;
        * ``ResponseEnd``: the empty FCGI_STDOUT record ending stdout, the empty
          FCGI_STDERR record if stderr was used, and FCGI_END_REQUEST with
          ``app_status`` and FCGI_REQUEST_COMPLETE. The request id becomes
          inactive.

        Raises ``LocalProtocolError`` for a request that is not active, or not
        started yet (its FCGI_PARAMS are not complete) while the connection is
        healthy.
        """
        return b"".join(self.send_chunks(event))

    def send_chunks(self, event: OutEvent) -> list[bytes | memoryview]:
        """Like :meth:`send`, as a list of buffers for ``socket.sendmsg``.

        The payload of ``ResponseData`` is not copied: records carry
        ``memoryview`` slices of it.
        """
        kind = type(event)
        if kind is ResponseData:
            return self.send_data(event.request_id, event.data)  # type: ignore[union-attr]
        if kind is ResponseEnd:
            return self.send_end(event.request_id, event.app_status)  # type: ignore[union-attr]
        req = self._sending(event.request_id)
        if kind is ResponseErrorData:
            chunks = _stream_chunks(FCGI_STDERR, event.request_id, event.data)  # type: ignore[union-attr]
            if chunks:
                req.output = req.stderr = True
            return chunks
        raise LocalProtocolError(f"cannot send {event!r} over FastCGI")

    def send_data(
        self, request_id: int, data: bytes | bytearray | memoryview
    ) -> list[bytes | memoryview]:
        """``send_chunks(ResponseData(request_id, data))``, without making the event."""
        req = self._sending(request_id)
        chunks = _stream_chunks(FCGI_STDOUT, request_id, data)
        if chunks:
            req.output = True
        return chunks

    def send_end(self, request_id: int, app_status: int = 0) -> list[bytes | memoryview]:
        """``send_chunks(ResponseEnd(request_id, app_status))``, without making the event."""
        req = self._sending(request_id)
        if not -0x80000000 <= app_status <= 0xFFFFFFFF:
            raise LocalProtocolError(f"app_status {app_status} does not fit in 32 bits")
        self._finish(request_id, req)
        status = app_status & 0xFFFFFFFF
        if req.stderr:  # both streams end, as in the specification's example 3
            return [
                _HEADER.pack(FCGI_VERSION_1, FCGI_STDOUT, request_id, 0, 0)
                + _HEADER.pack(FCGI_VERSION_1, FCGI_STDERR, request_id, 0, 0)
                + _end_request_record(request_id, status, FCGI_REQUEST_COMPLETE)
            ]
        # The empty FCGI_STDOUT record and FCGI_END_REQUEST in one pack.
        return [
            _STDOUT_END_AND_END_REQUEST.pack(
                FCGI_VERSION_1,
                FCGI_STDOUT,
                request_id,
                0,
                0,
                FCGI_VERSION_1,
                FCGI_END_REQUEST,
                request_id,
                _END_BODY.size,
                0,
                status,
                FCGI_REQUEST_COMPLETE,
            )
        ]

    def _sending(self, request_id: int) -> _Request:
        """The request a response event is for; raises unless it may send now."""
        req = self._requests.get(request_id)
        if req is None:
            raise LocalProtocolError(
                f"request {request_id} is not active (never begun, or already ended)"
            )
        if req.state in _PARAMS_STATES and self._error is None:
            raise LocalProtocolError(
                f"request {request_id} has not started: its FCGI_PARAMS are not complete"
            )
        return req

    def reject(self, request_id: int, protocol_status: int) -> bytes:
        """END_REQUEST refusing an active request the server will not run.

        Typically ``FCGI_OVERLOADED`` when no worker is free. Only a request
        that has not sent output can be rejected; the id becomes inactive.
        """
        req = self._requests.get(request_id)
        if req is None:
            raise LocalProtocolError(
                f"request {request_id} is not active (never begun, or already ended)"
            )
        if req.output:
            raise LocalProtocolError(
                f"request {request_id} already sent output; end it with ResponseEnd"
            )
        if protocol_status not in (
            FCGI_REQUEST_COMPLETE,
            FCGI_CANT_MPX_CONN,
            FCGI_OVERLOADED,
            FCGI_UNKNOWN_ROLE,
        ):
            raise LocalProtocolError(f"unknown FastCGI protocolStatus {protocol_status}")
        self._finish(request_id, req)
        return _end_request_record(request_id, 0, protocol_status)

    def _finish(self, request_id: int, req: _Request) -> None:
        """The id's END_REQUEST is out: it is inactive until begun again."""
        del self._requests[request_id]
        self._ignored.add(request_id)
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
        return not self._reader and not self._requests

    @property
    def active_requests(self) -> int:
        """Requests begun and not yet ended (or rejected) on this connection."""
        return len(self._requests)


# --- Client side --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StdoutData:
    """FCGI_STDOUT content; ``data == b""`` is the record that ends the stream."""

    request_id: int
    data: bytes


@dataclass(frozen=True, slots=True)
class StderrData:
    """FCGI_STDERR content; ``data == b""`` is the record that ends the stream."""

    request_id: int
    data: bytes


@dataclass(frozen=True, slots=True)
class EndRequest:
    """FCGI_END_REQUEST: the application finished (or refused) a request."""

    request_id: int
    app_status: int
    protocol_status: int


@dataclass(frozen=True, slots=True)
class ValuesResult:
    """FCGI_GET_VALUES_RESULT: the variables the application answered, in its order."""

    pairs: tuple[tuple[bytes, bytes], ...]


@dataclass(frozen=True, slots=True)
class UnknownTypeResult:
    """FCGI_UNKNOWN_TYPE: the application did not understand a record of ``type``."""

    type: int


ClientEvent = (
    StdoutData | StderrData | EndRequest | ValuesResult | UnknownTypeResult | ConnectionClosed
)


def _check_request_id(request_id: int) -> None:
    if not 1 <= request_id <= 0xFFFF:
        raise LocalProtocolError(f"request id {request_id} is not in 1..65535")


class FastCGIClient:
    """The web server's side: encodes requests, decodes what the application answers.

    For wsgiwire's own client (``wsgiwire request``) and tests. Encoding does
    not track request state; decoding checks record framing and contents but
    not the order of a request's records, so that a diagnostic tool can show
    whatever a backend sends.
    """

    __slots__ = ("_reader",)

    def __init__(self) -> None:
        self._reader = _RecordReader()

    def begin(
        self,
        request_id: int,
        params: Iterable[tuple[bytes, bytes]],
        *,
        role: Role = Role.RESPONDER,
        keep_conn: bool = False,
    ) -> bytes:
        """FCGI_BEGIN_REQUEST, the FCGI_PARAMS stream (records of at most 65535 bytes) and
        its empty end record."""
        _check_request_id(request_id)
        flags = FCGI_KEEP_CONN if keep_conn else 0
        return b"".join(
            (
                _record(FCGI_BEGIN_REQUEST, request_id, _BEGIN_BODY.pack(int(role), flags)),
                *_stream_chunks(FCGI_PARAMS, request_id, encode_pairs(params)),
                _record(FCGI_PARAMS, request_id),
            )
        )

    def stdin(self, request_id: int, data: bytes | bytearray | memoryview) -> bytes:
        """FCGI_STDIN records carrying ``data`` (nothing for empty data)."""
        _check_request_id(request_id)
        return b"".join(_stream_chunks(FCGI_STDIN, request_id, data))

    def end_stdin(self, request_id: int) -> bytes:
        """The empty FCGI_STDIN record: the body is complete."""
        _check_request_id(request_id)
        return _record(FCGI_STDIN, request_id)

    def data(self, request_id: int, data: bytes | bytearray | memoryview) -> bytes:
        """FCGI_DATA records (FILTER role) carrying ``data`` (nothing for empty data)."""
        _check_request_id(request_id)
        return b"".join(_stream_chunks(FCGI_DATA, request_id, data))

    def end_data(self, request_id: int) -> bytes:
        """The empty FCGI_DATA record."""
        _check_request_id(request_id)
        return _record(FCGI_DATA, request_id)

    def abort(self, request_id: int) -> bytes:
        """FCGI_ABORT_REQUEST."""
        _check_request_id(request_id)
        return _record(FCGI_ABORT_REQUEST, request_id)

    def get_values(self, names: Iterable[bytes]) -> bytes:
        """FCGI_GET_VALUES asking for ``names`` (pairs with empty values)."""
        content = encode_pairs((name, b"") for name in names)
        if len(content) > MAX_RECORD_CONTENT:
            raise LocalProtocolError("FCGI_GET_VALUES names do not fit in one record")
        return _record(FCGI_GET_VALUES, FCGI_NULL_REQUEST_ID, content)

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Add bytes read from the application; ``b""`` means EOF."""
        self._reader.feed(data)

    def next_event(self) -> ClientEvent | NeedData:
        """The next record from the application as an event, or ``NEED_DATA``."""
        reader = self._reader
        record = reader.next_record()
        if record is None:
            if reader.eof:
                if reader:
                    raise RemoteProtocolError("connection closed mid-record")
                return ConnectionClosed()
            return NEED_DATA
        rtype, request_id, content = record
        if rtype == FCGI_STDOUT:
            return StdoutData(request_id, content)
        if rtype == FCGI_STDERR:
            return StderrData(request_id, content)
        if rtype == FCGI_END_REQUEST:
            if len(content) != _END_BODY.size:
                raise RemoteProtocolError(
                    f"FCGI_END_REQUEST content is {len(content)} bytes, not 8",
                    request_id=request_id,
                )
            app_status, protocol_status = _END_BODY.unpack(content)
            return EndRequest(request_id, app_status, protocol_status)
        if rtype == FCGI_GET_VALUES_RESULT:
            pairs: list[tuple[str, str]] = []
            need = _decode_pairs(content, pairs, _MAX_PAIR_LENGTH, _MAX_PAIR_LENGTH, None)[1]
            if need:
                raise RemoteProtocolError(
                    "FCGI_GET_VALUES_RESULT ends in the middle of a name-value pair"
                )
            return ValuesResult(tuple(raw_pairs(pairs)))
        if rtype == FCGI_UNKNOWN_TYPE:
            if len(content) != _UNKNOWN_TYPE_BODY.size:
                raise RemoteProtocolError(
                    f"FCGI_UNKNOWN_TYPE content is {len(content)} bytes, not 8"
                )
            return UnknownTypeResult(content[0])
        raise RemoteProtocolError(
            f"record type {_TYPE_NAMES.get(rtype, rtype)} is not sent by applications",
            request_id=request_id or None,
        )
