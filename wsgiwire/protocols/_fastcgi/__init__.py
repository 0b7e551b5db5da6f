"""A sans-I/O FastCGI 1.0 codec: bytes in, events out; events in, bytes out.

The protocol (Open Market's "FastCGI Specification", version 1.0, 1996), as
this module implements it:

Records
    Everything on the connection travels in records: an 8-byte header
    (version, type, requestId, contentLength, paddingLength, reserved) followed
    by 0..65535 content bytes and 0..255 padding bytes, which the receiver
    skips. Only version 1 exists; anything else means the byte stream is not
    FastCGI (or lost sync), so the connection is unusable. Records may be split
    or coalesced arbitrarily by the transport: the codec parses a record only
    once all of it has arrived, whatever the pieces were. Records we send are
    padded to a multiple of 8 bytes, as the specification recommends.

Management records (requestId 0)
    FCGI_GET_VALUES asks for variables (name-value pairs with empty values);
    the answer is one FCGI_GET_VALUES_RESULT with the values of the names we
    know (FCGI_MAX_CONNS, FCGI_MAX_REQS, FCGI_MPXS_CONNS); other names are
    omitted. A record type we do not understand is answered with
    FCGI_UNKNOWN_TYPE. Both replies come from the codec itself and are
    collected by :meth:`FastCGIConnection.data_to_send`; the application never
    sees them.

Requests
    A request id becomes active with FCGI_BEGIN_REQUEST (role and the
    FCGI_KEEP_CONN flag) and inactive when the application sends
    FCGI_END_REQUEST. Its input arrives on streams: records of one type whose
    contents concatenate, ended by an empty record of that type. FCGI_PARAMS
    carries the CGI variables as name-value pairs; the pairs are decoded as
    one byte stream, so a pair (or even a 4-byte length) split across two
    records is decoded exactly as if it had come in one. Then FCGI_STDIN
    carries the request body, and for the FILTER role FCGI_DATA carries the
    file to filter. The order of the streams is fixed by the role; the rules
    live in one table, ``_state.TRANSITIONS``.

Responses
    FCGI_STDOUT (and optionally FCGI_STDERR) streams, each ended by an empty
    record, then FCGI_END_REQUEST with the appStatus and protocolStatus
    FCGI_REQUEST_COMPLETE. A request the application will not run is ended with
    only FCGI_END_REQUEST and protocolStatus FCGI_CANT_MPX_CONN,
    FCGI_OVERLOADED or FCGI_UNKNOWN_ROLE.

Where the specification is silent or loose, this codec decides as follows:

* Records for a request id that was never begun are a protocol error (the
  front-end and the web server disagree about the stream; flup drops them
  silently). Records for an id that has been *ended* (our END_REQUEST sent,
  or the request rejected) are ignored until a new FCGI_BEGIN_REQUEST for
  that id, as the specification says: the web server may still have STDIN or
  an FCGI_ABORT_REQUEST in flight when our END_REQUEST crosses them.
* FCGI_BEGIN_REQUEST content must be exactly 8 bytes; FCGI_ABORT_REQUEST
  content is ignored.
* Record types the web server is never supposed to send (END_REQUEST, STDOUT,
  STDERR, GET_VALUES_RESULT, UNKNOWN_TYPE) are a protocol error. Types the
  specification does not define (0 and 12..255) are answered with
  FCGI_UNKNOWN_TYPE whatever their request id, and otherwise skipped.
* AUTHORIZER requests get ``RequestStarted`` and ``BodyEnd`` together when
  FCGI_PARAMS ends: an Authorizer has no request body (section 6.3), and
  Apache's mod_authnz_fcgi sends no FCGI_STDIN at all. If a web server does
  send an FCGI_STDIN stream to an Authorizer anyway, its content is discarded
  and its empty record accepted; FCGI_STDIN after that is an error.
* FILTER input is strictly sequential (section 6.1): FCGI_DATA before the
  end of FCGI_STDIN is an error. The FCGI_DATA stream is bounded by
  ``max_body_size`` like the body.
* FCGI_ABORT_REQUEST for a request not yet started (still in FCGI_PARAMS) is
  answered by the codec with END_REQUEST (appStatus 0, REQUEST_COMPLETE) and
  no event; for a started one, ``RequestAborted`` is emitted and the
  front-end ends the request with ``ResponseEnd``. Input arriving for an
  aborted request is ignored.
* EOF is clean only with no record half-read and no request active; a
  request active at EOF (even one whose input was complete) means the web
  server gave it up, reported as ``RemoteProtocolError`` with its id.
* ``should_close`` becomes true whenever an END_REQUEST goes out for a
  request begun without FCGI_KEEP_CONN, including the codec's own rejections
  (the specification: "the application closes the connection after
  responding to this request").
* ``max_reqs`` and ``max_conns`` are what FCGI_GET_VALUES reports; the number
  of requests active at once on one connection is capped at the smaller of
  ``max_reqs`` and ``limits.max_requests_per_connection`` (1 when
  ``multiplex`` is false); past the cap a new request gets FCGI_OVERLOADED
  (FCGI_CANT_MPX_CONN when not multiplexing).

The package, one job a file:

* ``_wire.py``: the wire format (records, name-value pairs, stream framing),
  shared by both sides;
* ``_state.py``: the rules of order, one table over ``State`` x ``Input``;
* ``_server.py``: :class:`FastCGIConnection`, the application's side, which
  the runtime drives;
* ``_client.py``: :class:`FastCGIClient` and its events, the web server's side.
"""

