"""FastCGI's rules of order: which record may come when, on the application's side.

Everything that decides the state of a request id lives here, in two tables:

* ``RECORD_KINDS``: what each record type is to the application (a request's
  input, a management record, a record that only applications send, or a
  type the specification does not define);
* ``TRANSITIONS``: one entry per allowed ``(State, Input)`` pair, giving
  ``(Action, next State)``. Anything missing is a protocol error. This is
  h11's ``_state.py`` rule and h2's ``_transitions`` table.

Both are looked up for every record, so both are tuples indexed by numbers
(``RECORD_KINDS[type]``, ``TRANSITIONS[state][input]``): no key is built and
hashed per record. The rules are written as dicts below, then laid out.

``State.NEW`` (an id never begun on this connection) and ``State.IGNORED``
(ended, or refused: its late input is dropped until a new
FCGI_BEGIN_REQUEST) are rows of the table like the others.

The server connection (``_server.py``) classifies each record with
:func:`classify`, looks the pair up, and performs the action; it restates
none of these rules.
"""

from __future__ import annotations

from enum import IntEnum, unique
from typing import Final

from ..._events import Role
from ._wire import (
    FCGI_ABORT_REQUEST,
    FCGI_BEGIN_REQUEST,
    FCGI_DATA,
    FCGI_END_REQUEST,
    FCGI_GET_VALUES,
    FCGI_GET_VALUES_RESULT,
    FCGI_PARAMS,
    FCGI_STDERR,
    FCGI_STDIN,
    FCGI_STDOUT,
    FCGI_UNKNOWN_TYPE,
    TYPE_NAMES,
)

__all__ = [
    "Action",
    "Input",
    "RecordKind",
    "State",
    "ACTIVE_STATES",
    "RECORD_KINDS",
    "STARTED_STATES",
    "TRANSITIONS",
    "STREAM_INPUTS",
    "begin_input",
    "describe_unexpected",
]


@unique
class RecordKind(IntEnum):
    """What a record type is to the application."""

    BEGIN = 1  # FCGI_BEGIN_REQUEST: an input of its request id, classified by role
    ABORT = 2  # FCGI_ABORT_REQUEST: an input of its request id
    STREAM = 3  # FCGI_PARAMS, FCGI_STDIN, FCGI_DATA: inputs, empty content ends the stream
    GET_VALUES = 4  # a management record (request id 0), answered by the codec
    OUTBOUND = 5  # a type only applications send: a protocol error from a web server
    UNKNOWN = 6  # not in the specification: answered with FCGI_UNKNOWN_TYPE, skipped


_KINDS: Final[dict[int, RecordKind]] = {
    FCGI_BEGIN_REQUEST: RecordKind.BEGIN,
    FCGI_ABORT_REQUEST: RecordKind.ABORT,
    FCGI_PARAMS: RecordKind.STREAM,
    FCGI_STDIN: RecordKind.STREAM,
    FCGI_DATA: RecordKind.STREAM,
    FCGI_GET_VALUES: RecordKind.GET_VALUES,
    FCGI_END_REQUEST: RecordKind.OUTBOUND,
    FCGI_STDOUT: RecordKind.OUTBOUND,
    FCGI_STDERR: RecordKind.OUTBOUND,
    FCGI_GET_VALUES_RESULT: RecordKind.OUTBOUND,
    FCGI_UNKNOWN_TYPE: RecordKind.OUTBOUND,
}
# Indexed by the record type, a byte: every other type is UNKNOWN.
RECORD_KINDS: Final = tuple(_KINDS.get(rtype, RecordKind.UNKNOWN) for rtype in range(256))


@unique
class State(IntEnum):
    """The state of one request id on one connection."""

    NEW = 0  # never begun on this connection
    IGNORED = 1  # ended (our END_REQUEST sent) or refused: input is dropped
    R_PARAMS = 2  # RESPONDER reading FCGI_PARAMS
    A_PARAMS = 3  # AUTHORIZER reading FCGI_PARAMS
    F_PARAMS = 4  # FILTER reading FCGI_PARAMS
    R_STDIN = 5  # RESPONDER reading FCGI_STDIN
    F_STDIN = 6  # FILTER reading FCGI_STDIN
    A_STDIN = 7  # AUTHORIZER started; an FCGI_STDIN stream may still come, discarded
    F_DATA = 8  # FILTER reading FCGI_DATA
    DONE = 9  # all input read; the response is being written
    ABORTED = 10  # RequestAborted emitted; waiting for ResponseEnd


