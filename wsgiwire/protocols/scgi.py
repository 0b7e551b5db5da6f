"""A sans-I/O SCGI codec: bytes in, events out; events in, bytes out.

The protocol (Neil Schemenauer, "SCGI: A Simple Common Gateway Interface
alternative", python.ca/scgi/protocol.txt, 2008), as this module implements it:

Request
    The web server opens a connection and sends one request: its headers as a
    netstring (D. J. Bernstein, cr.yp.to/proto/netstrings.txt), then the body::

        <length> ":" <name> NUL <value> NUL ... "," <body>

    ``length`` is the decimal size of the header block between ``:`` and
    ``,``. Each header is a name (one or more non-NUL bytes) and a value (zero
    or more), each terminated by NUL. The first header must be
    ``CONTENT_LENGTH``, a non-empty string of ASCII digits giving the size of
    the body; a header ``SCGI`` with the value ``1`` must be present.
    Standard CGI variables travel as headers.

Response
    Raw bytes, CGI style (a ``Status:`` header; the core renders it). The
    server closes the connection when the response is complete: there is one
    request per connection and no other framing, so ``send`` passes bytes
    through untouched and ``ResponseEnd`` only sets ``should_close``.

Where the specification is silent or loose, this codec decides as follows:

* The netstring length is read digit by digit and bounded as it arrives. It
  may have at most as many digits as ``limits.max_params_bytes`` has (5 for
  the default 65536): one digit more is :class:`LimitExceeded` at once, not
  after the rest has been read (flup accumulates any byte but ``:`` without
  bound). A length above ``max_params_bytes`` is :class:`LimitExceeded`
  before any of the block is waited for.
* A leading zero on a non-zero length (``"012:"``) is an error, as in the
  netstring definition ("[len] begins with <30> exactly when [string] is
  empty") and the SCGI package's own documentation ("must not start with a
  0"). Anything but a digit before ``:`` (a sign, a space, no digit at all) is
  an error, and so is a block not followed by ``,``.
* The block must be empty or end with NUL, hold an even number of strings, and
  no name may be empty (``name ::= notnull+``). Values may be empty (Apache
  sends ``SERVER_SIGNATURE`` empty).
* ``CONTENT_LENGTH`` must be present, first, only once, and plain ASCII digits
  (checked by :func:`wsgiwire.params.parse_content_length`, so ``+1_0``,
  ``-1`` and non-ASCII digits are refused as everywhere else); the
  specification requires it non-empty, so an empty one is refused too.
* ``SCGI`` must be present exactly once with the value ``1``.
* Any other duplicate name is kept, in order: the specification forbids
  duplicates, but nginx sends a repeated request header as repeated headers
  (two ``HTTP_COOKIE``), and the core translator decides how they merge.
  ``CONTENT_LENGTH`` is the exception, because two lengths are two
  different framings of the same bytes.
* Bytes after the body are discarded, never emitted and never buffered
  (counted in ``discarded_bytes`` for the log). Discarding is safe: with one
  request per connection they can never be parsed as another request, so they
  cannot smuggle one. Refusing them would not be: whether they arrive before
  the response is written is a matter of timing, and nginx with
  ``scgi_request_buffering off`` really sends them (it declares the length it
  had buffered, ``CONTENT_LENGTH: 0``, then streams the rest of the body).
* Status hints: 400 for malformed framing or headers; 431 (Request Header
  Fields Too Large, RFC 6585, as waitress and the FastCGI codec answer) for a
  header block, name, value or header count over its limit; 413 for a
  declared body over ``max_body_size`` (refused before any body is read, as
  nginx ``client_max_body_size`` and uWSGI ``limit-post`` do).
* EOF before any byte is a clean ``ConnectionClosed`` (a health check, or a
  web server that gave up); EOF inside the headers or the body is a
  ``RemoteProtocolError``; EOF after the body is ``ConnectionClosed``.

The shared machinery of one-request-per-connection codecs (body framing by
CONTENT_LENGTH, EOF, the ERROR state, pass-through output) lives in
:class:`OneShotConnection`, which the uwsgi codec reuses.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Final

from ..errors import LimitExceeded, LocalProtocolError, RemoteProtocolError
from ..events import (
    NEED_DATA,
    BodyData,
    BodyEnd,
    ConnectionClosed,
    Event,
    NeedData,
    OutEvent,
    Params,
    RequestStarted,
    ResponseData,
    ResponseEnd,
    ResponseErrorData,
    Role,
)
from ..limits import DEFAULT_LIMITS, Limits
from ..params import parse_content_length
from ._buffer import ReceiveBuffer

__all__ = ["OneShotConnection", "SCGIConnection", "check_pair_limits"]

_COLON: Final = 0x3A
_COMMA: Final = 0x2C
_ZERO: Final = 0x30
_NINE: Final = 0x39

_CONTENT_LENGTH: Final = b"CONTENT_LENGTH"
_SCGI: Final = b"SCGI"

# Connection states (one request per connection).
_HEAD: Final = 0  # reading the request head (SCGI netstring, uwsgi header and vars)
_BODY: Final = 1  # RequestStarted emitted; body bytes still expected
_DONE: Final = 2  # BodyEnd emitted (or queued); later bytes are discarded


def _shown(data: bytes | bytearray) -> str:
    """Up to 40 bytes of ``data`` for an error message (never raises)."""
    text = bytes(data[:40]).decode("latin-1").encode("unicode_escape").decode("ascii")
    return text + ("..." if len(data) > 40 else "")


def check_pair_limits(pairs: Params, names: list[bytes], limits: Limits, block_size: int) -> None:
    """Apply the count, name and value limits to decoded pairs (all 431).

    ``block_size`` is the size of the block they were decoded from: a limit
    it does not exceed cannot be hit by any one name or value, which spares
    the checks for every ordinary request. Otherwise they run over whole
    lists in C (``max(map(len, ...))``).
    """
    if len(pairs) > limits.max_param_count:
        raise LimitExceeded(
            "max_param_count", len(pairs), limits.max_param_count, status_hint=431, request_id=0
        )
    if block_size > limits.max_name_length:
        longest = max(map(len, names), default=0)
        if longest > limits.max_name_length:
            raise LimitExceeded(
                "max_name_length", longest, limits.max_name_length, status_hint=431, request_id=0
            )
    if block_size > limits.max_value_length:
        longest = max((len(value) for _, value in pairs), default=0)
        if longest > limits.max_value_length:
            raise LimitExceeded(
                "max_value_length", longest, limits.max_value_length, status_hint=431, request_id=0
            )


class OneShotConnection:
    """Server side of one connection that carries exactly one request (SCGI, uwsgi).

    Subclasses parse the request head in :meth:`_parse_head` and call
    :meth:`_start`; this class frames the body by the declared length, reports
    EOF, keeps the ERROR state and passes response bytes through.

    Feed it what the socket gives with :meth:`receive_data` (``b""`` for EOF),
    then call :meth:`next_event` until it returns ``NEED_DATA``: one
    ``RequestStarted`` (request id 0), ``BodyData`` chunks as they arrive, one
    ``BodyEnd``; after that only ``NEED_DATA``, or ``ConnectionClosed`` once
    the peer closed its side.

    Any ``RemoteProtocolError`` (including ``LimitExceeded`` and
    ``BadRequest``) from :meth:`next_event` carries ``request_id=0`` and puts
    the connection in an ERROR state: every later call raises again and
    ``should_close`` is true, but :meth:`send` still works, so the front-end
    can write the error reply (400, 413, 431, 501) before it closes.
    """

    __slots__ = (
        "_body_received",
        "_buffer",
        "_declared",
        "_discarded",
        "_eof",
        "_ended",
        "_error",
        "_events",
        "_limits",
        "_received",
        "_remaining",
        "_state",
    )

    protocol_name = "?"

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self._limits = limits
        self._buffer = ReceiveBuffer()
        self._events: deque[Event] = deque()
        self._state = _HEAD
        self._declared = 0  # CONTENT_LENGTH of the request (0 when none declared)
        self._remaining = 0  # body bytes still expected
        self._body_received = 0
        self._discarded = 0  # bytes received after the body (or refused with it)
        self._received = False  # any byte received at all
        self._eof = False
        self._ended = False  # ResponseEnd sent
        self._error: RemoteProtocolError | None = None

    # --- Inbound ---------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Add bytes read from the web server; ``b""`` means it closed its side (EOF).

        Body bytes are handed on as they come (no buffering once the head is
        parsed); bytes past the declared body are counted and dropped. Data
        arriving after an error is dropped: nothing more will be parsed.
        Data after EOF is a ``LocalProtocolError`` (the caller's bug).
        """
        if self._eof:
            if data and self._error is None:
                raise LocalProtocolError("received data after the end of the stream")
            return
        if not data:
            self._eof = True
            return
        if self._error is not None:
            return
        if type(data) is not bytes:
            data = bytes(data)  # a copy: the caller may reuse its buffer
        self._received = True
        state = self._state
        if state == _BODY:
            self._feed_body(data)
        elif state == _DONE:
            self._discarded += len(data)
        else:
            self._buffer.append(data)

    def next_event(self) -> Event | NeedData:
        """The next event, or ``NEED_DATA`` until more bytes arrive.

        Raises ``RemoteProtocolError`` (``LimitExceeded``, ``BadRequest``) when
        the web server breaks the protocol; the error has ``request_id=0`` and
        the ``status_hint`` of the reply it deserves.
        """
        error = self._error
        if error is not None:
            raise RemoteProtocolError(
                f"connection is in ERROR state after: {error.msg}",
                status_hint=error.status_hint,
                request_id=0,
            )
        events = self._events
        if events:
            return events.popleft()
        try:
            state = self._state
            if state == _HEAD:
                if self._buffer and self._parse_head():
                    return events.popleft()
                if self._eof:
                    if not self._received:
                        return ConnectionClosed()
                    raise RemoteProtocolError(
                        f"connection closed in the middle of the {self.protocol_name} "
                        f"request head ({self._head_progress()})"
                    )
                return NEED_DATA
            if self._eof:
                if state == _BODY:
                    raise RemoteProtocolError(
                        f"connection closed after {self._body_received} of "
                        f"{self._declared} body bytes"
                    )
                return ConnectionClosed()
            return NEED_DATA
        except RemoteProtocolError as exc:
            # Every error here belongs to the one request of the connection.
            exc.request_id = 0
            self._error = exc
            raise

    def _parse_head(self) -> bool:
        """Parse the head from ``self._buffer`` if it is complete; ``True`` once
        :meth:`_start` was called. Raises ``RemoteProtocolError`` as soon as the
        bytes so far cannot be a valid head."""
        raise NotImplementedError

    def _head_progress(self) -> str:
        """What was read of the head, for the EOF error message."""
        return f"{len(self._buffer)} bytes received"

    def _start(self, params: Params, content_length: int, script_name_in_path_info: bool) -> None:
        """Queue ``RequestStarted`` and move the buffered bytes on as body."""
        limits = self._limits
        if content_length > limits.max_body_size:
            raise LimitExceeded(
                "max_body_size", content_length, limits.max_body_size, status_hint=413, request_id=0
            )
        self._events.append(
            RequestStarted(0, params, False, Role.RESPONDER, script_name_in_path_info)
        )
        self._declared = self._remaining = content_length
        buffer = self._buffer
        if not content_length:
            self._discarded += len(buffer)
            buffer.skip(len(buffer))
            self._events.append(BodyEnd(0))
            self._state = _DONE
            return
        self._state = _BODY
        if buffer:
            self._feed_body(bytes(buffer))
            buffer.skip(len(buffer))

    def _feed_body(self, data: bytes) -> None:
        """Emit ``data`` as body, up to the declared length; drop the rest."""
        remaining = self._remaining
        size = len(data)
        if size > remaining:
            self._discarded += size - remaining
            data = data[:remaining]
            size = remaining
        self._events.append(BodyData(0, data))
        self._body_received += size
        remaining -= size
        self._remaining = remaining
        if not remaining:
            self._events.append(BodyEnd(0))
            self._state = _DONE

    # --- Outbound --------------------------------------------------------------

    def send(self, event: OutEvent) -> bytes:
        """The bytes to write for one response event.

        * ``ResponseData``: the data itself, untouched (the core rendered the head);
        * ``ResponseErrorData``: ``b""`` (these protocols have no error channel;
          the front-end logs it);
        * ``ResponseEnd``: ``b""``; the response is complete, ``should_close``
          becomes true (closing the connection is how the response ends).

        Raises ``LocalProtocolError`` for a request id other than 0, before
        the request started (unless the connection is in ERROR state and the
        error reply is being written), or after ``ResponseEnd``.
        """
        chunks = self.send_chunks(event)
        if not chunks:
            return b""
        chunk = chunks[0]
        return chunk if type(chunk) is bytes else bytes(chunk)

    def send_chunks(self, event: OutEvent) -> list[bytes | memoryview]:
        """Like :meth:`send`, as a list of buffers for ``socket.sendmsg`` (no copy).

        ``ResponseData`` gives ``[data]`` (a ``bytearray`` or a
        multi-byte-format ``memoryview`` as a flat byte ``memoryview`` of it),
        or ``[]`` for empty data.
        """
        if event.request_id != 0:
            raise LocalProtocolError(
                f"{self.protocol_name} has one request per connection, with id 0, "
                f"not {event.request_id}"
            )
        if self._ended:
            raise LocalProtocolError("the response was already ended with ResponseEnd")
        if self._state == _HEAD and self._error is None:
            raise LocalProtocolError("no request has started on this connection yet")
        kind = type(event)
        if kind is ResponseData:
            data: Any = event.data  # type: ignore[union-attr]
            if type(data) is bytes:
                return [data] if data else []
            view = memoryview(data)
            if not view.nbytes:
                return []
            if not view.c_contiguous:
                return [view.tobytes()]
            if view.ndim != 1 or view.itemsize != 1:
                view = view.cast("B")
            return [view]
        if kind is ResponseEnd:
            self._ended = True
            return []
        if kind is ResponseErrorData:
            return []
        raise LocalProtocolError(f"cannot send {event!r} over {self.protocol_name}")

    def data_to_send(self) -> bytes:
        """Always ``b""``: these protocols have no housekeeping of their own.

        Kept so every codec offers the runtime the same calls.
        """
        return b""

    @property
    def should_close(self) -> bool:
        """True after ``ResponseEnd``, after EOF, or after a protocol error."""
        return self._ended or self._eof or self._error is not None

    @property
    def discarded_bytes(self) -> int:
        """Bytes received past the declared body and dropped (for the log)."""
        return self._discarded


