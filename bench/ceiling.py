"""An upper bound, not a server: wsgiwire's SCGI pieces with no server around them.

    python -m bench.ceiling MODULE:APP SOCKET_PATH [WORKERS]

Each of WORKERS forked processes (default 2) accepts SCGI connections on the
unix socket and answers each one with the same codec, environ builder,
response writer and app call that ``wsgiwire serve --protocol scgi`` uses, in
a loop of a few lines. Everything else a server must do is left out:
timeouts, requests that arrive in pieces (it waits for them instead), replies
the peer cannot take at once, request bodies, connection limits, the
scoreboard, reloads, logging. So no Python SCGI server built on these pieces
can use less CPU per request, and its throughput shows how much of the gap to
uWSGI's C server the server part could still close. Hello-world only.
"""

from __future__ import annotations

import _socket
import os
import select
import signal
import socket
import sys
from typing import Any

from wsgiwire._errors import ProtocolError
from wsgiwire._events import NEED_DATA, RequestStarted
from wsgiwire._limits import DEFAULT_LIMITS
from wsgiwire.core._body import BodyBuffer, attach_input
from wsgiwire.core._environ import EnvironBuilder
from wsgiwire.core._gateway import ErrorStream, FileWrapper, call_app
from wsgiwire.core._response import HeadStyle, Response
from wsgiwire.protocols._scgi import SCGIConnection

from .serve_flup import _load


def _serve_one(sock: Any, app: Any, builder: EnvironBuilder) -> None:
    try:
        data = sock.recv(65536)
    except BlockingIOError:  # connected, request not sent yet: wait for it
        waiting = select.poll()
        waiting.register(sock.fileno(), select.POLLIN)
        waiting.poll(1000)
        data = sock.recv(65536)
    codec = SCGIConnection(DEFAULT_LIMITS)
    codec.receive_data(data)
    started = codec.next_event()
    if type(started) is not RequestStarted or codec.next_event() is NEED_DATA:
        return  # not a whole bodiless request in one read: out of scope here
    environ, declared = builder.build_from_strings(started.params)
    body = BodyBuffer(declared, DEFAULT_LIMITS)
    attach_input(environ, body.finish(), terminated=False)
    environ["wsgi.errors"] = ErrorStream()
    pending: list[bytes] = []
    response = Response(
        pending.append,
        method=environ["REQUEST_METHOD"],
        style=HeadStyle.CGI,
        protocol=environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
    )
    call_app(app, environ, response)
    sock.sendmsg(pending)


def _worker(listener: socket.socket, app: Any) -> None:
    builder = EnvironBuilder(multiprocess=True, file_wrapper=FileWrapper)
    family, kind = int(listener.family), int(listener.type)
    ready = select.epoll()
    ready.register(listener.fileno(), select.EPOLLIN)
    backlog = select.poll()
    backlog.register(listener.fileno(), select.POLLIN)
    while True:
        ready.poll(1.0)
        while backlog.poll(0):
            try:
                fd, _ = listener._accept()  # type: ignore[attr-defined]
            except (BlockingIOError, InterruptedError):
                break
            sock = _socket.socket(family, kind, 0, fd)
            try:
                sock.setblocking(False)
                _serve_one(sock, app, builder)
            except (OSError, ProtocolError):
                pass  # the peer went away, or sent what this loop does not handle
            finally:
                sock.close()


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    sys.path.insert(0, os.getcwd())
    app = _load(argv[0])
    path = argv[1]
    workers = int(argv[2]) if len(argv) == 3 else 2
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)  # the benchmark sets the socket's mode for nginx
    listener.listen(1024)
    listener.setblocking(False)
    children = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            try:
                _worker(listener, app)
            finally:
                os._exit(1)
        children.append(pid)

    def stop(signum: int, frame: object) -> None:
        for child in children:
            os.kill(child, signal.SIGTERM)
        for child in children:
            os.waitpid(child, 0)
        os.unlink(path)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while True:
        signal.pause()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
