"""ReceiveBuffer (wsgiwire/protocols/_buffer.py), the buffer the FastCGI codec parses from."""

from __future__ import annotations

import struct
import time
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from wsgiwire.protocols._buffer import ReceiveBuffer

U16 = struct.Struct(">H")


def test_basics() -> None:
    buf = ReceiveBuffer()
    assert len(buf) == 0
    assert not buf
    assert buf.unpack(U16) is None
    buf.append(b"\x01")
    assert buf.unpack(U16) is None
    buf.append(bytearray(b"\x02\x03"))
    buf.append(memoryview(b"\x04\x05"))
    assert len(buf) == 5
    assert buf
    assert bytes(buf) == b"\x01\x02\x03\x04\x05"
    assert buf.unpack(U16) == (0x0102,)
    assert buf.unpack(U16, 3) == (0x0405,)
    assert buf.unpack(U16, 4) is None
    piece = buf.read_slice(1, 3, 3)
    assert piece == b"\x02\x03"
    assert type(piece) is bytes
    assert bytes(buf) == b"\x04\x05"
    assert buf.read_slice(0, 0, 1) == b""
    data, begin, end = buf.window()
    assert data[begin:end] == b"\x05"
    buf.skip(1)
    assert not buf
    assert buf.window()[1:] == (0, 0)


ops = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.binary(min_size=1, max_size=50)),
        st.tuples(st.just("read"), st.integers(0, 60), st.integers(0, 60)),
        st.tuples(st.just("skip"), st.integers(0, 60)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_matches_a_plain_bytes_model(operations: list[tuple[Any, ...]]) -> None:
    buf = ReceiveBuffer()
    model = b""
    for op in operations:
        if op[0] == "append":
            data = op[1]
            assert isinstance(data, bytes)
            buf.append(data)
            model += data
        elif op[0] == "read":
            a, b = sorted((int(op[1]) % (len(model) + 1), int(op[2]) % (len(model) + 1)))
            consume = max(b, len(model) // 2)
            assert buf.read_slice(a, b, consume) == model[a:b]
            model = model[consume:]
        else:
            count = int(op[1]) % (len(model) + 1)
            buf.skip(count)
            model = model[count:]
        assert bytes(buf) == model
        assert len(buf) == len(model)
        data, begin, end = buf.window()
        assert data[begin:end] == model


def drain_in_small_reads(total: int) -> float:
    """Append ``total`` bytes in 64 KiB pieces, reading half back 8 bytes at a time.

    The backlog grows to ``total / 2``, as with a consumer slower than the network.
    """
    buf = ReceiveBuffer()
    piece = b"x" * 65536
    t0 = time.perf_counter()
    for _ in range(total // len(piece)):
        buf.append(piece)
        for _ in range(len(piece) // 16):
            buf.read_slice(0, 8, 8)
    return time.perf_counter() - t0


def test_reading_is_linear() -> None:
    """Reading short pieces out of a long buffer is O(bytes read), not O(bytes buffered)."""
    small = min(drain_in_small_reads(1 << 20) for _ in range(3))
    large = min(drain_in_small_reads(8 << 20) for _ in range(2))
    assert large / small < 20, (small, large)


def test_appends_during_a_long_backlog_are_linear() -> None:
    """Appends while a long backlog is read compact in batches, never byte by byte."""

    def run(total: int) -> float:
        buf = ReceiveBuffer()
        buf.append(b"y" * total)
        t0 = time.perf_counter()
        reads = 0
        while len(buf) >= 8:
            buf.read_slice(0, 8, 8)
            reads += 1
            if reads % 64 == 0:
                buf.append(b"z")
        return time.perf_counter() - t0

    small = min(run(256 << 10) for _ in range(3))
    large = min(run(2 << 20) for _ in range(2))
    assert large / small < 20, (small, large)
