"""Every request state x every record a web server can send for it.

The allowed pairs are written out here again from the specification's role
protocols (sections 5 and 6), independently of the codec's table: a pair
listed here must be accepted, any other must raise ``RemoteProtocolError``
carrying the request id. A hypothesis test then drives random record
sequences through the codec against a small model of the same rules.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support import fcgi_spec as spec
from tests.support.sending import sent
from wsgiwire._errors import RemoteProtocolError
from wsgiwire._events import NEED_DATA, ResponseEnd
from wsgiwire.protocols._fastcgi import FastCGIConnection

R, A, F = spec.RESPONDER, spec.AUTHORIZER, spec.FILTER
PAIR = spec.pair(b"K", b"v")

# How to bring request 1 into each state.
STATES = {
    "never-begun": b"",
    "ended": spec.request(1, [], flags=spec.KEEP_CONN),  # + ResponseEnd, see reach()
    "rejected": spec.begin_request(1, role=9),
    "responder-params": spec.begin_request(1, R),
    "authorizer-params": spec.begin_request(1, A),
    "filter-params": spec.begin_request(1, F),
    "responder-stdin": spec.begin_request(1, R) + spec.params(1, []),
    "filter-stdin": spec.begin_request(1, F) + spec.params(1, []),
    "authorizer-started": spec.begin_request(1, A) + spec.params(1, []),
    "filter-data": spec.request(1, [], role=F),
    "responder-input-done": spec.request(1, []),
    "filter-input-done": spec.request(1, [], role=F) + spec.data_stream(1),
    "authorizer-input-done": spec.request(1, [], role=A),
    "aborted": spec.request(1, []) + spec.abort_request(1),
}

INPUTS = {
    "begin-responder": spec.begin_request(1, R),
    "begin-authorizer": spec.begin_request(1, A),
    "begin-filter": spec.begin_request(1, F),
    "begin-unknown-role": spec.begin_request(1, 77),
    "abort": spec.abort_request(1),
    "params": spec.record(spec.PARAMS, 1, PAIR),
    "params-end": spec.record(spec.PARAMS, 1),
    "stdin": spec.record(spec.STDIN, 1, b"x"),
    "stdin-end": spec.record(spec.STDIN, 1),
    "data": spec.record(spec.DATA, 1, b"x"),
    "data-end": spec.record(spec.DATA, 1),
}
BEGINS = {"begin-responder", "begin-authorizer", "begin-filter", "begin-unknown-role"}
ANY_BUT_BEGIN = set(INPUTS) - BEGINS
PARAMS_PHASE = {"params", "params-end", "abort"}

ALLOWED = {
    # A request id is (re)used only while inactive; inactive ids ignore everything else.
    "never-begun": BEGINS,
    "ended": set(INPUTS),
    "rejected": set(INPUTS),
    "responder-params": PARAMS_PHASE,
    "authorizer-params": PARAMS_PHASE,
    "filter-params": PARAMS_PHASE,
    "responder-stdin": {"stdin", "stdin-end", "abort"},
    "filter-stdin": {"stdin", "stdin-end", "abort"},
    # An Authorizer gets no body; an FCGI_STDIN stream, if any, is discarded.
    "authorizer-started": {"stdin", "stdin-end", "abort"},
    "filter-data": {"data", "data-end", "abort"},
    "responder-input-done": {"abort"},
    "filter-input-done": {"abort"},
    "authorizer-input-done": {"abort"},
    # Input in flight when the web server aborted is dropped.
    "aborted": {"abort", "stdin", "stdin-end", "data", "data-end"},
}


def drain(conn: FastCGIConnection) -> None:
    for _ in range(1000):
        if conn.next_event() is NEED_DATA:
            return
    raise AssertionError("next_event() never returned NEED_DATA")


def reach(state: str) -> FastCGIConnection:
    conn = FastCGIConnection()
    if STATES[state]:
        conn.receive_data(STATES[state])
    drain(conn)
    if state == "ended":
        sent(conn, ResponseEnd(1))
    conn.data_to_send()
    return conn


@pytest.mark.parametrize("state", sorted(STATES))
@pytest.mark.parametrize("inp", sorted(INPUTS))
def test_state_by_input(state: str, inp: str) -> None:
    conn = reach(state)
    conn.receive_data(INPUTS[inp])
    if inp in ALLOWED[state]:
        drain(conn)
    else:
        with pytest.raises(RemoteProtocolError) as info:
            drain(conn)
        assert info.value.request_id == 1
        assert info.value.close


# --- Random record sequences against a model ------------------------------------------

RECORDS = st.sampled_from(sorted(INPUTS)).map(lambda name: (name, INPUTS[name]))


class Model:
    """The role protocols, as plainly as possible, for request id 1 only."""

    def __init__(self) -> None:
        self.state = "never-begun"

    def step(self, inp: str) -> bool:
        """Apply ``inp``; False if the codec must reject it."""
        s = self.state
        if inp not in ALLOWED[s]:
            return False
        if inp in BEGINS:
            role = inp.split("-", 1)[1]
            self.state = "rejected" if role == "unknown-role" else f"{role}-params"
        elif s in ("ended", "rejected", "aborted"):
            pass
        elif inp == "abort":
            self.state = "ended" if s.endswith("-params") else "aborted"
        elif inp == "params-end":
            role = s.split("-")[0]
            self.state = "authorizer-started" if role == "authorizer" else f"{role}-stdin"
        elif inp == "stdin-end":
            self.state = "filter-data" if s == "filter-stdin" else s.split("-")[0] + "-input-done"
        elif inp == "data-end":
            self.state = "filter-input-done"
        return True


@settings(max_examples=300, deadline=None)
@given(st.lists(RECORDS, max_size=14))
def test_random_sequences_follow_the_model(records: list[tuple[str, bytes]]) -> None:
    model = Model()
    conn = FastCGIConnection()
    for name, wire in records:
        ok = model.step(name)
        conn.receive_data(wire)
        if not ok:
            with pytest.raises(RemoteProtocolError):
                drain(conn)
            return
        drain(conn)
        active = model.state not in ("never-begun", "ended", "rejected")
        assert conn.active_requests == int(active)
