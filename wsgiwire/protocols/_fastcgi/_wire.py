"""FastCGI's wire format: records, name-value pairs, stream framing.

Nothing here knows about request states: this file says how bytes look, not
when they may come (that is ``_state.py``). Both sides of a connection use it.

* A record is an 8-byte header (version, type, requestId, contentLength,
  paddingLength, reserved), 0..65535 content bytes, 0..255 padding bytes.
  Records we send are padded to a multiple of 8 bytes (section 3.3).
* Name-value pairs (section 3.4): the name's length, the value's length, the
  name, the value; a length below 128 takes one byte, a longer one four,
  big-endian, with the high bit of the first byte set.
* A stream is records of one type whose contents concatenate, ended by an
  empty record of that type.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Final

from ..._errors import LocalProtocolError, RemoteProtocolError
from ..._limitcheck import check_name_length, check_param_count, check_value_length
from ..._limits import Limits

# A private module: the package (``__init__.py``) says what is public.

# --- Constants of the specification (section 8) ------------------------------

FCGI_VERSION_1: Final = 1
FCGI_HEADER_LEN: Final = 8
FCGI_NULL_REQUEST_ID: Final = 0

FCGI_BEGIN_REQUEST: Final = 1
FCGI_ABORT_REQUEST: Final = 2
FCGI_END_REQUEST: Final = 3
FCGI_PARAMS: Final = 4
FCGI_STDIN: Final = 5
FCGI_STDOUT: Final = 6
FCGI_STDERR: Final = 7
FCGI_DATA: Final = 8
FCGI_GET_VALUES: Final = 9
FCGI_GET_VALUES_RESULT: Final = 10
FCGI_UNKNOWN_TYPE: Final = 11

FCGI_KEEP_CONN: Final = 1

FCGI_REQUEST_COMPLETE: Final = 0
FCGI_CANT_MPX_CONN: Final = 1
FCGI_OVERLOADED: Final = 2
FCGI_UNKNOWN_ROLE: Final = 3

FCGI_MAX_CONNS: Final = b"FCGI_MAX_CONNS"
FCGI_MAX_REQS: Final = b"FCGI_MAX_REQS"
FCGI_MPXS_CONNS: Final = b"FCGI_MPXS_CONNS"

# contentLength is a 16-bit field.
MAX_RECORD_CONTENT: Final = 65535

# A name-value length with the high bit set is 4 bytes long, of which 31 bits count.
MAX_PAIR_LENGTH: Final = 0x7FFFFFFF

TYPE_NAMES: Final = {
    FCGI_BEGIN_REQUEST: "FCGI_BEGIN_REQUEST",
    FCGI_ABORT_REQUEST: "FCGI_ABORT_REQUEST",
    FCGI_END_REQUEST: "FCGI_END_REQUEST",
    FCGI_PARAMS: "FCGI_PARAMS",
    FCGI_STDIN: "FCGI_STDIN",
    FCGI_STDOUT: "FCGI_STDOUT",
    FCGI_STDERR: "FCGI_STDERR",
    FCGI_DATA: "FCGI_DATA",
    FCGI_GET_VALUES: "FCGI_GET_VALUES",
    FCGI_GET_VALUES_RESULT: "FCGI_GET_VALUES_RESULT",
    FCGI_UNKNOWN_TYPE: "FCGI_UNKNOWN_TYPE",
}

# version, type, requestId, contentLength, paddingLength, reserved
HEADER: Final = struct.Struct(">BBHHBx")
# role, flags, reserved[5]
BEGIN_BODY: Final = struct.Struct(">HB5x")
# appStatus, protocolStatus, reserved[3]
END_BODY: Final = struct.Struct(">IB3x")
# type, reserved[7]
UNKNOWN_TYPE_BODY: Final = struct.Struct(">B7x")
_read_header: Final = HEADER.unpack_from
_U32: Final = struct.Struct(">I")
# An empty record, then FCGI_END_REQUEST: how every response ends.
_STDOUT_END_AND_END_REQUEST: Final = struct.Struct(">BBHHBxBBHHBxIB3x")

# _PADDING[n] is n padding bytes (records are padded to a multiple of 8: n = -size & 7).
_PADDING: Final = tuple(bytes(n) for n in range(8))
_SHORT_LENGTHS: Final = tuple(bytes((n,)) for n in range(128))
# The padding of a record of MAX_RECORD_CONTENT bytes.
_FULL_PAD: Final = -MAX_RECORD_CONTENT & 7


# --- Reading records ------------------------------------------------------------


class RecordReader:
    """Received bytes not yet parsed, cut into whole records (both sides use it).

    Records are cut out of ``bytes`` at an offset: a read that holds whole
    records (a whole request, usually) is parsed where it lies, with no copy
    into a buffer first. h11's receive buffer rule holds (reading short
    pieces out of a long buffer is O(bytes read)):

    * ``_data`` is the bytes being parsed, ``_start`` the offset of the first
      unread one: reading a record only advances the offset;
    * bytes received while ``_data`` still has unread bytes wait in
      ``_more`` (a ``bytearray``: appending is amortised O(1)); they join the
      unread tail of ``_data`` only once that completes the next header, then
      the next record, so every byte is copied a bounded number of times,
      however the stream was cut;
    * nothing is ever searched or rescanned: each header says how long its
      record is.
    """

    __slots__ = ("_data", "_more", "_start", "eof")

    def __init__(self) -> None:
        self._data = b""
        self._start = 0
        self._more = bytearray()
        self.eof = False

    def __len__(self) -> int:
        """Number of unread bytes."""
        return len(self._data) - self._start + len(self._more)

    def __bool__(self) -> bool:
        return len(self._data) > self._start or len(self._more) > 0

    def __bytes__(self) -> bytes:
        """A copy of the unread bytes (for diagnostics and tests)."""
        return self._data[self._start :] + self._more

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Buffer received bytes; ``b""`` marks the end of the stream."""
        if not data:
            self.eof = True
            return
        if self.eof:
            raise LocalProtocolError("received data after the end of the stream")
        if self._start == len(self._data) and not self._more:
            # All read so far: the new bytes are parsed where they lie (copied
            # only if they are not bytes: the caller may reuse its buffer).
            self._data = data if isinstance(data, bytes) else bytes(data)
            self._start = 0
        else:
            self._more += data

    def _join(self, need: int) -> bool:
        """Whether ``need`` unread bytes are there; if so, all the unread bytes
        are now in ``_data``, from offset 0."""
        more = self._more
        tail = len(self._data) - self._start
        if tail + len(more) < need:
            return False
        self._data = self._data[self._start :] + more
        self._start = 0
        more.clear()
        return True

    def next_record(self) -> tuple[int, int, bytes] | None:
        """``(type, request_id, content)`` of the next whole record, or ``None``.

        Raises ``RemoteProtocolError`` as soon as a header with a version other
        than 1 is seen: the byte stream is not FastCGI (or lost sync). Padding
        is skipped.
        """
        data = self._data
        begin = self._start
        end = len(data)
        if end - begin < FCGI_HEADER_LEN:
            if not self._join(FCGI_HEADER_LEN):
                return None
            data = self._data
            begin = 0
            end = len(data)
        header: tuple[int, int, int, int, int] = _read_header(data, begin)
        version, rtype, request_id, size, pad = header
        if version != FCGI_VERSION_1:
            raise RemoteProtocolError(
                f"unsupported FastCGI version {version} (only version 1 exists)"
            )
        after = begin + FCGI_HEADER_LEN + size + pad
        if after > end:
            if not self._join(after - begin):
                return None
            data = self._data
            after -= begin
            begin = 0
            end = len(data)
        if after == end:
            # All read: let the bytes go (an idle connection keeps none).
            self._data = b""
            self._start = 0
        else:
            self._start = after
        begin += FCGI_HEADER_LEN
        return rtype, request_id, data[begin : begin + size]


