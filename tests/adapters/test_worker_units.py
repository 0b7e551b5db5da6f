"""Small pieces of the worker loop: accept balancing, spool failures."""

from __future__ import annotations

import errno
import tempfile
import time
from typing import Any

import pytest

from wsgiwire._limits import Limits
from wsgiwire.adapters._scoreboard import ACCEPTING, BOOTING, Scoreboard
from wsgiwire.core._body import BodyBuffer, SpoolError


def test_balancing_never_defers_to_a_worker_busy_in_the_app_or_not_accepting() -> None:
    board = Scoreboard(3)
    for slot in range(3):
        board.assign(slot, 1000 + slot)
    board.set_state(0, ACCEPTING)
    board.set_state(1, ACCEPTING)
    board.set_state(2, BOOTING)
    board.set_connections(0, 5)
    board.set_connections(1, 0)
    board.set_connections(2, 0)
    assert board.should_yield(0, 5)  # worker 1 holds fewer and can take one
    board.request_started(1, "GET /long", time.monotonic())
    assert not board.should_yield(0, 5)  # worker 1 is inside the app: not polling
    board.request_finished(1, 1, 0)
    assert board.should_yield(0, 5)


@pytest.mark.parametrize(
    ("code", "status"),
    [(errno.ENOSPC, 507), (errno.EFBIG, 507), (errno.EDQUOT, 507), (errno.EIO, 500)],
)
def test_a_spool_that_cannot_be_written_is_the_requests_error(
    monkeypatch: pytest.MonkeyPatch, code: int, status: int
) -> None:
    closed: list[bool] = []

    class FailingFile:
        def write(self, data: bytes) -> int:
            raise OSError(code, "no room")

        def close(self) -> None:
            closed.append(True)

    def temporary_file(*args: Any, **kwargs: Any) -> FailingFile:
        return FailingFile()

    # The body module imports tempfile when it first spools (CGI start-up).
    monkeypatch.setattr(tempfile, "TemporaryFile", temporary_file)
    buffer = BodyBuffer(100, Limits(spool_threshold=10))
    buffer.feed(b"x" * 5)
    with pytest.raises(SpoolError) as raised:
        buffer.feed(b"y" * 50)
    assert raised.value.status_hint == status
    assert closed == [True]  # the temporary file is closed at once


def test_request_done_adds_each_request_to_its_own_slot_only() -> None:
    """A request's end: the slot idle, its requests and errors as given, bytes and
    duration added to the running totals, one count in its status class and in its
    duration bucket; the neighbouring slots untouched."""
    board = Scoreboard(3)
    for slot, pid in ((0, 100), (1, 101), (2, 102)):
        board.assign(slot, pid)
    before = [board.counters(slot) for slot in (0, 2)]
    board.request_started(1, "GET /a", 5.0)
    board.request_done(1, 1, 0, status="200 OK", duration=0.004, bytes_in=10, bytes_out=100)
    board.request_started(1, "GET /b", 6.0)
    board.request_done(1, 2, 1, status="503 Service Unavailable", duration=2.0,
                       bytes_in=5, bytes_out=7)
    info = board.read(1)
    assert (info.pid, info.requests, info.errors, info.busy_since) == (101, 2, 1, 0.0)
    counters = board.counters(1)
    assert (counters.bytes_in, counters.bytes_out) == (15, 107)
    assert counters.duration_sum == pytest.approx(2.004)
    assert counters.statuses == (0, 1, 0, 0, 1, 0)
    assert counters.buckets[2] == 1  # 0.004 s: le 0.005
    assert counters.buckets[10] == 1  # 2.0 s: le 2.5
    assert sum(counters.buckets) == 2
    assert [board.counters(slot) for slot in (0, 2)] == before
    assert [board.read(slot).requests for slot in (0, 2)] == [0, 0]
