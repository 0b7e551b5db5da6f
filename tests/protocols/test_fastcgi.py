"""FastCGIConnection, inbound: every case fed whole, byte by byte, and split anywhere.

Each case is a byte stream a web server could send, written with the
independent encoder in ``tests/support/fcgi_spec.py``, with the events, the
replies the codec queues itself (``data_to_send``) and the error it must give.
The same outcome is required however the stream is cut into pieces.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support import fcgi_spec as spec
from tests.support import text_pairs
from tests.support.sending import sent
from wsgiwire._errors import LimitExceeded, LocalProtocolError, RemoteProtocolError
from wsgiwire._events import (
    NEED_DATA,
    BodyData,
    BodyEnd,
    ConnectionClosed,
    FilterData,
    FilterDataEnd,
    RequestAborted,
    RequestRefused,
    RequestStarted,
    ResponseData,
    ResponseEnd,
    Role,
)
from wsgiwire._limits import Limits
from wsgiwire.protocols._fastcgi import (
    FCGI_OVERLOADED,
    FCGI_UNKNOWN_ROLE,
    FastCGIConnection,
)

# --- Driving the codec -----------------------------------------------------------


@dataclass
class Outcome:
    events: list[object]
    replies: bytes
    error: tuple[type[BaseException], str, int | None] | None


def pump(conn: FastCGIConnection, events: list[object]) -> None:
    """Collect events until NEED_DATA (or ConnectionClosed); must never spin."""
    for _ in range(100_000):
        event = conn.next_event()
        if event is NEED_DATA:
            return
        events.append(event)
        if isinstance(event, ConnectionClosed):
            return
    raise AssertionError("next_event() never returned NEED_DATA")


def drive(chunks: Iterable[bytes], *, eof: bool = False, **kwargs: Any) -> Outcome:
    conn = FastCGIConnection(**kwargs)
    events: list[object] = []
    replies: list[bytes] = []
    try:
        for chunk in chunks:
            if not chunk:
                continue  # b"" would mean EOF
            conn.receive_data(chunk)
            pump(conn, events)
            replies.append(conn.data_to_send())
        if eof:
            conn.receive_data(b"")
            pump(conn, events)
    except RemoteProtocolError as exc:
        replies.append(conn.data_to_send())
        return Outcome(events, b"".join(replies), (type(exc), exc.msg, exc.request_id))
    replies.append(conn.data_to_send())
    return Outcome(events, b"".join(replies), None)


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


# --- Cases -----------------------------------------------------------------------

R, A, F = spec.RESPONDER, spec.AUTHORIZER, spec.FILTER
LONG_VALUE = b"v" * 200  # needs a 4-byte length
LONG_NAME = b"N" * 130
P = [(b"SERVER_PORT", b"80"), (b"SERVER_ADDR", b"199.170.183.42")]
P_LONG = [(b"HTTP_COOKIE", LONG_VALUE), (LONG_NAME, b"x"), (b"A", b"")]


def started(rid: int, params: list[tuple[bytes, bytes]], **kwargs: Any) -> RequestStarted:
    return RequestStarted(rid, text_pairs(params), **kwargs)


def rec(rtype: int, rid: int, content: bytes = b"", **kwargs: Any) -> bytes:
    return spec.record(rtype, rid, content, **kwargs)


@dataclass
class Case:
    wire: bytes
    events: list[object] = field(default_factory=list)
    replies: bytes = b""
    error: tuple[type[BaseException], int | None, str] | None = None
    eof: bool = False
    kwargs: dict[str, Any] = field(default_factory=dict)


def case(id: str, *args: Any, **kwargs: Any) -> Any:
    return pytest.param(Case(*args, **kwargs), id=id)


BEGIN1 = spec.begin_request(1)
SIMPLE = spec.request(1, P)
SIMPLE_EVENTS: list[object] = [started(1, P), BodyEnd(1)]

CASES = [
    # --- Responder, as in the specification's appendix B -------------------------
    case("responder-get", SIMPLE, SIMPLE_EVENTS),
    case(
        "responder-post",
        spec.request(1, P, b"quantity=100&item=3047936"),
        [started(1, P), BodyData(1, b"quantity=100&item=3047936"), BodyEnd(1)],
    ),
    case(
        "body-in-three-records",
        BEGIN1 + spec.params(1, P) + spec.stdin(1, bytes(range(200)), cuts=[50, 120]),
        [
            started(1, P),
            BodyData(1, bytes(range(50))),
            BodyData(1, bytes(range(50, 120))),
            BodyData(1, bytes(range(120, 200))),
            BodyEnd(1),
        ],
    ),
    case(
        "body-max-record",
        BEGIN1 + spec.params(1, P) + spec.stdin(1, b"b" * 65536),
        [started(1, P), BodyData(1, b"b" * 65535), BodyData(1, b"b"), BodyEnd(1)],
    ),
    case(
        "keep-conn",
        spec.request(1, P, flags=spec.KEEP_CONN),
        [started(1, P, keep_conn=True), BodyEnd(1)],
    ),
    case("request-id-65535", spec.request(65535, P), [started(65535, P), BodyEnd(65535)]),
    # --- FCGI_PARAMS is one stream across records ---------------------------------
    case(
        "params-split-mid-pair",  # appendix B, example 2
        BEGIN1 + spec.params(1, P, cuts=[len(spec.pair(*P[0])) + 5]) + spec.stdin(1),
        SIMPLE_EVENTS,
    ),
    case(
        "params-split-inside-4-byte-value-length",
        BEGIN1 + spec.params(1, P_LONG, cuts=[3]) + spec.stdin(1),
        [started(1, P_LONG), BodyEnd(1)],
    ),
    case(
        "params-split-inside-4-byte-name-length",
        BEGIN1 + spec.params(1, P_LONG, cuts=[len(spec.pair(*P_LONG[0])) + 2]) + spec.stdin(1),
        [started(1, P_LONG), BodyEnd(1)],
    ),
    case(
        "params-one-byte-per-record",
        BEGIN1 + spec.params(1, P_LONG, chunk=1) + spec.stdin(1),
        [started(1, P_LONG), BodyEnd(1)],
    ),
    case(
        "params-duplicates-kept-in-order",
        spec.request(1, [(b"B", b"1"), (b"A", b"2"), (b"B", b"3")]),
        [started(1, [(b"B", b"1"), (b"A", b"2"), (b"B", b"3")]), BodyEnd(1)],
    ),
    case(
        "params-empty-name-and-value",
        spec.request(1, [(b"", b""), (b"X", b"")]),
        [started(1, [(b"", b""), (b"X", b"")]), BodyEnd(1)],
    ),
    case("params-none", spec.request(1, []), [started(1, []), BodyEnd(1)]),
    case(
        "params-binary-bytes",
        spec.request(1, [(b"\x00\xff", bytes(range(256)))]),
        [started(1, [(b"\x00\xff", bytes(range(256)))]), BodyEnd(1)],
    ),
    # --- Record framing ---------------------------------------------------------------
    case(
        "padding-unaligned-and-255",
        spec.begin_request(1)
        + rec(spec.PARAMS, 1, spec.pairs(P), padding=255)
        + rec(spec.PARAMS, 1, padding=3)
        + rec(spec.STDIN, 1, b"abc", padding=0)
        + rec(spec.STDIN, 1, padding=1),
        [started(1, P), BodyData(1, b"abc"), BodyEnd(1)],
    ),
    case(
        "reserved-byte-ignored",
        spec.begin_request(1) + rec(spec.PARAMS, 1, reserved=0xAA) + spec.stdin(1),
        [started(1, []), BodyEnd(1)],
    ),
    case(
        "abort-content-ignored",
        SIMPLE + rec(spec.ABORT_REQUEST, 1, b"junk"),
        [*SIMPLE_EVENTS, RequestAborted(1)],
    ),
    # --- Multiplexing ---------------------------------------------------------------
    case(
        "multiplexed-interleaved",  # appendix B, example 4
        spec.begin_request(1, flags=spec.KEEP_CONN)
        + spec.params(1, P)
        + spec.begin_request(2, flags=spec.KEEP_CONN)
        + spec.stream(spec.PARAMS, 2, spec.pairs(P_LONG), end=False, cuts=[3])
        + spec.stdin(1, b"one")
        + rec(spec.PARAMS, 2)
        + rec(spec.STDIN, 2, b"two")
        + rec(spec.STDIN, 2),
        [
            started(1, P, keep_conn=True),
            BodyData(1, b"one"),
            BodyEnd(1),
            started(2, P_LONG, keep_conn=True),
            BodyData(2, b"two"),
            BodyEnd(2),
        ],
    ),
    case(
        "cant-mpx-conn",
        BEGIN1 + spec.params(1, P) + spec.request(2, P) + spec.stdin(1),
        SIMPLE_EVENTS,
        spec.end_request(2, 0, spec.CANT_MPX_CONN),
        kwargs={"multiplex": False},
    ),
    case(
        "overloaded",
        BEGIN1 + spec.request(2, P) + spec.params(1, P) + spec.stdin(1),
        SIMPLE_EVENTS,
        spec.end_request(2, 0, spec.OVERLOADED),
        kwargs={"limits": Limits(max_requests_per_connection=1)},
    ),
    case(
        "overloaded-by-max-reqs",
        BEGIN1 + spec.begin_request(2) + spec.begin_request(3),
        [],
        spec.end_request(3, 0, spec.OVERLOADED),
        kwargs={"max_reqs": 2},
    ),
    # --- Management records ---------------------------------------------------------
    case(
        "get-values-defaults",
        spec.get_values([b"FCGI_MAX_CONNS", b"FCGI_MAX_REQS", b"FCGI_MPXS_CONNS"]),
        [],
        rec(
            spec.GET_VALUES_RESULT,
            0,
            spec.pairs(
                [
                    (b"FCGI_MAX_CONNS", b"1024"),
                    (b"FCGI_MAX_REQS", b"16"),
                    (b"FCGI_MPXS_CONNS", b"1"),
                ]
            ),
        ),
    ),
    case(
        "get-values-configured-unknown-omitted",
        spec.get_values([b"FCGI_MPXS_CONNS", b"FOO", b"FCGI_MAX_REQS", b"FCGI_MAX_CONNS"]),
        [],
        rec(
            spec.GET_VALUES_RESULT,
            0,
            spec.pairs(
                [(b"FCGI_MPXS_CONNS", b"0"), (b"FCGI_MAX_REQS", b"50"), (b"FCGI_MAX_CONNS", b"10")]
            ),
        ),
        kwargs={"multiplex": False, "max_conns": 10, "max_reqs": 50},
    ),
    case(
        "get-values-only-unknown",
        spec.get_values([b"FCGI_SOMETHING_ELSE"]),
        [],
        rec(spec.GET_VALUES_RESULT, 0),
    ),
    case(
        "get-values-asked-twice-answered-once",
        spec.get_values([b"FCGI_MPXS_CONNS", b"FCGI_MPXS_CONNS"]),
        [],
        rec(spec.GET_VALUES_RESULT, 0, spec.pairs([(b"FCGI_MPXS_CONNS", b"1")])),
    ),
    case(
        "get-values-between-requests",
        BEGIN1 + spec.get_values([b"FCGI_MPXS_CONNS"]) + spec.params(1, P) + spec.stdin(1),
        SIMPLE_EVENTS,
        rec(spec.GET_VALUES_RESULT, 0, spec.pairs([(b"FCGI_MPXS_CONNS", b"1")])),
    ),
    case("unknown-type-12", rec(12, 0, b"whatever"), [], spec.unknown_type(12)),
    case("unknown-type-0", rec(0, 0), [], spec.unknown_type(0)),
    case(
        "unknown-type-255-with-request-id",
        rec(255, 1, b"abc") + SIMPLE,
        SIMPLE_EVENTS,
        spec.unknown_type(255),
    ),
    # --- Roles ------------------------------------------------------------------------
    case(
        "unknown-role-then-ignored",
        spec.request(1, P, role=9),
        [],
        spec.end_request(1, 0, spec.UNKNOWN_ROLE),
    ),
    case(
        "role-not-offered",
        spec.request(1, P, role=F),
        [],
        spec.end_request(1, 0, spec.UNKNOWN_ROLE),
        kwargs={"roles": (Role.RESPONDER,)},
    ),
    case(
        "unknown-role-id-reused",
        spec.request(1, P, role=0) + SIMPLE,
        SIMPLE_EVENTS,
        spec.end_request(1, 0, spec.UNKNOWN_ROLE),
    ),
    case(
        "authorizer-without-stdin",  # Apache mod_authnz_fcgi
        spec.begin_request(1, A) + spec.params(1, P),
        [started(1, P, role=Role.AUTHORIZER), BodyEnd(1)],
    ),
    case(
        "authorizer-empty-stdin-accepted",
        spec.request(1, P, role=A),
        [started(1, P, role=Role.AUTHORIZER), BodyEnd(1)],
    ),
    case(
        "authorizer-stdin-content-discarded",
        spec.request(1, P, b"ignored", role=A),
        [started(1, P, role=Role.AUTHORIZER), BodyEnd(1)],
    ),
    case(
        "filter-with-data",
        spec.request(1, P, b"form", role=F) + spec.data_stream(1, b"file", cuts=[1]),
        [
            started(1, P, role=Role.FILTER),
            BodyData(1, b"form"),
            BodyEnd(1),
            FilterData(1, b"f"),
            FilterData(1, b"ile"),
            FilterDataEnd(1),
        ],
    ),
    case(
        "filter-empty-streams",
        spec.request(1, P, role=F) + spec.data_stream(1),
        [started(1, P, role=Role.FILTER), BodyEnd(1), FilterDataEnd(1)],
    ),
    # --- FCGI_ABORT_REQUEST -----------------------------------------------------------
    case(
        "abort-before-start",
        BEGIN1
        + spec.stream(spec.PARAMS, 1, spec.pairs(P), end=False)
        + spec.abort_request(1)
        + spec.params(1, P)
        + spec.stdin(1, b"late"),
        [],
        spec.end_request(1, 0, spec.REQUEST_COMPLETE),
    ),
    case(
        "abort-right-after-begin",
        BEGIN1 + spec.abort_request(1) + SIMPLE,
        SIMPLE_EVENTS,
        spec.end_request(1, 0, spec.REQUEST_COMPLETE),
    ),
    case("abort-after-start", SIMPLE + spec.abort_request(1), [*SIMPLE_EVENTS, RequestAborted(1)]),
    case(
        "abort-during-stdin-then-input-ignored",
        BEGIN1
        + spec.params(1, P)
        + rec(spec.STDIN, 1, b"x")
        + spec.abort_request(1)
        + spec.stdin(1, b"late")
        + spec.abort_request(1),
        [started(1, P), BodyData(1, b"x"), RequestAborted(1)],
    ),
    case(
        "abort-filter-during-data",
        spec.request(1, P, role=F)
        + rec(spec.DATA, 1, b"d")
        + spec.abort_request(1)
        + spec.data_stream(1, b"more"),
        [started(1, P, role=Role.FILTER), BodyEnd(1), FilterData(1, b"d"), RequestAborted(1)],
    ),
    # --- Protocol errors ----------------------------------------------------------------
    case(
        "params-after-stdin",
        SIMPLE + rec(spec.PARAMS, 1, spec.pair(b"X", b"1")),
        SIMPLE_EVENTS,
        error=(RemoteProtocolError, 1, "unexpected FCGI_PARAMS"),
    ),
    case(
        "params-after-params-end",
        BEGIN1 + spec.params(1, P) + rec(spec.PARAMS, 1),
        [started(1, P)],
        error=(RemoteProtocolError, 1, "unexpected empty FCGI_PARAMS"),
    ),
    case(
        "stdin-after-its-end",
        SIMPLE + rec(spec.STDIN, 1, b"x"),
        SIMPLE_EVENTS,
        error=(RemoteProtocolError, 1, "unexpected FCGI_STDIN"),
    ),
    case(
        "stdin-before-params-end",
        BEGIN1 + rec(spec.STDIN, 1, b"x"),
        error=(RemoteProtocolError, 1, "unexpected FCGI_STDIN"),
    ),
    case(
        "data-for-responder",
        SIMPLE + rec(spec.DATA, 1, b"x"),
        SIMPLE_EVENTS,
        error=(RemoteProtocolError, 1, "FCGI_DATA"),
    ),
    case(
        "filter-data-before-stdin-end",
        spec.begin_request(1, F) + spec.params(1, P) + rec(spec.DATA, 1, b"x"),
        [started(1, P, role=Role.FILTER)],
        error=(RemoteProtocolError, 1, "FCGI_DATA"),
    ),
    case(
        "authorizer-second-stdin-end",
        spec.request(1, P, role=A) + rec(spec.STDIN, 1),
        [started(1, P, role=Role.AUTHORIZER), BodyEnd(1)],
        error=(RemoteProtocolError, 1, "empty FCGI_STDIN"),
    ),
    case(
        "version-2",
        rec(spec.BEGIN_REQUEST, 1, bytes(8), version=2),
        error=(RemoteProtocolError, None, "version 2"),
    ),
    case(
        "version-0-after-a-request",
        SIMPLE + rec(spec.STDIN, 1, version=0),
        SIMPLE_EVENTS,
        error=(RemoteProtocolError, None, "version 0"),
    ),
    case(
        "begin-request-id-0",
        spec.begin_request(0),
        error=(RemoteProtocolError, None, "null request id"),
    ),
    case(
        "stdin-request-id-0",
        rec(spec.STDIN, 0, b"x"),
        error=(RemoteProtocolError, None, "null request id"),
    ),
    case(
        "abort-request-id-0",
        spec.abort_request(0),
        error=(RemoteProtocolError, None, "null request id"),
    ),
    case(
        "stdin-for-never-begun-id",
        SIMPLE + spec.stdin(5, b"x"),
        SIMPLE_EVENTS,
        error=(RemoteProtocolError, 5, "never begun"),
    ),
    case(
        "abort-for-never-begun-id",
        spec.abort_request(3),
        error=(RemoteProtocolError, 3, "never begun"),
    ),
    case(
        "duplicate-begin",
        BEGIN1 + spec.params(1, P) + BEGIN1,
        [started(1, P)],
        error=(RemoteProtocolError, 1, "duplicate FCGI_BEGIN_REQUEST"),
    ),
    case(
        "begin-content-too-short",
        rec(spec.BEGIN_REQUEST, 1, b"\x00\x01\x00"),
        error=(RemoteProtocolError, 1, "not 8"),
    ),
    case(
        "begin-content-too-long",
        rec(spec.BEGIN_REQUEST, 1, bytes(9)),
        error=(RemoteProtocolError, 1, "not 8"),
    ),
    case(
        "stdout-from-web-server",
        SIMPLE + rec(spec.STDOUT, 1, b"x"),
        SIMPLE_EVENTS,
        error=(RemoteProtocolError, 1, "FCGI_STDOUT records go from the application"),
    ),
    case(
        "end-request-from-web-server",
        spec.end_request(1, 0, 0),
        error=(RemoteProtocolError, 1, "FCGI_END_REQUEST"),
    ),
    case(
        "get-values-result-from-web-server",
        rec(spec.GET_VALUES_RESULT, 0),
        error=(RemoteProtocolError, None, "FCGI_GET_VALUES_RESULT"),
    ),
    case(
        "unknown-type-record-from-web-server",
        spec.unknown_type(12),
        error=(RemoteProtocolError, None, "FCGI_UNKNOWN_TYPE"),
    ),
    case(
        "get-values-with-request-id",
        rec(spec.GET_VALUES, 2, spec.pair(b"FCGI_MAX_REQS", b"")),
        error=(RemoteProtocolError, 2, "management record"),
    ),
    case(
        "get-values-truncated-pair",
        rec(spec.GET_VALUES, 0, spec.pair(b"FCGI_MAX_REQS", b"")[:-1]),
        error=(RemoteProtocolError, None, "middle of a name-value pair"),
    ),
    case(
        "truncated-pair-at-params-end",
        BEGIN1 + rec(spec.PARAMS, 1, b"\x05\x03ab") + rec(spec.PARAMS, 1),
        error=(RemoteProtocolError, 1, "middle of a name-value pair"),
    ),
    case(
        "truncated-4-byte-length-at-params-end",
        BEGIN1 + rec(spec.PARAMS, 1, b"\x01\x80\x00") + rec(spec.PARAMS, 1),
        error=(RemoteProtocolError, 1, "middle of a name-value pair"),
    ),
    # --- Limits --------------------------------------------------------------------------
    case(
        "value-claiming-2gib",
        BEGIN1 + rec(spec.PARAMS, 1, b"\x01" + spec.four_bytes(0xFFFFFFFF) + b"A"),
        error=(LimitExceeded, 1, "max_value_length exceeded: 2147483647 > 32768"),
    ),
    case(
        "name-claiming-2gib-split-length",
        BEGIN1
        + spec.stream(spec.PARAMS, 1, spec.four_bytes(0xFFFFFFFF) + b"\x01", cuts=[2], end=False),
        error=(LimitExceeded, 1, "max_name_length exceeded: 2147483647 > 1024"),
    ),
    case(
        "name-too-long",
        spec.request(1, [(b"n" * 1025, b"")]),
        error=(LimitExceeded, 1, "max_name_length exceeded: 1025 > 1024"),
    ),
    case(
        "name-at-limit",
        spec.request(1, [(b"n" * 1024, b"")]),
        [started(1, [(b"n" * 1024, b"")]), BodyEnd(1)],
    ),
    case(
        "short-lengths-under-small-limits",
        spec.request(1, [(b"NAME", b"value")]),
        error=(LimitExceeded, 1, "max_value_length exceeded: 5 > 4"),
        kwargs={"limits": Limits(max_name_length=4, max_value_length=4)},
    ),
    case(
        "params-bytes-limit",
        spec.request(1, [(b"A", b"x" * 60), (b"B", b"y" * 60)]),
        error=(LimitExceeded, 1, "max_params_bytes exceeded"),
        kwargs={"limits": Limits(max_params_bytes=100, max_name_length=50, max_value_length=100)},
    ),
    case(
        "params-bytes-limit-across-records",
        BEGIN1 + spec.params(1, [(b"A", b"x" * 60), (b"B", b"y" * 60)], chunk=40),
        error=(LimitExceeded, 1, "max_params_bytes exceeded"),
        kwargs={"limits": Limits(max_params_bytes=100, max_name_length=50, max_value_length=100)},
    ),
    case(
        "param-count-limit",
        spec.request(1, [(b"A", b""), (b"B", b""), (b"C", b"")]),
        error=(LimitExceeded, 1, "max_param_count exceeded: 3 > 2"),
        kwargs={"limits": Limits(max_param_count=2)},
    ),
    case(
        "body-at-limit",
        spec.request(1, P, b"0123456789"),
        [started(1, P), BodyData(1, b"0123456789"), BodyEnd(1)],
        kwargs={"limits": Limits(max_body_size=10)},
    ),
    case(
        "body-over-limit",
        BEGIN1 + spec.params(1, P) + spec.stdin(1, b"0123456789A", cuts=[4]),
        [started(1, P), BodyData(1, b"0123")],
        error=(LimitExceeded, 1, "max_body_size exceeded: 11 > 10"),
        kwargs={"limits": Limits(max_body_size=10)},
    ),
    case(
        "filter-data-over-limit",
        spec.request(1, P, b"0123456789", role=F) + spec.data_stream(1, b"x" * 11),
        [started(1, P, role=Role.FILTER), BodyData(1, b"0123456789"), BodyEnd(1)],
        error=(LimitExceeded, 1, "max_body_size exceeded: 11 > 10"),
        kwargs={"limits": Limits(max_body_size=10)},
    ),
    # --- EOF ---------------------------------------------------------------------------
    case("eof-at-start", b"", [ConnectionClosed()], eof=True),
    case(
        "eof-after-management-only",
        spec.get_values([b"FCGI_MPXS_CONNS"]),
        [ConnectionClosed()],
        rec(spec.GET_VALUES_RESULT, 0, spec.pairs([(b"FCGI_MPXS_CONNS", b"1")])),
        eof=True,
    ),
    case(
        "eof-after-rejected-request",
        spec.request(1, P, role=7),
        [ConnectionClosed()],
        spec.end_request(1, 0, spec.UNKNOWN_ROLE),
        eof=True,
    ),
    case(
        "eof-mid-header",
        SIMPLE[:5],
        error=(RemoteProtocolError, None, "connection closed mid-record"),
        eof=True,
    ),
    case(
        "eof-mid-record",
        SIMPLE[:12],
        error=(RemoteProtocolError, None, "connection closed mid-record"),
        eof=True,
    ),
    case(
        "eof-mid-padding",
        BEGIN1 + rec(spec.PARAMS, 1, b"\x01\x01ab")[:-1],
        error=(RemoteProtocolError, None, "connection closed mid-record"),
        eof=True,
    ),
    case(
        "eof-mid-request",
        SIMPLE,
        SIMPLE_EVENTS,
        error=(RemoteProtocolError, 1, "connection closed mid-request"),
        eof=True,
    ),
    case(
        "eof-in-params",
        BEGIN1 + rec(spec.PARAMS, 1, spec.pairs(P)),
        error=(RemoteProtocolError, 1, "connection closed mid-request"),
        eof=True,
    ),
]


def check(c: Case, out: Outcome) -> None:
    assert out.events == c.events
    assert out.replies == c.replies
    if c.error is None:
        assert out.error is None
    else:
        assert out.error is not None
        kind, msg, request_id = out.error
        assert kind is c.error[0]
        assert request_id == c.error[1]
        assert c.error[2] in msg


@pytest.mark.parametrize("c", CASES)
@pytest.mark.parametrize("split", ["whole", "bytewise"])
def test_case(c: Case, split: str) -> None:
    chunks = [c.wire] if split == "whole" else bytewise(c.wire)
    check(c, drive(chunks, eof=c.eof, **c.kwargs))


@pytest.mark.parametrize("c", CASES)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_case_split_anywhere(c: Case, data: st.DataObject) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(c.wire)), max_size=10), label="cuts")
    check(c, drive(spec.pieces(c.wire, cuts), eof=c.eof, **c.kwargs))


# --- Explicit behaviour ------------------------------------------------------------


def test_params_stream_cut_at_every_offset() -> None:
    """A pair, or any of its lengths, split anywhere across two records decodes the same."""
    content = spec.pairs(P_LONG + P)
    for cut in range(1, len(content)):
        wire = BEGIN1 + spec.stream(spec.PARAMS, 1, content, cuts=[cut]) + spec.stdin(1)
        assert drive([wire]).events == [started(1, P_LONG + P), BodyEnd(1)], cut


def test_limit_fails_before_value_arrives() -> None:
    """A 2 GiB claim fails on the bytes of its length alone: nothing is awaited or allocated."""
    conn = FastCGIConnection()
    conn.receive_data(BEGIN1 + rec(spec.PARAMS, 1, b"\x01\xff\xff\xff\xff"))
    with pytest.raises(LimitExceeded) as info:
        conn.next_event()
    assert info.value.limit == "max_value_length"
    assert info.value.value == 0x7FFFFFFF
    assert info.value.status_hint == 431
    assert info.value.request_id == 1


def test_body_limit_is_413() -> None:
    conn = FastCGIConnection(Limits(max_body_size=3))
    conn.receive_data(spec.request(1, P, b"four"))
    assert conn.next_event() == started(1, P)
    with pytest.raises(LimitExceeded) as info:
        conn.next_event()
    assert (info.value.limit, info.value.status_hint, info.value.request_id) == (
        "max_body_size",
        413,
        1,
    )


def test_error_state_is_sticky_but_known_requests_can_be_answered() -> None:
    conn = FastCGIConnection(Limits(max_body_size=3))
    conn.receive_data(spec.request(1, P, b"four") + SIMPLE)
    conn.next_event()
    with pytest.raises(LimitExceeded):
        conn.next_event()
    assert conn.should_close
    for _ in range(2):
        with pytest.raises(RemoteProtocolError, match="ERROR state") as info:
            conn.next_event()
        assert info.value.request_id == 1
    conn.receive_data(b"more bytes are dropped")
    out = sent(conn, ResponseData(1, b"Status: 413\r\n\r\n")) + sent(conn, ResponseEnd(1))
    resp = spec.parse_responses(out)[1]
    assert resp.stdout == b"Status: 413\r\n\r\n"
    assert resp.protocol_status == spec.REQUEST_COMPLETE


def test_request_in_params_answerable_after_error() -> None:
    conn = FastCGIConnection(Limits(max_param_count=1))
    conn.receive_data(BEGIN1 + rec(spec.PARAMS, 1, spec.pairs(P)))
    with pytest.raises(LimitExceeded):
        conn.next_event()
    out = sent(conn, ResponseData(1, b"Status: 431\r\n\r\n")) + sent(conn, ResponseEnd(1))
    assert spec.parse_responses(out)[1].stdout == b"Status: 431\r\n\r\n"


def test_abort_after_response_end_is_ignored() -> None:
    """Our END_REQUEST and the web server's abort (or late STDIN) may cross on the wire."""
    conn = FastCGIConnection()
    events: list[object] = []
    conn.receive_data(BEGIN1 + spec.params(1, P) + rec(spec.STDIN, 1, b"x"))
    pump(conn, events)
    sent(conn, ResponseEnd(1))
    conn.receive_data(rec(spec.STDIN, 1, b"late") + rec(spec.STDIN, 1) + spec.abort_request(1))
    pump(conn, events)
    assert events == [started(1, P), BodyData(1, b"x")]
    assert conn.data_to_send() == b""
    conn.receive_data(SIMPLE)
    pump(conn, events)
    assert events[2:] == SIMPLE_EVENTS


