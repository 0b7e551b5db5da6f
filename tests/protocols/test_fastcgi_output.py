"""FastCGIConnection, outbound: STDOUT/STDERR framing and END_REQUEST, checked by the
independent decoder in ``tests/support/fcgi_spec.py``."""

from __future__ import annotations

import array
import time
from collections.abc import Callable

import pytest

from tests.support import fcgi_spec as spec
from tests.support.sending import sent, wrong_event_error
from wsgiwire._errors import LocalProtocolError
from wsgiwire._events import (
    NEED_DATA,
    BodyData,
    ResponseData,
    ResponseEnd,
    ResponseErrorData,
)
from wsgiwire.protocols._fastcgi import MAX_RECORD_CONTENT, FastCGIConnection

P = [(b"SERVER_PORT", b"80")]


def started(*request_ids: int, keep_conn: bool = True) -> FastCGIConnection:
    """A connection with the given requests started (input complete)."""
    conn = FastCGIConnection()
    flags = spec.KEEP_CONN if keep_conn else 0
    for rid in request_ids:
        conn.receive_data(spec.request(rid, P, flags=flags))
    while conn.next_event() is not NEED_DATA:
        pass
    return conn


def payload(size: int) -> bytes:
    return bytes(i * 7 % 251 for i in range(size)) if size < 300_000 else b"z" * size


SIZES = [0, 1, 7, 8, 9, 65535, 65536, 65537, 131070, 131071, 200000]


