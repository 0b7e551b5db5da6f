"""Operating a real ``wsgiwire serve``: access log, logging, /metrics, uwsgitop, ``wsgiwire top``.

* hostile bytes in the request URI, query, user agent and referer (sent as a
  web server's FastCGI params) make one access-log line each, which a
  combined-format parser (tests/ops/combined.py) reads back into the bytes sent;
* the root logger is untouched when the app is imported, and an app's own
  logging (root and a Django-style logger) prints each line once;
* prometheus_client parses ``/metrics`` after load through real nginx, and the
  request counter equals the requests sent across ``--max-requests`` recycles
  and a SIGHUP reload;
* the real ``uwsgitop`` (PyPI) renders the stats address in tmux, without error;
* ``wsgiwire top --once`` shows every worker, and a busy thread's request.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from wsgiwire._client import build_params, fastcgi_request

from ..ops.combined import parse, unescape
from ._ops_support import alive, fcgi, nginx_in_front, ops_backend, wait_until
from .servers import Stage, require_binary

# ---------------------------------------------------------------------------------------
# The access log

HOSTILE = [
    b"/a\r\nb",
    b"/n\x00ul",
    b'/q"uote',
    b"/back\\slash\\x41",
    b"/\x1b[31mansi\x1b[0m",
    b"/bad\xff\xfe\xc3(utf8",
    b'/x" 200 1 "-" "-" 0.000001\n127.0.0.1 - - [05/Dec/2026:09:00:00 +0000] "GET /admin',
]


def test_hostile_request_bytes_make_one_access_line_each_that_parses_back(
    stage: Stage, tmp_path: Path
) -> None:
    access = tmp_path / "access.log"
    options = ("--workers", "1", "--access-log-file", str(access))
    with ops_backend(stage, tmp_path, options) as backend:
        base = backend.target("/hostile/hello")
        for raw in HOSTILE:
            text = raw.decode("latin-1")
            params = build_params(base, headers=[("User-Agent", "ua " + text),
                                                 ("Referer", "http://r" + text)],
                                  extra=[("REQUEST_URI", text + "?q=" + text),
                                         ("QUERY_STRING", "q=" + text)])
            assert fastcgi_request(base, params).status == 200

        def lines() -> list[str]:
            return access.read_text(encoding="ascii").splitlines() if access.exists() else []

        written = wait_until(lambda: len(lines()) >= len(HOSTILE) and lines(), timeout=5.0,
                             what="an access-log line per request")
    assert len(written) == len(HOSTILE), written
    for raw, line in zip(HOSTILE, written, strict=True):
        fields = parse(line)
        assert unescape(fields["r"]) == b"GET " + raw + b"?q=" + raw + b" HTTP/1.1"
        assert unescape(fields["a"]) == b"ua " + raw
        assert unescape(fields["f"]) == b"http://r" + raw
        assert fields["s"] == "200" and int(fields["b"]) > 0
    # The access lines went to their own file, not to the server's log.
    assert "/hostile" not in backend.output()


# ---------------------------------------------------------------------------------------
# Logging belongs to the app


def test_root_logger_untouched_and_app_log_lines_appear_once(
    stage: Stage, tmp_path: Path
) -> None:
    with ops_backend(stage, tmp_path, ("--workers", "1"), app="ops_logging_app") as backend:
        for tag in ("t1", "t2"):
            reply = fcgi(backend.target(), f"/x?{tag}")
            assert reply.status == 200
            assert reply.body == b"root handlers=0 level=WARNING"
        wait_until(lambda: "django-line-t2" in backend.output(), timeout=5.0,
                   what="the app's log lines")
        output = backend.output()
    for tag in ("t1", "t2"):
        assert output.count(f"root-line-{tag}") == 1, output
        assert f"ROOTFMT root root-line-{tag}" in output
        assert output.count(f"child-line-{tag}") == 1, output
        assert f"ROOTFMT myapp.views child-line-{tag}" in output
        # Django's own handler, and the root's: twice, as the app itself asked.
        assert output.count(f"django-line-{tag}") == 2, output
        assert f"DJANGOFMT django-line-{tag}" in output
    # wsgiwire's own lines kept their format and went out once each.
    assert output.count("status page on") == 1


# ---------------------------------------------------------------------------------------
# /metrics

BEFORE_RELOAD, AFTER_RELOAD = 30, 30


def scrape(address: tuple[str, int], path: str) -> tuple[str, str]:
    with socket.create_connection(address, timeout=5.0) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200 "), head
    content_type = next(line.split(b":", 1)[1].strip().decode()
                        for line in head.split(b"\r\n") if line.lower().startswith(b"content-type"))
    return content_type, body.decode()


def metric_values(text: str) -> dict[str, float]:
    """Each sample summed over its labels (the request counter over status classes)."""
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return totals


def test_metrics_parse_and_count_every_request_across_recycles_and_a_reload(
    stage: Stage, tmp_path: Path
) -> None:
    options = ("--workers", "2", "--max-requests", "7")
    with ops_backend(stage, tmp_path, options) as backend, nginx_in_front(backend) as nginx:
        assert backend.stats_address is not None
        for i in range(BEFORE_RELOAD):
            assert nginx.request("GET", f"/m/{i}/hello")[0] == 200, nginx.error_log_text()
        backend.signal(signal.SIGHUP)
        wait_until(lambda: backend.stats()["generation"] == 1, timeout=10.0,
                   what="the reload to start")
        for i in range(AFTER_RELOAD):
            assert nginx.request("GET", f"/n/{i}/hello")[0] == 200, nginx.error_log_text()
        content_type, text = scrape(backend.stats_address, "/metrics")
    sent = BEFORE_RELOAD + AFTER_RELOAD
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    values = metric_values(text)
    assert values["wsgiwire_requests_total"] == sent, text
    assert values["wsgiwire_request_duration_seconds_count"] == sent
    assert values["wsgiwire_request_errors_total"] == 0
    assert values["wsgiwire_reloads_total"] == 1
    # 60 requests over workers recycled every 7 (a few more with the reload).
    assert values["wsgiwire_worker_respawns_total"] >= sent // 7 - 2, text
    assert values["wsgiwire_response_body_bytes_total"] > 0
    assert values["wsgiwire_worker_rss_bytes"] > 0
    families = {f.name for f in text_string_to_metric_families(text)}
    for name in ("wsgiwire_requests_in_flight", "wsgiwire_requests_queued",
                 "wsgiwire_connections", "wsgiwire_reload_failures",
                 "wsgiwire_malformed_requests", "wsgiwire_request_body_bytes"):
        assert name in families, sorted(families)


# ---------------------------------------------------------------------------------------
# uwsgitop, and wsgiwire top


def test_real_uwsgitop_renders_our_stats(stage: Stage, tmp_path: Path) -> None:
    tmux = require_binary("tmux")
    uwsgitop = Path(sys.executable).parent / "uwsgitop"
    assert uwsgitop.exists(), "uwsgitop is a test dependency (pyproject [test])"
    errors, status = tmp_path / "uwsgitop.err", tmp_path / "uwsgitop.status"
    name = f"wsgiwire-test-{os.getpid()}-{time.monotonic_ns()}"
    with ops_backend(stage, tmp_path, ("--workers", "2")) as backend:
        assert backend.stats_address is not None
        for i in range(5):
            assert fcgi(backend.target(), f"/u/{i}/hello").status == 200
        host, port = backend.stats_address
        # The pane is 200x30; no inherited COLUMNS/LINES may tell curses otherwise.
        inner = (f"unset COLUMNS LINES; TERM=xterm {shlex.quote(str(uwsgitop))} {host}:{port} "
                 f"2>{shlex.quote(str(errors))}; echo $? > {shlex.quote(str(status))}")
        tmux_cmd = [tmux, "-L", name, "-f", "/dev/null"]
        subprocess.run([*tmux_cmd, "new-session", "-d", "-x", "200", "-y", "30", inner],
                       check=True, timeout=10)
        pids = [int(p) for p in subprocess.run(
            [*tmux_cmd, "display-message", "-p", "#{pid} #{pane_pid}"],
            check=True, timeout=10, capture_output=True, text=True).stdout.split()]
        try:
            workers = backend.worker_pids()

            def screen() -> str:
                shown = subprocess.run([*tmux_cmd, "capture-pane", "-p"], check=True,
                                       timeout=10, capture_output=True, text=True).stdout
                return shown if all(str(pid) in shown for pid in workers) else ""

            shown = wait_until(screen, timeout=10.0, what="uwsgitop showing every worker")
            subprocess.run([*tmux_cmd, "send-keys", "q"], check=True, timeout=10)
            wait_until(lambda: status.exists() and status.read_text().strip(), timeout=10.0,
                       what="uwsgitop to quit")
        finally:
            for pid in reversed(pids):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
            wait_until(lambda: not any(alive(pid) for pid in pids), timeout=10.0,
                       what="tmux to exit")
    assert status.read_text().strip() == "0", errors.read_text()
    assert errors.read_text() == ""
    assert "WID" in shown and f"masterpid: {backend.pid}" in shown, shown
    assert " req: 5 " in shown, shown


def test_wsgiwire_top_once_shows_every_worker_and_a_busy_request(
    stage: Stage, tmp_path: Path
) -> None:
    options = ("--workers", "3", "--threads", "2")
    with ops_backend(stage, tmp_path, options) as backend:
        assert backend.stats_address is not None
        host, port = backend.stats_address
        slow = threading.Thread(target=fcgi, args=(backend.target(), "/busy/sleep?3"))
        slow.start()
        try:
            wait_until(lambda: backend.stats()["busy_threads"] == 1, timeout=5.0,
                       what="the slow request to run")
            result = subprocess.run(
                [sys.executable, "-m", "wsgiwire", "top", f"{host}:{port}", "--once",
                 "--interval", "0.2"],
                check=False, capture_output=True, text=True, timeout=20,
            )
            workers = backend.worker_pids()
        finally:
            slow.join(timeout=10)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("wsgiwire ") and f"master {backend.pid}" in lines[0]
    assert lines[1].split()[:4] == ["WID", "PID", "GEN", "STATE"]
    rows = {int(line.split()[1]): line for line in lines[2:] if line.split()[0].isdigit()}
    assert set(rows) == workers, result.stdout
    busy = [line for line in rows.values() if "GET /busy/sleep?3" in line]
    assert len(busy) == 1, result.stdout
    age = float(busy[0].split()[-3].rstrip("s"))
    assert 0 <= age < 3.5, busy[0]