def test_abort_before_start_frees_the_request() -> None:
    conn = FastCGIConnection()
    conn.receive_data(BEGIN1 + spec.abort_request(1))
    assert conn.next_event() is NEED_DATA
    assert conn.active_requests == 0
    assert conn.data_to_send() == spec.end_request(1, 0, spec.REQUEST_COMPLETE)
    assert conn.should_close  # begun without FCGI_KEEP_CONN and answered
    with pytest.raises(LocalProtocolError):
        sent(conn, ResponseEnd(1))


def test_abort_after_start_is_answered_by_front_end() -> None:
    conn = FastCGIConnection()
    events: list[object] = []
    conn.receive_data(spec.request(1, P, flags=spec.KEEP_CONN) + spec.abort_request(1))
    pump(conn, events)
    assert events[-1] == RequestAborted(1)
    assert conn.active_requests == 1
    assert conn.data_to_send() == b""
    out = sent(conn, ResponseEnd(1, app_status=1))
    assert spec.parse_responses(out)[1].app_status == 1
    assert conn.active_requests == 0
    assert not conn.should_close


def test_data_to_send_is_cleared() -> None:
    conn = FastCGIConnection()
    conn.receive_data(rec(20, 0) + rec(21, 0))
    assert conn.next_event() is NEED_DATA
    assert conn.data_to_send() == spec.unknown_type(20) + spec.unknown_type(21)
    assert conn.data_to_send() == b""