# --- Writing records -------------------------------------------------------------


def record(rtype: int, request_id: int, content: bytes = b"") -> bytes:
    """One record of at most 65535 content bytes, padded to a multiple of 8."""
    size = len(content)
    pad = -size & 7
    return HEADER.pack(FCGI_VERSION_1, rtype, request_id, size, pad) + content + _PADDING[pad]


def end_request_record(request_id: int, app_status: int, protocol_status: int) -> bytes:
    """FCGI_END_REQUEST with ``app_status`` (32 bits) and ``protocol_status``."""
    return HEADER.pack(FCGI_VERSION_1, FCGI_END_REQUEST, request_id, 8, 0) + END_BODY.pack(
        app_status, protocol_status
    )


def response_end_records(request_id: int, app_status: int, stderr: bool) -> bytes:
    """The empty FCGI_STDOUT record (and the empty FCGI_STDERR one if ``stderr``
    was used, as in the specification's example 3), then FCGI_END_REQUEST with
    ``app_status`` and FCGI_REQUEST_COMPLETE."""
    if stderr:
        return (
            HEADER.pack(FCGI_VERSION_1, FCGI_STDOUT, request_id, 0, 0)
            + HEADER.pack(FCGI_VERSION_1, FCGI_STDERR, request_id, 0, 0)
            + end_request_record(request_id, app_status, FCGI_REQUEST_COMPLETE)
        )
    return _STDOUT_END_AND_END_REQUEST.pack(
        FCGI_VERSION_1,
        FCGI_STDOUT,
        request_id,
        0,
        0,
        FCGI_VERSION_1,
        FCGI_END_REQUEST,
        request_id,
        END_BODY.size,
        0,
        app_status,
        FCGI_REQUEST_COMPLETE,
    )


