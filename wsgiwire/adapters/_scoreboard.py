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
from bisect import bisect_left
from dataclasses import dataclass
from typing import Final

__all__ = [
    "ACCEPTING",
    "COUNTERS",
    "DURATION_BUCKETS",
    "MALFORMED_REASONS",
    "STATUS_CLASSES",
    "SlotCounters",
    "ACCEPT_SLACK",
    "BOOTING",
    "DRAINING",
    "FREE",
    "Scoreboard",
    "SlotInfo",
]

# Module constants are Final: the compiled build then reads them as C
# constants, not by name from the module's dict on every use.
ACCEPT_SLACK: Final = 1

FREE: Final = 0
ACCEPTING: Final = 1
DRAINING: Final = 2
BOOTING: Final = 3  # forked, still loading the app: not a candidate for balancing yet

# The head of a slot: pid, state, connections, busy threads, queued, label
# length, busy_since (monotonic seconds, 0 = idle), requests, errors, bytes in
# (request bodies), bytes out (response bodies), duration sum (s), spawned at
# (epoch s); then the label. What a request writes is adjacent: one write when
# it starts (label length, since), one when it ends (since = 0, requests,
# errors, bytes in, bytes out, duration sum), plus its status class's and its
# duration bucket's count below.
_HEAD: Final = struct.Struct("=qqqqqqdqqqqdd")
_LABEL_SIZE: Final = 240

# The head's fields, as 8-byte word indexes.
_PID: Final = 0
_STATE: Final = 1
_CONNS: Final = 2
_BUSY: Final = 3
_QUEUED: Final = 4
_LABEL_LEN: Final = 5
_SINCE: Final = 6
_REQUESTS: Final = 7
_ERRORS: Final = 8
_BYTES_IN: Final = 9
_BYTES_OUT: Final = 10
_DURATION: Final = 11
_Q: Final = struct.Struct("=q")
_D: Final = struct.Struct("=d")
_BALANCE: Final = struct.Struct("=qqqqqqd")  # pid .. since
_IN_AT: Final = _BYTES_IN * 8  # bytes in, bytes out, duration sum
_TOTALS_SPAWNED: Final = struct.Struct("=qqdd")
_SPAWNED_AT: Final = (_SINCE + 6) * 8

# The counts after the label, for the status page and /metrics. Each is a
# running total of the worker in the slot (as are the head's requests, errors,
# bytes and duration); the master adds a reaped worker's totals to its own (see
# adapters/_stats.py), so no count is lost when a worker is recycled or reloaded.
# Request-duration histogram bounds, in seconds (Prometheus's "le" labels). A
# tuple[float, ...], not a fixed-length tuple type: the compiled build would keep
# that unboxed and box a new tuple for every bisect_left() call.
DURATION_BUCKETS: Final[tuple[float, ...]] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0
)
# Status classes counted (index 5: no status at all, e.g. the client left first).
STATUS_CLASSES: Final[tuple[str, ...]] = ("1xx", "2xx", "3xx", "4xx", "5xx", "none")
# Why requests were refused as malformed (from the error raised by the codec or core).
MALFORMED_REASONS: Final[tuple[str, ...]] = ("limit", "bad_request", "protocol")
# Per status class, per duration bucket (last: +Inf), per malformed reason.
_C_STATUS: Final = 0
_C_BUCKETS: Final = _C_STATUS + len(STATUS_CLASSES)
_C_MALFORMED: Final = _C_BUCKETS + len(DURATION_BUCKETS) + 1
COUNTERS: Final = _C_MALFORMED + len(MALFORMED_REASONS)
_COUNTERS: Final = struct.Struct("=" + "q" * COUNTERS)
_COUNTERS_AT: Final = _HEAD.size + _LABEL_SIZE
_COUNTERS_WORD: Final = _COUNTERS_AT // 8  # every field is 8 bytes, at a multiple of 8
# A status line's first character -> its class's index in STATUS_CLASSES (a
# status the core accepted starts with a digit 1-9).
_STATUS_CLASS: Final = {str(digit): _C_STATUS + min(digit - 1, 5) for digit in range(1, 10)}

# Per app thread (--threads): busy since (0 = idle) and label length; then the label.
_THREAD: Final = struct.Struct("=dq")
_THREAD_LABEL_SIZE: Final = 240
_THREAD_SIZE: Final = _THREAD.size + _THREAD_LABEL_SIZE
_THREADS_AT: Final = _COUNTERS_AT + _COUNTERS.size


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