@pytest.mark.parametrize(
    ("flags", "should_close"), [(0, True), (spec.KEEP_CONN, False)], ids=["close", "keep-conn"]
)
def test_should_close_follows_keep_conn(flags: int, should_close: bool) -> None:
    conn = FastCGIConnection()
    conn.receive_data(spec.request(1, P, flags=flags))
    pump(conn, [])
    assert not conn.should_close
    assert conn.active_requests == 1
    sent(conn, ResponseData(1, b"x"))
    assert not conn.should_close
    sent(conn, ResponseEnd(1))
    assert conn.should_close is should_close
    assert conn.active_requests == 0


def test_rejection_without_keep_conn_sets_should_close() -> None:
    conn = FastCGIConnection()
    conn.receive_data(spec.begin_request(1, role=9))
    pump(conn, [])
    assert conn.should_close
    conn = FastCGIConnection()
    conn.receive_data(spec.begin_request(1, role=9, flags=spec.KEEP_CONN))
    pump(conn, [])
    assert not conn.should_close


def test_should_close_after_eof_and_error() -> None:
    conn = FastCGIConnection()
    conn.receive_data(b"")
    assert conn.next_event() == ConnectionClosed()
    assert conn.next_event() == ConnectionClosed()
    assert conn.should_close
    with pytest.raises(LocalProtocolError):
        conn.receive_data(b"x")
    conn = FastCGIConnection()
    conn.receive_data(b"\x02" + bytes(7))
    with pytest.raises(RemoteProtocolError):
        conn.next_event()
    assert conn.should_close