def stream_chunks(
    rtype: int, request_id: int, data: bytes | bytearray | memoryview
) -> list[bytes | memoryview]:
    """Non-empty stream records carrying ``data``, as buffers ready for ``sendmsg``.

    Records carry at most 65535 bytes each; the payload is never copied: each
    record's content is a ``memoryview`` slice of ``data`` (a ``bytes`` that
    fits one record is passed through as it is), so framing is linear in the
    payload size. Each record's padding is merged with the next record's
    header. Empty ``data`` gives no records: an empty record would end the
    stream. (Only a non-contiguous ``memoryview`` is copied, to flatten it.)
    """
    view: memoryview | None = None
    payload: bytes | memoryview
    if isinstance(data, bytes):
        payload = data
    elif isinstance(data, bytearray):
        payload = view = memoryview(data)
    elif not data.c_contiguous:
        payload = data.tobytes()
    elif data.ndim != 1 or data.itemsize != 1:
        payload = view = data.cast("B")
    else:
        payload = view = data
    size = len(payload)
    if size <= MAX_RECORD_CONTENT:
        if not size:
            return []
        pad = -size & 7
        head = HEADER.pack(FCGI_VERSION_1, rtype, request_id, size, pad)
        return [head, payload, _PADDING[pad]] if pad else [head, payload]
    if view is None:
        view = memoryview(payload)
    # Every full record has the same header, and each one after the first
    # carries the padding of the full record before it: both made once.
    head = HEADER.pack(FCGI_VERSION_1, rtype, request_id, MAX_RECORD_CONTENT, _FULL_PAD)
    glued = _PADDING[_FULL_PAD] + head
    chunks: list[bytes | memoryview] = [head, view[:MAX_RECORD_CONTENT]]
    offset = MAX_RECORD_CONTENT
    while size - offset > MAX_RECORD_CONTENT:
        chunks.append(glued)
        chunks.append(view[offset : offset + MAX_RECORD_CONTENT])
        offset += MAX_RECORD_CONTENT
    part = size - offset  # the last record: 1 to MAX_RECORD_CONTENT bytes
    pad = -part & 7
    chunks.append(_PADDING[_FULL_PAD] + HEADER.pack(FCGI_VERSION_1, rtype, request_id, part, pad))
    chunks.append(view[offset:])
    if pad:
        chunks.append(_PADDING[pad])
    return chunks


