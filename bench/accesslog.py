"""What the access log and the per-request counters cost, per request, in this process.

    .venv/bin/python bench/accesslog.py

Times (best of 5 repeats, µs per request): formatting one default-format line; writing
it through the ``wsgiwire.access`` logger to a file (what ``--access-log-file`` does per
request); the scoreboard's per-request counters (``Scoreboard.record``, on with or
without the access log) next to the write the worker always did
(``request_finished``). bench/run.py's ``wsgiwire-*-accesslog`` backends measure the
same end to end, behind nginx.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from wsgiwire import _logs as logs
from wsgiwire._accesslog import AccessLog
from wsgiwire.adapters._scoreboard import Scoreboard
from wsgiwire.core._response import Response

NUMBER = 20000
REPEAT = 5


def environ() -> dict[str, str]:
    return {
        "REQUEST_METHOD": "GET", "REQUEST_URI": "/hello?name=world", "QUERY_STRING": "name=world",
        "SCRIPT_NAME": "", "PATH_INFO": "/hello", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "50432", "SERVER_NAME": "localhost",
        "HTTP_HOST": "localhost", "HTTP_USER_AGENT": "wrk/4.2.0 (a benchmark)",
        "HTTP_REFERER": "http://localhost/", "HTTP_ACCEPT": "*/*", "CONTENT_LENGTH": "",
    }


def best(stmt: object) -> float:
    """µs per call, best of REPEAT runs of NUMBER calls."""
    return min(timeit.repeat(stmt, number=NUMBER, repeat=REPEAT)) / NUMBER * 1e6  # type: ignore[arg-type]


def main() -> int:
    env = environ()
    response = Response(lambda data: None)
    response.start_response("200 OK", [("Content-Type", "text/plain")])
    response.write(b"Hello, World!")
    access = AccessLog()
    board = Scoreboard(2)
    saved = logging.getLogger(logs.ACCESS_LOGGER).handlers[:]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "access.log")
        logs.configure_logging("warning", access_log_file=path)
        try:
            figures = {
                "format one line (AccessLog.line)": best(lambda: access.line(env, response,
                                                                           0.0004)),
                "format and write it to a file (AccessLog.log)": best(
                    lambda: access.log(env, response, 0.0004)),
                "scoreboard: request_finished (always there)": best(
                    lambda: board.request_finished(0, 1, 0)),
                "scoreboard: record (counters for /metrics)": best(
                    lambda: board.record(0, "200 OK", 0.0004, 0, 13)),
            }
            lines = Path(path).read_text().count("\n")
        finally:
            with logs._lock:
                logs._remove_installed()
            logging.getLogger(logs.ACCESS_LOGGER).handlers[:] = saved
    print(f"Python {sys.version.split()[0]}; {NUMBER} calls x {REPEAT}, best; "
          f"{lines} lines written")
    for what, us in figures.items():
        print(f"  {what:<48} {us:6.2f} µs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
