"""The receive buffer the FastCGI record reader parses from.

Bytes arrive in whatever pieces the kernel hands over; a codec needs to look at
fixed-size headers and to cut out whole frames. ``ReceiveBuffer`` keeps the
bytes in one ``bytearray`` and a read offset into it:

* reading never copies or moves the unread bytes: it only advances the offset;
* consumed bytes are dropped with ``del data[:offset]`` in batches, and only
  once at least half of the array is consumed, so every byte is moved at most
  a constant number of times: the cost of reading short pieces out of a long
  buffer is O(bytes read), never O(bytes buffered) per read (the DoS h11's
  receive buffer warns about);
* nothing is ever searched or rescanned: binary framing says up front how long
  each piece is.

Frame readers for one protocol may subclass it and parse ``_data`` from
``_start`` directly (the hot path: one record per call); they keep the same
invariants. The buffer never hands out a ``memoryview`` of its array (an exported view
would make the next resize fail), so callers get ``bytes`` copies of exactly
the slices they ask for.
"""

from __future__ import annotations

import struct
from typing import Any

__all__ = ["ReceiveBuffer"]


class ReceiveBuffer:
    """Received bytes not yet parsed: a ``bytearray`` plus a read offset."""

    __slots__ = ("_data", "_start")

    def __init__(self) -> None:
        self._data = bytearray()
        self._start = 0

    def __len__(self) -> int:
        """Number of unread bytes."""
        return len(self._data) - self._start

    def __bool__(self) -> bool:
        return len(self._data) > self._start

    def __bytes__(self) -> bytes:
        """A copy of the unread bytes (for diagnostics and tests)."""
        return bytes(self._data[self._start :])

    def append(self, data: bytes | bytearray | memoryview) -> None:
        """Add received bytes at the end, first dropping consumed ones if that is cheap.

        Consumed bytes are discarded when they are all of the array (a reset)
        or at least half of it (one ``del`` moves no more bytes than were
        consumed since the last one): amortized O(1) per byte.
        """
        start = self._start
        if start:
            buf = self._data
            if start >= len(buf):
                buf.clear()
                self._start = 0
            elif start * 2 >= len(buf):
                del buf[:start]
                self._start = 0
        self._data += data

    def window(self) -> tuple[bytearray, int, int]:
        """``(array, begin, end)``: the unread bytes are ``array[begin:end]``.

        For parsing in place (``struct.unpack_from``, slicing) without a copy.
        The array must not be resized or kept past the next call to another
        method; report what was parsed with :meth:`skip`.
        """
        return self._data, self._start, len(self._data)

    def unpack(self, fmt: struct.Struct, offset: int = 0) -> tuple[Any, ...] | None:
        """``fmt`` unpacked at ``offset`` unread bytes in, or ``None`` if not all there yet."""
        start = self._start + offset
        if len(self._data) - start < fmt.size:
            return None
        return fmt.unpack_from(self._data, start)

    def read_slice(self, begin: int, end: int, consume: int) -> bytes:
        """The unread bytes ``[begin:end)`` as ``bytes``, then drop ``consume`` bytes.

        The caller has checked that ``consume`` (>= ``end``) bytes are unread;
        this is how a codec takes a frame's payload and skips its header and
        padding in one call.
        """
        start = self._start
        data = self._data
        out = bytes(data[start + begin : start + end]) if end > begin else b""
        start += consume
        if start >= len(data):
            data.clear()
            start = 0
        self._start = start
        return out

    def skip(self, count: int) -> None:
        """Drop ``count`` unread bytes (at most ``len(self)``)."""
        start = self._start + count
        if start >= len(self._data):
            self._data.clear()
            start = 0
        self._start = start
