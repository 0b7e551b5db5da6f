"""A sans-I/O codec for the uwsgi protocol (uWSGI's binary wire format).

The protocol ("The uwsgi Protocol", uwsgi-docs.readthedocs.io), as this
module implements it:

Request
    A 4-byte header, then ``datasize`` bytes of variables, then the body::

        modifier1 (u8) | datasize (u16, little-endian) | modifier2 (u8)
        { keysize (u16 LE) | key | valsize (u16 LE) | value } ...
        <body: CONTENT_LENGTH bytes>

    ``modifier1`` 0 with ``modifier2`` 0 is "a standard WSGI request followed
    by the HTTP request body"; the variables are the CGI ones. The body is
    framed by ``CONTENT_LENGTH`` only (no declared length: no body).

Response
    Raw bytes: an HTTP status line and headers (the core renders them), then
    the body; the server closes the connection when it is done. nginx opens
    one connection per request, so ``send`` passes bytes through untouched and
    ``ResponseEnd`` only sets ``should_close``.

Where the documentation is silent or loose, this codec decides as follows:

* ``modifier1`` 30 is uWSGI's ``UWSGI_MODIFIER_MANAGE_PATH_INFO`` (nginx
  ``uwsgi_modifier1 30``, the old Flask recipe): the same request, with
  ``RequestStarted.script_name_in_path_info`` set so the core strips
  SCRIPT_NAME from the front of PATH_INFO (nginx sends PATH_INFO
  ``/app/x/y`` with SCRIPT_NAME ``/app``). Any other ``modifier1`` (PSGI,
  Rack, pings, HTTP text sent to the wrong port...) is a
  ``RemoteProtocolError`` with status 501 naming it, raised as soon as the
  first byte arrives. A non-zero ``modifier2`` is a packet variant we do not
  implement either: 501.
* ``datasize`` over ``limits.max_params_bytes`` is :class:`LimitExceeded`
  (431) before the variables are waited for. With the default limit (64 KiB)
  every datasize fits: 65535 is the largest the u16 field can say, so a
  bigger block is impossible by format.
* ``datasize`` 0 (no variables, hence no REQUEST_METHOD) is a 400, as uWSGI
  refuses it ("Empty python request. skip.").
* Variables are decoded strictly: every key and value length must fit in the
  block, the block must end exactly after the last value (a stray byte or a
  key without its value length is a 400), and a key may not be empty (uWSGI:
  "uwsgi key cannot be null"). An empty value is fine. Duplicates are kept in
  order for the core to merge.
* ``CONTENT_LENGTH`` goes through :func:`wsgiwire._params.parse_content_length`
  (plain ASCII digits; empty means none: nginx sends ``""`` for a GET).
  Repeated with different values it is a 400: two lengths are two framings
  of the same bytes. Repeated identically it is accepted.
* The uWSGI "magic variables" (``UWSGI_SCRIPT``, ``UWSGI_MODULE``,
  ``UWSGI_CALLABLE``, ``UWSGI_FILE``, ``UWSGI_CHDIR``, ``UWSGI_PYHOME``,
  ``UWSGI_SETENV``, ``UWSGI_APPID``, ``UWSGI_TOUCH_RELOAD``,
  ``UWSGI_POSTFILE``, ``UWSGI_CACHE_GET``... every name starting with
  ``UWSGI_``, matched case-sensitively as uWSGI does) are dropped: they make
  uWSGI load code, change directory, set process environment or read files,
  so whoever reaches the socket would control the server, and passing them to
  the application invites code written for uWSGI to honour them. The one
  exception is ``UWSGI_SCHEME``: with ``trust_uwsgi_scheme=True`` (the web
  server sets it from its own knowledge, e.g. behind a TLS terminator) a value
  of ``http`` or ``https`` (any case) becomes ``REQUEST_SCHEME`` (lower case),
  appended after every other variable so that it wins over a
  ``REQUEST_SCHEME`` the server also sent (the core keeps the last value);
  any other value is ignored. Untrusted, it is dropped like the rest.
* Body framing, bytes after the body (discarded and counted, never emitted),
  EOF and the ERROR state are as for SCGI (:class:`OneShotConnection`).
  Status hints: 400 malformed, 431 header limits, 413 body over
  ``max_body_size``, 501 unsupported packet type.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import ClassVar, Final

from .._errors import LocalProtocolError, RemoteProtocolError
from .._events import Params, Vars
from .._limitcheck import check_params_bytes
from .._limits import DEFAULT_LIMITS, Limits
from .._params import HeadStyle, parse_content_length
from ._oneshot import OneShotConnection, check_pair_limits

__all__ = [
    "MODIFIER1_WSGI",
    "MODIFIER1_MANAGE_PATH_INFO",
    "MAX_DATASIZE",
    "UWSGIConnection",
    "encode_request",
]

MODIFIER1_WSGI: Final = 0
# UWSGI_MODIFIER_MANAGE_PATH_INFO in uWSGI's uwsgi.h.
MODIFIER1_MANAGE_PATH_INFO: Final = 30
# datasize is a u16.
MAX_DATASIZE: Final = 0xFFFF

_HEADER: Final = struct.Struct("<BHB")  # modifier1, datasize, modifier2
_HEADER_SIZE: Final = _HEADER.size
_CONTENT_LENGTH: Final = "CONTENT_LENGTH"
_MAGIC_PREFIX: Final = "UWSGI_"
_MAGIC_PREFIX_BYTES: Final = b"UWSGI_"
_UWSGI_SCHEME: Final = "UWSGI_SCHEME"
_REQUEST_SCHEME: Final = "REQUEST_SCHEME"
_SCHEMES: Final = frozenset(("http", "https"))


def _modifier_error(modifier1: int, head: bytes) -> RemoteProtocolError:
    hint = ""
    if head[:1].isalpha():
        hint = f" (the bytes look like text: {head[:16]!r}; plain HTTP sent to the uwsgi socket?)"
    return RemoteProtocolError(
        f"unsupported uwsgi modifier1 {modifier1}: only {MODIFIER1_WSGI} (WSGI request) and "
        f"{MODIFIER1_MANAGE_PATH_INFO} (WSGI request, SCRIPT_NAME in PATH_INFO) are served" + hint,
        status_hint=501,
        request_id=0,
    )


class UWSGIConnection(OneShotConnection):
    """Server side of one uwsgi connection (see the module docstring for the rules).

    ``trust_uwsgi_scheme``: pass ``UWSGI_SCHEME`` on as ``REQUEST_SCHEME``
    (only when the web server sets it itself; off by default).
    """

    __slots__ = ("_datasize", "_modifier1", "_trust_scheme")

    protocol_name = "uwsgi"
    head_style: ClassVar[HeadStyle] = HeadStyle.HTTP  # an "HTTP/1.1 200 OK" status line

    def __init__(
        self, limits: Limits = DEFAULT_LIMITS, *, trust_uwsgi_scheme: bool = False
    ) -> None:
        super().__init__(limits)
        self._trust_scheme = trust_uwsgi_scheme
        self._datasize = -1  # known once the 4-byte header is read
        self._modifier1 = MODIFIER1_WSGI

    def _head_progress(self) -> str:
        if self._datasize < 0:
            return f"{len(self._head)} of 4 header bytes"
        return f"{len(self._head) - _HEADER_SIZE} of {self._datasize} variable bytes"

    def _parse_head(self) -> bool:
        data = self._head
        datasize = self._datasize
        if datasize < 0:
            # modifier1 is judged on the first byte, before the rest of the header.
            modifier1 = data[0]
            if modifier1 not in (MODIFIER1_WSGI, MODIFIER1_MANAGE_PATH_INFO):
                raise _modifier_error(modifier1, bytes(data[:16]))
            if len(data) < _HEADER_SIZE:
                return False
            _, datasize, modifier2 = _HEADER.unpack_from(data)
            if modifier2:
                raise RemoteProtocolError(
                    f"unsupported uwsgi modifier2 {modifier2} for modifier1 {modifier1} "
                    "(a WSGI request has modifier2 0)",
                    status_hint=501,
                    request_id=0,
                )
            if not datasize:
                raise RemoteProtocolError(
                    "uwsgi packet with datasize 0: no variables, so no request", request_id=0
                )
            self._datasize = check_params_bytes(self._limits, datasize, 0)
            self._modifier1 = modifier1
        head_size = _HEADER_SIZE + datasize
        if len(data) < head_size:
            return False
        block = data[_HEADER_SIZE:head_size]
        # As bytes (a head that came in pieces is a bytearray): compiled code
        # indexes bytes natively, a bytearray only through generic calls.
        params, content_length = _decode_vars(
            block if isinstance(block, bytes) else bytes(block), self._limits, self._trust_scheme
        )
        self._start(
            params,
            content_length,
            self._modifier1 == MODIFIER1_MANAGE_PATH_INFO,
            head_size,
        )
        return True


def _decode_vars(
    block: bytes, limits: Limits, trust_scheme: bool
) -> tuple[Params | Vars, int | None]:
    """The uwsgi vars block as ``(params, CONTENT_LENGTH or None)``, checked:
    as a dict when no name repeats and no magic variable is there (every
    ordinary request), else as pairs (:func:`_decode_pairs`).

    The loop is the hot path (one pass, no checks inside but the ones Python
    does anyway): a length field past the end raises ``IndexError``, a value
    past the end leaves ``pos`` beyond it. Either way :func:`_diagnose` walks
    the block again, carefully, to name the fault.
    """
    env: Vars = {}
    text = block.decode("latin-1")  # sliced below: latin-1 native strings
    end = len(block)
    pos = 0
    count = 0
    try:
        while pos < end:
            key_start = pos + 2
            key_end = key_start + block[pos] + (block[pos + 1] << 8)
            value_start = key_end + 2
            pos = value_start + block[key_end] + (block[key_end + 1] << 8)
            env[text[key_start:key_end]] = text[value_start:pos]
            count += 1
    except IndexError:
        pos = -1
    if pos != end:
        raise _diagnose(block)
    # Each a check in C. Not ``in`` for the bytes: bytes.__contains__ first
    # tries its argument as an integer (a byte value) and formats a TypeError
    # to drop, on every request.
    if len(env) == count and "" not in env and block.find(_MAGIC_PREFIX_BYTES) < 0:
        check_pair_limits(count, env, env.values(), limits, end)
        raw = env.get(_CONTENT_LENGTH)
        return env, None if raw is None else parse_content_length(raw, 0)
    return _decode_pairs(block, text, limits, trust_scheme)


def _decode_pairs(
    block: bytes, text: str, limits: Limits, trust_scheme: bool
) -> tuple[Params, int | None]:
    """A well-formed vars block with a repeated or empty name or a magic variable:
    the pairs, checked (an empty name is refused; a repeated CONTENT_LENGTH must
    repeat its value), magic variables applied and dropped."""
    pairs: Params = []
    names: list[str] = []
    end = len(block)
    pos = 0
    while pos < end:
        key_start = pos + 2
        key_end = key_start + block[pos] + (block[pos + 1] << 8)
        value_start = key_end + 2
        pos = value_start + block[key_end] + (block[key_end + 1] << 8)
        name = text[key_start:key_end]
        names.append(name)
        pairs.append((name, text[value_start:pos]))
    # One pass over the names for the rules on them (compiled, far cheaper
    # than a scan in C for each rule).
    content_lengths = 0
    for name in names:
        if name == _CONTENT_LENGTH:
            content_lengths += 1
        elif not name:
            raise RemoteProtocolError(
                f"uwsgi variable number {names.index('') + 1} has an empty key",
                request_id=0,
            )
    check_pair_limits(len(pairs), names, [value for _, value in pairs], limits, end)

    content_length: int | None = None
    if content_lengths:
        index = names.index(_CONTENT_LENGTH)
        raw = pairs[index][1]
        if content_lengths > 1:
            for name, other in pairs[index + 1 :]:
                if name == _CONTENT_LENGTH and other != raw:
                    raise RemoteProtocolError(
                        "uwsgi CONTENT_LENGTH is repeated with different values "
                        f"({raw[:20]!r}, {other[:20]!r})",
                        request_id=0,
                    )
        content_length = parse_content_length(raw, 0)

    if block.find(_MAGIC_PREFIX_BYTES) < 0:
        return pairs, content_length  # no magic variable can be present
    params: Params = []
    scheme: str | None = None
    for name, value in pairs:
        if name.startswith(_MAGIC_PREFIX):
            if name == _UWSGI_SCHEME:
                scheme = value
            continue
        params.append((name, value))
    if trust_scheme and scheme is not None:
        scheme = scheme.lower()
        if scheme in _SCHEMES:
            params.append((_REQUEST_SCHEME, scheme))
    return params, content_length


def _diagnose(block: bytes) -> RemoteProtocolError:
    """The first framing fault in a vars block the fast loop could not decode."""
    end = len(block)
    pos = 0
    number = 1
    while pos < end:
        if pos + 2 > end:
            return RemoteProtocolError(
                f"uwsgi vars block ends with {end - pos} stray byte(s) where a key length "
                "should be",
                request_id=0,
            )
        key_start = pos + 2
        key_end = key_start + block[pos] + (block[pos + 1] << 8)
        key = block[key_start:key_end][:40]
        if key_end + 2 > end:
            return RemoteProtocolError(
                f"uwsgi variable number {number} (key {key!r}) runs past the end of the vars "
                "block or has no value length",
                request_id=0,
            )
        value_end = key_end + 2 + block[key_end] + (block[key_end + 1] << 8)
        if value_end > end:
            return RemoteProtocolError(
                f"value of uwsgi key {key!r} runs {value_end - end} byte(s) past the end of "
                "the vars block",
                request_id=0,
            )
        pos = value_end
        number += 1
    raise AssertionError("_diagnose called on a well-formed vars block")  # pragma: no cover


# --- The web server's side ------------------------------------------------------

_U16: Final = struct.Struct("<H")


def encode_request(
    params: Iterable[tuple[bytes, bytes]], modifier1: int = MODIFIER1_WSGI, modifier2: int = 0
) -> bytes:
    """A uwsgi request head, as a web server sends it: the 4-byte header and the
    vars block. A key, value or block longer than its u16 length field is a
    ``LocalProtocolError``."""
    parts: list[bytes] = []
    for name, value in params:
        if len(name) > MAX_DATASIZE or len(value) > MAX_DATASIZE:
            raise LocalProtocolError(
                f"uwsgi variable {name[:40]!r} is longer than {MAX_DATASIZE} bytes"
            )
        parts.append(_U16.pack(len(name)) + name + _U16.pack(len(value)) + value)
    block = b"".join(parts)
    if len(block) > MAX_DATASIZE:
        raise LocalProtocolError(f"uwsgi vars block of {len(block)} bytes exceeds {MAX_DATASIZE}")
    return _HEADER.pack(modifier1, len(block), modifier2) + block