class SCGIConnection(OneShotConnection):
    """Server side of one SCGI connection (see the module docstring for the rules).

    ``SCGIConnection(limits)``; no options.
    """

    __slots__ = ("_block_len", "_max_digits", "_prefix_len", "_scanned")

    protocol_name = "SCGI"

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        super().__init__(limits)
        # No leading zeros, so a length of more digits than the maximum has is too big.
        self._max_digits = len(str(limits.max_params_bytes))
        self._scanned = 0  # length digits already checked
        self._block_len = -1  # the netstring length, once its ':' was seen
        self._prefix_len = 0  # digits plus ':'

    def _head_progress(self) -> str:
        if self._block_len < 0:
            return "in the netstring length"
        return f"{len(self._buffer) - self._prefix_len} of {self._block_len + 1} header bytes"

    def _parse_head(self) -> bool:
        buffer = self._buffer
        limits = self._limits
        block_len = self._block_len
        if block_len < 0:
            data, begin, end = buffer.window()
            pos = begin + self._scanned
            max_digits = self._max_digits
            while pos < end:
                byte = data[pos]
                if byte == _COLON:
                    break
                if not _ZERO <= byte <= _NINE:
                    raise RemoteProtocolError(
                        "SCGI netstring length must be ASCII digits followed by ':', "
                        f"got {_shown(data[begin : pos + 1])!r}"
                    )
                digits = pos - begin + 1
                if digits == 2 and data[begin] == _ZERO:
                    raise RemoteProtocolError(
                        "SCGI netstring length has a leading zero "
                        f"({_shown(data[begin : pos + 1])!r}...)"
                    )
                if digits > max_digits:
                    # At least this big: there is no leading zero.
                    raise LimitExceeded(
                        "max_params_bytes",
                        int(data[begin : pos + 1]),
                        limits.max_params_bytes,
                        status_hint=431,
                        request_id=0,
                    )
                pos += 1
            else:
                self._scanned = pos - begin
                return False
            if pos == begin:
                raise RemoteProtocolError("SCGI netstring has no length before ':'")
            block_len = int(data[begin:pos])
            if block_len > limits.max_params_bytes:
                raise LimitExceeded(
                    "max_params_bytes",
                    block_len,
                    limits.max_params_bytes,
                    status_hint=431,
                    request_id=0,
                )
            self._block_len = block_len
            self._prefix_len = pos - begin + 1
        prefix = self._prefix_len
        total = prefix + block_len + 1
        if len(buffer) < total:
            return False
        data, begin, _ = buffer.window()
        if data[begin + total - 1] != _COMMA:
            raise RemoteProtocolError(
                f"SCGI header netstring of {block_len} bytes is not followed by ',' "
                f"(got {_shown(data[begin + total - 1 : begin + total])!r})"
            )
        block = buffer.read_slice(prefix, prefix + block_len, total)
        params, content_length = _decode_headers(block, limits)
        self._start(params, content_length, False)
        return True


