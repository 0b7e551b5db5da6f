"""Errors keep their meaning: immutable, typed, re-raised as they were in ERROR state."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.support import fcgi_spec as spec
from wsgiwire._errors import (
    BadRequest,
    LimitExceeded,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
)
from wsgiwire._events import NEED_DATA
from wsgiwire._limits import Limits
from wsgiwire.protocols._fastcgi import FastCGIConnection
from wsgiwire.protocols._scgi import SCGIConnection
from wsgiwire.protocols._uwsgi import UWSGIConnection

Codec = FastCGIConnection | SCGIConnection | UWSGIConnection

_P = [(b"REQUEST_METHOD", b"POST"), (b"CONTENT_LENGTH", b"4")]


def _scgi_wire(body: bytes) -> bytes:
    block = b"CONTENT_LENGTH\x004\x00SCGI\x001\x00REQUEST_METHOD\x00POST\x00"
    return str(len(block)).encode() + b":" + block + b"," + body


def _uwsgi_wire(body: bytes) -> bytes:
    block = b"".join(
        len(k).to_bytes(2, "little") + k + len(v).to_bytes(2, "little") + v for k, v in _P
    )
    return b"\x00" + len(block).to_bytes(2, "little") + b"\x00" + block + body


# Each codec, given a body over max_body_size=3: LimitExceeded, 413.
CASES: list[tuple[str, Callable[[], Codec], bytes, int | None]] = [
    ("fastcgi", lambda: FastCGIConnection(Limits(max_body_size=3)),
     spec.request(1, _P, b"four"), 1),
    ("scgi", lambda: SCGIConnection(Limits(max_body_size=3)), _scgi_wire(b"four"), 0),
    ("uwsgi", lambda: UWSGIConnection(Limits(max_body_size=3)), _uwsgi_wire(b"four"), 0),
]


def _first_error(codec: Codec, wire: bytes) -> ProtocolError:
    codec.receive_data(wire)
    with pytest.raises(ProtocolError) as info:
        for _ in range(10):
            assert codec.next_event() is not NEED_DATA
    return info.value


@pytest.mark.parametrize(("name", "make", "wire", "request_id"), CASES, ids=[c[0] for c in CASES])
def test_error_state_re_raises_the_original_error(
    name: str, make: Callable[[], Codec], wire: bytes, request_id: int | None
) -> None:
    """Every codec: the same class, limit, status hint and request id, every time."""
    codec = make()
    first = _first_error(codec, wire)
    assert isinstance(first, LimitExceeded)
    assert (first.limit, first.status_hint, first.request_id) == ("max_body_size", 413, request_id)
    for _ in range(2):
        with pytest.raises(LimitExceeded) as again:
            codec.next_event()
        error = again.value
        assert error is not first
        assert (error.limit, error.value) == (first.limit, first.value)
        assert error.maximum == first.maximum
        assert (error.status_hint, error.request_id, error.close) == (413, request_id, True)
        assert error.fcgi_protocol_status == first.fcgi_protocol_status
        assert "ERROR state" in error.msg and first.msg in error.msg
        assert error.peer_fault


def test_errors_are_immutable() -> None:
    exc = LimitExceeded("max_body_size", 5, 3, status_hint=413, request_id=1)
    for field in ("msg", "status_hint", "request_id", "close", "fcgi_protocol_status",
                  "limit", "value", "maximum"):
        with pytest.raises(AttributeError):
            setattr(exc, field, 0)
    assert (exc.status_hint, exc.request_id) == (413, 1)


def test_detached_keeps_class_and_fields_without_traceback() -> None:
    try:
        raise BadRequest("malformed CONTENT_LENGTH", status_hint=400, request_id=7)
    except BadRequest as raised:
        copy = raised.detached()
    assert type(copy) is BadRequest
    assert copy.__traceback__ is None
    assert (copy.msg, copy.status_hint, copy.request_id) == ("malformed CONTENT_LENGTH", 400, 7)
    assert str(copy) == "malformed CONTENT_LENGTH"


def test_peer_fault_tells_remote_from_local() -> None:
    assert RemoteProtocolError("x").peer_fault
    assert LimitExceeded("max_body_size", 2, 1).peer_fault
    assert BadRequest("x").peer_fault
    assert not LocalProtocolError("x").peer_fault
    assert not ProtocolError("x").peer_fault
    assert LocalProtocolError("x").status_hint == 500
