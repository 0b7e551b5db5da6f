"""What the runtime needs of a server-side codec: the interface every codec implements.

The runtime (``wsgiwire.adapters``) drives any codec through these calls
only. Each codec names the interface as its base class
(``class FastCGIConnection(Codec)``): mypy then checks that it conforms where
it is defined, and the compiled build calls its methods directly instead of
looking each one up by name on every call.
"""

from __future__ import annotations

from typing import ClassVar, Protocol

from .._events import Event, NeedData, OutEvent
from .._params import HeadStyle

__all__ = ["Codec"]


class Codec(Protocol):
    """A protocol codec, as the runtime sees it (sans-I/O: bytes in, events out).

    ``send`` is the one outbound call: every response event and every refusal
    becomes a list of buffers for ``socket.sendmsg``. The protocol facts are
    the codec's: ``head_style`` (how the core renders the head),
    ``one_request_per_connection`` and ``raw_body`` (the body is raw on the
    socket, so ``wsgi.file_wrapper`` files can go out by sendfile).
    """

    __slots__ = ()

    head_style: ClassVar[HeadStyle]
    one_request_per_connection: ClassVar[bool]
    raw_body: ClassVar[bool]

    def receive_data(self, data: bytes | bytearray | memoryview) -> None: ...
    def next_event(self) -> Event | NeedData: ...
    def send(self, event: OutEvent) -> list[bytes | memoryview]: ...
    def data_to_send(self) -> bytes: ...
    @property
    def should_close(self) -> bool: ...
    @property
    def idle(self) -> bool: ...
    @property
    def discarded_bytes(self) -> int: ...
