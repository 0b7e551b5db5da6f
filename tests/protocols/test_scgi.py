"""The SCGI codec against the specification, real servers' params, and fuzz.

Every table case is fed whole, one byte at a time, and split at
hypothesis-chosen points: the events (body chunks merged) and the error must
be the same. Requests are built by ``tests.support.scgi_spec``, an encoder
written from the specification that shares no code with the codec.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import in_pairs, text_pairs
from tests.support import scgi_spec as spec
from tests.support.sending import sent, wrong_event_error
from wsgiwire._errors import BadRequest, LimitExceeded, LocalProtocolError, RemoteProtocolError
from wsgiwire._events import (
    NEED_DATA,
    BodyData,
    BodyEnd,
    ConnectionClosed,
    Event,
    NeedData,
    RequestStarted,
    ResponseData,
    ResponseEnd,
    ResponseErrorData,
    Role,
)
from wsgiwire._limits import DEFAULT_LIMITS, Limits
from wsgiwire.protocols._scgi import SCGIConnection

DATA = Path(__file__).parent / "data"

# --- Driving the codec -------------------------------------------------------

Outcome = tuple[list[Event], "tuple[type[RemoteProtocolError], int] | None"]


def drain(conn: SCGIConnection, events: list[Event]) -> None:
    """Call next_event until NEED_DATA (or ConnectionClosed, which repeats)."""
    for _ in range(10_000):
        event = conn.next_event()
        if isinstance(event, NeedData):
            return
        events.append(event)
        if isinstance(event, ConnectionClosed):
            return
    raise AssertionError("next_event never asked for data: the codec spins")


def merge_body(events: Iterable[Event]) -> list[Event]:
    """Adjacent BodyData merged: how the body was chunked depends on the feeding."""
    out: list[Event] = []
    for event in events:
        if isinstance(event, BodyData):
            assert event.data, "empty BodyData emitted"
            last = out[-1] if out else None
            if isinstance(last, BodyData):
                out[-1] = BodyData(0, last.data + event.data)
                continue
        out.append(event)
    return out


def run(
    chunks: Iterable[bytes], *, limits: Limits = DEFAULT_LIMITS, eof: bool = True
) -> tuple[list[Event], RemoteProtocolError | None, SCGIConnection]:
    """Feed ``chunks`` as a front-end would (next_event after each), then EOF."""
    conn = SCGIConnection(limits)
    events: list[Event] = []
    try:
        for chunk in chunks:
            conn.receive_data(chunk)
            drain(conn, events)
        if eof:
            conn.receive_data(b"")
            drain(conn, events)
    except RemoteProtocolError as exc:
        return in_pairs(merge_body(events)), exc, conn
    return in_pairs(merge_body(events)), None, conn


def outcome(
    chunks: Iterable[bytes], *, limits: Limits = DEFAULT_LIMITS, eof: bool = True
) -> Outcome:
    events, error, _ = run(chunks, limits=limits, eof=eof)
    return events, (type(error), error.status_hint) if error is not None else None


def whole(data: bytes) -> list[bytes]:
    return [data] if data else []


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def split(data: bytes, points: Iterable[int]) -> list[bytes]:
    cuts = sorted({p % (len(data) + 1) for p in points} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(cuts) if b > a]


def declared(params: Sequence[tuple[bytes, bytes]]) -> int | None:
    """CONTENT_LENGTH as the test reads it (the last one; ``None`` if absent or empty)."""
    values = [value for name, value in params if name == b"CONTENT_LENGTH"]
    return int(values[-1]) if values and values[-1] else None


def started(params: Sequence[tuple[bytes, bytes]]) -> RequestStarted:
    # The codec hands over the CONTENT_LENGTH it framed the body by.
    return RequestStarted(0, text_pairs(params), False, Role.RESPONDER, False, declared(params))


def request_events(
    params: Sequence[tuple[bytes, bytes]], body: bytes = b"", *, closed: bool = True
) -> list[Event]:
    events: list[Event] = [started(params)]
    if body:
        events.append(BodyData(0, body))
    events.append(BodyEnd(0))
    if closed:
        events.append(ConnectionClosed())
    return events


# --- The table ------------------------------------------------------------------

BASE = [(b"REQUEST_METHOD", b"GET"), (b"PATH_INFO", b"/x")]
SMALL = Limits(max_params_bytes=100, max_name_length=100, max_value_length=100)


@dataclass
class Case:
    id: str
    data: bytes
    events: list[Event] = field(default_factory=list)
    error: tuple[type[RemoteProtocolError], int] | None = None
    limits: Limits = DEFAULT_LIMITS
    eof: bool = True


def ok(id: str, params: list[tuple[bytes, bytes]], body: bytes = b"", **kw: object) -> Case:
    declared = str(len(body)).encode()
    data = spec.request(params, body)
    return Case(id, data, request_events(spec.request_params(params, declared), body), **kw)  # type: ignore[arg-type]


def bad(id: str, data: bytes, error: type[RemoteProtocolError], status: int, **kw: object) -> Case:
    return Case(id, data, [], (error, status), **kw)  # type: ignore[arg-type]


def headers(*pairs: tuple[bytes, bytes], body: bytes = b"") -> bytes:
    return spec.raw(list(pairs), body)


CL0 = (b"CONTENT_LENGTH", b"0")
SCGI1 = (b"SCGI", b"1")
GET = (b"REQUEST_METHOD", b"GET")

CASES = [
    ok("get", BASE),
    ok("post", [(b"REQUEST_METHOD", b"POST")], b"hello world"),
    ok("binary-body", [(b"REQUEST_METHOD", b"PUT")], bytes(range(256)) * 3),
    ok("empty-value", [(b"SERVER_SIGNATURE", b""), GET]),
    ok("duplicates-kept-in-order", [(b"HTTP_COOKIE", b"a=1"), GET, (b"HTTP_COOKIE", b"b=2")]),
    ok("latin1-bytes", [(b"PATH_INFO", "/ä中".encode()), (b"X", b"\xff\x01")]),
    Case(
        "spec-example",
        b"70:CONTENT_LENGTH\x0027\x00SCGI\x001\x00REQUEST_METHOD\x00POST\x00"
        b"REQUEST_URI\x00/deepthought\x00,What is the answer to life?",
        request_events(
            [
                (b"CONTENT_LENGTH", b"27"),
                (b"SCGI", b"1"),
                (b"REQUEST_METHOD", b"POST"),
                (b"REQUEST_URI", b"/deepthought"),
            ],
            b"What is the answer to life?",
        ),
    ),
    Case(
        "scgi-not-second",
        headers(CL0, GET, SCGI1),
        request_events([CL0, GET, SCGI1]),
    ),
    Case(
        "bytes-after-body-discarded",
        headers((b"CONTENT_LENGTH", b"3"), SCGI1, body=b"abcNEXT REQUEST?"),
        request_events([(b"CONTENT_LENGTH", b"3"), SCGI1], b"abc"),
    ),
    Case(
        "bytes-after-empty-body-discarded",
        headers(CL0, SCGI1, body=b"0:,"),
        request_events([CL0, SCGI1]),
    ),
    Case(
        "no-eof-after-request",
        headers(CL0, SCGI1),
        request_events([CL0, SCGI1], closed=False),
        eof=False,
    ),
    Case(
        "exactly-max-params-bytes",
        # 100-byte block: CONTENT_LENGTH\0 0\0 SCGI\0 1\0 = 24, X\0 + 73 x "v" + \0 = 76
        headers(CL0, SCGI1, (b"X", b"v" * 73)),
        request_events([CL0, SCGI1, (b"X", b"v" * 73)]),
        limits=SMALL,
    ),
    Case("eof-before-any-byte", b"", [ConnectionClosed()]),
    Case("no-eof-no-byte", b"", [], eof=False),
    Case("partial-head-no-eof", b"24:CONTENT_LENGTH\x00", [], eof=False),
    # Netstring framing.
    bad("length-30-digits", b"1" * 30 + b":", LimitExceeded, 431),
    bad("length-over-limit", b"101:" + b"x" * 101 + b",", LimitExceeded, 431, limits=SMALL),
    bad("length-over-limit-digits", b"1000:", LimitExceeded, 431, limits=SMALL),
    bad("leading-zero", b"024:CONTENT_LENGTH\x000\x00SCGI\x001\x00,", RemoteProtocolError, 400),
    bad("double-zero", b"00:,", RemoteProtocolError, 400),
    bad("zero-length-block", b"0:,", RemoteProtocolError, 400),
    bad("no-digits", b":,", RemoteProtocolError, 400),
    bad("sign", b"+24:", RemoteProtocolError, 400),
    bad("negative", b"-1:", RemoteProtocolError, 400),
    bad("space", b" 24:", RemoteProtocolError, 400),
    bad("digit-then-letter", b"2x:", RemoteProtocolError, 400),
    bad("http-request", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", RemoteProtocolError, 400),
    bad("missing-comma", b"24:CONTENT_LENGTH\x000\x00SCGI\x001\x00;", RemoteProtocolError, 400),
    bad("missing-comma-eof", b"24:CONTENT_LENGTH\x000\x00SCGI\x001\x00", RemoteProtocolError, 400),
    bad("eof-in-length", b"24", RemoteProtocolError, 400),
    bad("eof-in-block", b"24:CONTENT_LEN", RemoteProtocolError, 400),
    # Header block structure.
    bad("block-without-final-nul", b"6:SCGI\x001,", RemoteProtocolError, 400),
    bad(
        "odd-strings", spec.netstring(b"CONTENT_LENGTH\x000\x00SCGI\x00"), RemoteProtocolError, 400
    ),
    bad("empty-name", headers(CL0, SCGI1, (b"", b"x")), RemoteProtocolError, 400),
    # CONTENT_LENGTH rules.
    bad("content-length-missing", headers(SCGI1, GET), RemoteProtocolError, 400),
    bad("content-length-not-first", headers(SCGI1, CL0), RemoteProtocolError, 400),
    bad("content-length-duplicated", headers(CL0, SCGI1, CL0), RemoteProtocolError, 400),
    bad(
        "content-length-duplicated-different",
        headers((b"CONTENT_LENGTH", b"3"), SCGI1, CL0, body=b"abc"),
        RemoteProtocolError,
        400,
    ),
    bad("content-length-negative", headers((b"CONTENT_LENGTH", b"-1"), SCGI1), BadRequest, 400),
    bad(
        "content-length-plus-underscore",
        headers((b"CONTENT_LENGTH", b"+1_0"), SCGI1),
        BadRequest,
        400,
    ),
    bad(
        "content-length-non-ascii-digits",
        headers((b"CONTENT_LENGTH", "\u0661\u0662".encode()), SCGI1),  # Arabic-Indic 12
        BadRequest,
        400,
    ),
    bad(
        "content-length-fullwidth-digits",
        headers((b"CONTENT_LENGTH", "\uff11".encode()), SCGI1, body=b"x"),  # fullwidth 1
        BadRequest,
        400,
    ),
    bad("content-length-space", headers((b"CONTENT_LENGTH", b" 1"), SCGI1), BadRequest, 400),
    bad("content-length-empty", headers((b"CONTENT_LENGTH", b""), SCGI1), RemoteProtocolError, 400),
    bad(
        "content-length-over-max-body",
        headers((b"CONTENT_LENGTH", b"101"), SCGI1),
        LimitExceeded,
        413,
        limits=Limits(max_body_size=100),
    ),
    Case(
        "body-shorter-than-declared",
        headers((b"CONTENT_LENGTH", b"10"), SCGI1, body=b"short"),
        [started([(b"CONTENT_LENGTH", b"10"), SCGI1]), BodyData(0, b"short")],
        (RemoteProtocolError, 400),
    ),
    Case(
        "eof-before-body",
        headers((b"CONTENT_LENGTH", b"1"), SCGI1),
        [started([(b"CONTENT_LENGTH", b"1"), SCGI1])],
        (RemoteProtocolError, 400),
    ),
    # SCGI=1.
    bad("scgi-missing", headers(CL0, GET), RemoteProtocolError, 400),
    bad("scgi-2", headers(CL0, (b"SCGI", b"2")), RemoteProtocolError, 400),
    bad("scgi-empty", headers(CL0, (b"SCGI", b"")), RemoteProtocolError, 400),
    bad("scgi-duplicated", headers(CL0, SCGI1, SCGI1), RemoteProtocolError, 400),
    bad("scgi-lowercase-name", headers(CL0, (b"scgi", b"1")), RemoteProtocolError, 400),
    # Limits on pairs.
    bad(
        "too-many-params",
        headers(CL0, SCGI1, GET, (b"A", b"1")),
        LimitExceeded,
        431,
        limits=Limits(max_param_count=3),
    ),
    bad(
        "name-too-long",
        headers(CL0, SCGI1, (b"N" * 21, b"")),
        LimitExceeded,
        431,
        limits=Limits(max_name_length=20),
    ),
    bad(
        "value-too-long",
        headers(CL0, SCGI1, (b"V", b"v" * 21)),
        LimitExceeded,
        431,
        limits=Limits(max_value_length=20),
    ),
]

CASE_IDS = [case.id for case in CASES]
assert len(set(CASE_IDS)) == len(CASE_IDS)


def expected(case: Case) -> Outcome:
    return case.events, case.error


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_case_whole(case: Case) -> None:
    assert outcome(whole(case.data), limits=case.limits, eof=case.eof) == expected(case)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_case_bytewise(case: Case) -> None:
    assert outcome(bytewise(case.data), limits=case.limits, eof=case.eof) == expected(case)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@settings(max_examples=30, deadline=None)
@given(points=st.lists(st.integers(0, 1 << 17), max_size=12))
def test_case_split_anywhere(case: Case, points: list[int]) -> None:
    chunks = split(case.data, points)
    assert outcome(chunks, limits=case.limits, eof=case.eof) == expected(case)


# --- Errors raised as early as possible -------------------------------------------


def first_error(data: bytes, limits: Limits = DEFAULT_LIMITS) -> tuple[int, RemoteProtocolError]:
    """Feed byte by byte without EOF: how many bytes it took to raise, and the error."""
    conn = SCGIConnection(limits)
    for count in range(1, len(data) + 1):
        conn.receive_data(data[count - 1 : count])
        try:
            assert conn.next_event() is NEED_DATA
        except RemoteProtocolError as exc:
            return count, exc
    raise AssertionError("no error")


def test_length_digits_bounded_before_colon() -> None:
    # The default limit 65536 has 5 digits: the sixth digit is enough to refuse.
    count, error = first_error(b"1" * 30 + b":")
    assert count == 6
    assert isinstance(error, LimitExceeded)
    assert error.limit == "max_params_bytes"
    assert error.value == 111111 and error.maximum == 65536
    assert error.status_hint == 431 and error.request_id == 0


def test_length_over_limit_refused_at_colon() -> None:
    count, error = first_error(b"65537:" + b"x" * 100)
    assert count == 6
    assert isinstance(error, LimitExceeded) and error.value == 65537


def test_exactly_max_params_bytes_default() -> None:
    filler = 65536 - 24 - 2 - 1  # CONTENT_LENGTH/0/SCGI/1 headers, then "X\0" + value + "\0"
    data = headers(CL0, SCGI1, (b"X", b"v" * filler))
    assert data.startswith(b"65536:")
    limits = Limits(max_value_length=65536)
    events, error, _ = run([data], limits=limits)
    assert error is None
    assert events == request_events([CL0, SCGI1, (b"X", b"v" * filler)])
    over = headers(CL0, SCGI1, (b"X", b"v" * (filler + 1)))
    assert outcome([over], limits=limits) == ([], (LimitExceeded, 431))


def test_leading_zero_refused_at_second_digit() -> None:
    count, error = first_error(b"0123:")
    assert count == 2 and error.status_hint == 400 and "leading zero" in error.msg


def test_non_digit_refused_at_once() -> None:
    count, error = first_error(b"GET / HTTP/1.0\r\n")
    assert count == 1 and "digits" in error.msg


def test_body_over_limit_refused_before_body() -> None:
    head = headers((b"CONTENT_LENGTH", b"1073741825"), SCGI1)  # 1 GiB + 1
    count, error = first_error(head)
    assert count == len(head)
    assert isinstance(error, LimitExceeded) and error.limit == "max_body_size"
    assert error.status_hint == 413 and error.request_id == 0


def test_one_gib_body_is_accepted() -> None:
    conn = SCGIConnection()
    conn.receive_data(headers((b"CONTENT_LENGTH", b"1073741824"), SCGI1))
    assert isinstance(conn.next_event(), RequestStarted)
    assert conn.next_event() is NEED_DATA


def test_error_messages_name_the_fault() -> None:
    cases = {
        b"24:CONTENT_LENGTH\x000\x00SCGI\x001\x00;": "not followed by ','",
        headers(SCGI1, CL0): "must be the first header",
        headers(SCGI1, GET): "no CONTENT_LENGTH",
        headers(CL0, SCGI1, CL0): "repeated",
        headers(CL0, GET): "no 'SCGI' header",
        headers((b"CONTENT_LENGTH", b"+1_0"), SCGI1): "malformed CONTENT_LENGTH",
        b"6:SCGI\x001,": "does not end with NUL",
        b"0:,": "CONTENT_LENGTH is required",
    }
    for data, words in cases.items():
        _, error, _ = run([data])
        assert error is not None and words in error.msg, (data, error)
        assert error.request_id == 0


# --- The ERROR state and the reply after an error -----------------------------------


def test_error_state_is_sticky_and_reply_can_be_sent() -> None:
    conn = SCGIConnection(Limits(max_body_size=10))
    conn.receive_data(headers((b"CONTENT_LENGTH", b"11"), SCGI1, body=b"x" * 11))
    with pytest.raises(LimitExceeded) as first:
        conn.next_event()
    assert first.value.status_hint == 413
    for _ in range(3):
        with pytest.raises(RemoteProtocolError) as again:
            conn.next_event()
        assert again.value.status_hint == 413 and again.value.request_id == 0
        assert "ERROR state" in again.value.msg
    assert conn.should_close
    conn.receive_data(b"ignored after the error")
    reply = b"Status: 413 Content Too Large\r\n\r\n"
    assert sent(conn, ResponseData(0, reply)) == reply
    assert sent(conn, ResponseEnd(0)) == b""
    conn.receive_data(b"")
    conn.receive_data(b"still ignored")


def test_error_reply_in_error_state_before_any_request() -> None:
    conn = SCGIConnection()
    conn.receive_data(b"x")
    with pytest.raises(RemoteProtocolError):
        conn.next_event()
    assert conn.send(ResponseData(0, b"Status: 400\r\n\r\n")) == [b"Status: 400\r\n\r\n"]


# --- Output ------------------------------------------------------------------------


def started_conn() -> SCGIConnection:
    conn = SCGIConnection()
    conn.receive_data(headers(CL0, SCGI1))
    assert isinstance(conn.next_event(), RequestStarted)
    return conn


def test_send_passes_bytes_through() -> None:
    conn = started_conn()
    data = b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nhello"
    assert sent(conn, ResponseData(0, data)) is data
    assert conn.send(ResponseData(0, data)) == [data]
    assert conn.send(ResponseData(0, data))[0] is data
    assert sent(conn, ResponseData(0, b"")) == b""
    assert conn.send(ResponseData(0, b"")) == []
    assert conn.data_to_send() == b""
    assert not conn.should_close


def test_send_does_not_copy() -> None:
    conn = started_conn()
    array = bytearray(b"abc")
    (chunk,) = conn.send(ResponseData(0, array))
    assert isinstance(chunk, memoryview)
    array[0] = ord("X")
    assert bytes(chunk) == b"Xbc"
    wide = memoryview(bytearray(8)).cast("I")
    (flat,) = conn.send(ResponseData(0, wide))
    assert isinstance(flat, memoryview) and flat.nbytes == 8 and flat.itemsize == 1
    strided = memoryview(b"abcdef")[::2]
    assert conn.send(ResponseData(0, strided)) == [b"ace"]
    assert sent(conn, ResponseData(0, bytearray(b"xyz"))) == b"xyz"
    assert sent(conn, ResponseData(0, memoryview(b""))) == b""


def test_stderr_is_dropped() -> None:
    conn = started_conn()
    assert sent(conn, ResponseErrorData(0, b"traceback")) == b""
    assert conn.send(ResponseErrorData(0, b"traceback")) == []


def test_response_end_closes() -> None:
    conn = started_conn()
    assert sent(conn, ResponseEnd(0)) == b""
    assert conn.should_close
    with pytest.raises(LocalProtocolError):
        sent(conn, ResponseData(0, b"late"))
    with pytest.raises(LocalProtocolError):
        sent(conn, ResponseEnd(0))


def test_send_checks_request() -> None:
    conn = SCGIConnection()
    with pytest.raises(LocalProtocolError):
        sent(conn, ResponseData(0, b"too early"))
    conn = started_conn()
    with pytest.raises(LocalProtocolError):
        sent(conn, ResponseData(1, b"wrong id"))
    with pytest.raises(wrong_event_error()):
        sent(conn, BodyEnd(0))  # type: ignore[arg-type]


def test_response_may_start_before_body_is_read() -> None:
    conn = SCGIConnection()
    conn.receive_data(headers((b"CONTENT_LENGTH", b"10"), SCGI1))
    assert isinstance(conn.next_event(), RequestStarted)
    assert sent(conn, ResponseData(0, b"Status: 413\r\n\r\n")) == b"Status: 413\r\n\r\n"
    assert sent(conn, ResponseEnd(0)) == b""
    assert conn.should_close


# --- Connection life ------------------------------------------------------------


def test_one_request_per_connection_then_need_data() -> None:
    conn = SCGIConnection()
    conn.receive_data(headers(CL0, SCGI1))
    assert isinstance(conn.next_event(), RequestStarted)
    assert conn.next_event() == BodyEnd(0)
    for _ in range(3):
        assert conn.next_event() is NEED_DATA
    assert not conn.should_close
    conn.receive_data(headers(CL0, SCGI1))  # a second request is never parsed
    assert conn.next_event() is NEED_DATA
    assert conn.discarded_bytes == len(headers(CL0, SCGI1))
    conn.receive_data(b"")
    assert conn.should_close
    assert conn.next_event() == ConnectionClosed()
    assert conn.next_event() == ConnectionClosed()


def test_trailing_bytes_are_not_buffered() -> None:
    conn = SCGIConnection()
    conn.receive_data(headers((b"CONTENT_LENGTH", b"2"), SCGI1, body=b"ab"))
    events: list[Event] = []
    drain(conn, events)
    for _ in range(100):
        conn.receive_data(b"z" * 65536)
        assert conn.next_event() is NEED_DATA
    assert conn.discarded_bytes == 100 * 65536
    assert len(conn._head) == 0


def test_a_trickling_head_grows_in_place() -> None:
    """A head sent in pieces is appended to one bytearray: never copied whole per piece
    (a 64 KiB head sent byte by byte would otherwise cost gigabytes of copying)."""
    conn = SCGIConnection()
    data = headers((b"CONTENT_LENGTH", b"0"), SCGI1, (b"X", b"y" * 5000))
    conn.receive_data(data[:1])
    conn.receive_data(data[1:2])
    held = conn._head
    assert isinstance(held, bytearray)
    for i in range(2, len(data) - 1):
        conn.receive_data(data[i : i + 1])
        assert conn._head is held
    assert conn.next_event() is NEED_DATA
    conn.receive_data(data[-1:])
    assert isinstance(conn.next_event(), RequestStarted)
    assert conn._head == b""


def test_body_streams_as_it_arrives() -> None:
    conn = SCGIConnection()
    conn.receive_data(headers((b"CONTENT_LENGTH", b"6"), SCGI1, body=b"ab"))
    assert isinstance(conn.next_event(), RequestStarted)
    assert conn.next_event() == BodyData(0, b"ab")
    assert conn.next_event() is NEED_DATA
    chunk = bytearray(b"cd")
    conn.receive_data(chunk)
    chunk[:] = b"XX"  # the codec kept a copy
    assert conn.next_event() == BodyData(0, b"cd")
    conn.receive_data(memoryview(b"efgh"))
    assert conn.next_event() == BodyData(0, b"ef")
    assert conn.next_event() == BodyEnd(0)
    assert conn.discarded_bytes == 2


def test_data_after_eof_is_a_local_error() -> None:
    conn = SCGIConnection()
    conn.receive_data(b"")
    with pytest.raises(LocalProtocolError):
        conn.receive_data(b"x")
    assert conn.next_event() == ConnectionClosed()
    assert conn.should_close


def test_eof_mid_body_reports_progress() -> None:
    _, error, conn = run([headers((b"CONTENT_LENGTH", b"10"), SCGI1, body=b"abc")])
    assert error is not None and "3 of 10 body bytes" in error.msg
    assert conn.should_close


# --- Round trips against the independent encoder -------------------------------------

names = st.binary(min_size=1, max_size=40).filter(
    lambda n: b"\0" not in n and n not in (b"CONTENT_LENGTH", b"SCGI")
)
values = st.binary(max_size=60).filter(lambda v: b"\0" not in v)
pairs = st.lists(st.tuples(names, values), max_size=30)


@given(params=pairs, body=st.binary(max_size=2000), points=st.lists(st.integers(0, 1 << 16)))
def test_round_trip(params: list[tuple[bytes, bytes]], body: bytes, points: list[int]) -> None:
    data = spec.request(params, body)
    declared = str(len(body)).encode()
    expected_events = request_events(spec.request_params(params, declared), body)
    assert outcome(split(data, points)) == (expected_events, None)


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None, max_examples=30)
@given(params=pairs, body=st.binary(max_size=300))
def test_round_trip_bytewise(params: list[tuple[bytes, bytes]], body: bytes) -> None:
    data = spec.request(params, body)
    declared = str(len(body)).encode()
    assert outcome(bytewise(data)) == (
        request_events(spec.request_params(params, declared), body),
        None,
    )


# --- Fuzz: any bytes give events or RemoteProtocolError --------------------------------

FUZZ_LIMITS = [DEFAULT_LIMITS, SMALL, Limits(max_param_count=2, max_body_size=5)]


def fuzz(data: bytes, limits: Limits) -> None:
    for chunks in (whole(data), bytewise(data)):
        events, error, conn = run(chunks, limits=limits)  # only RemoteProtocolError is caught
        assert conn.should_close
        if error is None:
            assert events and isinstance(events[-1], ConnectionClosed)
        else:
            assert error.request_id == 0


@given(data=st.binary(max_size=300), which=st.integers(0, len(FUZZ_LIMITS) - 1))
def test_fuzz_any_bytes(data: bytes, which: int) -> None:
    fuzz(data, FUZZ_LIMITS[which])


@given(
    params=pairs,
    body=st.binary(max_size=50),
    tail=st.binary(max_size=100),
    cut=st.integers(0, 1 << 16),
    which=st.integers(0, len(FUZZ_LIMITS) - 1),
)
def test_fuzz_after_valid_prefix(
    params: list[tuple[bytes, bytes]], body: bytes, tail: bytes, cut: int, which: int
) -> None:
    data = spec.request(params, body)
    fuzz(data[: cut % (len(data) + 1)] + tail, FUZZ_LIMITS[which])


@given(data=st.from_regex(rb"\A[0-9]{1,8}:[\x00-\xff]{0,40},?[\x00-\xff]{0,10}\Z"))
def test_fuzz_netstring_shaped(data: bytes) -> None:
    fuzz(data, DEFAULT_LIMITS)
    fuzz(data, SMALL)


# --- What real web servers sent -------------------------------------------------------


def load_captures() -> list[dict[str, object]]:
    with (DATA / "scgi_captures.json").open() as fh:
        cases: list[dict[str, object]] = json.load(fh)["cases"]
    return cases


CAPTURES = load_captures()


def latin1_pairs(raw: object) -> list[tuple[bytes, bytes]]:
    assert isinstance(raw, list)
    return [(n.encode("latin-1"), v.encode("latin-1")) for n, v in raw]


@pytest.mark.parametrize("repeat", [False, True], ids=["plain", "repeated-name"])
def test_params_come_as_a_dict_unless_a_name_repeats(repeat: bool) -> None:
    """An ordinary request's headers come as a dict, in the order sent (the core
    takes it over as the environ); a repeated name keeps the pairs, duplicates and
    all, for the core to judge."""
    plain = [(b"REQUEST_METHOD", b"GET"), (b"HTTP_A", b"1"), (b"PATH_INFO", b"/x")]
    params = [*plain, (b"HTTP_A", b"2")] if repeat else plain
    conn = SCGIConnection()
    conn.receive_data(spec.request(params))
    event = conn.next_event()
    assert isinstance(event, RequestStarted)
    sent_params = text_pairs(spec.request_params(params, b"0"))
    if repeat:
        assert event.params == sent_params
    else:
        assert type(event.params) is dict
        assert list(event.params.items()) == sent_params


@pytest.mark.parametrize(
    "capture", CAPTURES, ids=[f"{c['capture']}.{c['request']}" for c in CAPTURES]
)
def test_captured_params(capture: dict[str, object]) -> None:
    params = latin1_pairs(capture["params"])
    body_len = capture["body_len"]
    assert isinstance(body_len, int)
    body = bytes(i * 7 % 251 for i in range(body_len))
    head = spec.encode_headers(params)
    declared = int(dict(params)[b"CONTENT_LENGTH"])
    # The head a byte at a time, the body in 64 KiB pieces, as a socket would.
    chunks = bytewise(head) + [body[i : i + 65536] for i in range(0, len(body), 65536)]
    for feed in (chunks, [head + body]):
        events, error, conn = run(feed)
        assert error is None
        assert events == request_events(params, body[:declared])
        assert conn.discarded_bytes == body_len - declared


def test_nginx_unbuffered_declares_zero_then_streams() -> None:
    # scgi_request_buffering off: CONTENT_LENGTH 0, then the 1 MiB body anyway.
    (capture,) = [
        c for c in CAPTURES if c["capture"] == "nginx-scgi-nobuf" and c["request"] == "post_1mib"
    ]
    params = latin1_pairs(capture["params"])
    assert params[0] == (b"CONTENT_LENGTH", b"0")
    events, error, conn = run([spec.encode_headers(params), b"\x01" * 1048576])
    assert error is None
    assert events == request_events(params)
    assert conn.discarded_bytes == 1048576
