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
