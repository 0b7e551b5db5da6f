"""``wsgiwire check``: the answer to "premature end of script headers".

Imports the app the way the server would (the working directory on
``sys.path``, the same ``module:callable`` rules), then sends one request
through the real code path for each protocol, in this process: the request
is encoded as a web server would send it, written into one end of a socket
pair, served by the same connection code the server runs, and the reply
decoded from the other end. The app runs under ``wsgiref.validate``; every
complaint, error log line and the reply are printed.
"""

from __future__ import annotations

import json
import logging
import select
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import IO, Any, cast
from wsgiref.validate import validator

from ._apploader import AppLoadError, load_app
from ._client import (
    FastCGIRecords,
    Reply,
    Target,
    build_params,
    encode_scgi,
    encode_uwsgi,
    parse_head,
)
from .core._gateway import WSGIApp
from .protocols._fastcgi import FastCGIClient

__all__ = ["CheckResult", "check_app", "main"]

PROTOCOLS = ("fastcgi", "scgi", "uwsgi")
_TIMEOUT = 30.0


@dataclass
class CheckResult:
    protocol: str
    reply: Reply | None
    environ: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.reply is not None and self.reply.status < 500


class _Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _observed(app: WSGIApp, seen: dict[str, Any]) -> WSGIApp:
    def probe(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        seen.update(
            (k, v) for k, v in environ.items() if isinstance(v, (str, bool, int, tuple))
        )
        return app(environ, start_response)

    return probe


def _request_bytes(protocol: str, params: list[tuple[bytes, bytes]], body: bytes) -> bytes:
    if protocol == "scgi":
        return encode_scgi(params) + body
    if protocol == "uwsgi":
        return encode_uwsgi(params) + body
    client = FastCGIClient()
    data = client.begin(1, params)
    if body:
        data += client.stdin(1, body)
    return data + client.end_stdin(1)


def _drain(sock: socket.socket, chunks: list[bytes]) -> None:
    sock.settimeout(_TIMEOUT)
    try:
        while True:
            data = sock.recv(262144)
            if not data:
                return
            chunks.append(data)
    except OSError:
        return


def _decode(protocol: str, raw: bytes) -> Reply:
    if protocol != "fastcgi":
        status, reason, headers, content = parse_head(raw)
        return Reply(raw, status, reason, headers, content)
    client = FastCGIClient()
    client.receive_data(raw)
    records = FastCGIRecords()
    records.collect(client)
    return records.reply()


def _run_one(app: WSGIApp, protocol: str, path: str, method: str, body: bytes) -> CheckResult:
    from .adapters._connection import Connection
    from .adapters._drivers import FastCGIDriver, SCGIDriver, UWSGIDriver
    from .adapters._runtime import ServerConfig, Worker

    drivers = {"fastcgi": FastCGIDriver, "scgi": SCGIDriver, "uwsgi": UWSGIDriver}
    seen: dict[str, Any] = {}
    result = CheckResult(protocol, None, seen)
    raw_path, _, query = path.partition("?")
    target = Target(protocol, socket.AF_UNIX, "", raw_path or "/", query)
    params = build_params(target, method=method, body_length=len(body))
    checked = cast(WSGIApp, validator(cast(Any, _observed(app, seen))))
    worker = Worker(ServerConfig(app=checked,
                                 driver=drivers[protocol](), listeners=[]))
    ours, theirs = socket.socketpair()
    recorder = _Recorder()
    logger = logging.getLogger("wsgiwire")
    logger.addHandler(recorder)
    chunks: list[bytes] = []
    reader = threading.Thread(target=_drain, args=(theirs, chunks), daemon=True)
    try:
        ours.setblocking(False)
        conn = Connection(worker, ours, "wsgiwire check")
        worker.connections[id(conn)] = conn
        theirs.sendall(_request_bytes(protocol, params, body))
        if protocol != "fastcgi":
            theirs.shutdown(socket.SHUT_WR)  # SCGI and uwsgi: one request, then EOF
        reader.start()
        poller = select.poll()
        deadline = time.monotonic() + _TIMEOUT
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            while not conn.closed and time.monotonic() < deadline:
                # The server code parks what the socket cannot take in an outbox
                # and waits for writability, as the worker's loop would.
                waiting_to_write = conn.outbox is not None
                poller.register(ours.fileno(),
                                select.POLLOUT if waiting_to_write else select.POLLIN)
                if poller.poll(100):
                    if waiting_to_write:
                        conn.on_writable()
                    else:
                        conn.on_readable()
        for warning in caught:
            result.problems.append(f"wsgiref.validate: {warning.message}")
        if not conn.closed:
            result.problems.append(f"no complete reply within {_TIMEOUT:g} s")
            conn.close()
        reader.join(_TIMEOUT)
        result.reply = _decode(protocol, b"".join(chunks))
    finally:
        logger.removeHandler(recorder)
        theirs.close()
        ours.close()
        worker.close()
    result.problems.extend(recorder.lines)
    if result.reply is not None and result.reply.status == 0:
        result.problems.append("the app produced no response head")
    return result


def check_app(
    spec: str | None, *, protocols: Iterable[str] = PROTOCOLS, path: str = "/",
    method: str = "GET", body: bytes = b"",
) -> list[CheckResult]:
    """Load ``spec`` and run one request per protocol; raises AppLoadError."""
    app = load_app(spec)
    return [_run_one(app, p, path, method, body) for p in protocols]


def _report(result: CheckResult, out: IO[str]) -> None:
    reply = result.reply
    out.write(f"== {result.protocol}: ")
    if reply is None:
        out.write("no reply\n")
    else:
        out.write(f"{reply.status} {reply.reason}, {len(reply.body)} body bytes")
        if reply.app_status is not None:
            out.write(f", FastCGI appStatus {reply.app_status}")
        out.write("\n")
        for name, value in reply.headers:
            out.write(f"   {name}: {value}\n")
    keys = ("REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "CONTENT_LENGTH",
            "wsgi.url_scheme", "wsgi.multithread", "wsgi.multiprocess")
    received = {k: result.environ[k] for k in keys if k in result.environ}
    out.write(f"   the app received: {json.dumps(received)}\n")
    for problem in result.problems:
        out.write(f"   PROBLEM: {problem}\n")


def main(spec: str | None, protocols: Iterable[str], path: str, out: IO[str]) -> int:
    try:
        results = check_app(spec, protocols=protocols, path=path)
    except AppLoadError as exc:
        out.write(f"wsgiwire check: {exc}\n")
        return 2
    for result in results:
        _report(result, out)
    bad = [r.protocol for r in results if not r.ok]
    out.write("all good\n" if not bad else f"problems with: {', '.join(bad)}\n")
    return 1 if bad else 0