def test_reject_frees_the_request() -> None:
    conn = FastCGIConnection()
    conn.receive_data(BEGIN1 + spec.params(1, P))
    assert conn.next_event() == started(1, P)
    refused = sent(conn, RequestRefused(1, fcgi_protocol_status=FCGI_OVERLOADED))
    assert refused == spec.end_request(1, 0, spec.OVERLOADED)
    assert conn.active_requests == 0
    assert conn.should_close
    conn.receive_data(spec.stdin(1, b"body still in flight"))
    assert conn.next_event() is NEED_DATA
    with pytest.raises(LocalProtocolError):
        sent(conn, RequestRefused(1, fcgi_protocol_status=FCGI_OVERLOADED))
    with pytest.raises(LocalProtocolError):
        sent(conn, ResponseData(1, b"x"))


def test_reject_misuse() -> None:
    conn = FastCGIConnection()
    conn.receive_data(SIMPLE)
    pump(conn, [])
    with pytest.raises(LocalProtocolError):
        sent(conn, RequestRefused(1, fcgi_protocol_status=7))
    sent(conn, ResponseData(1, b"Status: 200\r\n\r\n"))
    with pytest.raises(LocalProtocolError, match="already sent output"):
        sent(conn, RequestRefused(1, fcgi_protocol_status=FCGI_UNKNOWN_ROLE))
    with pytest.raises(LocalProtocolError):
        sent(conn, RequestRefused(2, fcgi_protocol_status=FCGI_OVERLOADED))


