"""Test-only helpers: independent protocol encoders and small conversions."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any


def text_pairs(pairs: Iterable[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    """Params as codecs deliver them: latin-1 native strings, one character per byte."""
    return [(name.decode("latin-1"), value.decode("latin-1")) for name, value in pairs]


def in_pairs(events: list[Any]) -> list[Any]:
    """``events`` with each ``RequestStarted``'s params as pairs: a codec may
    deliver them as a dict when no name repeats (the same parameters, in order)."""
    from wsgiwire._events import RequestStarted, pairs_of

    return [
        dataclasses.replace(event, params=pairs_of(event.params))
        if isinstance(event, RequestStarted) else event
        for event in events
    ]
