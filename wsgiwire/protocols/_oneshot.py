"""What the one-request-per-connection codecs (SCGI, uwsgi) share.

:class:`OneShotConnection` frames the body by the declared CONTENT_LENGTH,
reports EOF, keeps the ERROR state and passes response bytes through; a
subclass only parses its request head. ``check_pair_limits`` applies the
count, name and value limits to decoded pairs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar, Final

from .._errors import LocalProtocolError, RemoteProtocolError
from .._events import (
    NEED_DATA,
    BodyData,
    BodyEnd,
    ConnectionClosed,
    Event,
    NeedData,
    OutEvent,
    Params,
    RequestRefused,
    RequestStarted,
    ResponseData,
    ResponseEnd,
    ResponseErrorData,
    Role,
    Vars,
)
from .._limitcheck import check_body_size, check_name_length, check_param_count, check_value_length
from .._limits import DEFAULT_LIMITS, Limits
from .._params import HeadStyle
from ._codec import Codec

__all__ = ["OneShotConnection", "check_pair_limits"]


# Connection states (one request per connection).
_HEAD: Final = 0  # reading the request head (SCGI netstring, uwsgi header and vars)
_BODY: Final = 1  # RequestStarted emitted; body bytes still expected
_DONE: Final = 2  # BodyEnd emitted (or queued); later bytes are discarded


def check_pair_limits(
    count: int, names: Iterable[str], values: Iterable[str], limits: Limits, block_size: int
) -> None:
    """Apply the count, name and value limits (``Limits.check_*``) to ``count``
    decoded pairs, their ``names`` and ``values`` (a list, or a dict's views).

    ``block_size`` is the size of the block they were decoded from: a limit
    it does not exceed cannot be hit by any one name or value, which spares
    measuring them for every ordinary request. Otherwise the longest is
    found in C (``max(map(len, ...))``) and checked.
    """
    check_param_count(limits, count, 0)
    if block_size > limits.max_name_length:
        check_name_length(limits, max(map(len, names), default=0), 0)
    if block_size > limits.max_value_length:
        check_value_length(limits, max(map(len, values), default=0), 0)


class OneShotConnection(Codec):
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

    :meth:`send` turns every outbound event into the buffers to write; the
    protocol facts the runtime needs are the class constants ``head_style``,
    ``one_request_per_connection`` and ``raw_body``.
    """

    __slots__ = (
        "_body_received",
        "_declared",
        "_discarded",
        "_eof",
        "_ended",
        "_error",
        "_events",
        "_head",
        "_limits",
        "_received",
        "_remaining",
        "_state",
    )

    protocol_name = "?"
    # Protocol facts the runtime reads (the same for every connection).
    head_style: ClassVar[HeadStyle] = HeadStyle.CGI  # uwsgi: HeadStyle.HTTP
    one_request_per_connection: ClassVar[bool] = True  # the response ends with the connection
    raw_body: ClassVar[bool] = True  # the body is raw on the socket: files go out by sendfile

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self._limits = limits
        # The request head as received so far, from its first byte: parsed once,
        # in place, when complete. The first piece is kept as it came (the whole
        # head, usually); later pieces are appended to a bytearray, so a head
        # that trickles in is still copied in linear time.
        self._head: bytes | bytearray = b""
        # A few events at most between two reads (start, body, end): a list.
        self._events: list[Event] = []
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
            head = self._head
            if not head:
                self._head = data
            else:
                if type(head) is bytes:
                    head = self._head = bytearray(head)
                head += data

    def next_event(self) -> Event | NeedData:
        """The next event, or ``NEED_DATA`` until more bytes arrive.

        Raises ``RemoteProtocolError`` (``LimitExceeded``, ``BadRequest``) when
        the web server breaks the protocol; the error has ``request_id=0`` and
        the ``status_hint`` of the reply it deserves.
        """
        error = self._error
        if error is not None:
            raise error.again()
        events = self._events
        if events:
            return events.pop(0)
        try:
            state = self._state
            if state == _HEAD:
                if self._head and self._parse_head():
                    return events.pop(0)
                if self._eof:
                    if not self._received:
                        return ConnectionClosed()
                    raise RemoteProtocolError(
                        f"connection closed in the middle of the {self.protocol_name} "
                        f"request head ({self._head_progress()})",
                        request_id=0,
                    )
                return NEED_DATA
            if self._eof:
                if state == _BODY:
                    raise RemoteProtocolError(
                        f"connection closed after {self._body_received} of "
                        f"{self._declared} body bytes",
                        request_id=0,
                    )
                return ConnectionClosed()
            return NEED_DATA
        except RemoteProtocolError as exc:
            # Every error here belongs to the one request of the connection
            # (request_id 0, set where it was raised).
            self._error = exc.detached()
            raise

    def _parse_head(self) -> bool:
        """Parse the head from ``self._head`` (not empty) if it is complete; ``True``
        once :meth:`_start` was called. Raises ``RemoteProtocolError`` as soon as
        the bytes so far cannot be a valid head."""
        raise NotImplementedError

    def _head_progress(self) -> str:
        """What was read of the head, for the EOF error message."""
        return f"{len(self._head)} bytes received"

    def _start(
        self,
        params: Params | Vars,
        declared: int | None,
        script_name_in_path_info: bool,
        head_size: int,
    ) -> None:
        """Queue ``RequestStarted``; what was received past the ``head_size`` bytes is body.

        ``declared`` is CONTENT_LENGTH as parsed (``None``: none declared, no
        body); it frames the body and goes to the core in the event.
        """
        content_length = check_body_size(self._limits, declared or 0, 0)
        self._events.append(
            RequestStarted(0, params, False, Role.RESPONDER, script_name_in_path_info, declared)
        )
        self._declared = self._remaining = content_length
        received = self._head
        self._head = b""
        left = len(received) - head_size  # bytes after the head
        if not content_length:
            self._discarded += left
            self._events.append(BodyEnd(0))
            self._state = _DONE
            return
        self._state = _BODY
        if left:
            self._feed_body(bytes(received[head_size:]))

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

    def send(self, event: OutEvent) -> list[bytes | memoryview]:
        """The buffers to write for one outbound event (for ``socket.sendmsg``, no copy).

        * ``ResponseData``: the data itself, untouched (the core rendered the
          head in this codec's ``head_style``): ``[data]`` (a ``bytearray`` or a
          multi-byte-format ``memoryview`` as a flat byte ``memoryview`` of it),
          or ``[]`` for empty data;
        * ``ResponseErrorData``: ``[]`` (these protocols have no error channel;
          the front-end logs it);
        * ``ResponseEnd``: ``[]``; the response is complete, ``should_close``
          becomes true (closing the connection is how the response ends);
        * ``RequestRefused``: its ``reply`` (the page the core rendered), and
          the response is complete, as after ``ResponseEnd``.

        Raises ``LocalProtocolError`` for a request id other than 0, before
        the request started (unless the connection is in ERROR state and the
        error reply is being written), or after the response ended.
        """
        self._check_sending(event.request_id)
        if isinstance(event, ResponseData):
            data = event.data
            if isinstance(data, bytes):
                return [data] if data else []
            view = memoryview(data)
            if not view.nbytes:
                return []
            if not view.c_contiguous:
                return [view.tobytes()]
            if view.ndim != 1 or view.itemsize != 1:
                view = view.cast("B")
            return [view]
        if isinstance(event, ResponseEnd):
            self._ended = True
            return []
        if isinstance(event, ResponseErrorData):
            return []
        if isinstance(event, RequestRefused):
            self._ended = True
            return [event.reply] if event.reply else []
        raise LocalProtocolError(f"cannot send {event!r} over {self.protocol_name}")

    def _check_sending(self, request_id: int) -> None:
        if request_id != 0:
            raise LocalProtocolError(
                f"{self.protocol_name} has one request per connection, with id 0, "
                f"not {request_id}"
            )
        if self._ended:
            raise LocalProtocolError("the response was already ended with ResponseEnd")
        if self._state == _HEAD and self._error is None:
            raise LocalProtocolError("no request has started on this connection yet")

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
    def idle(self) -> bool:
        """Nothing of the request has arrived yet."""
        return self._state == _HEAD and not self._head

    @property
    def discarded_bytes(self) -> int:
        """Bytes received past the declared body and dropped (for the log)."""
        return self._discarded
