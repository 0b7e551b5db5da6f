"""Test-only helpers: independent protocol encoders and small conversions."""

from __future__ import annotations

from collections.abc import Iterable


def text_pairs(pairs: Iterable[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    """Params as codecs deliver them: latin-1 native strings, one character per byte."""
    return [(name.decode("latin-1"), value.decode("latin-1")) for name, value in pairs]
