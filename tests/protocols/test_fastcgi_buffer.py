"""RecordReader (wsgiwire/protocols/_fastcgi/_wire.py): the receive buffer the FastCGI
codec cuts records from (it replaced protocols/_buffer.py, which only FastCGI used)."""

from __future__ import annotations

import struct
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsgiwire._errors import LocalProtocolError, RemoteProtocolError
from wsgiwire.protocols._fastcgi._wire import RecordReader

HEADER = struct.Struct(">BBHHBx")


def rec(rtype: int, rid: int, content: bytes, pad: int = 0) -> bytes:
    return HEADER.pack(1, rtype, rid, len(content), pad) + content + bytes(pad)


def test_basics() -> None:
    buf = RecordReader()
    assert len(buf) == 0
    assert not buf
    assert buf.next_record() is None
    wire = rec(5, 1, b"\x02\x03", pad=3)
    buf.feed(wire[:1])
    assert buf.next_record() is None
    buf.feed(bytearray(wire[1:9]))
    assert buf.next_record() is None  # content and padding not all there
    buf.feed(memoryview(wire[9:]))
    assert len(buf) == len(wire)
    assert buf
    assert bytes(buf) == wire
    record = buf.next_record()
    assert record == (5, 1, b"\x02\x03")
    assert type(record[2]) is bytes
    assert not buf and bytes(buf) == b""
    buf.feed(rec(4, 2, b""))
    assert buf.next_record() == (4, 2, b"")
    buf.feed(b"")
    assert buf.eof
    with pytest.raises(LocalProtocolError):
        buf.feed(b"late")


def test_a_version_other_than_1_is_refused_at_once() -> None:
    buf = RecordReader()
    buf.feed(b"\x02" + bytes(7))
    with pytest.raises(RemoteProtocolError, match="version 2"):
        buf.next_record()


records = st.lists(
    st.tuples(st.integers(1, 11), st.integers(0, 3), st.binary(max_size=40), st.integers(0, 7)),
    max_size=20,
)


@settings(max_examples=300, deadline=None)
@given(records, st.lists(st.integers(1, 60), max_size=40), st.lists(st.booleans(), max_size=60))
def test_matches_a_plain_bytes_model(
    recs: list[tuple[int, int, bytes, int]], cuts: list[int], reads: list[bool]
) -> None:
    """Fed in any pieces and read at any moments: the records that were sent, in order,
    and the unread bytes are exactly what a plain ``bytes`` model holds."""
    wire = b"".join(rec(t, r, c, p) for t, r, c, p in recs)
    expected = [(t, r, c) for t, r, c, _ in recs]
    buf = RecordReader()
    model = b""
    got: list[tuple[int, int, bytes]] = []
    pos = 0
    pieces = [*cuts, len(wire)]
    for i, size in enumerate(pieces):
        piece = wire[pos : pos + size]
        pos += len(piece)
        if piece:
            buf.feed(piece)
            model += piece
        reading = i >= len(reads) or reads[i] or i == len(pieces) - 1
        while reading:
            record = buf.next_record()
            if record is None:
                break
            got.append(record)
            model = model[8 + len(record[2]) + recs[len(got) - 1][3] :]
        assert bytes(buf) == model
        assert len(buf) == len(model)
    assert got == expected
    assert not buf


def drain_in_small_reads(total: int) -> float:
    """Feed ``total`` bytes of 8-byte records in 64 KiB pieces, reading half of them back.

    The backlog grows to ``total / 2``, as with a consumer slower than the network.
    """
    buf = RecordReader()
    piece = rec(5, 1, b"") * 8192
    t0 = time.perf_counter()
    for _ in range(total // len(piece)):
        buf.feed(piece)
        for _ in range(len(piece) // 16):
            buf.next_record()
    return time.perf_counter() - t0


def test_reading_is_linear() -> None:
    """Reading short records out of a long buffer is O(bytes read), not O(bytes buffered)."""
    small = min(drain_in_small_reads(1 << 20) for _ in range(3))
    large = min(drain_in_small_reads(8 << 20) for _ in range(2))
    assert large / small < 20, (small, large)


def test_feeding_during_a_long_backlog_is_linear() -> None:
    """Feeds while a long backlog is read compact in batches, never byte by byte."""

    def run(total: int) -> float:
        buf = RecordReader()
        buf.feed(rec(5, 1, b"") * (total // 8))
        t0 = time.perf_counter()
        reads = 0
        while buf.next_record() is not None:
            reads += 1
            if reads % 64 == 0:
                buf.feed(rec(5, 1, b""))
        return time.perf_counter() - t0

    small = min(run(256 << 10) for _ in range(3))
    large = min(run(2 << 20) for _ in range(2))
    assert large / small < 20, (small, large)