def test_active_requests_counts_multiplexed() -> None:
    conn = FastCGIConnection()
    conn.receive_data(BEGIN1 + spec.begin_request(2) + spec.begin_request(3, role=9))
    pump(conn, [])
    assert conn.active_requests == 2


def test_constructor_validates() -> None:
    with pytest.raises(ValueError):
        FastCGIConnection(max_conns=0)
    with pytest.raises(ValueError):
        FastCGIConnection(max_reqs=0)


def test_params_split_into_tiny_records_is_linear() -> None:
    """A long value sent one byte per FCGI_PARAMS record: O(n), not a rescan per record."""
    limits = Limits(max_params_bytes=1 << 20, max_value_length=1 << 19)

    def run(size: int) -> float:
        params = [(b"HTTP_COOKIE", b"c" * size)]
        wire = BEGIN1 + spec.params(1, params, chunk=1) + spec.stdin(1)
        conn = FastCGIConnection(limits)
        conn.receive_data(wire)
        t0 = time.perf_counter()
        assert conn.next_event() == started(1, params)
        return time.perf_counter() - t0

    small = min(run(8 << 10) for _ in range(3))
    large = min(run(64 << 10) for _ in range(2))
    assert large / small < 20, (small, large)


# --- The whole-request pass against the record loop ---------------------------------------