# --- Name-value pairs -------------------------------------------------------------


def _encode_length(length: int) -> bytes:
    if length < 128:
        return _SHORT_LENGTHS[length]
    if length > MAX_PAIR_LENGTH:
        raise LocalProtocolError(f"name-value length {length} does not fit in 31 bits")
    return _U32.pack(length | 0x80000000)


def encode_pairs(pairs: Iterable[tuple[bytes, bytes]]) -> bytes:
    """Name-value pairs in FastCGI encoding (section 3.4)."""
    parts: list[bytes] = []
    for name, value in pairs:
        parts.append(_encode_length(len(name)))
        parts.append(_encode_length(len(value)))
        parts.append(name)
        parts.append(value)
    return b"".join(parts)


def decode_pairs(
    data: bytes, out: list[tuple[str, str]], limits: Limits, request_id: int | None
) -> tuple[int, int]:
    """Append the complete name-value pairs at the start of ``data`` to ``out``.

    Names and values come out as latin-1 native strings (one character per
    byte, as PEP 3333 wants them): ``data`` is decoded once and sliced, which
    costs less than slicing bytes and decoding every piece.

    Returns ``(used, need)``: ``used`` bytes were decoded; if ``need`` is not
    zero, an incomplete pair starts at ``used`` and at least ``need`` bytes
    from there are required before decoding it can progress (its lengths, or
    the whole pair once the lengths are known). Each length goes to its
    ``limits`` check (:meth:`Limits.check_name_length`, ...) as soon as it is
    read, so a value claiming 2 GiB fails before any of it is waited for; and
    ``out`` never grows past ``limits.max_param_count`` pairs (one more is
    ``LimitExceeded``), so a record packed with tiny pairs is refused before
    it is all cut up. The rules themselves are stated in :class:`Limits` only.
    """
    text = data.decode("latin-1")
    pos = 0
    end = len(data)
    last = end - 1
    unpack_u32 = _U32.unpack_from
    max_count = limits.max_param_count
    # Pairs with two 1-byte lengths (nearly all) take the short path, unless a
    # limit is below 128 and each length must be checked.
    short = limits.max_name_length >= 127 and limits.max_value_length >= 127
    while True:
        room = max_count - check_param_count(limits, len(out), request_id)
        if short:
            # A pair takes at least 2 bytes: pairs starting before ``limit``
            # are at most one more than the count allows (then refused above),
            # so the loop needs no count check of its own.
            limit = min(last, pos + 2 * room + 2)
            start = pos
            while pos < limit:
                name_len = data[pos]
                value_len = data[pos + 1]
                if (name_len | value_len) & 0x80:
                    break
                start = pos + 2
                split = start + name_len
                pos = split + value_len
                out.append((text[start:split], text[split:pos]))
            if pos > end:
                # The last pair runs past the end (its slices came out short):
                # take it back and wait for the rest of it.
                out.pop()
                return start - 2, pos - start + 2
        if len(out) > max_count:
            continue  # refused at the top of the loop
        if pos >= end:
            return pos, 0
        # One pair, any length encoding.
        name_len = data[pos]
        if name_len & 0x80:
            if pos + 4 > end:
                return pos, 5
            name_len = unpack_u32(data, pos)[0] & MAX_PAIR_LENGTH
            at = pos + 4
        else:
            at = pos + 1
        check_name_length(limits, name_len, request_id)
        if at >= end:
            return pos, at - pos + 1
        value_len = data[at]
        if value_len & 0x80:
            if at + 4 > end:
                return pos, at + 4 - pos
            value_len = unpack_u32(data, at)[0] & MAX_PAIR_LENGTH
            at += 4
        else:
            at += 1
        check_value_length(limits, value_len, request_id)
        split = at + name_len
        stop = split + value_len
        if stop > end:
            return pos, stop - pos
        out.append((text[at:split], text[split:stop]))
        pos = stop
