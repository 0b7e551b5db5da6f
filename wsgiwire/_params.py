"""Pure helpers on CGI parameters shared by the codecs and the core translator,
and how a protocol's response head looks (``HeadStyle``: a codec's fact, the core's format)."""

from __future__ import annotations

from ._errors import BadRequest

# typing is not imported at run time: a CGI request loads this module.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import ClassVar, Final

__all__ = ["HeadStyle", "UNPARSED", "length_value", "parse_content_length", "shown"]

# ``RequestStarted.content_length`` when the codec did not read CONTENT_LENGTH
# (FastCGI frames the body with records): the core parses it, once. A parsed
# length is never negative, so this cannot be mistaken for one.
UNPARSED: Final = -1


def length_value(text: str | bytes) -> int | None:
    """``text`` as a length if it is what a length looks like: 1 to 19 ASCII
    digits (``isdigit`` alone would take other scripts' digits; Python's
    ``int()`` also ``+1_0`` and spaces, which no web server sends and a
    smuggler might); else ``None``. The one statement of that rule, for
    CONTENT_LENGTH and a response's Content-Length; checked in C."""
    if 0 < len(text) <= 19 and text.isascii() and text.isdigit():
        return int(text)
    return None


def shown(data: bytes | bytearray | str) -> str:
    """Up to 40 bytes of ``data`` (bytes, or latin-1 text) for an error message (never raises)."""
    head = data[:40] if isinstance(data, str) else bytes(data[:40]).decode("latin-1")
    text = head.encode("unicode_escape").decode("ascii")
    return text + ("..." if len(data) > 40 else "")


def parse_content_length(raw: bytes | str | None, request_id: int | None = None) -> int | None:
    """CONTENT_LENGTH as an int, or ``None`` when no length was declared.

    Called once per request: by the codec that frames the body by it (SCGI,
    uwsgi), which passes the result on in ``RequestStarted.content_length``,
    else by the core translator.

    Missing or empty means "no declared length". Anything but plain ASCII
    digits (:func:`length_value`) is a 400. ``request_id`` goes into the
    ``BadRequest`` (a codec knows it; the core does not).
    """
    if raw is None:
        return None
    value = length_value(raw)
    if value is not None:
        return value
    if raw:
        # A str may hold any character (a caller's own strings, or os.environ
        # text with surrogate escapes): shown as latin-1 with "?" for the rest.
        data = raw.encode("latin-1", "replace") if isinstance(raw, str) else raw
        raise BadRequest(f"malformed CONTENT_LENGTH {shown(data)!r}", request_id=request_id)
    return None


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
