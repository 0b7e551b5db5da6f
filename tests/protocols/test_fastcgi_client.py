"""FastCGIClient, and round trips between the codec and the independent spec encoder:

* what the spec encoder writes, the server side decodes (hypothesis-chosen
  params, bodies and record sizes; the real nginx/Apache/lighttpd corpus);
* what the client side writes, the spec decoder reads;
* what the server side writes, both the spec decoder and the client side read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.corpus import exchanges
from tests.support import fcgi_spec as spec
from tests.support import text_pairs
from tests.support.sending import sent
from wsgiwire._errors import LocalProtocolError, RemoteProtocolError
from wsgiwire._events import (
    NEED_DATA,
    BodyData,
    BodyEnd,
    ConnectionClosed,
    FilterData,
    FilterDataEnd,
    RequestStarted,
    ResponseData,
    ResponseEnd,
    ResponseErrorData,
    Role,
)
from wsgiwire._limits import Limits
from wsgiwire.protocols._fastcgi import (
    EndRequest,
    FastCGIClient,
    FastCGIConnection,
    StderrData,
    StdoutData,
    UnknownTypeResult,
    ValuesResult,
    encode_pairs,
)

BIG = Limits(
    max_params_bytes=1 << 20,
    max_param_count=10_000,
    max_name_length=1 << 17,
    max_value_length=1 << 17,
)


def server_events(wire: bytes, limits: Limits = BIG, **kwargs: Any) -> list[object]:
    conn = FastCGIConnection(limits, **kwargs)
    conn.receive_data(wire)
    events: list[object] = []
    while (event := conn.next_event()) is not NEED_DATA:
        events.append(event)
    return events


def client_events(wire: bytes, *, eof: bool = False, bytewise: bool = False) -> list[object]:
    client = FastCGIClient()
    chunks = [wire[i : i + 1] for i in range(len(wire))] if bytewise else [wire]
    events: list[object] = []
    for chunk in [c for c in chunks if c] + ([b""] if eof else []):
        client.receive_data(chunk)
        while (event := client.next_event()) is not NEED_DATA:
            events.append(event)
            if isinstance(event, ConnectionClosed):
                break
    return events


def body_of(events: list[object], kind: type = BodyData) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, kind))  # type: ignore[attr-defined]


names = st.binary(max_size=140)
values = st.one_of(st.binary(max_size=140), st.binary(min_size=120, max_size=400))
params_strategy = st.lists(st.tuples(names, values), max_size=20)


# --- Spec encoder -> server side ---------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    params=params_strategy,
    body=st.binary(max_size=3000),
    params_chunk=st.integers(1, 300),
    body_chunk=st.integers(1, 1000),
    rid=st.integers(1, 65535),
    keep=st.booleans(),
)
def test_spec_encoded_request_decodes(
    *,
    params: list[tuple[bytes, bytes]],
    body: bytes,
    params_chunk: int,
    body_chunk: int,
    rid: int,
    keep: bool,
) -> None:
    wire = (
        spec.begin_request(rid, flags=spec.KEEP_CONN if keep else 0)
        + spec.params(rid, params, chunk=params_chunk)
        + spec.stdin(rid, body, chunk=body_chunk)
    )
    events = server_events(wire)
    assert events[0] == RequestStarted(rid, text_pairs(params), keep, Role.RESPONDER)
    assert body_of(events) == body
    assert events[-1] == BodyEnd(rid)


@settings(max_examples=100, deadline=None)
@given(params=params_strategy, body=st.binary(max_size=500), data=st.binary(max_size=2000))
def test_spec_encoded_filter_decodes(
    params: list[tuple[bytes, bytes]], body: bytes, data: bytes
) -> None:
    wire = spec.request(4, params, body, role=spec.FILTER) + spec.data_stream(4, data, chunk=700)
    events = server_events(wire)
    assert events[0] == RequestStarted(4, text_pairs(params), False, Role.FILTER)
    assert body_of(events) == body
    assert body_of(events, FilterData) == data
    assert events[-1] == FilterDataEnd(4)


CORPUS = [
    pytest.param(exchange, id=case_id)
    for case_id, setup, request, exchange in exchanges()
    if request.source == "wire" and exchange.role is not None  # FastCGI captures
]


@pytest.mark.parametrize("exchange", CORPUS)
@pytest.mark.parametrize("chunk", [65535, 7, 1], ids=["one-record", "7-byte-records", "bytes"])
def test_real_server_params(exchange: Any, chunk: int) -> None:
    """Params that nginx, Apache and lighttpd really sent, in any record layout."""
    params = exchange.params_bytes()
    role = {"RESPONDER": 1, "AUTHORIZER": 2, "FILTER": 3}[exchange.role or "RESPONDER"]
    wire = spec.begin_request(1, role) + spec.params(1, params, chunk=chunk) + spec.stdin(1)
    events = server_events(wire, Limits())
    assert events[0] == RequestStarted(1, text_pairs(params), False, Role(role))


def test_corpus_present() -> None:
    assert len(CORPUS) > 10
    roles = {getattr(p.values[0], "role", None) for p in CORPUS}
    assert {"RESPONDER", "AUTHORIZER"} <= roles


# --- Client side -> spec decoder -----------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(params=params_strategy, rid=st.integers(1, 65535), keep=st.booleans())
def test_client_begin(params: list[tuple[bytes, bytes]], rid: int, keep: bool) -> None:
    wire = FastCGIClient().begin(rid, params, role=Role.FILTER, keep_conn=keep)
    records = spec.parse_records(wire)
    begin, *stream, end = records
    assert (begin.type, begin.request_id) == (spec.BEGIN_REQUEST, rid)
    assert begin.content == spec.two_bytes(3) + bytes([1 if keep else 0]) + bytes(5)
    assert all(r.type == spec.PARAMS and r.content for r in stream)
    assert spec.parse_pairs(b"".join(r.content for r in stream)) == params
    assert (end.type, end.content) == (spec.PARAMS, b"")
    assert all((8 + len(r.content) + r.padding) % 8 == 0 for r in records)


def test_client_params_over_one_record() -> None:
    params = [(b"HTTP_COOKIE", b"c" * 70000), (b"X", b"y")]
    wire = FastCGIClient().begin(1, params)
    stream = [r for r in spec.parse_records(wire) if r.type == spec.PARAMS and r.content]
    assert [len(r.content) for r in stream] == [65535, len(encode_pairs(params)) - 65535]
    assert server_events(wire + spec.stdin(1))[0] == RequestStarted(1, text_pairs(params))


@pytest.mark.parametrize("size", [0, 1, 65535, 65536, 140000], ids=lambda s: f"{s}B")
def test_client_streams_match_spec(size: int) -> None:
    data = bytes(i % 256 for i in range(size))
    client = FastCGIClient()
    assert client.stdin(2, data) == spec.stream(spec.STDIN, 2, data, end=False)
    assert client.data(2, data) == spec.stream(spec.DATA, 2, data, end=False)
    assert client.end_stdin(2) == spec.record(spec.STDIN, 2)
    assert client.end_data(2) == spec.record(spec.DATA, 2)


def test_client_discrete_records_match_spec() -> None:
    client = FastCGIClient()
    assert client.abort(7) == spec.abort_request(7)
    names = [b"FCGI_MAX_CONNS", b"FCGI_MAX_REQS", b"FCGI_MPXS_CONNS"]
    assert client.get_values(names) == spec.get_values(names)


@pytest.mark.parametrize("rid", [0, 65536, -1], ids=["zero", "too-big", "negative"])
def test_client_rejects_bad_request_ids(rid: int) -> None:
    client = FastCGIClient()
    calls: list[Callable[[], bytes]] = [
        lambda: client.begin(rid, []),
        lambda: client.stdin(rid, b"x"),
        lambda: client.end_stdin(rid),
        lambda: client.data(rid, b"x"),
        lambda: client.end_data(rid),
        lambda: client.abort(rid),
    ]
    for call in calls:
        with pytest.raises(LocalProtocolError):
            call()


def test_client_get_values_must_fit_one_record() -> None:
    with pytest.raises(LocalProtocolError):
        FastCGIClient().get_values([b"N" * 70000])


# --- Application output -> client side -----------------------------------------------------

APP_OUTPUT = (
    spec.record(spec.STDOUT, 1, b"Status: 200\r\n\r\nhello")
    + spec.record(spec.STDERR, 1, b"warning\n", padding=0)
    + spec.record(spec.STDOUT, 1)
    + spec.record(spec.STDERR, 1, padding=100)
    + spec.end_request(1, 938, spec.REQUEST_COMPLETE)
    + spec.end_request(2, 0, spec.OVERLOADED)
    + spec.record(
        spec.GET_VALUES_RESULT, 0, spec.pairs([(b"FCGI_MPXS_CONNS", b"1"), (b"X" * 200, b"")])
    )
    + spec.unknown_type(42)
)
APP_EVENTS = [
    StdoutData(1, b"Status: 200\r\n\r\nhello"),
    StderrData(1, b"warning\n"),
    StdoutData(1, b""),
    StderrData(1, b""),
    EndRequest(1, 938, spec.REQUEST_COMPLETE),
    EndRequest(2, 0, spec.OVERLOADED),
    ValuesResult(((b"FCGI_MPXS_CONNS", b"1"), (b"X" * 200, b""))),
    UnknownTypeResult(42),
]


@pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "bytewise"])
def test_client_decodes_application_output(bytewise: bool) -> None:
    assert client_events(APP_OUTPUT, eof=True, bytewise=bytewise) == [
        *APP_EVENTS,
        ConnectionClosed(),
    ]


@pytest.mark.parametrize(
    ("wire", "match"),
    [
        (spec.record(spec.END_REQUEST, 1, bytes(7)), "not 8"),
        (spec.record(spec.UNKNOWN_TYPE, 0, bytes(9)), "not 8"),
        (spec.record(spec.GET_VALUES_RESULT, 0, b"\x05\x00ab"), "middle of a name-value pair"),
        (spec.begin_request(1), "not sent by applications"),
        (spec.record(77, 1), "not sent by applications"),
        (spec.record(spec.STDOUT, 1, version=2), "version 2"),
    ],
    ids=[
        "end-request-length",
        "unknown-type-length",
        "values-truncated",
        "begin",
        "type-77",
        "version-2",
    ],
)
def test_client_rejects_bad_output(wire: bytes, match: str) -> None:
    with pytest.raises(RemoteProtocolError, match=match):
        client_events(wire)


def test_client_eof_mid_record() -> None:
    with pytest.raises(RemoteProtocolError, match="mid-record"):
        client_events(APP_OUTPUT[:20], eof=True)
    client = FastCGIClient()
    client.receive_data(b"")
    with pytest.raises(LocalProtocolError):
        client.receive_data(b"more")


# --- Full exchanges: client -> server -> client ---------------------------------------------


def test_client_server_round_trip_multiplexed() -> None:
    client = FastCGIClient()
    server = FastCGIConnection()
    server.receive_data(
        client.get_values([b"FCGI_MPXS_CONNS", b"FCGI_MAX_REQS"])
        + client.begin(1, [(b"A", b"1")], keep_conn=True)
        + client.begin(2, [(b"B", b"2")], keep_conn=True)
        + client.stdin(2, b"body")
        + client.end_stdin(2)
        + client.end_stdin(1)
    )
    events = []
    while (event := server.next_event()) is not NEED_DATA:
        events.append(event)
    assert events == [
        RequestStarted(1, [("A", "1")], True),
        RequestStarted(2, [("B", "2")], True),
        BodyData(2, b"body"),
        BodyEnd(2),
        BodyEnd(1),
    ]
    replies = server.data_to_send()
    response = (
        sent(server, ResponseData(2, b"two"))
        + sent(server, ResponseErrorData(1, b"oops"))
        + sent(server, ResponseEnd(2))
        + sent(server, ResponseData(1, b"x" * 70000))
        + sent(server, ResponseEnd(1, 5))
    )
    got = client_events(replies + response)
    assert got[0] == ValuesResult(((b"FCGI_MPXS_CONNS", b"1"), (b"FCGI_MAX_REQS", b"16")))
    stdout_1 = [e.data for e in got if isinstance(e, StdoutData) and e.request_id == 1]
    assert b"".join(stdout_1) == b"x" * 70000
    assert stdout_1[-1] == b""  # the end of the stream
    ends = [e for e in got if isinstance(e, EndRequest)]
    assert ends == [EndRequest(2, 0, 0), EndRequest(1, 5, 0)]
    responses = spec.parse_responses(response)
    assert responses[2].stdout == b"two"
    assert responses[1].stderr == b"oops"
    assert responses[1].stderr_closed
    assert not responses[2].stderr_closed