@pytest.mark.parametrize("size", SIZES, ids=[f"{s}B" for s in SIZES])
@pytest.mark.parametrize(
    ("make", "rtype"),
    [(ResponseData, spec.STDOUT), (ResponseErrorData, spec.STDERR)],
    ids=["stdout", "stderr"],
)
def test_stream_framing(size: int, make: Callable[[int, bytes], object], rtype: int) -> None:
    conn = started(3)
    data = payload(size)
    wire = sent(conn, make(3, data))  # type: ignore[arg-type]
    records = spec.parse_records(wire)
    assert b"".join(r.content for r in records) == data
    assert len(records) == -(-size // 65535)  # no empty record: it would end the stream
    for r in records:
        assert (r.version, r.type, r.request_id, r.reserved) == (1, rtype, 3, 0)
        assert 0 < len(r.content) <= MAX_RECORD_CONTENT
        assert r.padding < 8
        assert (8 + len(r.content) + r.padding) % 8 == 0
    assert len(wire) % 8 == 0


@pytest.mark.parametrize("size", SIZES, ids=[f"{s}B" for s in SIZES])
def test_send_gives_the_records_without_copies(size: int) -> None:
    data = payload(size)
    joined = sent(started(1), ResponseData(1, data))
    chunks = started(1).send(ResponseData(1, data))
    assert b"".join(chunks) == joined
    if 0 < size <= MAX_RECORD_CONTENT:
        assert any(chunk is data for chunk in chunks)
    elif size:
        views = [c for c in chunks if isinstance(c, memoryview)]
        assert len(views) == -(-size // 65535)
        assert all(v.obj is data for v in views)


@pytest.mark.parametrize(
    "data",
    [
        bytearray(b"abc" * 30000),
        memoryview(b"abc" * 30000),
        memoryview(array.array("I", range(40000))),
        memoryview(b"abcdef" * 40000)[::2],
        memoryview(bytes(range(256)) * 4).cast("B", (32, 32)),
    ],
    ids=["bytearray", "memoryview", "memoryview-uint32", "memoryview-strided", "memoryview-2d"],
)
def test_bytes_like_payloads(data: bytes | bytearray | memoryview) -> None:
    wire = sent(started(1), ResponseData(1, data))
    expected = data.tobytes() if isinstance(data, memoryview) else bytes(data)
    assert b"".join(r.content for r in spec.parse_records(wire)) == expected


def test_empty_data_sends_nothing() -> None:
    conn = started(1)
    assert sent(conn, ResponseData(1, b"")) == b""
    assert conn.send(ResponseData(1, b"")) == []
    assert sent(conn, ResponseErrorData(1, b"")) == b""
    out = sent(conn, ResponseEnd(1))
    assert [(r.type, r.content) for r in spec.parse_records(out)] == [
        (spec.STDOUT, b""),
        (spec.END_REQUEST, bytes(8)),
    ]


def test_response_end_without_stderr() -> None:
    conn = started(1)
    out = sent(conn, ResponseData(1, b"Status: 200 OK\r\n\r\nhi")) + sent(conn, ResponseEnd(1))
    resp = spec.parse_responses(out)[1]
    assert resp.stdout == b"Status: 200 OK\r\n\r\nhi"
    assert resp.stdout_closed
    assert not resp.stderr_closed  # no FCGI_STDERR at all
    assert (resp.app_status, resp.protocol_status) == (0, spec.REQUEST_COMPLETE)
    assert out.endswith(spec.end_request(1, 0, spec.REQUEST_COMPLETE))


def test_response_with_stderr_example_3() -> None:
    """The specification's appendix B, example 3: interleaved streams, appStatus 938."""
    conn = started(1)
    out = (
        sent(conn, ResponseData(1, b"Content-type: text/html\r\n\r\n<ht"))
        + sent(conn, ResponseErrorData(1, b"config error: missing SI_UID\n"))
        + sent(conn, ResponseData(1, b"ml>\n<head> ... "))
        + sent(conn, ResponseEnd(1, 938))
    )
    records = spec.parse_records(out)
    assert [(r.type, r.content) for r in records[-3:]] == [
        (spec.STDOUT, b""),
        (spec.STDERR, b""),
        (spec.END_REQUEST, spec.four_bytes(938) + bytes(4)),
    ]
    resp = spec.parse_responses(out)[1]
    assert resp.stdout == b"Content-type: text/html\r\n\r\n<html>\n<head> ... "
    assert resp.stderr == b"config error: missing SI_UID\n"
    assert resp.stdout_closed and resp.stderr_closed
    assert resp.app_status == 938


@pytest.mark.parametrize(
    ("status", "wire_status"),
    [(0, 0), (1, 1), (0xFFFFFFFF, 0xFFFFFFFF), (-1, 0xFFFFFFFF), (-(2**31), 2**31)],
    ids=["0", "1", "max", "minus-1", "int-min"],
)
def test_app_status(status: int, wire_status: int) -> None:
    out = sent(started(1), ResponseEnd(1, status))
    assert spec.parse_responses(out)[1].app_status == wire_status


@pytest.mark.parametrize("status", [2**32, -(2**31) - 1], ids=["too-big", "too-small"])
def test_app_status_out_of_range(status: int) -> None:
    with pytest.raises(LocalProtocolError):
        sent(started(1), ResponseEnd(1, status))


def test_multiplexed_responses_out_of_order() -> None:
    """The specification's appendix B, example 4: request 2 finishes first."""
    conn = started(1, 2)
    out = (
        sent(conn, ResponseData(1, b"Content-type: text/html\r\n\r\n"))
        + sent(conn, ResponseData(2, b"Content-type: text/html\r\n\r\n<html>2"))
        + sent(conn, ResponseEnd(2))
        + sent(conn, ResponseData(1, b"<html>1"))
        + sent(conn, ResponseEnd(1))
    )
    got = spec.parse_responses(out)
    assert got[1].stdout == b"Content-type: text/html\r\n\r\n<html>1"
    assert got[2].stdout == b"Content-type: text/html\r\n\r\n<html>2"
    assert got[1].protocol_status == got[2].protocol_status == spec.REQUEST_COMPLETE
    assert conn.active_requests == 0
    assert not conn.should_close


@pytest.mark.parametrize(
    "event",
    [ResponseData(9, b"x"), ResponseErrorData(9, b"x"), ResponseEnd(9)],
    ids=["data", "error-data", "end"],
)
def test_send_for_unknown_request(event: ResponseData | ResponseErrorData | ResponseEnd) -> None:
    with pytest.raises(LocalProtocolError, match="not active"):
        sent(started(1), event)


def test_send_after_end() -> None:
    conn = started(1)
    sent(conn, ResponseEnd(1))
    with pytest.raises(LocalProtocolError, match="not active"):
        sent(conn, ResponseData(1, b"late"))
    with pytest.raises(LocalProtocolError):
        sent(conn, ResponseEnd(1))


def test_send_before_params_complete() -> None:
    conn = FastCGIConnection()
    conn.receive_data(spec.begin_request(1) + spec.stream(spec.PARAMS, 1, b"", end=False))
    assert conn.next_event() is NEED_DATA
    with pytest.raises(LocalProtocolError, match="not started"):
        sent(conn, ResponseData(1, b"too early"))


def test_send_wrong_event_type() -> None:
    with pytest.raises(wrong_event_error()):
        sent(started(1), BodyData(1, b"x"))  # type: ignore[arg-type]


# --- Linear time ---------------------------------------------------------------------


def best_time(fn: Callable[[], object], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def test_output_framing_is_linear() -> None:
    """8x the data must cost about 8x the time, not 64x (flup's ``data = data[n:]`` is quadratic).

    A ratio, not an absolute time, and generous enough for a loaded machine.
    ``send`` is the framing alone: no payload byte is copied.
    """
    small = b"s" * (8 << 20)
    large = b"L" * (64 << 20)
    conn = started(1, 2)
    t_small = best_time(lambda: conn.send(ResponseData(1, small)), repeat=5)
    t_large = best_time(lambda: conn.send(ResponseData(2, large)), repeat=5)
    assert t_large / max(t_small, 1e-9) < 20, (t_small, t_large)


def test_send_costs_one_copy() -> None:
    """``send`` then a join of the records: about the cost of copying the payload once.

    Compared with a plain copy of the same 64 MiB rather than with a smaller
    payload: below glibc's 32 MiB mmap threshold a freed block is reused warm,
    above it every allocation is faulted in afresh, which would skew a ratio
    of two sizes without saying anything about the codec.
    """
    large = b"L" * (64 << 20)
    conn = started(1)
    t_copy = best_time(lambda: bytearray(large))
    t_send = best_time(lambda: sent(conn, ResponseData(1, large)))
    assert t_send / max(t_copy, 1e-9) < 10, (t_copy, t_send)
