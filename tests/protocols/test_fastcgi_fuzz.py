"""Fuzzing with one invariant: any input gives events or ``RemoteProtocolError``.

Never another exception, never a hang (``next_event`` must reach ``NEED_DATA``
or ``ConnectionClosed`` in a bounded number of calls), whether the bytes come
in one piece or one at a time; and whatever the codec writes back, before or
after an error, is well-formed FastCGI for the independent decoder.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import fcgi_spec as spec
from tests.support.sending import sent
from wsgiwire._errors import LocalProtocolError, RemoteProtocolError
from wsgiwire._events import NEED_DATA, ConnectionClosed, ResponseData, ResponseEnd
from wsgiwire._limits import Limits
from wsgiwire.protocols._fastcgi import FastCGIClient, FastCGIConnection

MAX_CALLS = 100_000

CONFIGS: list[dict[str, Any]] = [
    {},
    {"multiplex": False},
    {
        "limits": Limits(
            max_params_bytes=64,
            max_param_count=3,
            max_name_length=8,
            max_value_length=16,
            max_body_size=20,
            max_requests_per_connection=2,
        )
    },
]


def check_replies(data: bytes) -> None:
    for rec in spec.parse_records(data):
        assert rec.version == 1
        assert rec.type in (spec.END_REQUEST, spec.GET_VALUES_RESULT, spec.UNKNOWN_TYPE)
        assert (8 + len(rec.content) + rec.padding) % 8 == 0


def run_server(chunks: list[bytes], eof: bool, **kwargs: Any) -> None:
    conn = FastCGIConnection(**kwargs)
    replies = []
    try:
        for chunk in [*chunks, b""] if eof else chunks:
            conn.receive_data(chunk)
            for _ in range(MAX_CALLS):
                event = conn.next_event()
                if event is NEED_DATA or isinstance(event, ConnectionClosed):
                    break
            else:
                raise AssertionError("next_event() never returned NEED_DATA")
            replies.append(conn.data_to_send())
    except RemoteProtocolError as exc:
        assert exc.close
        try:
            conn.next_event()
        except RemoteProtocolError:
            pass
        else:
            raise AssertionError("the ERROR state must be sticky") from exc
    replies.append(conn.data_to_send())
    check_replies(b"".join(replies))
    # Whatever state it is in, answering any request id is bytes or a LocalProtocolError.
    out = []
    for rid in range(4):
        try:
            out.append(sent(conn, ResponseData(rid, b"x")))
            out.append(sent(conn, ResponseEnd(rid)))
        except LocalProtocolError:
            pass
    spec.parse_responses(b"".join(out))


def run_both_ways(data: bytes, eof: bool, **kwargs: Any) -> None:
    run_server([data] if data else [], eof, **kwargs)
    run_server([data[i : i + 1] for i in range(len(data))], eof, **kwargs)


@settings(max_examples=400, deadline=None)
@given(data=st.binary(max_size=400), eof=st.booleans(), config=st.sampled_from(CONFIGS))
def test_any_bytes(data: bytes, eof: bool, config: dict[str, Any]) -> None:
    run_both_ways(data, eof, **config)


VALID_PREFIXES = [
    spec.begin_request(1),
    spec.begin_request(1) + spec.stream(spec.PARAMS, 1, spec.pairs([(b"A", b"1")]), end=False),
    spec.begin_request(1) + spec.params(1, [(b"A", b"1")]),
    spec.request(1, [(b"A", b"1")], b"body"),
    spec.request(1, [], role=spec.FILTER, flags=spec.KEEP_CONN),
    spec.begin_request(1, spec.AUTHORIZER) + spec.params(1, []),
    spec.begin_request(1) + spec.begin_request(2) + spec.params(2, []),
    spec.get_values([b"FCGI_MPXS_CONNS"]),
    spec.request(1, []) + spec.abort_request(1),
]


@settings(max_examples=400, deadline=None)
@given(
    prefix=st.sampled_from(VALID_PREFIXES),
    tail=st.binary(max_size=200),
    eof=st.booleans(),
    config=st.sampled_from(CONFIGS),
)
def test_any_bytes_after_a_valid_prefix(
    prefix: bytes, tail: bytes, eof: bool, config: dict[str, Any]
) -> None:
    run_both_ways(prefix + tail, eof, **config)


# Structured fuzzing: well-framed records, mostly of the types a web server sends and for
# request ids 1 and 2, so that the input gets past the framing and exercises the state
# table, the pair decoder (pairs split anywhere across records) and the limits.
ids = st.sampled_from([1, 1, 1, 2, 2, 0, 65535])
pair_bytes = st.lists(st.tuples(st.binary(max_size=10), st.binary(max_size=20)), max_size=4).map(
    spec.pairs
)


def _cut(data: bytes, start: int, stop: int) -> bytes:
    return data[start % (len(data) + 1) :][: stop % (len(data) + 1) or None]


garbage = st.builds(
    lambda rtype, rid, content, padding: spec.record(rtype, rid, content, padding=padding),
    st.sampled_from([*range(0, 13), 200]),
    ids,
    st.binary(max_size=40),
    st.sampled_from([None, 0, 1, 255]),
)
records = st.one_of(
    st.builds(
        spec.begin_request,
        ids,
        st.sampled_from([1, 1, 2, 3, 0, 9]),
        st.sampled_from([0, 1, 1, 255]),
    ),
    st.builds(
        lambda rid, data, start, stop: spec.record(spec.PARAMS, rid, _cut(data, start, stop)),
        ids,
        pair_bytes,
        st.integers(0, 50),
        st.integers(0, 50),
    ),
    st.builds(lambda rid: spec.record(spec.PARAMS, rid), ids),
    st.builds(lambda rid, data: spec.record(spec.STDIN, rid, data), ids, st.binary(max_size=30)),
    st.builds(lambda rid: spec.record(spec.STDIN, rid), ids),
    st.builds(lambda rid, data: spec.record(spec.DATA, rid, data), ids, st.binary(max_size=30)),
    st.builds(lambda rid: spec.record(spec.DATA, rid), ids),
    st.builds(spec.abort_request, ids),
    st.builds(lambda data: spec.record(spec.GET_VALUES, 0, data), pair_bytes),
    garbage,
)


@st.composite
def request_records(draw: st.DrawFn, rid: int) -> list[bytes]:
    """One well-formed request as a list of records (params and body split anywhere)."""
    role = draw(st.sampled_from([1, 2, 3]))
    out = [spec.begin_request(rid, role, draw(st.sampled_from([0, 1])))]
    params = draw(pair_bytes)
    out += spec.stream_records(spec.PARAMS, rid, params, draw(st.lists(st.integers(0, 80))))
    if role != spec.AUTHORIZER or draw(st.booleans()):
        body = draw(st.binary(max_size=30))
        out += spec.stream_records(spec.STDIN, rid, body, draw(st.lists(st.integers(0, 30))))
    if role == spec.FILTER:
        out += spec.stream_records(spec.DATA, rid, draw(st.binary(max_size=30)), [5])
    return out


@st.composite
def mutated_streams(draw: st.DrawFn) -> list[bytes]:
    """One or two requests interleaved, then a few records inserted, dropped or repeated."""
    queues = [draw(request_records(1)), draw(request_records(2))][: draw(st.integers(1, 2))]
    merged: list[bytes] = []
    while any(queues):
        queue = draw(st.sampled_from([q for q in queues if q]))
        merged.append(queue.pop(0))
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(merged)))
        op = draw(st.sampled_from(["insert", "drop", "repeat"]))
        if op == "insert":
            merged.insert(at, draw(records))
        elif merged and at < len(merged):
            if op == "drop":
                del merged[at]
            else:
                merged.insert(at, merged[at])
    return merged


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=mutated_streams(), eof=st.booleans(), config=st.sampled_from(CONFIGS))
def test_mutated_requests(stream: list[bytes], eof: bool, config: dict[str, Any]) -> None:
    data = b"".join(stream)
    run_server([data], eof, **config)
    run_server(stream, eof, **config)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    stream=st.lists(records, max_size=25),
    eof=st.booleans(),
    config=st.sampled_from(CONFIGS),
)
def test_any_record_sequence(stream: list[bytes], eof: bool, config: dict[str, Any]) -> None:
    data = b"".join(stream)
    run_server([data] if data else [], eof, **config)
    run_server(stream, eof, **config)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=300), eof=st.booleans())
def test_client_any_bytes(data: bytes, eof: bool) -> None:
    for chunks in ([data] if data else [], [data[i : i + 1] for i in range(len(data))]):
        client = FastCGIClient()
        try:
            for chunk in [*chunks, b""] if eof else chunks:
                client.receive_data(chunk)
                for _ in range(MAX_CALLS):
                    event = client.next_event()
                    if event is NEED_DATA or isinstance(event, ConnectionClosed):
                        break
                else:
                    raise AssertionError("next_event() never returned NEED_DATA")
        except RemoteProtocolError:
            pass
