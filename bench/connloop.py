"""A connection per request through a real worker, in this process: no nginx, no wrk.

    .venv/bin/python bench/connloop.py uwsgi              # µs of CPU per request
    .venv/bin/python bench/connloop.py fastcgi-nokeep --requests 1000 --repeat 0
    .venv/bin/python bench/connloop.py scgi --app flask   # the Flask app, at /
    valgrind --tool=callgrind python bench/connloop.py scgi --requests N --repeat 0

A client opens a unix socket connection, sends the request nginx would (the
params of ``bench/codec.py``), and the worker's loop takes one turn (``poll``,
``accept``, read, app, reply, close), as ``Worker.serve`` would; then the client
reads the reply to the end. ``fastcgi-keep`` sends every request over one kept
connection instead, for comparison. The CPU figure (best of ``--repeat`` runs of
``--requests``) includes the client's side, the same for every tree. For a
deterministic figure, run callgrind with ``PYTHONHASHSEED=0``, ``--repeat 0`` and
N then 2N requests: the difference of the two instruction counts, divided by N, is
one request's. ``PYTHONPATH=DIR`` runs another tree (a compiled copy).
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

# Appended, so that PYTHONPATH=DIR (another tree, a compiled copy) comes first.
sys.path.append(str(Path(__file__).resolve().parent.parent))

from bench.apps import FLASK_BODY, HELLO_BODY, flask_app, hello
from bench.codec import (
    FASTCGI_PARAMS,
    SCGI_PARAMS,
    UWSGI_PARAMS,
    Pairs,
    fastcgi_request,
    scgi_request,
    uwsgi_request,
)
from wsgiwire._build import name as build_name
from wsgiwire.adapters._connection import Connection
from wsgiwire.adapters._drivers import FastCGIDriver, SCGIDriver, UWSGIDriver
from wsgiwire.adapters._listeners import open_listener, parse_bind
from wsgiwire.adapters._runtime import ProtocolDriver, Scoreboard, ServerConfig, Worker

APPS = {"hello": (hello, HELLO_BODY), "flask": (flask_app, FLASK_BODY)}
CASES: dict[str, tuple[Callable[[], ProtocolDriver], Callable[[Pairs], bytes], Pairs]] = {
    "scgi": (SCGIDriver, scgi_request, SCGI_PARAMS),
    "uwsgi": (UWSGIDriver, uwsgi_request, UWSGI_PARAMS),
    "fastcgi-nokeep": (FastCGIDriver, partial(fastcgi_request, keep_conn=False), FASTCGI_PARAMS),
    "fastcgi-keep": (FastCGIDriver, partial(fastcgi_request, keep_conn=True), FASTCGI_PARAMS),
}


def _at_root(params: Pairs) -> Pairs:
    """The same request for ``/``: the Flask app has only that route."""
    return [(name, value.replace(b"/hello/world", b"/")) for name, value in params]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("case", choices=sorted(CASES))
    parser.add_argument("--app", choices=sorted(APPS), default="hello")
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5, help="timed runs (0: run once, untimed)")
    args = parser.parse_args()
    driver, encode, params = CASES[args.case]
    app, body = APPS[args.app]
    request = encode(_at_root(params) if args.app == "flask" else params)

    path = os.path.join(tempfile.mkdtemp(prefix="wsgiwire-connloop-"), "s.sock")
    listener = open_listener(parse_bind(f"unix:{path}"))
    board = Scoreboard(2)
    board.assign(0, os.getpid())
    # As a worker of `wsgiwire serve --workers 2` runs: with a scoreboard slot.
    worker = Worker(ServerConfig(app=app, driver=driver(), listeners=[listener], workers=2),
                    board, 0)
    worker._start_accepting()
    poller = worker.poller

    def turn() -> None:
        """One turn of Worker.serve's loop (its dispatch, less the sweep)."""
        for target in poller.wait(1.0):
            if type(target) is Connection:
                if not target.closed:
                    if target.outbox is not None:
                        target.on_writable()
                    else:
                        target.on_readable()
            elif target is not None:
                worker._accept(target)

    def one_connection() -> bytes:
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(path)
        client.sendall(request)
        turn()
        reply = b""
        while data := client.recv(65536):
            reply += data
        client.close()
        return reply

    kept = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)

    def kept_connection() -> bytes:
        kept.sendall(request)
        turn()
        return kept.recv(65536)

    step = one_connection
    if args.case == "fastcgi-keep":
        kept.connect(path)
        step = kept_connection
    try:
        if body not in step():
            raise SystemExit(f"the worker did not answer {args.app}")
        for _ in range(200):  # warm up
            step()
        if not args.repeat:
            for _ in range(args.requests):
                step()
            return 0
        best = min(_timed(step, args.requests) for _ in range(args.repeat))
        print(f"{args.case} {args.app} ({build_name()}): {best * 1e6:.2f} µs of CPU per request "
              f"(best of {args.repeat} x {args.requests}, the client's side included)")
    finally:
        kept.close()
        worker.close()
        listener.close()
        os.unlink(path)
        os.rmdir(os.path.dirname(path))
    return 0


def _timed(step: Callable[[], bytes], requests: int) -> float:
    started = time.process_time()
    for _ in range(requests):
        step()
    return (time.process_time() - started) / requests


if __name__ == "__main__":
    raise SystemExit(main())
