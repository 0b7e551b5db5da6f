"""The web server's side of a FastCGI connection: requests out, replies in.

For wsgiwire's own client (``wsgiwire request``, ``wsgiwire check``) and tests.
Encoding does not track request state; decoding checks record framing and
contents but not the order of a request's records, so that a diagnostic tool
can show whatever a backend sends.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from ..._errors import LocalProtocolError, RemoteProtocolError
from ..._events import NEED_DATA, ConnectionClosed, NeedData, Role, raw_pairs
from ..._limits import Limits
from ._wire import (
    BEGIN_BODY,
    END_BODY,
    FCGI_ABORT_REQUEST,
    FCGI_BEGIN_REQUEST,
    FCGI_DATA,
    FCGI_END_REQUEST,
    FCGI_GET_VALUES,
    FCGI_GET_VALUES_RESULT,
    FCGI_KEEP_CONN,
    FCGI_NULL_REQUEST_ID,
    FCGI_PARAMS,
    FCGI_STDERR,
    FCGI_STDIN,
    FCGI_STDOUT,
    FCGI_UNKNOWN_TYPE,
    MAX_PAIR_LENGTH,
    MAX_RECORD_CONTENT,
    TYPE_NAMES,
    UNKNOWN_TYPE_BODY,
    RecordReader,
    decode_pairs,
    encode_pairs,
    record,
    stream_chunks,
)

__all__ = [
    "ClientEvent",
    "EndRequest",
    "FastCGIClient",
    "StderrData",
    "StdoutData",
    "UnknownTypeResult",
    "ValuesResult",
]

_MAX_ID: Final = 0xFFFF
# A server's FCGI_GET_VALUES_RESULT is read whole, one record: no pair limit but its size.
_UNLIMITED: Final = Limits(
    max_params_bytes=MAX_PAIR_LENGTH,
    max_param_count=MAX_PAIR_LENGTH,
    max_name_length=MAX_PAIR_LENGTH,
    max_value_length=MAX_PAIR_LENGTH,
)


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
    if not 1 <= request_id <= _MAX_ID:
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
        self._reader = RecordReader()

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
                record(FCGI_BEGIN_REQUEST, request_id, BEGIN_BODY.pack(int(role), flags)),
                *stream_chunks(FCGI_PARAMS, request_id, encode_pairs(params)),
                record(FCGI_PARAMS, request_id),
            )
        )

    def stdin(self, request_id: int, data: bytes | bytearray | memoryview) -> bytes:
        """FCGI_STDIN records carrying ``data`` (nothing for empty data)."""
        _check_request_id(request_id)
        return b"".join(stream_chunks(FCGI_STDIN, request_id, data))

    def end_stdin(self, request_id: int) -> bytes:
        """The empty FCGI_STDIN record: the body is complete."""
        _check_request_id(request_id)
        return record(FCGI_STDIN, request_id)

    def data(self, request_id: int, data: bytes | bytearray | memoryview) -> bytes:
        """FCGI_DATA records (FILTER role) carrying ``data`` (nothing for empty data)."""
        _check_request_id(request_id)
        return b"".join(stream_chunks(FCGI_DATA, request_id, data))

    def end_data(self, request_id: int) -> bytes:
        """The empty FCGI_DATA record."""
        _check_request_id(request_id)
        return record(FCGI_DATA, request_id)

    def abort(self, request_id: int) -> bytes:
        """FCGI_ABORT_REQUEST."""
        _check_request_id(request_id)
        return record(FCGI_ABORT_REQUEST, request_id)

    def get_values(self, names: Iterable[bytes]) -> bytes:
        """FCGI_GET_VALUES asking for ``names`` (pairs with empty values)."""
        content = encode_pairs((name, b"") for name in names)
        if len(content) > MAX_RECORD_CONTENT:
            raise LocalProtocolError("FCGI_GET_VALUES names do not fit in one record")
        return record(FCGI_GET_VALUES, FCGI_NULL_REQUEST_ID, content)

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Add bytes read from the application; ``b""`` means EOF."""
        self._reader.feed(data)

    def next_event(self) -> ClientEvent | NeedData:
        """The next record from the application as an event, or ``NEED_DATA``."""
        reader = self._reader
        rec = reader.next_record()
        if rec is None:
            if reader.eof:
                if reader:
                    raise RemoteProtocolError("connection closed mid-record")
                return ConnectionClosed()
            return NEED_DATA
        rtype, request_id, content = rec
        if rtype == FCGI_STDOUT:
            return StdoutData(request_id, content)
        if rtype == FCGI_STDERR:
            return StderrData(request_id, content)
        if rtype == FCGI_END_REQUEST:
            if len(content) != END_BODY.size:
                raise RemoteProtocolError(
                    f"FCGI_END_REQUEST content is {len(content)} bytes, not 8",
                    request_id=request_id,
                )
            app_status, protocol_status = END_BODY.unpack(content)
            return EndRequest(request_id, app_status, protocol_status)
        if rtype == FCGI_GET_VALUES_RESULT:
            pairs: list[tuple[str, str]] = []
            need = decode_pairs(content, pairs, _UNLIMITED, None)[1]
            if need:
                raise RemoteProtocolError(
                    "FCGI_GET_VALUES_RESULT ends in the middle of a name-value pair"
                )
            return ValuesResult(tuple(raw_pairs(pairs)))
        if rtype == FCGI_UNKNOWN_TYPE:
            if len(content) != UNKNOWN_TYPE_BODY.size:
                raise RemoteProtocolError(
                    f"FCGI_UNKNOWN_TYPE content is {len(content)} bytes, not 8"
                )
            return UnknownTypeResult(content[0])
        raise RemoteProtocolError(
            f"record type {TYPE_NAMES.get(rtype, rtype)} is not sent by applications",
            request_id=request_id or None,
        )