from __future__ import annotations

from ._client import (
    ClientEvent,
    EndRequest,
    FastCGIClient,
    StderrData,
    StdoutData,
    UnknownTypeResult,
    ValuesResult,
)
from ._server import FastCGIConnection
from ._wire import (
    FCGI_ABORT_REQUEST,
    FCGI_BEGIN_REQUEST,
    FCGI_CANT_MPX_CONN,
    FCGI_DATA,
    FCGI_END_REQUEST,
    FCGI_GET_VALUES,
    FCGI_GET_VALUES_RESULT,
    FCGI_HEADER_LEN,
    FCGI_KEEP_CONN,
    FCGI_MAX_CONNS,
    FCGI_MAX_REQS,
    FCGI_MPXS_CONNS,
    FCGI_NULL_REQUEST_ID,
    FCGI_OVERLOADED,
    FCGI_PARAMS,
    FCGI_REQUEST_COMPLETE,
    FCGI_STDERR,
    FCGI_STDIN,
    FCGI_STDOUT,
    FCGI_UNKNOWN_ROLE,
    FCGI_UNKNOWN_TYPE,
    FCGI_VERSION_1,
    MAX_RECORD_CONTENT,
    encode_pairs,
)

__all__ = [
    "FCGI_VERSION_1",
    "FCGI_HEADER_LEN",
    "FCGI_NULL_REQUEST_ID",
    "FCGI_BEGIN_REQUEST",
    "FCGI_ABORT_REQUEST",
    "FCGI_END_REQUEST",
    "FCGI_PARAMS",
    "FCGI_STDIN",
    "FCGI_STDOUT",
    "FCGI_STDERR",
    "FCGI_DATA",
    "FCGI_GET_VALUES",
    "FCGI_GET_VALUES_RESULT",
    "FCGI_UNKNOWN_TYPE",
    "FCGI_KEEP_CONN",
    "FCGI_REQUEST_COMPLETE",
    "FCGI_CANT_MPX_CONN",
    "FCGI_OVERLOADED",
    "FCGI_UNKNOWN_ROLE",
    "FCGI_MAX_CONNS",
    "FCGI_MAX_REQS",
    "FCGI_MPXS_CONNS",
    "MAX_RECORD_CONTENT",
    "FastCGIConnection",
    "FastCGIClient",
    "StdoutData",
    "StderrData",
    "EndRequest",
    "ValuesResult",
    "UnknownTypeResult",
    "ClientEvent",
    "encode_pairs",
]