@dataclass(frozen=True, slots=True)
class SlotCounters:
    """A slot's counters (see the layout above); ``spawned`` is epoch seconds."""

    bytes_in: int
    bytes_out: int
    duration_sum: float
    spawned: float
    statuses: tuple[int, ...]
    buckets: tuple[int, ...]  # not cumulative; the last is above the largest bound
    malformed: tuple[int, ...]


class Scoreboard:
    """Shared per-worker counters; create before forking.

    ``threads``: app threads per worker, each with its own current request.
    """

    def __init__(self, slots: int, threads: int = 0) -> None:
        self.slots = slots
        self.threads = threads
        self.slot_size = _THREADS_AT + _THREAD_SIZE * threads
        self.memory = mmap.mmap(-1, self.slot_size * slots)
        # The same memory as 8-byte words, integer and float: a worker counts a
        # request with a few item assignments (the per-request writes), where
        # struct packing would cost a call each. Fields are 8 bytes at multiples
        # of 8, and so is a slot's size: word ``slot * _words + field``.
        self._words = self.slot_size // 8
        self._q = memoryview(self.memory).cast("q")
        self._d = memoryview(self.memory).cast("d")
        # The label length this process last wrote (a worker writes its label
        # only when it changes: see request_started).
        self._label_size = 0

    # -- master side ------------------------------------------------------
    def assign(self, slot: int, pid: int) -> None:
        base = slot * self.slot_size
        # A slot is assigned only once free (zeroed): the totals start at zero.
        _HEAD.pack_into(self.memory, base, pid, BOOTING, 0, 0, 0, 0, 0.0, 0, 0, 0, 0, 0.0,
                        time.time())

    def free(self, slot: int) -> None:
        base = slot * self.slot_size
        self.memory[base : base + self.slot_size] = bytes(self.slot_size)

    def free_slot(self) -> int:
        for slot in range(self.slots):
            if self._field(slot, _STATE) == FREE:
                return slot
        raise RuntimeError("no free scoreboard slot")

    def read(self, slot: int) -> SlotInfo:
        base = slot * self.slot_size
        values = _HEAD.unpack_from(self.memory, base)
        start = base + _HEAD.size
        label = bytes(self.memory[start : start + values[_LABEL_LEN]]).decode(
            "utf-8", "replace"
        )
        pid, state, conns, busy, queued, _, since, requests, errors = values[:9]
        return SlotInfo(slot, pid, state, conns, requests, errors, busy, queued, since, label)

    def all(self) -> list[SlotInfo]:
        return [self.read(slot) for slot in range(self.slots) if self._field(slot, _STATE)]

    def counters(self, slot: int) -> SlotCounters:
        base = slot * self.slot_size
        bytes_in, bytes_out, duration, spawned = _TOTALS_SPAWNED.unpack_from(
            self.memory, base + _IN_AT
        )
        values = _COUNTERS.unpack_from(self.memory, base + _COUNTERS_AT)
        return SlotCounters(
            bytes_in, bytes_out, duration, spawned,
            values[_C_STATUS:_C_BUCKETS], values[_C_BUCKETS:_C_MALFORMED],
            values[_C_MALFORMED:],
        )

    def thread_requests(self, slot: int) -> list[tuple[int, float, str]]:
        """(thread index, busy since, label) of each app thread running a request."""
        busy = []
        base = slot * self.slot_size + _THREADS_AT
        for index in range(self.threads):
            at = base + index * _THREAD_SIZE
            since, size = _THREAD.unpack_from(self.memory, at)
            if since:
                start = at + _THREAD.size
                label = bytes(self.memory[start : start + size]).decode("utf-8", "replace")
                busy.append((index, since, label))
        return busy

    # -- worker side ------------------------------------------------------
    def _field(self, slot: int, index: int) -> int:
        value: int = _Q.unpack_from(self.memory, slot * self.slot_size + index * 8)[0]
        return value

    def _set(self, slot: int, index: int, value: int) -> None:
        _Q.pack_into(self.memory, slot * self.slot_size + index * 8, value)

    def set_state(self, slot: int, state: int) -> None:
        self._set(slot, _STATE, state)

    def set_connections(self, slot: int, count: int) -> None:
        self._set(slot, _CONNS, count)

    def set_threads(self, slot: int, busy: int, queued: int) -> None:
        self._set(slot, _BUSY, busy)
        self._set(slot, _QUEUED, queued)

    def request_started(self, slot: int, label: str | None, now: float | None = None) -> None:
        """Mark the slot busy since ``now`` (default: the current monotonic time).

        ``label`` (``METHOD uri``) is written when given; ``None`` keeps the one
        this process wrote last (a worker passes it only when it changed).
        """
        at = slot * self._words
        if label is not None:
            data = label.encode("utf-8", "replace")[:_LABEL_SIZE]
            base = slot * self.slot_size + _HEAD.size
            self.memory[base : base + len(data)] = data
            self._q[at + _LABEL_LEN] = self._label_size = len(data)
        self._d[at + _SINCE] = time.monotonic() if now is None else now

    def request_finished(self, slot: int, requests: int, errors: int) -> None:
        """Store the worker's running totals and mark it idle."""
        at = slot * self._words
        self._d[at + _SINCE] = 0.0
        q = self._q
        q[at + _REQUESTS] = requests
        q[at + _ERRORS] = errors

    def request_done(
        self, slot: int, requests: int, errors: int, *, status: str | None, duration: float,
        bytes_in: int, bytes_out: int,
    ) -> None:
        """``request_finished`` and ``record`` in one call: the worker's per-request write."""
        at = slot * self._words
        q = self._q
        d = self._d
        d[at + _SINCE] = 0.0
        q[at + _REQUESTS] = requests
        q[at + _ERRORS] = errors
        q[at + _BYTES_IN] += bytes_in
        q[at + _BYTES_OUT] += bytes_out
        d[at + _DURATION] += duration
        # (_count, less a call: this runs on every request)
        at += _COUNTERS_WORD
        # A status the core let through starts with a digit 1-9.
        q[at + (_STATUS_CLASS[status[0]] if status else _C_STATUS + 5)] += 1
        q[at + _C_BUCKETS + bisect_left(DURATION_BUCKETS, duration)] += 1

    def record(
        self, slot: int, status: str | None, duration: float, bytes_in: int, bytes_out: int
    ) -> None:
        """Count one finished request (the caller serialises calls from app threads)."""
        at = slot * self._words
        q = self._q
        q[at + _BYTES_IN] += bytes_in
        q[at + _BYTES_OUT] += bytes_out
        self._d[at + _DURATION] += duration
        self._count(at + _COUNTERS_WORD, status, duration)

    def _count(self, at: int, status: str | None, duration: float) -> None:
        q = self._q
        # A status the core let through starts with a digit 1-9.
        q[at + (_STATUS_CLASS[status[0]] if status else _C_STATUS + 5)] += 1
        q[at + _C_BUCKETS + bisect_left(DURATION_BUCKETS, duration)] += 1

    def count_malformed(self, slot: int, reason: int) -> None:
        """Count a request refused as malformed (``reason``: index in MALFORMED_REASONS)."""
        self._q[slot * self._words + _COUNTERS_WORD + _C_MALFORMED + reason] += 1

    def thread_started(self, slot: int, index: int, label: str, since: float) -> None:
        """App thread ``index`` runs the request ``label`` since ``since`` (monotonic)."""
        if index >= self.threads:
            return
        at = slot * self.slot_size + _THREADS_AT + index * _THREAD_SIZE
        data = label.encode("utf-8", "replace")[:_THREAD_LABEL_SIZE]
        start = at + _THREAD.size
        self.memory[start : start + len(data)] = data
        _THREAD.pack_into(self.memory, at, since, len(data))

    def thread_finished(self, slot: int, index: int) -> None:
        if index < self.threads:
            at = slot * self.slot_size + _THREADS_AT + index * _THREAD_SIZE
            _D.pack_into(self.memory, at, 0.0)

    def should_yield(self, slot: int, count: int) -> bool:
        """True when this worker holds clearly more connections than another that can take one.

        Only a worker that polls its listener now counts: accepting (not booting
        or draining) and not inside the app (a worker without threads busy in a
        long request would leave the connection waiting until it is done).
        """
        fewest = count
        memory = self.memory
        size = self.slot_size
        for other in range(self.slots):
            if other == slot:
                continue
            _, state, conns, _, _, _, since = _BALANCE.unpack_from(memory, other * size)
            # In the app right now (since): it is not polling.
            if state == ACCEPTING and not since and conns < fewest:
                fewest = conns
        return count > fewest + ACCEPT_SLACK
