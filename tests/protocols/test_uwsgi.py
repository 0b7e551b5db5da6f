"""The uwsgi codec against the documentation, real servers' params, and fuzz.

Every table case is fed whole, one byte at a time, and split at
hypothesis-chosen points: the events (body chunks merged) and the error must
be the same. Packets are built by ``tests.support.uwsgi_spec``, an encoder
written from the documentation that shares no code with the codec.
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
from tests.support import uwsgi_spec as spec
from tests.support.sending import sent
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
from wsgiwire.protocols._uwsgi import UWSGIConnection

DATA = Path(__file__).parent / "data"

Pairs = Sequence[tuple[bytes, bytes]]
Outcome = tuple[list[Event], "tuple[type[RemoteProtocolError], int] | None"]

# --- Driving the codec -------------------------------------------------------


def drain(conn: UWSGIConnection, events: list[Event]) -> None:
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
    chunks: Iterable[bytes],
    *,
    limits: Limits = DEFAULT_LIMITS,
    eof: bool = True,
    trust: bool = False,
) -> tuple[list[Event], RemoteProtocolError | None, UWSGIConnection]:
    """Feed ``chunks`` as a front-end would (next_event after each), then EOF."""
    conn = UWSGIConnection(limits, trust_uwsgi_scheme=trust)
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


def outcome(chunks: Iterable[bytes], **kw: object) -> Outcome:
    events, error, _ = run(chunks, **kw)  # type: ignore[arg-type]
    return events, (type(error), error.status_hint) if error is not None else None


def whole(data: bytes) -> list[bytes]:
    return [data] if data else []


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def split(data: bytes, points: Iterable[int]) -> list[bytes]:
    cuts = sorted({p % (len(data) + 1) for p in points} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(cuts) if b > a]


def declared(params: Pairs) -> int | None:
    """CONTENT_LENGTH as the test reads it (the last one; ``None`` if absent or empty)."""
    values = [value for name, value in params if name == b"CONTENT_LENGTH"]
    return int(values[-1]) if values and values[-1] else None


def started(params: Pairs, strip: bool = False) -> RequestStarted:
    # The codec hands over the CONTENT_LENGTH it framed the body by.
    return RequestStarted(0, text_pairs(params), False, Role.RESPONDER, strip, declared(params))


def request_events(
    params: Pairs, body: bytes = b"", *, strip: bool = False, closed: bool = True
) -> list[Event]:
    events: list[Event] = [started(params, strip)]
    if body:
        events.append(BodyData(0, body))
    events.append(BodyEnd(0))
    if closed:
        events.append(ConnectionClosed())
    return events


# --- The table ------------------------------------------------------------------

GET = (b"REQUEST_METHOD", b"GET")
POST = (b"REQUEST_METHOD", b"POST")
NO_CL = (b"CONTENT_LENGTH", b"")
CL0 = (b"CONTENT_LENGTH", b"0")


def cl(n: int | bytes) -> tuple[bytes, bytes]:
    return (b"CONTENT_LENGTH", n if isinstance(n, bytes) else str(n).encode())


@dataclass
class Case:
    id: str
    data: bytes
    events: list[Event] = field(default_factory=list)
    error: tuple[type[RemoteProtocolError], int] | None = None
    limits: Limits = DEFAULT_LIMITS
    eof: bool = True
    trust: bool = False


def ok(
    id: str,
    params: list[tuple[bytes, bytes]],
    body: bytes = b"",
    *,
    modifier1: int = spec.WSGI,
    seen: Pairs | None = None,
    after: bytes = b"",
    **kw: object,
) -> Case:
    """A valid request; ``seen`` is what the codec must report (default: ``params``)."""
    data = spec.request(params, body + after, modifier1=modifier1)
    events = request_events(
        params if seen is None else seen,
        body,
        strip=modifier1 == 30,
        closed=kw.get("eof", True) is not False,
    )
    return Case(id, data, events, **kw)  # type: ignore[arg-type]


def bad(id: str, data: bytes, error: type[RemoteProtocolError], status: int, **kw: object) -> Case:
    return Case(id, data, [], (error, status), **kw)  # type: ignore[arg-type]


MAGIC = [
    (b"UWSGI_SCRIPT", b"os:system"),
    (b"UWSGI_MODULE", b"evil"),
    (b"UWSGI_CALLABLE", b"app"),
    (b"UWSGI_CHDIR", b"/tmp"),
    (b"UWSGI_FILE", b"/tmp/x.py"),
    (b"UWSGI_PYHOME", b"/tmp/venv"),
    (b"UWSGI_SETENV", b"PYTHONPATH=/tmp"),
    (b"UWSGI_APPID", b"other"),
    (b"UWSGI_TOUCH_RELOAD", b"/tmp/reload"),
    (b"UWSGI_POSTFILE", b"/etc/passwd"),
    (b"UWSGI_CACHE_GET", b"key"),
    (b"UWSGI_ANYTHING_ELSE", b"x"),
]
SMALL = Limits(max_params_bytes=1000, max_name_length=1000, max_value_length=1000)
MAX_VALUE = 65535 - 4 - 1  # one variable with a 1-byte key fills a 65535-byte block

CASES = [
    # nginx sends CONTENT_LENGTH "" for a GET; Apache sends none at all.
    ok("get-empty-content-length", [GET, NO_CL, (b"PATH_INFO", b"/x")]),
    ok("get-no-content-length", [GET, (b"PATH_INFO", b"/x")]),
    ok("post", [POST, cl(11)], b"hello world"),
    ok("post-content-length-zero", [POST, CL0]),
    ok("binary-body", [POST, cl(768)], bytes(range(256)) * 3),
    ok("empty-value", [GET, (b"SERVER_SIGNATURE", b"")]),
    ok("empty-value-at-end", [GET, (b"QUERY_STRING", b"")]),
    ok("duplicates-kept", [(b"HTTP_COOKIE", b"a=1"), GET, (b"HTTP_COOKIE", b"b=2")]),
    ok("content-length-repeated-identical", [POST, cl(3), cl(3)], b"abc"),
    ok("arbitrary-bytes", [(b"\x00\xff", b"\x00"), (b"\n", b"\r\n\x00")]),
    ok("modifier1-30", [GET, (b"SCRIPT_NAME", b"/app"), (b"PATH_INFO", b"/app/x/y")], modifier1=30),
    ok("modifier1-30-post", [POST, cl(2)], b"ok", modifier1=30),
    ok("bytes-after-body-discarded", [POST, cl(3)], b"abc", after=b"GET / HTTP/1.1\r\n\r\n"),
    ok("bytes-without-content-length-discarded", [GET], after=b"\x00\x05\x00\x00hello"),
    ok("no-eof", [GET], eof=False),
    ok(
        "magic-variables-dropped",
        [GET, *MAGIC, (b"PATH_INFO", b"/")],
        seen=[GET, (b"PATH_INFO", b"/")],
    ),
    ok(
        "magic-variables-dropped-when-trusted",
        [GET, *MAGIC],
        seen=[GET],
        trust=True,
    ),
    ok("magic-lookalike-kept", [GET, (b"HTTP_UWSGI_FILE", b"x"), (b"uwsgi_file", b"y")]),
    ok("magic-text-in-value-only", [GET, (b"QUERY_STRING", b"UWSGI_FILE=x")]),
    ok(
        "uwsgi-scheme-untrusted-dropped",
        [GET, (b"UWSGI_SCHEME", b"https"), (b"REQUEST_SCHEME", b"http")],
        seen=[GET, (b"REQUEST_SCHEME", b"http")],
    ),
    ok(
        "uwsgi-scheme-trusted",
        [GET, (b"UWSGI_SCHEME", b"https"), (b"REQUEST_SCHEME", b"http")],
        seen=[GET, (b"REQUEST_SCHEME", b"http"), (b"REQUEST_SCHEME", b"https")],
        trust=True,
    ),
    ok(
        "uwsgi-scheme-trusted-upper-case",
        [GET, (b"UWSGI_SCHEME", b"HTTP")],
        seen=[GET, (b"REQUEST_SCHEME", b"http")],
        trust=True,
    ),
    ok(
        "uwsgi-scheme-trusted-last-wins",
        [GET, (b"UWSGI_SCHEME", b"http"), (b"UWSGI_SCHEME", b"https")],
        seen=[GET, (b"REQUEST_SCHEME", b"https")],
        trust=True,
    ),
    ok(
        "uwsgi-scheme-trusted-bogus-ignored",
        [GET, (b"UWSGI_SCHEME", b"javascript")],
        seen=[GET],
        trust=True,
    ),
    ok(
        "uwsgi-scheme-trusted-empty-ignored",
        [GET, (b"UWSGI_SCHEME", b"")],
        seen=[GET],
        trust=True,
    ),
    ok("exactly-max-params-bytes", [GET, (b"X", b"v" * (1000 - 21 - 5))], limits=SMALL),
    ok(
        "datasize-65535",
        [(b"X", b"v" * MAX_VALUE)],
        limits=Limits(max_params_bytes=65535, max_value_length=65535),
    ),
    Case("eof-before-any-byte", b"", [ConnectionClosed()]),
    Case("no-byte-no-eof", b"", [], eof=False),
    # The packet header.
    bad("modifier1-unknown-5-psgi", spec.request([GET], modifier1=5), RemoteProtocolError, 501),
    bad("modifier1-unknown-1", spec.request([GET], modifier1=1), RemoteProtocolError, 501),
    bad("modifier1-unknown-72", spec.request([GET], modifier1=72), RemoteProtocolError, 501),
    bad("modifier1-unknown-255", spec.request([GET], modifier1=255), RemoteProtocolError, 501),
    bad("modifier1-ping-100", spec.header(100, 0), RemoteProtocolError, 501),
    bad("http-sent-to-uwsgi", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", RemoteProtocolError, 501),
    bad("modifier2-nonzero", spec.request([GET], modifier2=1), RemoteProtocolError, 501),
    bad(
        "modifier2-nonzero-m30",
        spec.request([GET], modifier1=30, modifier2=7),
        RemoteProtocolError,
        501,
    ),
    bad("datasize-0", spec.header(0, 0), RemoteProtocolError, 400),
    bad("datasize-0-with-body", spec.header(0, 0) + b"body", RemoteProtocolError, 400),
    bad(
        "datasize-over-limit", spec.header(0, 1001) + b"x" * 1001, LimitExceeded, 431, limits=SMALL
    ),
    bad("eof-in-header", b"\x00\x10", RemoteProtocolError, 400),
    Case("header-only-no-eof", b"\x00\x10\x00", [], eof=False),
    # datasize larger than the packet.
    bad(
        "datasize-beyond-packet-eof", spec.header(0, 50) + spec.var(*GET), RemoteProtocolError, 400
    ),
    Case("datasize-beyond-packet-no-eof", spec.header(0, 50) + spec.var(*GET), [], eof=False),
    # The variables, decoded strictly.
    bad(
        "key-without-value",
        spec.packet(spec.var(*GET) + b"\x04\x00HOST"),
        RemoteProtocolError,
        400,
    ),
    bad(
        "key-with-half-a-value-length",
        spec.packet(spec.var(*GET) + b"\x04\x00HOST\x01"),
        RemoteProtocolError,
        400,
    ),
    bad(
        "key-running-past-end",
        spec.packet(spec.var(*GET) + b"\xff\x00HOST"),
        RemoteProtocolError,
        400,
    ),
    bad(
        "value-running-past-end",
        spec.packet(spec.var(*GET) + b"\x04\x00HOST\x09\x00abc"),
        RemoteProtocolError,
        400,
    ),
    bad("stray-byte-at-end", spec.packet(spec.var(*GET) + b"\x00"), RemoteProtocolError, 400),
    bad("empty-key", spec.packet(spec.var(*GET) + spec.var(b"", b"x")), RemoteProtocolError, 400),
    bad(
        # datasize says 2 bytes more than the variables: the body's first bytes are swallowed.
        "datasize-larger-than-vars",
        spec.header(0, len(spec.vars_block([POST, cl(4)])) + 2)
        + spec.vars_block([POST, cl(4)])
        + b"body",
        RemoteProtocolError,
        400,
    ),
    # CONTENT_LENGTH.
    bad("content-length-negative", spec.request([POST, cl(b"-1")]), BadRequest, 400),
    bad("content-length-plus-underscore", spec.request([POST, cl(b"+1_0")]), BadRequest, 400),
    bad(
        "content-length-non-ascii-digits",
        spec.request([POST, cl("\u0661\u0662".encode())]),  # Arabic-Indic 12
        BadRequest,
        400,
    ),
    bad("content-length-hex", spec.request([POST, cl(b"0x10")]), BadRequest, 400),
    bad(
        "content-length-repeated-different",
        spec.request([POST, cl(3), cl(0)], b"abc"),
        RemoteProtocolError,
        400,
    ),
    bad(
        "content-length-over-max-body",
        spec.request([POST, cl(101)]),
        LimitExceeded,
        413,
        limits=Limits(max_body_size=100),
    ),
    Case(
        "body-shorter-than-declared",
        spec.request([POST, cl(10)], b"short"),
        [started([POST, cl(10)]), BodyData(0, b"short")],
        (RemoteProtocolError, 400),
    ),
    # Limits on pairs.
    bad(
        "too-many-params",
        spec.request([GET, (b"A", b"1"), (b"B", b"2")]),
        LimitExceeded,
        431,
        limits=Limits(max_param_count=2),
    ),
    bad(
        "magic-variables-count-too",
        spec.request([GET, *MAGIC[:2]]),
        LimitExceeded,
        431,
        limits=Limits(max_param_count=2),
    ),
    bad(
        "name-too-long",
        spec.request([GET, (b"N" * 21, b"")]),
        LimitExceeded,
        431,
        limits=Limits(max_name_length=20),
    ),
    bad(
        "value-too-long",
        spec.request([GET, (b"V", b"v" * 21)]),
        LimitExceeded,
        431,
        limits=Limits(max_value_length=20),
    ),
]

CASE_IDS = [case.id for case in CASES]
assert len(set(CASE_IDS)) == len(CASE_IDS)


def expected(case: Case) -> Outcome:
    return case.events, case.error


def case_outcome(case: Case, chunks: list[bytes]) -> Outcome:
    return outcome(chunks, limits=case.limits, eof=case.eof, trust=case.trust)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_case_whole(case: Case) -> None:
    assert case_outcome(case, whole(case.data)) == expected(case)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_case_bytewise(case: Case) -> None:
    assert case_outcome(case, bytewise(case.data)) == expected(case)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@settings(max_examples=30, deadline=None)
@given(points=st.lists(st.integers(0, 1 << 17), max_size=12))
def test_case_split_anywhere(case: Case, points: list[int]) -> None:
    assert case_outcome(case, split(case.data, points)) == expected(case)


# --- The header, and errors raised as early as possible ------------------------------


def first_error(data: bytes, limits: Limits = DEFAULT_LIMITS) -> tuple[int, RemoteProtocolError]:
    """Feed byte by byte without EOF: how many bytes it took to raise, and the error."""
    conn = UWSGIConnection(limits)
    for count in range(1, len(data) + 1):
        conn.receive_data(data[count - 1 : count])
        try:
            assert conn.next_event() is NEED_DATA
        except RemoteProtocolError as exc:
            return count, exc
    raise AssertionError("no error")


def test_unknown_modifier1_refused_at_first_byte_and_named() -> None:
    count, error = first_error(spec.request([GET], modifier1=5))
    assert count == 1
    assert error.status_hint == 501 and error.request_id == 0
    assert "modifier1 5" in error.msg
    _, error = first_error(b"POST /x HTTP/1.1\r\n")
    assert "modifier1 80" in error.msg and "HTTP" in error.msg


def test_modifier2_named() -> None:
    count, error = first_error(spec.request([GET], modifier2=9))
    assert count == 4 and error.status_hint == 501 and "modifier2 9" in error.msg


def test_datasize_over_limit_refused_at_header() -> None:
    count, error = first_error(spec.header(0, 1001) + b"x" * 1001, SMALL)
    assert count == 4
    assert isinstance(error, LimitExceeded)
    assert (error.limit, error.value, error.maximum) == ("max_params_bytes", 1001, 1000)
    assert error.status_hint == 431


def test_datasize_zero_is_a_clear_error() -> None:
    count, error = first_error(spec.header(0, 0))
    assert count == 4 and error.status_hint == 400 and "datasize 0" in error.msg


def test_datasize_is_little_endian_u16() -> None:
    # 0x0102 little-endian is 258, not 513.
    block = spec.vars_block([(b"X", b"v" * (258 - 5))])
    assert len(block) == 258
    data = b"\x00\x02\x01\x00" + block
    events, error, _ = run([data])
    assert error is None and events == request_events([(b"X", b"v" * 253)])


def test_65535_is_the_largest_datasize() -> None:
    # The u16 field says at most 65535; 65536 cannot be encoded at all.
    assert spec.header(0, 65535)[1:3] == b"\xff\xff"
    with pytest.raises(ValueError):
        spec.header(0, 65536)
    with pytest.raises(ValueError):
        spec.var(b"X", b"v" * 65536)
    # The default limit (64 KiB) admits every datasize the format can express.
    assert DEFAULT_LIMITS.max_params_bytes >= 65535
    block = spec.vars_block([(b"X", b"v" * MAX_VALUE)])
    limits = Limits(max_params_bytes=65535, max_value_length=65535)
    events, error, _ = run([spec.packet(block)], limits=limits)
    assert error is None and events == request_events([(b"X", b"v" * MAX_VALUE)])
    # One byte less allowed: refused.
    limits = Limits(max_params_bytes=65534, max_value_length=65534)
    _, error, _ = run([spec.packet(block)], limits=limits)
    assert isinstance(error, LimitExceeded) and error.value == 65535


def test_body_over_limit_refused_before_body() -> None:
    head = spec.request([POST, cl(1 << 30 | 1)])
    count, error = first_error(head)
    assert count == len(head)
    assert isinstance(error, LimitExceeded) and error.limit == "max_body_size"
    assert error.status_hint == 413


def test_error_messages_name_the_fault() -> None:
    cases = {
        spec.packet(spec.var(*GET) + b"\x04\x00HOST"): "HOST",
        spec.packet(spec.var(*GET) + spec.var(b"", b"x")): "empty key",
        spec.packet(spec.var(*GET) + b"\x00"): "stray",
        spec.request([POST, cl(3), cl(0)], b"abc"): "different values",
        spec.header(0, 50) + spec.var(*GET): "of 50 variable bytes",
    }
    for data, words in cases.items():
        _, error, _ = run([data])
        assert error is not None and words in error.msg, (data, error)
        assert error.request_id == 0


# --- The ERROR state and the reply after an error -----------------------------------


def test_error_state_is_sticky_and_reply_can_be_sent() -> None:
    conn = UWSGIConnection()
    conn.receive_data(spec.request([GET], modifier1=7))
    with pytest.raises(RemoteProtocolError) as first:
        conn.next_event()
    assert first.value.status_hint == 501 and first.value.request_id == 0
    for _ in range(3):
        with pytest.raises(RemoteProtocolError) as again:
            conn.next_event()
        assert again.value.status_hint == 501 and again.value.request_id == 0
    assert conn.should_close
    reply = b"HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\n\r\n"
    assert sent(conn, ResponseData(0, reply)) == reply
    assert sent(conn, ResponseEnd(0)) == b""


# --- Output ------------------------------------------------------------------------


def started_conn() -> UWSGIConnection:
    conn = UWSGIConnection()
    conn.receive_data(spec.request([GET]))
    assert isinstance(conn.next_event(), RequestStarted)
    return conn


def test_send_passes_bytes_through() -> None:
    conn = started_conn()
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n"
    assert sent(conn, ResponseData(0, head)) is head
    assert conn.send(ResponseData(0, head)) == [head]
    array = bytearray(b"body")
    (chunk,) = conn.send(ResponseData(0, array))
    assert isinstance(chunk, memoryview) and chunk.obj is array
    assert sent(conn, ResponseErrorData(0, b"log line")) == b""
    assert conn.data_to_send() == b""
    assert not conn.should_close
    assert sent(conn, ResponseEnd(0)) == b""
    assert conn.should_close
    with pytest.raises(LocalProtocolError):
        sent(conn, ResponseData(0, b"late"))


def test_send_checks_request() -> None:
    with pytest.raises(LocalProtocolError):
        sent(UWSGIConnection(), ResponseData(0, b"too early"))
    with pytest.raises(LocalProtocolError):
        started_conn().send(ResponseData(3, b"wrong id"))


# --- Connection life ------------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [[], [(b"HTTP_A", b"2")], [(b"", b"x")], [(b"UWSGI_SCHEME", b"https")]],
    ids=["plain", "repeated-name", "empty-name", "magic-variable"],
)
def test_params_come_as_a_dict_unless_a_name_repeats(extra: Pairs) -> None:
    """An ordinary request's vars are decoded straight into a dict, in the order
    sent (the core takes it over as the environ); a repeated name, an empty one or
    a magic variable takes the pairs path, which keeps duplicates for the core to
    judge, refuses the empty name, or applies and drops the magic variable."""
    plain = [(b"REQUEST_METHOD", b"GET"), (b"HTTP_A", b"1"), (b"PATH_INFO", b"/x")]
    conn = UWSGIConnection()
    conn.receive_data(spec.request([*plain, *extra]))
    if extra and not extra[0][0]:
        with pytest.raises(RemoteProtocolError, match="variable number 4 has an empty key"):
            conn.next_event()
        return
    event = conn.next_event()
    assert isinstance(event, RequestStarted)
    if not extra:
        assert type(event.params) is dict
        assert list(event.params.items()) == text_pairs(plain)
    elif extra[0][0] == b"HTTP_A":
        assert event.params == text_pairs([*plain, *extra])
    else:
        assert event.params == text_pairs(plain)  # UWSGI_SCHEME applied (untrusted: none)


def test_one_request_then_need_data_then_closed() -> None:
    conn = UWSGIConnection()
    second = spec.request([GET])
    conn.receive_data(spec.request([GET]) + second)
    assert in_pairs([conn.next_event()]) == [started([GET])]
    assert conn.next_event() == BodyEnd(0)
    assert conn.next_event() is NEED_DATA
    assert conn.discarded_bytes == len(second)
    conn.receive_data(second)
    assert conn.next_event() is NEED_DATA
    assert not conn.should_close
    conn.receive_data(b"")
    assert conn.next_event() == ConnectionClosed()
    assert conn.next_event() == ConnectionClosed()
    assert conn.should_close


def test_data_after_eof_is_a_local_error() -> None:
    conn = UWSGIConnection()
    conn.receive_data(spec.request([GET]))
    conn.receive_data(b"")
    with pytest.raises(LocalProtocolError):
        conn.receive_data(b"x")


def test_body_streams_without_buffering() -> None:
    conn = UWSGIConnection()
    conn.receive_data(spec.request([POST, cl(10)], b"0123"))
    assert isinstance(conn.next_event(), RequestStarted)
    assert conn.next_event() == BodyData(0, b"0123")
    piece = b"456"
    conn.receive_data(piece)
    event = conn.next_event()
    assert event == BodyData(0, b"456")
    assert isinstance(event, BodyData) and event.data is piece  # no copy of a bytes chunk
    conn.receive_data(b"789tail")
    assert conn.next_event() == BodyData(0, b"789")
    assert conn.next_event() == BodyEnd(0)
    assert conn.discarded_bytes == 4


# --- Round trips against the independent encoder -------------------------------------

names = st.binary(min_size=1, max_size=30).filter(
    lambda n: n != b"CONTENT_LENGTH" and not n.startswith(b"UWSGI_")
)
values = st.binary(max_size=80)
pairs = st.lists(st.tuples(names, values), min_size=1, max_size=30)


@given(
    params=pairs,
    body=st.binary(max_size=2000),
    modifier1=st.sampled_from([0, 30]),
    points=st.lists(st.integers(0, 1 << 16)),
)
def test_round_trip(
    params: list[tuple[bytes, bytes]], body: bytes, modifier1: int, points: list[int]
) -> None:
    sent = [*params, cl(len(body))]
    data = spec.request(sent, body, modifier1=modifier1)
    assert outcome(split(data, points)) == (
        request_events(sent, body, strip=modifier1 == 30),
        None,
    )


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None, max_examples=30)
@given(params=pairs, body=st.binary(max_size=300))
def test_round_trip_bytewise(params: list[tuple[bytes, bytes]], body: bytes) -> None:
    sent = [cl(len(body)), *params]
    assert outcome(bytewise(spec.request(sent, body))) == (request_events(sent, body), None)


magic_names = st.sampled_from([name for name, _ in MAGIC] + [b"UWSGI_SCHEME", b"UWSGI_"])
mixed = st.lists(st.tuples(st.one_of(names, magic_names), values), min_size=1, max_size=20)


@given(params=mixed, trust=st.booleans())
def test_magic_variables_model(params: list[tuple[bytes, bytes]], trust: bool) -> None:
    """Whatever the mix, the app sees the plain variables in order, plus a trusted scheme."""
    seen = [(n, v) for n, v in params if not n.startswith(b"UWSGI_")]
    schemes = [v for n, v in params if n == b"UWSGI_SCHEME"]
    if trust and schemes and schemes[-1].lower() in (b"http", b"https"):
        seen.append((b"REQUEST_SCHEME", schemes[-1].lower()))
    assert outcome([spec.request(params)], trust=trust) == (request_events(seen), None)


# --- Fuzz: any bytes give events or RemoteProtocolError --------------------------------

FUZZ_LIMITS = [DEFAULT_LIMITS, SMALL, Limits(max_param_count=2, max_body_size=5)]


def fuzz(data: bytes, limits: Limits) -> None:
    for chunks in (whole(data), bytewise(data)):
        for trust in (False, True):
            events, error, conn = run(chunks, limits=limits, trust=trust)
            assert conn.should_close
            if error is None:
                assert events and isinstance(events[-1], ConnectionClosed)
            else:
                assert error.request_id == 0


@given(data=st.binary(max_size=300), which=st.integers(0, len(FUZZ_LIMITS) - 1))
def test_fuzz_any_bytes(data: bytes, which: int) -> None:
    fuzz(data, FUZZ_LIMITS[which])


@given(
    header=st.sampled_from([b"\x00", b"\x1e"]),
    rest=st.binary(max_size=300),
    which=st.integers(0, len(FUZZ_LIMITS) - 1),
)
def test_fuzz_valid_modifier(header: bytes, rest: bytes, which: int) -> None:
    fuzz(header + rest, FUZZ_LIMITS[which])


@given(
    block=st.binary(max_size=200),
    tail=st.binary(max_size=50),
    slack=st.integers(-3, 3),
)
def test_fuzz_vars_block(block: bytes, tail: bytes, slack: int) -> None:
    size = max(0, min(0xFFFF, len(block) + slack))
    fuzz(spec.header(0, size) + block + tail, DEFAULT_LIMITS)


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
    data = spec.request([*params, cl(len(body))], body)
    fuzz(data[: cut % (len(data) + 1)] + tail, FUZZ_LIMITS[which])


# --- What real web servers sent -------------------------------------------------------


def load_captures() -> list[dict[str, object]]:
    with (DATA / "uwsgi_captures.json").open() as fh:
        cases: list[dict[str, object]] = json.load(fh)["cases"]
    return cases


CAPTURES = load_captures()


@pytest.mark.parametrize(
    "capture", CAPTURES, ids=[f"{c['capture']}.{c['request']}" for c in CAPTURES]
)
def test_captured_params(capture: dict[str, object]) -> None:
    raw = capture["params"]
    assert isinstance(raw, list)
    params = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in raw]
    body_len, modifier1, modifier2 = capture["body_len"], capture["modifier1"], capture["modifier2"]
    assert isinstance(body_len, int) and isinstance(modifier1, int) and isinstance(modifier2, int)
    body = bytes(i * 7 % 251 for i in range(body_len))
    head = spec.request(params, modifier1=modifier1, modifier2=modifier2)
    chunks = bytewise(head) + [body[i : i + 65536] for i in range(0, len(body), 65536)]
    for feed in (chunks, [head + body]):
        events, error, _ = run(feed)
        assert error is None
        assert events == request_events(params, body, strip=modifier1 == 30)


def test_nginx_modifier1_30_capture() -> None:
    (capture,) = [
        c
        for c in CAPTURES
        if c["capture"] == "nginx-uwsgi-prefix" and c["request"] == "get_path_query"
    ]
    raw = capture["params"]
    assert isinstance(raw, list)
    params = dict(raw)
    assert (params["PATH_INFO"], params["SCRIPT_NAME"]) == ("/app/x/y", "/app")
    events, _, _ = run([spec.request([(n.encode(), v.encode()) for n, v in raw], modifier1=30)])
    assert isinstance(events[0], RequestStarted) and events[0].script_name_in_path_info