def _decode_headers(block: bytes, limits: Limits) -> tuple[Params, int]:
    """The SCGI header block as ``(params, CONTENT_LENGTH)``, checked."""
    if not block:
        raise RemoteProtocolError("SCGI header block is empty: CONTENT_LENGTH is required")
    if block[-1]:
        raise RemoteProtocolError("SCGI header block does not end with NUL")
    items = block.split(b"\0")
    items.pop()  # after the final NUL
    if len(items) & 1:
        raise RemoteProtocolError(
            "SCGI header block holds an odd number of strings (a name without a value)"
        )
    names = items[0::2]
    values = items[1::2]
    params = list(zip(names, values, strict=False))  # equal lengths: checked above
    check_pair_limits(params, names, limits, len(block))
    if b"" in names:
        raise RemoteProtocolError("SCGI header with an empty name")
    if names[0] != _CONTENT_LENGTH:
        if _CONTENT_LENGTH in names:
            raise RemoteProtocolError(
                f"SCGI CONTENT_LENGTH must be the first header, not number "
                f"{names.index(_CONTENT_LENGTH) + 1}"
            )
        raise RemoteProtocolError("SCGI request has no CONTENT_LENGTH header")
    if names.count(_CONTENT_LENGTH) > 1:
        raise RemoteProtocolError("SCGI CONTENT_LENGTH header is repeated")
    content_length = parse_content_length(values[0])
    if content_length is None:
        raise RemoteProtocolError("SCGI CONTENT_LENGTH is empty (it must be digits, even '0')")
    scgi_count = names.count(_SCGI)
    if scgi_count != 1:
        raise RemoteProtocolError(
            "SCGI request has no 'SCGI' header" if not scgi_count else "SCGI header is repeated"
        )
    version = values[names.index(_SCGI)]
    if version != b"1":
        raise RemoteProtocolError(f"SCGI header must be '1', not {_shown(version)!r}")
    return params, content_length
