"""What every worker process is doing, in memory shared across ``fork()``.

One fixed-size slot per worker (twice the worker count, so a graceful reload
can run old and new workers side by side). The master reads it for the
status page (``--stats``) and the request watchdog (``--request-timeout``);
workers read it to balance accepts: prefork workers accept from one shared
socket, and left alone the kernel hands most kept-alive connections to
whichever worker wakes first. A worker holding more than ``ACCEPT_SLACK``
connections over the least-loaded accepting worker steps back for a moment.

Each slot is written by its own worker only (the master writes a slot when
it assigns or frees it), so no lock is needed; readers may see a value a few
microseconds old, which is all balancing and statistics need.
"""

from __future__ import annotations

import mmap
import struct
import time
from dataclasses import dataclass
from typing import Final

__all__ = [
    "ACCEPTING",
    "ACCEPT_SLACK",
    "BOOTING",
    "DRAINING",
    "FREE",
    "Scoreboard",
    "SlotInfo",
]

ACCEPT_SLACK = 1

FREE = 0
ACCEPTING = 1
DRAINING = 2
BOOTING = 3  # forked, still loading the app: not a candidate for balancing yet

# pid, state, connections, busy threads, queued, requests, errors,
# busy_since (monotonic seconds, 0 = idle), label length; then the label.
# What each request writes is adjacent: one write when it starts (since, label
# length), one when it ends (requests, errors, since = 0).
_HEAD = struct.Struct("=qqqqqqqdq")
_LABEL_SIZE = 240
_SLOT_SIZE = _HEAD.size + _LABEL_SIZE

_PID, _STATE, _CONNS, _BUSY, _QUEUED, _REQUESTS, _ERRORS, _SINCE = range(8)
_Q: Final = struct.Struct("=q")
_D: Final = struct.Struct("=d")
_DQ: Final = struct.Struct("=dq")
_QQD: Final = struct.Struct("=qqd")


@dataclass(frozen=True, slots=True)
class SlotInfo:
    slot: int
    pid: int
    state: int
    connections: int
    requests: int
    errors: int
    busy_threads: int
    queued: int
    busy_since: float
    label: str


class Scoreboard:
    """Shared per-worker counters; create before forking."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self.memory = mmap.mmap(-1, _SLOT_SIZE * slots)
        # The label this process last wrote (workers run the same few requests
        # over and over: an unchanged label is not written again).
        self._label = ""
        self._label_size = 0

    # -- master side ------------------------------------------------------
    def assign(self, slot: int, pid: int) -> None:
        _HEAD.pack_into(self.memory, slot * _SLOT_SIZE, pid, BOOTING, 0, 0, 0, 0, 0, 0.0, 0)

    def free(self, slot: int) -> None:
        _HEAD.pack_into(self.memory, slot * _SLOT_SIZE, 0, FREE, 0, 0, 0, 0, 0, 0.0, 0)

    def free_slot(self) -> int:
        for slot in range(self.slots):
            if self._field(slot, _STATE) == FREE:
                return slot
        raise RuntimeError("no free scoreboard slot")

    def read(self, slot: int) -> SlotInfo:
        values = _HEAD.unpack_from(self.memory, slot * _SLOT_SIZE)
        start = slot * _SLOT_SIZE + _HEAD.size
        label = bytes(self.memory[start : start + values[8]]).decode("utf-8", "replace")
        pid, state, conns, busy, queued, requests, errors, since, _ = values
        return SlotInfo(slot, pid, state, conns, requests, errors, busy, queued, since, label)

    def all(self) -> list[SlotInfo]:
        return [self.read(slot) for slot in range(self.slots) if self._field(slot, _STATE)]

    # -- worker side ------------------------------------------------------
    def _field(self, slot: int, index: int) -> int:
        value: int = _Q.unpack_from(self.memory, slot * _SLOT_SIZE + index * 8)[0]
        return value

    def _set(self, slot: int, index: int, value: int) -> None:
        _Q.pack_into(self.memory, slot * _SLOT_SIZE + index * 8, value)

    def set_state(self, slot: int, state: int) -> None:
        self._set(slot, _STATE, state)

    def set_connections(self, slot: int, count: int) -> None:
        self._set(slot, _CONNS, count)

    def set_threads(self, slot: int, busy: int, queued: int) -> None:
        self._set(slot, _BUSY, busy)
        self._set(slot, _QUEUED, queued)

    def request_started(self, slot: int, label: str, now: float | None = None) -> None:
        """Mark the slot busy since ``now`` (default: the current monotonic time)."""
        base = slot * _SLOT_SIZE
        if label != self._label:
            data = label.encode("utf-8", "replace")[:_LABEL_SIZE]
            self.memory[base + _HEAD.size : base + _HEAD.size + len(data)] = data
            self._label = label
            self._label_size = len(data)
        since = time.monotonic() if now is None else now
        _DQ.pack_into(self.memory, base + _SINCE * 8, since, self._label_size)

    def request_finished(self, slot: int, requests: int, errors: int) -> None:
        """Store the worker's running totals and mark it idle."""
        _QQD.pack_into(self.memory, slot * _SLOT_SIZE + _REQUESTS * 8, requests, errors, 0.0)

    def should_yield(self, slot: int, count: int) -> bool:
        """True when this worker holds clearly more connections than another that can take one.

        Only a worker that polls its listener now counts: accepting (not booting
        or draining) and not inside the app (a worker without threads busy in a
        long request would leave the connection waiting until it is done).
        """
        fewest = count
        memory = self.memory
        for other in range(self.slots):
            if other == slot or self._field(other, _STATE) != ACCEPTING:
                continue
            if _D.unpack_from(memory, other * _SLOT_SIZE + _SINCE * 8)[0]:
                continue  # in the app right now: it is not polling
            fewest = min(fewest, self._field(other, _CONNS))
        return count > fewest + ACCEPT_SLACK
