"""wsgiwire._logs: only our loggers, files reopened for logrotate, JSON lines, zoned time."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from wsgiwire import _logs as logs
from wsgiwire._accesslog import AccessLog
from wsgiwire.core._response import Response

ISO_ZONED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d")


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Put the loggers back as they were (other tests read wsgiwire's lines via caplog)."""
    names = ("", logs.LOGGER, logs.ACCESS_LOGGER)
    saved = {
        name: (list(logging.getLogger(name).handlers), logging.getLogger(name).level,
               logging.getLogger(name).propagate)
        for name in names
    }
    try:
        yield
    finally:
        with logs._lock:
            logs._remove_installed()
        logs._json = False
        for name, (handlers, level, propagate) in saved.items():
            logger = logging.getLogger(name)
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate


def test_the_root_logger_is_left_alone() -> None:
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    logs.configure_logging("debug")
    assert (list(root.handlers), root.level) == before
    ours = logging.getLogger("wsgiwire")
    assert len(ours.handlers) == 1 and ours.propagate is False
    assert logging.getLogger("wsgiwire.access").propagate is False


def test_configuring_twice_replaces_our_handlers(tmp_path: Path) -> None:
    logs.configure_logging("info", log_file=str(tmp_path / "a.log"))
    logs.configure_logging("info", log_file=str(tmp_path / "b.log"))
    assert len(logging.getLogger("wsgiwire").handlers) == 1
    logging.getLogger("wsgiwire").info("to b")
    assert "to b" not in (tmp_path / "a.log").read_text()
    assert "to b" in (tmp_path / "b.log").read_text()


def test_text_lines_carry_a_zoned_iso_timestamp(tmp_path: Path) -> None:
    path = tmp_path / "w.log"
    logs.configure_logging("info", log_file=str(path))
    logging.getLogger("wsgiwire").warning("hello %s", "there")
    (line,) = path.read_text().splitlines()
    assert ISO_ZONED.match(line), line
    assert line.endswith("WARNING wsgiwire: hello there")


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "America/St_Johns", "Asia/Kolkata"])
def test_iso_time_is_datetimes_isoformat_to_the_millisecond(
    zone: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """iso_time (time.localtime, no datetime module in the workers) writes what
    ``datetime.fromtimestamp(t).astimezone().isoformat(timespec="milliseconds")``
    writes: zones with half-hour offsets, summer time, and fractions that round to
    the microsecond across a millisecond or a second."""
    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        whole = [0, 1_615_432_163, 1_700_000_000, 1_972_000_000, 2_000_000_000]
        fractions = [0.0, 0.0005, 0.123, 0.9994999, 0.9995, 0.97999993, 0.9999995, 0.99999949]
        for second in whole:
            for fraction in fractions:
                created = second + fraction
                expected = datetime.fromtimestamp(created).astimezone().isoformat(
                    timespec="milliseconds")
                assert logs.iso_time(created) == expected, created
    finally:
        monkeypatch.undo()  # TZ as it was, and the time module told
        time.tzset()


def test_reopen_after_a_rename_starts_a_new_file_and_loses_nothing(tmp_path: Path) -> None:
    main, access = tmp_path / "wsgiwire.log", tmp_path / "access.log"
    logs.configure_logging("info", log_file=str(main), access_log_file=str(access))
    log = logging.getLogger("wsgiwire")
    log.info("before rotation")
    logging.getLogger("wsgiwire.access").info("access before")
    main.rename(tmp_path / "wsgiwire.log.1")
    access.rename(tmp_path / "access.log.1")
    log.info("between")  # still the old file: logrotate signals after renaming
    assert logs.reopen_log_files() == 2
    log.info("after rotation")
    logging.getLogger("wsgiwire.access").info("access after")
    old = (tmp_path / "wsgiwire.log.1").read_text()
    assert "before rotation" in old and "between" in old and "after rotation" not in old
    assert "after rotation" in main.read_text()
    assert (tmp_path / "access.log.1").read_text() == "access before\n"
    assert access.read_text() == "access after\n"


def test_json_format_is_one_object_per_line_even_with_newlines(tmp_path: Path) -> None:
    path, access = tmp_path / "w.json", tmp_path / "a.json"
    logs.configure_logging("info", log_file=str(path), access_log_file=str(access),
                           log_format="json")
    logging.getLogger("wsgiwire").error("two\nlines \xff")
    resp = Response(lambda data: None)
    resp.start_response("200 OK", [])
    environ = {"REQUEST_METHOD": "GET", "REQUEST_URI": "/x\n", "SERVER_PROTOCOL": "HTTP/1.1",
               "REMOTE_ADDR": "127.0.0.1"}
    AccessLog().log(environ, resp, 0.001)
    (line,) = path.read_text().splitlines()
    record = json.loads(line)
    assert record["message"] == "two\nlines \xff" and record["level"] == "ERROR"
    assert ISO_ZONED.match(record["time"]) and record["logger"] == "wsgiwire"
    (line,) = access.read_text().splitlines()
    record = json.loads(line)
    assert record["access"]["r"] == "GET /x\\x0A HTTP/1.1"
    assert record["access"]["s"] == "200"


def test_an_unwritable_log_file_fails_at_start(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        logs.configure_logging("info", log_file=str(tmp_path / "missing" / "w.log"))


def test_a_handler_the_app_adds_to_the_access_logger_gets_the_lines_too(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    logs.configure_logging("info", access_log_file=str(path))
    access_logger = logging.getLogger("wsgiwire.access")
    assert logs.access_writer(access_logger) is not None  # only ours: the direct path
    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    extra = Collect()
    access_logger.addHandler(extra)
    try:
        assert logs.access_writer(access_logger) is None  # the logging machinery runs
        resp = Response(lambda data: None)
        resp.start_response("200 OK", [])
        AccessLog().log({"REQUEST_METHOD": "GET", "REQUEST_URI": "/y"}, resp, 0.0)
    finally:
        access_logger.removeHandler(extra)
    assert len(seen) == 1 and '"GET /y -" 200 -' in seen[0]
    assert path.read_text() == seen[0] + "\n"
