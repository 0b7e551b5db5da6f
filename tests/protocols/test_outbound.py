"""One outbound API: ``codec.send(event) -> list of buffers`` for every event, refusals
included; the protocol facts (head style, one request per connection, raw body) are
the codec's."""

from __future__ import annotations

import pytest

from tests.support import fcgi_spec as spec
from tests.support.sending import sent
from wsgiwire._errors import LocalProtocolError
from wsgiwire._events import NEED_DATA, RequestRefused, ResponseData, ResponseEnd
from wsgiwire.core._response import HeadStyle
from wsgiwire.protocols._fastcgi import FastCGIConnection
from wsgiwire.protocols._scgi import SCGIConnection
from wsgiwire.protocols._uwsgi import UWSGIConnection

_SCGI = b"24:CONTENT_LENGTH\x000\x00SCGI\x001\x00,"
_UWSGI_BLOCK = b"\x0e\x00CONTENT_LENGTH\x01\x000"
_UWSGI = b"\x00" + len(_UWSGI_BLOCK).to_bytes(2, "little") + b"\x00" + _UWSGI_BLOCK


def test_protocol_facts_belong_to_the_codec() -> None:
    assert FastCGIConnection.head_style is HeadStyle.CGI
    assert SCGIConnection.head_style is HeadStyle.CGI
    assert UWSGIConnection.head_style is HeadStyle.HTTP
    assert not FastCGIConnection.one_request_per_connection
    assert SCGIConnection.one_request_per_connection
    assert UWSGIConnection.one_request_per_connection
    assert not FastCGIConnection.raw_body
    assert SCGIConnection.raw_body and UWSGIConnection.raw_body


def test_fastcgi_refusal_defaults_to_overloaded() -> None:
    conn = FastCGIConnection()
    conn.receive_data(spec.request(1, [(b"REQUEST_METHOD", b"GET")], b""))
    conn.next_event()
    out = conn.send(RequestRefused(1, b"Status: 503\r\n\r\nignored by FastCGI"))
    assert isinstance(out, list)
    assert b"".join(out) == spec.end_request(1, 0, spec.OVERLOADED)
    assert conn.active_requests == 0


@pytest.mark.parametrize(
    ("make", "wire"),
    [(SCGIConnection, _SCGI), (UWSGIConnection, _UWSGI)],
    ids=["scgi", "uwsgi"],
)
def test_one_shot_refusal_sends_the_reply_and_ends(
    make: type[SCGIConnection | UWSGIConnection], wire: bytes
) -> None:
    conn = make()
    conn.receive_data(wire)
    while conn.next_event() is not NEED_DATA:
        pass
    page = b"Status: 503 Service Unavailable\r\n\r\n503\n"
    assert conn.send(RequestRefused(0, page)) == [page]
    assert conn.should_close
    with pytest.raises(LocalProtocolError):
        conn.send(ResponseEnd(0))
    with pytest.raises(LocalProtocolError):
        sent(conn, ResponseData(0, b"late"))
