"""A combined-format parser written from nginx's and Apache's rules, not from our writer.

A quoted field is ``"`` + (any byte but ``"`` and ``\\``, or ``\\`` + one char) + ``"``;
``\\xHH`` is a byte, ``\\"`` a quote, ``\\\\`` a backslash.
"""

from __future__ import annotations

import re

_QUOTED = r'"((?:[^"\\]|\\.)*)"'
COMBINED_PLUS_TIME = re.compile(
    r"^(\S+) (\S+) (\S+) \[([^\]]+)\] " + _QUOTED + r" (\d{3}|-) (\d+|-) "
    + _QUOTED + " " + _QUOTED + r" (\d+\.\d{6})$"
)
FIELDS = ("h", "l", "u", "t", "r", "s", "b", "f", "a", "L")
_ESCAPE = re.compile(r"\\(x[0-9A-Fa-f]{2}|.)")


def unescape(field: str) -> bytes:
    """The original bytes of an escaped log field."""
    out = bytearray()
    position = 0
    for match in _ESCAPE.finditer(field):
        out += field[position : match.start()].encode("ascii")
        code = match.group(1)
        out += bytes([int(code[1:], 16)]) if code[0] == "x" and len(code) == 3 else \
            code.encode("ascii")
        position = match.end()
    out += field[position:].encode("ascii")
    return bytes(out)


def parse(line: str) -> dict[str, str]:
    """The fields of one combined-format line (plus request time); AssertionError if none."""
    match = COMBINED_PLUS_TIME.match(line)
    assert match, f"not a combined-format line: {line!r}"
    return dict(zip(FIELDS, match.groups(), strict=True))