_STATE_TEXT: Final = {
    State.NEW: "never begun",
    State.IGNORED: "ended",
    State.R_PARAMS: "reading FCGI_PARAMS",
    State.A_PARAMS: "reading FCGI_PARAMS",
    State.F_PARAMS: "reading FCGI_PARAMS",
    State.R_STDIN: "reading FCGI_STDIN",
    State.F_STDIN: "reading FCGI_STDIN",
    State.A_STDIN: "started (Authorizer)",
    State.F_DATA: "reading FCGI_DATA",
    State.DONE: "input complete",
    State.ABORTED: "aborted",
}


@unique
class Input(IntEnum):
    """A record, as the state of its request id sees it."""

    BEGIN_RESPONDER = 1
    BEGIN_AUTHORIZER = 2
    BEGIN_FILTER = 3
    BEGIN_UNKNOWN_ROLE = 4  # a role the specification does not define, or one we do not play
    ABORT = 5
    PARAMS = 6
    PARAMS_END = 7  # the empty FCGI_PARAMS record
    STDIN = 8
    STDIN_END = 9
    DATA = 10
    DATA_END = 11


_INPUT_TEXT: Final = {
    Input.BEGIN_RESPONDER: "FCGI_BEGIN_REQUEST",
    Input.BEGIN_AUTHORIZER: "FCGI_BEGIN_REQUEST",
    Input.BEGIN_FILTER: "FCGI_BEGIN_REQUEST",
    Input.BEGIN_UNKNOWN_ROLE: "FCGI_BEGIN_REQUEST",
    Input.ABORT: "FCGI_ABORT_REQUEST",
    Input.PARAMS: "FCGI_PARAMS",
    Input.PARAMS_END: "empty FCGI_PARAMS",
    Input.STDIN: "FCGI_STDIN",
    Input.STDIN_END: "empty FCGI_STDIN",
    Input.DATA: "FCGI_DATA",
    Input.DATA_END: "empty FCGI_DATA",
}
_BEGIN_INPUTS: Final = frozenset(
    (Input.BEGIN_RESPONDER, Input.BEGIN_AUTHORIZER, Input.BEGIN_FILTER, Input.BEGIN_UNKNOWN_ROLE)
)

# The inputs the records of an input stream are: record type -> (a record
# with content, the empty record that ends the stream).
STREAM_INPUTS: Final[dict[int, tuple[Input, Input]]] = {
    FCGI_PARAMS: (Input.PARAMS, Input.PARAMS_END),
    FCGI_STDIN: (Input.STDIN, Input.STDIN_END),
    FCGI_DATA: (Input.DATA, Input.DATA_END),
}
_ROLE_INPUTS: Final[dict[int, Input]] = {
    int(Role.RESPONDER): Input.BEGIN_RESPONDER,
    int(Role.AUTHORIZER): Input.BEGIN_AUTHORIZER,
    int(Role.FILTER): Input.BEGIN_FILTER,
}


def begin_input(role: int, roles: frozenset[int]) -> Input:
    """The input FCGI_BEGIN_REQUEST for ``role`` is, when the application plays ``roles``."""
    if role not in roles:
        return Input.BEGIN_UNKNOWN_ROLE
    return _ROLE_INPUTS.get(role, Input.BEGIN_UNKNOWN_ROLE)


@unique
class Action(IntEnum):
    """What the server connection does for an allowed ``(State, Input)``."""

    BEGIN = 0  # admit the request (or refuse it: overloaded, can't multiplex)
    REJECT_ROLE = 1  # queue END_REQUEST(FCGI_UNKNOWN_ROLE)
    PARAMS = 2  # decode name-value pairs
    START = 3  # emit RequestStarted
    START_AUTH = 4  # emit RequestStarted and BodyEnd (an Authorizer has no body)
    BODY = 5  # emit BodyData
    BODY_END = 6  # emit BodyEnd
    FDATA = 7  # emit FilterData
    FDATA_END = 8  # emit FilterDataEnd
    ABORT_EARLY = 9  # queue END_REQUEST ourselves, no event
    ABORT = 10  # emit RequestAborted
    IGNORE = 11  # drop the record


_PARAMS_STATES: Final = frozenset((State.R_PARAMS, State.A_PARAMS, State.F_PARAMS))
# Begun and not ended: the application owes these ids an END_REQUEST.
ACTIVE_STATES: Final = frozenset(State) - {State.NEW, State.IGNORED}
# RequestStarted was emitted (FCGI_PARAMS complete): a response may be sent.
STARTED_STATES: Final = ACTIVE_STATES - _PARAMS_STATES
_STARTED_STATES: Final = (State.R_STDIN, State.F_STDIN, State.A_STDIN, State.F_DATA, State.DONE)
_REQUEST_INPUTS: Final = (
    Input.ABORT,
    Input.PARAMS,
    Input.PARAMS_END,
    Input.STDIN,
    Input.STDIN_END,
    Input.DATA,
    Input.DATA_END,
)


