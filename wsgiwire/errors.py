"""One error hierarchy for the whole package.

Every error a peer can cause carries the answer the peer should get, so a
front-end never needs an ``isinstance`` ladder:

* ``status_hint``: the HTTP status for protocols that answer with HTTP
  (CGI, SCGI, uwsgi, and a FastCGI request whose head was not sent yet);
* ``fcgi_protocol_status``: for FastCGI, the END_REQUEST ``protocolStatus``
  to send, or ``None`` when the right answer is to close the connection;
* ``close``: whether the connection is unusable after the error;
* ``request_id``: the request the error belongs to, when one is known.

``RemoteProtocolError`` means the peer sent something wrong;
``LocalProtocolError`` means this process misused a codec (a bug here, or in
the application driving it).
"""

from __future__ import annotations

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
    """A violation of a gateway protocol, carrying the reply it deserves."""

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
        self.msg = msg
        self.status_hint = status_hint
        self.fcgi_protocol_status = fcgi_protocol_status
        self.close = close
        self.request_id = request_id

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.msg!r}, status_hint={self.status_hint})"

    def detached(self) -> RemoteProtocolError:
        """A copy to keep after the error was raised, holding no traceback.

        A codec remembers the error that put it in ERROR state; keeping the
        raised object itself would keep its traceback, whose frames refer back
        to the connection: a reference cycle holding the connection's buffers
        until a full garbage collection, so memory grew under malformed traffic.
        """
        return RemoteProtocolError(
            self.msg,
            status_hint=self.status_hint,
            fcgi_protocol_status=self.fcgi_protocol_status,
            close=self.close,
            request_id=self.request_id,
        )


class RemoteProtocolError(ProtocolError):
    """The peer (the web server, or whoever reached the socket) broke the protocol."""


class LocalProtocolError(ProtocolError):
    """This side asked a codec for something the protocol does not allow."""

    def __init__(self, msg: str) -> None:
        super().__init__(msg, status_hint=500)


class LimitExceeded(RemoteProtocolError):
    """A size or count the peer controls went past its configured limit.

    ``limit`` names the field of :class:`wsgiwire.limits.Limits` that was hit.
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
        self.limit = limit
        self.value = value
        self.maximum = maximum


class BadRequest(RemoteProtocolError):
    """Request parameters that are well framed but unusable (e.g. a malformed CONTENT_LENGTH)."""


class StartResponseError(WsgiwireError):
    """The application misused ``start_response`` or ``write`` (PEP 3333 contract)."""


class ResponseHeaderError(StartResponseError):
    """A status line or response header the application gave is invalid or unsafe."""


class ClientDisconnected(WsgiwireError):
    """The peer went away (or stalled past the write timeout) while a response was written."""
