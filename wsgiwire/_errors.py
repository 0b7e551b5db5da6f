"""One error hierarchy for the whole package.

Every error a peer can cause carries the answer the peer should get, so a
front-end never needs an ``isinstance`` ladder:

* ``status_hint``: the HTTP status for protocols that answer with HTTP
  (CGI, SCGI, uwsgi, and a FastCGI request whose head was not sent yet);
* ``fcgi_protocol_status``: for FastCGI, the END_REQUEST ``protocolStatus``
  to send, or ``None`` when the right answer is to close the connection;
* ``close``: whether the connection is unusable after the error;
* ``request_id``: the request the error belongs to, when one is known.

Each is set where the error is raised and read-only after.

``RemoteProtocolError`` means the peer sent something wrong;
``LocalProtocolError`` means this process misused a codec (a bug here, or in
the application driving it). ``peer_fault`` tells them apart.
"""

from __future__ import annotations

# typing is not imported at run time: a CGI request loads this module.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import ClassVar, TypeVar

    _E = TypeVar("_E", bound="ProtocolError")

__all__ = [
    "WsgiwireError",
    "ProtocolError",
    "RemoteProtocolError",
    "LocalProtocolError",
    "LimitExceeded",
    "BadRequest",
    "ClientDisconnected",
    "StartResponseError",
    "ResponseHeaderError",
]


class WsgiwireError(Exception):
    """Base class of every error raised by wsgiwire itself."""


class ProtocolError(WsgiwireError):
    """A violation of a gateway protocol, carrying the reply it deserves.

    Immutable: every field is set where the error is raised and read-only
    after (``exc.request_id = ...`` raises ``AttributeError``). ``peer_fault``
    says whose fault it is without an ``isinstance`` ladder: true for
    :class:`RemoteProtocolError` (log it as the peer's), false for anything
    else (a bug or a shortage here: log it with its traceback).
    """

    peer_fault: ClassVar[bool] = False

    def __init__(
        self,
        msg: str,
        *,
        status_hint: int = 400,
        fcgi_protocol_status: int | None = None,
        close: bool = True,
        request_id: int | None = None,
    ) -> None:
        super().__init__(msg)
        self._msg = msg
        self._status_hint = status_hint
        self._fcgi_protocol_status = fcgi_protocol_status
        self._close = close
        self._request_id = request_id

    @property
    def msg(self) -> str:
        return self._msg

    @property
    def status_hint(self) -> int:
        """The HTTP status of the reply the request deserves."""
        return self._status_hint

    @property
    def fcgi_protocol_status(self) -> int | None:
        """FastCGI's END_REQUEST ``protocolStatus`` for it, or ``None``: answer with
        ``status_hint`` (FCGI_REQUEST_COMPLETE), or close."""
        return self._fcgi_protocol_status

    @property
    def close(self) -> bool:
        """The connection is unusable after this error."""
        return self._close

    @property
    def request_id(self) -> int | None:
        """The request the error belongs to (``None``: the connection's fault)."""
        return self._request_id

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._msg!r}, status_hint={self._status_hint})"

    def detached(self: _E) -> _E:
        """A copy to keep after the error was raised: same class and fields, no traceback.

        A codec remembers the error that put it in ERROR state; keeping the
        raised object itself would keep its traceback, whose frames refer back
        to the connection: a reference cycle holding the connection's buffers
        until a full garbage collection, so memory grew under malformed traffic.
        """
        cls = self.__class__
        clone = cls.__new__(cls, *self.args)
        clone.__dict__.update(self.__dict__)
        return clone

    def again(self: _E) -> _E:
        """The error a codec in ERROR state raises on every later call: this one
        (same class, status hint, FastCGI status, close decision and request
        id), its message saying that it happened before."""
        clone = self.detached()
        clone._msg = f"connection is in ERROR state after: {self._msg}"
        clone.args = (clone._msg,)
        return clone


class RemoteProtocolError(ProtocolError):
    """The peer (the web server, or whoever reached the socket) broke the protocol."""

    peer_fault: ClassVar[bool] = True


class LocalProtocolError(ProtocolError):
    """This side asked a codec for something the protocol does not allow (a bug here)."""

    def __init__(self, msg: str) -> None:
        super().__init__(msg, status_hint=500)


class LimitExceeded(RemoteProtocolError):
    """A size or count the peer controls went past its configured limit.

    ``limit`` names the field of :class:`wsgiwire._limits.Limits` that was hit.
    """

    def __init__(
        self,
        limit: str,
        value: int,
        maximum: int,
        *,
        status_hint: int = 400,
        request_id: int | None = None,
    ) -> None:
        super().__init__(
            f"{limit} exceeded: {value} > {maximum}",
            status_hint=status_hint,
            request_id=request_id,
        )
        self._limit = limit
        self._value = value
        self._maximum = maximum

    @property
    def limit(self) -> str:
        return self._limit

    @property
    def value(self) -> int:
        return self._value

    @property
    def maximum(self) -> int:
        return self._maximum


class BadRequest(RemoteProtocolError):
    """Request parameters that are well framed but unusable (e.g. a malformed CONTENT_LENGTH)."""


class StartResponseError(WsgiwireError):
    """The application misused ``start_response`` or ``write`` (PEP 3333 contract)."""


class ResponseHeaderError(StartResponseError):
    """A status line or response header the application gave is invalid or unsafe."""


class ClientDisconnected(WsgiwireError):
    """The peer went away (or stalled past the write timeout) while a response was written."""
