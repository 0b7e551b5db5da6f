"""Pure helpers on CGI parameters shared by the codecs and the core translator,
and how a protocol's response head looks (``HeadStyle``: a codec's fact, the core's format)."""

from __future__ import annotations

from .errors import BadRequest

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import ClassVar

__all__ = ["HeadStyle", "parse_content_length"]

_DIGITS = frozenset(b"0123456789")


def parse_content_length(raw: bytes | str | None, request_id: int | None = None) -> int | None:
    """CONTENT_LENGTH as an int, or ``None`` when no length was declared.

    Missing or empty means "no declared length". Anything but plain ASCII
    digits is a 400: Python's ``int()`` would accept ``+1_0``, spaces and
    non-ASCII digits, which no web server sends and a smuggler might.
    ``request_id`` goes into the ``BadRequest`` (a codec knows it; the core
    does not).
    """
    if raw is None:
        return None
    # The usual case, checked in C: 1 to 19 ASCII digits (str.isdigit alone
    # would take other scripts' digits; isascii rules those out).
    if type(raw) is str and raw.isascii() and raw.isdigit() and len(raw) <= 19:
        return int(raw)
    # A str may hold any character (a caller's own strings, or os.environ text
    # with surrogate escapes): whatever is not latin-1 becomes "?" and is refused
    # below, instead of escaping as a UnicodeEncodeError.
    data = raw.encode("latin-1", "replace") if isinstance(raw, str) else raw
    if not data:
        return None
    if len(data) > 19 or not _DIGITS.issuperset(data):
        shown = data[:40].decode("latin-1").encode("unicode_escape").decode("ascii")
        raise BadRequest(f"malformed CONTENT_LENGTH {shown!r}", request_id=request_id)
    return int(data)


class HeadStyle:
    """How the head goes out: ``HeadStyle.CGI`` (a ``Status: 200 OK`` header: CGI,
    FastCGI, SCGI) or ``HeadStyle.HTTP`` (an ``HTTP/1.1 200 OK`` status line: uwsgi).
    Two instances, compared by identity (a plain class: ``enum`` costs a CGI start-up)."""

    __slots__ = ("value",)

    CGI: ClassVar[HeadStyle]
    HTTP: ClassVar[HeadStyle]

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"HeadStyle.{self.value.upper()}"


HeadStyle.CGI = HeadStyle("cgi")
HeadStyle.HTTP = HeadStyle("http")