_names = st.binary(min_size=1, max_size=140)
_values = st.binary(max_size=300)


def _merged(events: list[object]) -> list[object]:
    """Events with consecutive body chunks joined (record layout is not semantics)."""
    out: list[object] = []
    for event in events:
        if type(event) is BodyData and out and type(out[-1]) is BodyData:
            out[-1] = BodyData(event.request_id, out[-1].data + event.data)  # type: ignore[attr-defined]
        else:
            out.append(event)
    return out


@settings(max_examples=150, deadline=None)
@given(
    params=st.lists(st.tuples(_names, _values), max_size=12),
    body=st.binary(max_size=400),
    params_chunk=st.integers(1, 300),
    body_chunk=st.integers(1, 300),
    keep=st.booleans(),
    max_count=st.integers(1, 14),
)
def test_whole_request_pass_matches_record_loop(
    *,
    params: list[tuple[bytes, bytes]],
    body: bytes,
    params_chunk: int,
    body_chunk: int,
    keep: bool,
    max_count: int,
) -> None:
    """A request fed whole (one pass) and byte by byte (record loop) ends the same:
    the same events or the same error, and a second request is served alike."""
    limits = Limits(max_param_count=max_count, max_value_length=200)
    wire = (
        spec.begin_request(1, flags=spec.KEEP_CONN if keep else 0)
        + spec.params(1, params, chunk=params_chunk)
        + spec.stdin(1, body, chunk=body_chunk)
    )
    whole = drive([wire], limits=limits)
    piecewise = drive(bytewise(wire), limits=limits)
    assert _merged(whole.events) == _merged(piecewise.events)
    assert whole.replies == piecewise.replies
    assert whole.error == piecewise.error
    if whole.error is None:
        assert whole.events[0] == started(1, params, keep_conn=keep)
