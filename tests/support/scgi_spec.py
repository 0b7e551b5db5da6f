"""SCGI written out from the specification, for tests only.

The independent oracle the SCGI codec is checked against: it shares no code
with ``wsgiwire.protocols._scgi`` and does not import it. Written the plainest
way from "SCGI: A Simple Common Gateway Interface alternative" (Neil
Schemenauer, python.ca/scgi/protocol.txt) and D. J. Bernstein's netstrings
(cr.yp.to/proto/netstrings.txt):

    headers ::= header*
    header  ::= name NUL value NUL
    name    ::= notnull+
    value   ::= notnull*

The headers travel as a netstring ``<len>:<headers>,``; CONTENT_LENGTH comes
first, SCGI=1 is present, and the body follows.

The ``raw`` helpers build anything, valid or not, for the negative tests.
"""

from __future__ import annotations

from collections.abc import Sequence

Pairs = Sequence[tuple[bytes, bytes]]

NUL = b"\x00"


def netstring(data: bytes) -> bytes:
    """``[len]":"[string]","`` with the length in decimal, no leading zeros."""
    return str(len(data)).encode("ascii") + b":" + data + b","


def headers_block(pairs: Pairs) -> bytes:
    """Each name and value followed by NUL (no checks: for the negative tests too)."""
    out = b""
    for name, value in pairs:
        out += name + NUL + value + NUL
    return out


def check_pairs(pairs: Pairs) -> None:
    """What the grammar allows: names non-empty, no NUL anywhere."""
    for name, value in pairs:
        assert name, "name ::= notnull+"
        assert NUL not in name and NUL not in value, "notnull excludes <00>"


def encode_headers(pairs: Pairs) -> bytes:
    """The netstring of ``pairs``, exactly as given (the caller orders CONTENT_LENGTH)."""
    check_pairs(pairs)
    return netstring(headers_block(pairs))


def request(params: Pairs, body: bytes = b"", *, content_length: bytes | None = None) -> bytes:
    """A whole, valid SCGI request: CONTENT_LENGTH, then SCGI=1, then ``params``, then the body.

    ``params`` must not hold CONTENT_LENGTH or SCGI themselves.
    ``content_length`` overrides the declared length (default: ``len(body)``).
    """
    declared = str(len(body)).encode("ascii") if content_length is None else content_length
    return encode_headers(request_params(params, declared)) + body


def request_params(params: Pairs, content_length: bytes) -> list[tuple[bytes, bytes]]:
    """The header list :func:`request` sends, which the codec must report unchanged."""
    return [(b"CONTENT_LENGTH", content_length), (b"SCGI", b"1"), *params]


def raw(pairs: Pairs, body: bytes = b"") -> bytes:
    """A netstring of exactly ``pairs`` (CONTENT_LENGTH and SCGI not added) and ``body``."""
    return netstring(headers_block(pairs)) + body
