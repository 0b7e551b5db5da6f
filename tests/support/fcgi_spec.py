"""FastCGI 1.0 written out from the specification, for tests only.

This module is the independent oracle the codec is checked against, so it
shares no code with ``wsgiwire.protocols._fastcgi`` and does not import it. It
is written in the plainest possible way: byte arithmetic taken straight from
the C structures in the specification (sections 3.3, 3.4, 5 and 8), no
``struct``, no cleverness, no speed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

VERSION_1 = 1

BEGIN_REQUEST = 1
ABORT_REQUEST = 2
END_REQUEST = 3
PARAMS = 4
STDIN = 5
STDOUT = 6
STDERR = 7
DATA = 8
GET_VALUES = 9
GET_VALUES_RESULT = 10
UNKNOWN_TYPE = 11

RESPONDER = 1
AUTHORIZER = 2
FILTER = 3

KEEP_CONN = 1

REQUEST_COMPLETE = 0
CANT_MPX_CONN = 1
OVERLOADED = 2
UNKNOWN_ROLE = 3

Pairs = Sequence[tuple[bytes, bytes]]


def two_bytes(n: int) -> bytes:
    """B1, B0 of a 16-bit number."""
    assert 0 <= n <= 0xFFFF
    return bytes([n // 256, n % 256])


def four_bytes(n: int) -> bytes:
    """B3, B2, B1, B0 of a 32-bit number."""
    assert 0 <= n <= 0xFFFFFFFF
    return bytes([(n >> 24) & 0xFF, (n >> 16) & 0xFF, (n >> 8) & 0xFF, n & 0xFF])


def record(
    rtype: int,
    request_id: int,
    content: bytes = b"",
    *,
    padding: int | None = None,
    version: int = VERSION_1,
    reserved: int = 0,
) -> bytes:
    """One FCGI_Record. By default padded so the record is a multiple of 8 bytes."""
    assert len(content) <= 65535
    if padding is None:
        padding = (8 - len(content) % 8) % 8
    header = (
        bytes([version, rtype])
        + two_bytes(request_id)
        + two_bytes(len(content))
        + bytes([padding, reserved])
    )
    return header + content + b"\x00" * padding


def begin_request(request_id: int, role: int = RESPONDER, flags: int = 0) -> bytes:
    """FCGI_BEGIN_REQUEST with FCGI_BeginRequestBody {roleB1, roleB0, flags, reserved[5]}."""
    return record(BEGIN_REQUEST, request_id, two_bytes(role) + bytes([flags]) + b"\x00" * 5)


def abort_request(request_id: int) -> bytes:
    return record(ABORT_REQUEST, request_id)


def end_request(request_id: int, app_status: int, protocol_status: int) -> bytes:
    """FCGI_END_REQUEST with FCGI_EndRequestBody {appStatusB3..B0, protocolStatus, reserved[3]}."""
    return record(
        END_REQUEST, request_id, four_bytes(app_status) + bytes([protocol_status]) + b"\x00" * 3
    )


def unknown_type(rtype: int) -> bytes:
    """FCGI_UNKNOWN_TYPE with FCGI_UnknownTypeBody {type, reserved[7]}."""
    return record(UNKNOWN_TYPE, 0, bytes([rtype]) + b"\x00" * 7)


def length(n: int) -> bytes:
    """A name-value length: one byte below 128, else four with the high bit set."""
    if n <= 127:
        return bytes([n])
    return four_bytes(n | 0x80000000)


def pair(name: bytes, value: bytes) -> bytes:
    return length(len(name)) + length(len(value)) + name + value


def pairs(items: Iterable[tuple[bytes, bytes]]) -> bytes:
    return b"".join(pair(name, value) for name, value in items)


def pieces(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    """``data`` cut at the given offsets (empty pieces dropped)."""
    points = sorted({c for c in cuts if 0 < c < len(data)})
    out = []
    start = 0
    for point in [*points, len(data)]:
        if point > start:
            out.append(data[start:point])
        start = point
    return out


def stream(
    rtype: int,
    request_id: int,
    data: bytes,
    *,
    chunk: int = 65535,
    cuts: Iterable[int] | None = None,
    end: bool = True,
) -> bytes:
    """A stream: non-empty records carrying ``data``, then (if ``end``) the empty record.

    The content is split every ``chunk`` bytes, or at the offsets in ``cuts``.
    """
    if cuts is None:
        cuts = range(chunk, len(data), chunk)
    out = b"".join(record(rtype, request_id, piece) for piece in pieces(data, cuts))
    if end:
        out += record(rtype, request_id)
    return out


def stream_records(rtype: int, request_id: int, data: bytes, cuts: Iterable[int]) -> list[bytes]:
    """A stream as a list of separate records: ``data`` cut at ``cuts``, then the empty one."""
    return [record(rtype, request_id, piece) for piece in pieces(data, cuts)] + [
        record(rtype, request_id)
    ]


def params(
    request_id: int, items: Pairs, *, chunk: int = 65535, cuts: Iterable[int] | None = None
) -> bytes:
    """The whole FCGI_PARAMS stream."""
    return stream(PARAMS, request_id, pairs(items), chunk=chunk, cuts=cuts)


def stdin(
    request_id: int, data: bytes = b"", *, chunk: int = 65535, cuts: Iterable[int] | None = None
) -> bytes:
    """The whole FCGI_STDIN stream."""
    return stream(STDIN, request_id, data, chunk=chunk, cuts=cuts)


def data_stream(
    request_id: int, data: bytes = b"", *, chunk: int = 65535, cuts: Iterable[int] | None = None
) -> bytes:
    """The whole FCGI_DATA stream."""
    return stream(DATA, request_id, data, chunk=chunk, cuts=cuts)


def get_values(names: Iterable[bytes]) -> bytes:
    return record(GET_VALUES, 0, pairs((name, b"") for name in names))


def request(
    request_id: int,
    items: Pairs,
    body: bytes = b"",
    *,
    role: int = RESPONDER,
    flags: int = 0,
) -> bytes:
    """A whole request as a web server sends it (spec appendix B, example 2)."""
    return (
        begin_request(request_id, role, flags) + params(request_id, items) + stdin(request_id, body)
    )


# --- Decoding ------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    version: int
    type: int
    request_id: int
    content: bytes
    padding: int
    reserved: int


class Truncated(ValueError):
    pass


def parse_records(data: bytes) -> list[Record]:
    """Every record in ``data``, which must hold whole records only."""
    out = []
    i = 0
    while i < len(data):
        if len(data) - i < 8:
            raise Truncated(f"{len(data) - i} bytes of a header")
        version = data[i]
        rtype = data[i + 1]
        request_id = data[i + 2] * 256 + data[i + 3]
        content_length = data[i + 4] * 256 + data[i + 5]
        padding = data[i + 6]
        reserved = data[i + 7]
        i += 8
        if len(data) - i < content_length + padding:
            raise Truncated("record content")
        content = data[i : i + content_length]
        i += content_length + padding
        out.append(Record(version, rtype, request_id, content, padding, reserved))
    return out


def read_length(data: bytes, i: int) -> tuple[int, int]:
    if data[i] >> 7 == 0:
        return data[i], i + 1
    b3, b2, b1, b0 = data[i], data[i + 1], data[i + 2], data[i + 3]
    return ((b3 & 0x7F) << 24) + (b2 << 16) + (b1 << 8) + b0, i + 4


def parse_pairs(data: bytes) -> list[tuple[bytes, bytes]]:
    """Name-value pairs; ``data`` must hold whole pairs only."""
    out = []
    i = 0
    while i < len(data):
        name_length, i = read_length(data, i)
        value_length, i = read_length(data, i)
        name = data[i : i + name_length]
        i += name_length
        value = data[i : i + value_length]
        i += value_length
        if len(name) != name_length or len(value) != value_length:
            raise Truncated("name-value pair")
        out.append((name, value))
    return out


def parse_end_request(content: bytes) -> tuple[int, int]:
    """``(appStatus, protocolStatus)`` of an FCGI_EndRequestBody."""
    assert len(content) == 8
    app_status = (content[0] << 24) + (content[1] << 16) + (content[2] << 8) + content[3]
    return app_status, content[4]


@dataclass
class Response:
    """What an application sent for one request, checked against the role protocol."""

    stdout: bytes = b""
    stderr: bytes = b""
    stdout_closed: bool = False
    stderr_closed: bool = False
    app_status: int | None = None
    protocol_status: int | None = None


def parse_responses(data: bytes) -> dict[int, Response]:
    """Group an application's output by request id, checking stream rules on the way.

    Checks: version 1, reserved 0, records 8-byte aligned, content at most
    65535 bytes, nothing after a stream's empty record or after END_REQUEST,
    only application-to-server types.
    """
    out: dict[int, Response] = {}
    for rec in parse_records(data):
        assert rec.version == VERSION_1
        assert rec.reserved == 0
        assert (8 + len(rec.content) + rec.padding) % 8 == 0, "record not 8-byte aligned"
        assert rec.padding < 8
        resp = out.setdefault(rec.request_id, Response())
        assert resp.protocol_status is None, "record after FCGI_END_REQUEST"
        if rec.type == STDOUT:
            assert not resp.stdout_closed, "FCGI_STDOUT after its end"
            resp.stdout += rec.content
            resp.stdout_closed = rec.content == b""
        elif rec.type == STDERR:
            assert not resp.stderr_closed, "FCGI_STDERR after its end"
            resp.stderr += rec.content
            resp.stderr_closed = rec.content == b""
        elif rec.type == END_REQUEST:
            resp.app_status, resp.protocol_status = parse_end_request(rec.content)
        else:
            raise AssertionError(f"unexpected record type {rec.type}")
    return out
