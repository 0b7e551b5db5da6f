"""A sans-I/O SCGI codec: bytes in, events out; events in, bytes out.

The protocol (Neil Schemenauer, "SCGI: A Simple Common Gateway Interface
alternative", python.ca/scgi/protocol.txt, 2008), as this module implements it:

Request
    The web server opens a connection and sends one request: its headers as a
    netstring (D. J. Bernstein, cr.yp.to/proto/netstrings.txt), then the body::

        <length> ":" <name> NUL <value> NUL ... "," <body>

    ``length`` is the decimal size of the header block between ``:`` and
    ``,``. Each header is a name (one or more non-NUL bytes) and a value (zero
    or more), each terminated by NUL. The first header must be
    ``CONTENT_LENGTH``, a non-empty string of ASCII digits giving the size of
    the body; a header ``SCGI`` with the value ``1`` must be present.
    Standard CGI variables travel as headers.

Response
    Raw bytes, CGI style (a ``Status:`` header; the core renders it). The
    server closes the connection when the response is complete: there is one
    request per connection and no other framing, so ``send`` passes bytes
    through untouched and ``ResponseEnd`` only sets ``should_close``.

Where the specification is silent or loose, this codec decides as follows:

* The netstring length is read digit by digit and bounded as it arrives. It
  may have at most as many digits as ``limits.max_params_bytes`` has (5 for
  the default 65536): one digit more is :class:`LimitExceeded` at once, not
  after the rest has been read (flup accumulates any byte but ``:`` without
  bound). A length above ``max_params_bytes`` is :class:`LimitExceeded`
  before any of the block is waited for.
* A leading zero on a non-zero length (``"012:"``) is an error, as in the
  netstring definition ("[len] begins with <30> exactly when [string] is
  empty") and the SCGI package's own documentation ("must not start with a
  0"). Anything but a digit before ``:`` (a sign, a space, no digit at all) is
  an error, and so is a block not followed by ``,``.
* The block must be empty or end with NUL, hold an even number of strings, and
  no name may be empty (``name ::= notnull+``). Values may be empty (Apache
  sends ``SERVER_SIGNATURE`` empty).
* ``CONTENT_LENGTH`` must be present, first, only once, and plain ASCII digits
  (checked by :func:`wsgiwire._params.parse_content_length`, so ``+1_0``,
  ``-1`` and non-ASCII digits are refused as everywhere else); the
  specification requires it non-empty, so an empty one is refused too.
* ``SCGI`` must be present exactly once with the value ``1``.
* Any other duplicate name is kept, in order: the specification forbids
  duplicates, but nginx sends a repeated request header as repeated headers
  (two ``HTTP_COOKIE``), and the core translator decides how they merge.
  ``CONTENT_LENGTH`` is the exception, because two lengths are two
  different framings of the same bytes.
* Bytes after the body are discarded, never emitted and never buffered
  (counted in ``discarded_bytes`` for the log). Discarding is safe: with one
  request per connection they can never be parsed as another request, so they
  cannot smuggle one. Refusing them would not be: whether they arrive before
  the response is written is a matter of timing, and nginx with
  ``scgi_request_buffering off`` really sends them (it declares the length it
  had buffered, ``CONTENT_LENGTH: 0``, then streams the rest of the body).
* Status hints: 400 for malformed framing or headers; 431 (Request Header
  Fields Too Large, RFC 6585, as waitress and the FastCGI codec answer) for a
  header block, name, value or header count over its limit; 413 for a
  declared body over ``max_body_size`` (refused before any body is read, as
  nginx ``client_max_body_size`` and uWSGI ``limit-post`` do).
* EOF before any byte is a clean ``ConnectionClosed`` (a health check, or a
  web server that gave up); EOF inside the headers or the body is a
  ``RemoteProtocolError``; EOF after the body is ``ConnectionClosed``.

The shared machinery of one-request-per-connection codecs (body framing by
CONTENT_LENGTH, EOF, the ERROR state, pass-through output) lives in
:class:`OneShotConnection`, which the uwsgi codec reuses.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from .._errors import RemoteProtocolError
from .._events import Params, Vars
from .._limitcheck import check_params_bytes
from .._limits import DEFAULT_LIMITS, Limits
from .._params import parse_content_length, shown
from ._oneshot import OneShotConnection, check_pair_limits

__all__ = ["SCGIConnection", "encode_request"]

_COLON: Final = 0x3A
_COMMA: Final = 0x2C
_ZERO: Final = 0x30
_NINE: Final = 0x39

_CONTENT_LENGTH: Final = "CONTENT_LENGTH"
_SCGI: Final = "SCGI"

class SCGIConnection(OneShotConnection):
    """Server side of one SCGI connection (see the module docstring for the rules).

    ``SCGIConnection(limits)``; no options.
    """

    __slots__ = ("_block_len", "_max_digits", "_prefix_len", "_scanned")

    protocol_name = "SCGI"

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        super().__init__(limits)
        # No leading zeros, so a length of more digits than the maximum has is too big.
        self._max_digits = len(str(limits.max_params_bytes))
        self._scanned = 0  # length digits already checked
        self._block_len = -1  # the netstring length, once its ':' was seen
        self._prefix_len = 0  # digits plus ':'

    def _head_progress(self) -> str:
        if self._block_len < 0:
            return "in the netstring length"
        return f"{len(self._head) - self._prefix_len} of {self._block_len + 1} header bytes"

    def _parse_head(self) -> bool:
        data = self._head
        limits = self._limits
        block_len = self._block_len
        if block_len < 0:
            end = len(data)
            max_digits = self._max_digits
            # The usual case is checked in C: the whole length and its ':' are
            # here, all digits, no leading zero. Otherwise the digits are
            # scanned one by one, to say precisely what is wrong, or to wait.
            pos = data.find(b":", 0, max_digits + 1)
            if pos <= 0 or not data[:pos].isdigit() or (data[0] == _ZERO and pos != 1):
                pos = self._scanned
                while pos < end:
                    byte = data[pos]
                    if byte == _COLON:
                        break
                    if not _ZERO <= byte <= _NINE:
                        raise RemoteProtocolError(
                            "SCGI netstring length must be ASCII digits followed by ':', "
                            f"got {shown(data[: pos + 1])!r}",
                            request_id=0,
                        )
                    digits = pos + 1
                    if digits == 2 and data[0] == _ZERO:
                        raise RemoteProtocolError(
                            "SCGI netstring length has a leading zero "
                            f"({shown(data[: pos + 1])!r}...)",
                            request_id=0,
                        )
                    if digits > max_digits:
                        # More digits than the limit has, and no leading zero:
                        # refused without waiting for the rest of the length.
                        check_params_bytes(limits, int(data[: pos + 1]), 0)
                    pos += 1
                else:
                    self._scanned = pos
                    return False
            if pos == 0:
                raise RemoteProtocolError("SCGI netstring has no length before ':'", request_id=0)
            block_len = check_params_bytes(limits, int(data[:pos]), 0)
            self._block_len = block_len
            self._prefix_len = pos + 1
        prefix = self._prefix_len
        total = prefix + block_len + 1
        if len(data) < total:
            return False
        if data[total - 1] != _COMMA:
            raise RemoteProtocolError(
                f"SCGI header netstring of {block_len} bytes is not followed by ',' "
                f"(got {shown(data[total - 1 : total])!r})",
                request_id=0,
            )
        params, content_length = _decode_headers(data[prefix : prefix + block_len], limits)
        self._start(params, content_length, False, total)
        return True


def _decode_headers(block: bytes | bytearray, limits: Limits) -> tuple[Params | Vars, int]:
    """The SCGI header block as ``(params, CONTENT_LENGTH)``, checked: as a dict
    when no name repeats (every well-formed request but one whose headers a
    front end sent twice), else as pairs."""
    if not block:
        raise RemoteProtocolError(
            "SCGI header block is empty: CONTENT_LENGTH is required",
            request_id=0,
        )
    if block[-1]:
        raise RemoteProtocolError("SCGI header block does not end with NUL", request_id=0)
    # Decoded once, split in C: names and values are latin-1 native strings.
    items = block.decode("latin-1").split("\0")
    items.pop()  # after the final NUL
    if len(items) & 1:
        raise RemoteProtocolError(
            "SCGI header block holds an odd number of strings (a name without a value)",
            request_id=0,
        )
    count = len(items) >> 1
    # The common case, checked in C once the dict is made: no repeated or empty
    # name, CONTENT_LENGTH first and well formed, SCGI = 1.
    env: Vars = {}
    for at in range(0, len(items), 2):
        env[items[at]] = items[at + 1]
    if (
        len(env) == count
        and items[0] == _CONTENT_LENGTH
        and "" not in env
        and env.get(_SCGI) == "1"
    ):
        check_pair_limits(count, env, env.values(), limits, len(block))
        content_length = parse_content_length(items[1], 0)
        if content_length is not None:
            return env, content_length
    # Else the rules one by one, for the pairs or the error that names the fault.
    names = items[0::2]
    values = items[1::2]
    params = list(zip(names, values, strict=False))  # equal lengths: checked above
    check_pair_limits(count, names, values, limits, len(block))
    # One pass over the names for the rules on them (compiled, far cheaper
    # than a scan in C for each rule; interpreted, about as cheap).
    content_lengths = scgis = 0
    for name in names:
        if name == _CONTENT_LENGTH:
            content_lengths += 1
        elif name == _SCGI:
            scgis += 1
        elif not name:
            raise RemoteProtocolError("SCGI header with an empty name", request_id=0)
    if names[0] != _CONTENT_LENGTH:
        if content_lengths:
            raise RemoteProtocolError(
                f"SCGI CONTENT_LENGTH must be the first header, not number "
                f"{names.index(_CONTENT_LENGTH) + 1}",
                request_id=0,
            )
        raise RemoteProtocolError("SCGI request has no CONTENT_LENGTH header", request_id=0)
    if content_lengths > 1:
        raise RemoteProtocolError("SCGI CONTENT_LENGTH header is repeated", request_id=0)
    content_length = parse_content_length(values[0], 0)
    if content_length is None:
        raise RemoteProtocolError(
            "SCGI CONTENT_LENGTH is empty (it must be digits, even '0')",
            request_id=0,
        )
    if scgis != 1:
        raise RemoteProtocolError(
            "SCGI request has no 'SCGI' header" if not scgis else "SCGI header is repeated",
            request_id=0,
        )
    version = values[names.index(_SCGI)]
    if version != "1":
        raise RemoteProtocolError(f"SCGI header must be '1', not {shown(version)!r}", request_id=0)
    return params, content_length


# --- The web server's side ------------------------------------------------------


def encode_request(params: Iterable[tuple[bytes, bytes]]) -> bytes:
    """An SCGI request head, as a web server sends it: the netstring of
    NUL-terminated names and values (``params`` must start with CONTENT_LENGTH
    and hold ``SCGI`` = ``1``; not checked, so that tests can send anything)."""
    block = b"".join(name + b"\0" + value + b"\0" for name, value in params)
    return str(len(block)).encode("ascii") + b":" + block + b","
