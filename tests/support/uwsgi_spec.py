"""The uwsgi protocol written out from its documentation, for tests only.

The independent oracle the uwsgi codec is checked against: it shares no code
with ``wsgiwire.protocols._uwsgi`` and does not import it. Written the
plainest way from "The uwsgi Protocol" (uwsgi-docs.readthedocs.io): no
``struct``, byte arithmetic only.

    struct uwsgi_packet_header {
        uint8_t  modifier1;
        uint16_t datasize;   /* little endian */
        uint8_t  modifier2;
    };

followed by ``datasize`` bytes of variables, each ``u16 keysize, key, u16
valsize, value`` (little endian), then the request body.
"""

from __future__ import annotations

from collections.abc import Sequence

Pairs = Sequence[tuple[bytes, bytes]]

WSGI = 0
MANAGE_PATH_INFO = 30


def u16le(n: int) -> bytes:
    """A 16-bit number, low byte first. Anything outside 0..65535 cannot be said."""
    if not 0 <= n <= 0xFFFF:
        raise ValueError(f"{n} does not fit in a uwsgi u16 field")
    return bytes([n % 256, n // 256])


def header(modifier1: int, datasize: int, modifier2: int = 0) -> bytes:
    """The 4-byte packet header."""
    assert 0 <= modifier1 <= 255 and 0 <= modifier2 <= 255
    return bytes([modifier1]) + u16le(datasize) + bytes([modifier2])


def var(name: bytes, value: bytes) -> bytes:
    """One variable: keysize, key, valsize, value."""
    return u16le(len(name)) + name + u16le(len(value)) + value


def vars_block(pairs: Pairs) -> bytes:
    out = b""
    for name, value in pairs:
        out += var(name, value)
    return out


def packet(block: bytes, modifier1: int = WSGI, modifier2: int = 0) -> bytes:
    """Header (datasize = ``len(block)``) and the block."""
    return header(modifier1, len(block), modifier2) + block


def request(
    params: Pairs, body: bytes = b"", *, modifier1: int = WSGI, modifier2: int = 0
) -> bytes:
    """A whole request: header, variables exactly as given, then the body.

    The body is framed by the CONTENT_LENGTH the caller puts in ``params``.
    """
    return packet(vars_block(params), modifier1, modifier2) + body
