"""``wsgiwire top ADDR``: a live view of a server's workers, read from its ``--stats`` address.

One line of summary, then a row per worker: id, pid, generation, state,
requests, requests per second, RSS, busy threads, connections, and the
request it runs with its age (one more line per further busy app thread).
``q`` quits. ``--once`` (or an output that is not a terminal) prints one
screen and exits. Standard library only (curses).
"""

from __future__ import annotations

import json
import socket
import sys
import time
from typing import Any, TextIO

__all__ = ["fetch", "main", "render"]

_TIMEOUT = 5.0
_MAX_PAGE = 16 << 20


class TopError(Exception):
    pass


def _connect(address: str) -> socket.socket:
    if address.startswith("http://"):
        address = address[7:].split("/", 1)[0]
    if address.startswith("unix:") or address.startswith("/"):
        path = address[5:] if address.startswith("unix:") else address
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(_TIMEOUT)
        sock.connect(path)
        return sock
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise TopError(f"expected HOST:PORT or unix:/path, not {address!r}")
    host = host.strip("[]") or "127.0.0.1"
    return socket.create_connection((host, int(port)), timeout=_TIMEOUT)


def fetch(address: str) -> dict[str, Any]:
    """The status JSON of the server whose ``--stats`` listener is at ``address``."""
    try:
        with _connect(address) as sock:
            sock.sendall(b"GET / HTTP/1.0\r\nAccept: application/json\r\n\r\n")
            chunks = []
            size = 0
            while chunk := sock.recv(65536):
                chunks.append(chunk)
                size += len(chunk)
                if size > _MAX_PAGE:
                    raise TopError("the status page is too large")
    except OSError as exc:
        raise TopError(f"cannot read the status at {address}: {exc}") from None
    data = b"".join(chunks)
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep or not head.startswith(b"HTTP/1.") or b" 200 " not in head.split(b"\r\n")[0]:
        raise TopError(f"{address} did not answer with a status page")
    try:
        page = json.loads(body)
    except ValueError as exc:
        raise TopError(f"{address}: the status is not JSON: {exc}") from None
    if not isinstance(page, dict) or not isinstance(page.get("workers"), list):
        raise TopError(f"{address}: not a wsgiwire status page")
    return page


def _size(n: object) -> str:
    value = float(n) if isinstance(n, (int, float)) else 0.0
    for unit in ("B", "K", "M", "G"):
        if value < 1024 or unit == "G":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    return "?"


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{seconds:02d}s"


def _clean(text: object) -> str:
    """A label safe to print on a terminal: no control characters."""
    return "".join(ch if ch.isprintable() else "?" for ch in str(text))


HEADER = (f"{'WID':>3} {'PID':>7} {'GEN':>3} {'STATE':<9} {'REQ':>8} {'REQ/S':>7} "
          f"{'RSS':>7} {'BUSY':>4} {'CONN':>4}  {'AGE':>7}  REQUEST")


def render(
    page: dict[str, Any], previous: dict[str, Any] | None = None, elapsed: float = 0.0
) -> list[str]:
    """The screen's lines for ``page`` (rates from ``previous``, ``elapsed`` s earlier)."""
    workers = sorted(page["workers"], key=lambda w: (w.get("id", 0), w.get("pid", 0)))
    before: dict[int, int] = {}
    rate_total: float | None = None
    if previous is not None and elapsed > 0:
        before = {w.get("pid", 0): w.get("requests", 0) for w in previous.get("workers", [])}
        rate_total = (page.get("requests", 0) - previous.get("requests", 0)) / elapsed
    summary = (
        f"wsgiwire {_clean(page.get('version', '?'))} {_clean(page.get('protocol', '?'))}"
        f" - master {page.get('pid', '?')} - up {_duration(page.get('uptime', 0))}"
        f" - gen {page.get('generation', 0)} - workers {len(workers)}"
        f" - req {page.get('requests', 0)}"
        + (f" ({rate_total:.1f}/s)" if rate_total is not None else "")
        + f" - err {page.get('errors', 0)} - in flight {page.get('in_flight', 0)}"
        f" - queued {page.get('queued', 0)} - conns {page.get('connections', 0)}"
        f" - respawns {page.get('respawns', 0)}"
    )
    lines = [summary, HEADER]
    for w in workers:
        pid = w.get("pid", 0)
        rate = "-"
        if previous is not None and elapsed > 0 and pid in before:
            rate = f"{(w.get('requests', 0) - before[pid]) / elapsed:.1f}"
        threads = w.get("threads") or []
        age, request = "", ""
        if threads:
            age, request = f"{threads[0].get('age', 0):.1f}s", _clean(threads[0]["request"])
        generation = w.get("generation")
        lines.append(
            f"{w.get('id', 0):>3} {pid:>7} {'-' if generation is None else generation:>3} "
            f"{_clean(w.get('state', '?')):<9} {w.get('requests', 0):>8} {rate:>7} "
            f"{_size(w.get('rss', 0)):>7} {len(threads):>4} {w.get('connections', 0):>4}  "
            f"{age:>7}  {request}".rstrip()
        )
        for thread in threads[1:]:
            lines.append(f"{'':>58}{thread.get('age', 0):>6.1f}s  {_clean(thread['request'])}")
    return lines


def _once(address: str, interval: float, out: TextIO) -> int:
    first = fetch(address)
    previous, elapsed = None, 0.0
    if interval > 0:
        began = time.monotonic()
        time.sleep(interval)
        previous, first = first, fetch(address)
        elapsed = time.monotonic() - began
    for line in render(first, previous, elapsed):
        out.write(line + "\n")
    out.flush()
    return 0


def _live(address: str, interval: float) -> int:
    import curses

    def loop(screen: Any) -> int:
        curses.curs_set(0)
        screen.timeout(int(interval * 1000))
        previous: dict[str, Any] | None = None
        taken = 0.0
        error = ""
        while True:
            try:
                page = fetch(address)
                now = time.monotonic()
                lines = render(page, previous, now - taken if previous else 0.0)
                previous, taken, error = page, now, ""
            except TopError as exc:
                lines, error = [], str(exc)
            screen.erase()
            height, width = screen.getmaxyx()
            for row, line in enumerate(lines[: height - 1]):
                attr = curses.A_REVERSE if row == 1 else curses.A_NORMAL
                screen.addnstr(row, 0, line, width - 1, attr)
            footer = error or "q: quit"
            screen.addnstr(height - 1, 0, footer, width - 1, curses.A_DIM)
            screen.refresh()
            key = screen.getch()
            if key in (ord("q"), ord("Q"), 27):
                return 0

    result: int = curses.wrapper(loop)
    return result


def main(address: str, *, once: bool = False, interval: float = 1.0,
         out: TextIO | None = None) -> int:
    out = sys.stdout if out is None else out
    try:
        if once or not out.isatty():
            return _once(address, interval if once else 0.0, out)
        return _live(address, interval)
    except TopError as exc:
        print(f"wsgiwire top: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