def _build_transitions() -> dict[tuple[State, Input], tuple[Action, State]]:
    t: dict[tuple[State, Input], tuple[Action, State]] = {}
    # A request id is (re)used by FCGI_BEGIN_REQUEST, only while inactive.
    for state in (State.NEW, State.IGNORED):
        t[state, Input.BEGIN_RESPONDER] = (Action.BEGIN, State.R_PARAMS)
        t[state, Input.BEGIN_AUTHORIZER] = (Action.BEGIN, State.A_PARAMS)
        t[state, Input.BEGIN_FILTER] = (Action.BEGIN, State.F_PARAMS)
        t[state, Input.BEGIN_UNKNOWN_ROLE] = (Action.REJECT_ROLE, State.IGNORED)
    # Inactive ids ignore every other record (specification, section 3.3); ids
    # never begun have no entry: their records are a protocol error.
    for inp in _REQUEST_INPUTS:
        t[State.IGNORED, inp] = (Action.IGNORE, State.IGNORED)
    # FCGI_PARAMS, then its empty record starts the request.
    for state in _PARAMS_STATES:
        t[state, Input.PARAMS] = (Action.PARAMS, state)
        t[state, Input.ABORT] = (Action.ABORT_EARLY, State.IGNORED)
    t[State.R_PARAMS, Input.PARAMS_END] = (Action.START, State.R_STDIN)
    t[State.F_PARAMS, Input.PARAMS_END] = (Action.START, State.F_STDIN)
    t[State.A_PARAMS, Input.PARAMS_END] = (Action.START_AUTH, State.A_STDIN)
    # FCGI_STDIN: the body.
    t[State.R_STDIN, Input.STDIN] = (Action.BODY, State.R_STDIN)
    t[State.R_STDIN, Input.STDIN_END] = (Action.BODY_END, State.DONE)
    t[State.F_STDIN, Input.STDIN] = (Action.BODY, State.F_STDIN)
    t[State.F_STDIN, Input.STDIN_END] = (Action.BODY_END, State.F_DATA)
    # An Authorizer's FCGI_STDIN, if a web server sends one anyway: discarded.
    t[State.A_STDIN, Input.STDIN] = (Action.IGNORE, State.A_STDIN)
    t[State.A_STDIN, Input.STDIN_END] = (Action.IGNORE, State.DONE)
    # FCGI_DATA: the FILTER's file, strictly after FCGI_STDIN (section 6.1).
    t[State.F_DATA, Input.DATA] = (Action.FDATA, State.F_DATA)
    t[State.F_DATA, Input.DATA_END] = (Action.FDATA_END, State.DONE)
    # FCGI_ABORT_REQUEST once started: the application decides how to end.
    for state in _STARTED_STATES:
        t[state, Input.ABORT] = (Action.ABORT, State.ABORTED)
    # Input still in flight for an aborted request is dropped.
    for inp in (Input.ABORT, Input.STDIN, Input.STDIN_END, Input.DATA, Input.DATA_END):
        t[State.ABORTED, inp] = (Action.IGNORE, State.ABORTED)
    return t


Transition = tuple[Action, State]
Rows = tuple[tuple[Transition | None, ...], ...]


def _rows(rules: dict[tuple[State, Input], Transition]) -> Rows:
    """``rules`` as ``rows[state][input]``, indexed by their numbers (``None``
    where there is no rule). Input starts at 1: entry 0 of each row is None."""
    inputs = range(max(Input) + 1)
    return tuple(
        tuple(rules.get((State(s), Input(i))) if i else None for i in inputs)
        for s in range(max(State) + 1)
    )


TRANSITIONS: Final = _rows(_build_transitions())


def describe_unexpected(state: State, inp: Input, request_id: int) -> str:
    """The error message for an input the table has no entry for."""
    what = _INPUT_TEXT[inp]
    if state is State.NEW:
        return f"{what} for request {request_id}, which was never begun"
    if inp in _BEGIN_INPUTS:
        return f"duplicate FCGI_BEGIN_REQUEST for active request {request_id}"
    return f"unexpected {what} for request {request_id} ({_STATE_TEXT[state]})"


def type_name(rtype: int) -> str:
    """A record type's name in the specification, or its number."""
    return TYPE_NAMES.get(rtype, str(rtype))
