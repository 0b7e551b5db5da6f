"""``sent(codec, event)``: what ``codec.send(event)`` writes, as one ``bytes``."""

from __future__ import annotations

from typing import Any


def sent(codec: Any, event: Any) -> bytes:
    """The buffers ``codec.send(event)`` returns, joined (a lone ``bytes`` as it is)."""
    chunks = codec.send(event)
    assert isinstance(chunks, list)
    if len(chunks) == 1 and type(chunks[0]) is bytes:
        return chunks[0]  # type: ignore[no-any-return]
    return b"".join(chunks)


def wrong_event_error() -> type[Exception]:
    """What ``codec.send`` raises for an event that is not an outbound one:
    ``LocalProtocolError`` from the pure build; the compiled build's argument check
    (``send(event: OutEvent)``) refuses it first, with ``TypeError``."""
    from wsgiwire._build import _is_extension
    from wsgiwire._errors import LocalProtocolError

    if _is_extension("wsgiwire.protocols._oneshot"):
        return TypeError
    return LocalProtocolError
