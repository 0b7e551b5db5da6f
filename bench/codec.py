#!/usr/bin/env python3
"""Codec micro-benchmark: requests parsed per second from bytes, no sockets, no server.

    .venv/bin/python bench/codec.py [--seconds 0.3] [--out bench/results]
                                    [--compiled DIR] [--base DIR]

The input is the request nginx 1.22 sends with bench/nginx's configs for a browser's
``GET /hello/world?name=wsgiwire&lang=en`` (30 FastCGI params: nginx's fastcgi_params,
SCRIPT_NAME/PATH_INFO overrides and eight request headers), captured from a real nginx
and rebuilt here byte for byte by small encoders that frame exactly as nginx does.

Cases (each parses the same request over and over; best of several rounds):

* ``wsgiwire fastcgi parse``: a new ``FastCGIConnection`` per request, fed the bytes,
  events pulled until ``BodyEnd``;
* ``wsgiwire fastcgi parse, kept-alive``: one codec for every request, as on a
  connection nginx keeps (``fastcgi_keep_conn on``); each request is ended with
  ``send(ResponseEnd)`` so its id can be reused, and that framing is counted;
* ``... + environ``: the same, plus ``EnvironBuilder().build_from_strings(params)``;
* ``flup fcgi parse``: flup 1.0.3's own ``Record.read`` and ``Connection`` dispatch
  (``_do_begin_request``, ``_do_params`` with ``decode_pair``, ``_do_stdin``) driven
  over an in-memory socket, exactly as ``Connection.process_input`` does minus its
  ``select()``; flup builds its param dict (latin-1 str) while parsing;
* ``flup fcgi parse + environ``: plus the environ steps of flup's ``WSGIServer.handler``
  (a copy of its first lines, and its real ``_sanitizeEnv``).

SCGI and uwsgi: flup's SCGI parser (``readNetstring``, which reads the length one byte
at a time, then ``processInput``'s dict, then ``handler``'s environ steps) runs now; the
wsgiwire SCGI/uwsgi codecs run when their modules exist (no peer parses uwsgi in Python).

Rates are per CPU-second of this process (``time.process_time``), best of 5 rounds.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
from bench.trees import wsgiwire_module  # noqa: E402  (before DIR's bench/ can shadow it)

# The wsgiwire to measure: this checkout's, or (``--compiled DIR`` runs this script
# again with it set) the one in DIR, e.g. ./dev test's compiled copy build/compiled.
_TREE_ENV = "WSGIWIRE_BENCH_TREE"
if os.environ.get(_TREE_ENV):
    sys.path.insert(0, os.environ[_TREE_ENV])

Pairs = list[tuple[bytes, bytes]]


# --- The request, as nginx sends it -------------------------------------------------

_HEADERS: Pairs = [
    (b"HTTP_USER_AGENT",
     b"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"),
    (b"HTTP_ACCEPT", b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
    (b"HTTP_ACCEPT_LANGUAGE", b"en-US,en;q=0.5"),
    (b"HTTP_ACCEPT_ENCODING", b"gzip, deflate, br, zstd"),
    (b"HTTP_CONNECTION", b"keep-alive"),
    (b"HTTP_COOKIE", b"session=3f2a9c1e7b6d4a0f8e5c2b1a9d8e7f6a; theme=dark"),
    (b"HTTP_UPGRADE_INSECURE_REQUESTS", b"1"),
    (b"HTTP_SEC_FETCH_DEST", b"document"),
]

# bench/nginx/fastcgi-keepalive.conf: fastcgi_params, then the two overrides, then the
# request headers (nginx skips Host: fastcgi_params already sets HTTP_HOST).
FASTCGI_PARAMS: Pairs = [
    (b"QUERY_STRING", b"name=wsgiwire&lang=en"),
    (b"REQUEST_METHOD", b"GET"),
    (b"CONTENT_TYPE", b""),
    (b"CONTENT_LENGTH", b""),
    (b"SCRIPT_NAME", b"/hello/world"),
    (b"REQUEST_URI", b"/hello/world?name=wsgiwire&lang=en"),
    (b"DOCUMENT_URI", b"/hello/world"),
    (b"DOCUMENT_ROOT", b"/usr/share/nginx/html"),
    (b"SERVER_PROTOCOL", b"HTTP/1.1"),
    (b"REQUEST_SCHEME", b"http"),
    (b"GATEWAY_INTERFACE", b"CGI/1.1"),
    (b"SERVER_SOFTWARE", b"nginx/1.22.1"),
    (b"REMOTE_ADDR", b"127.0.0.1"),
    (b"REMOTE_PORT", b"55420"),
    (b"REMOTE_USER", b""),
    (b"SERVER_ADDR", b"127.0.0.1"),
    (b"SERVER_PORT", b"8080"),
    (b"SERVER_NAME", b"localhost"),
    (b"REDIRECT_STATUS", b"200"),
    (b"HTTP_HOST", b"example.com"),
    (b"SCRIPT_NAME", b""),
    (b"PATH_INFO", b"/hello/world"),
    *_HEADERS,
]

# bench/nginx/scgi.conf: CONTENT_LENGTH first (nginx adds it), scgi_params, overrides.
SCGI_PARAMS: Pairs = [
    (b"CONTENT_LENGTH", b"0"),
    (b"REQUEST_METHOD", b"GET"),
    (b"REQUEST_URI", b"/hello/world?name=wsgiwire&lang=en"),
    (b"QUERY_STRING", b"name=wsgiwire&lang=en"),
    (b"CONTENT_TYPE", b""),
    (b"DOCUMENT_URI", b"/hello/world"),
    (b"DOCUMENT_ROOT", b"/usr/share/nginx/html"),
    (b"SCGI", b"1"),
    (b"SERVER_PROTOCOL", b"HTTP/1.1"),
    (b"REQUEST_SCHEME", b"http"),
    (b"REMOTE_ADDR", b"127.0.0.1"),
    (b"REMOTE_PORT", b"35630"),
    (b"SERVER_PORT", b"8080"),
    (b"SERVER_NAME", b"localhost"),
    (b"HTTP_HOST", b"example.com"),
    (b"SCRIPT_NAME", b""),
    (b"PATH_INFO", b"/hello/world"),
    *_HEADERS,
]

# bench/nginx/uwsgi.conf: uwsgi_params, the SCRIPT_NAME override, the headers.
UWSGI_PARAMS: Pairs = [
    (b"QUERY_STRING", b"name=wsgiwire&lang=en"),
    (b"REQUEST_METHOD", b"GET"),
    (b"CONTENT_TYPE", b""),
    (b"CONTENT_LENGTH", b""),
    (b"REQUEST_URI", b"/hello/world?name=wsgiwire&lang=en"),
    (b"PATH_INFO", b"/hello/world"),
    (b"DOCUMENT_ROOT", b"/usr/share/nginx/html"),
    (b"SERVER_PROTOCOL", b"HTTP/1.1"),
    (b"REQUEST_SCHEME", b"http"),
    (b"REMOTE_ADDR", b"127.0.0.1"),
    (b"REMOTE_PORT", b"60834"),
    (b"SERVER_PORT", b"8080"),
    (b"SERVER_NAME", b"localhost"),
    (b"HTTP_HOST", b"example.com"),
    (b"SCRIPT_NAME", b""),
    *_HEADERS,
]


# --- Encoders framing exactly as nginx 1.22 does (independent of wsgiwire's code) ----

def _fcgi_len(n: int) -> bytes:
    return bytes((n,)) if n < 128 else struct.pack(">I", n | 0x80000000)


def _fcgi_record(rtype: int, request_id: int, content: bytes) -> bytes:
    pad = -len(content) & 7  # nginx pads every record to a multiple of 8
    return struct.pack(">BBHHBx", 1, rtype, request_id, len(content), pad) + content + bytes(pad)


def fastcgi_request(params: Pairs, *, keep_conn: bool = True, request_id: int = 1) -> bytes:
    """BEGIN_REQUEST (RESPONDER), one PARAMS record, empty PARAMS, empty STDIN."""
    body = b"".join(_fcgi_len(len(k)) + _fcgi_len(len(v)) + k + v for k, v in params)
    if len(body) > 65535:
        raise ValueError("params do not fit in one record")
    begin = struct.pack(">HB5x", 1, 1 if keep_conn else 0)
    return b"".join((
        _fcgi_record(1, request_id, begin),
        _fcgi_record(4, request_id, body),
        _fcgi_record(4, request_id, b""),
        _fcgi_record(5, request_id, b""),
    ))


def scgi_request(params: Pairs) -> bytes:
    headers = b"".join(k + b"\0" + v + b"\0" for k, v in params)
    return str(len(headers)).encode("ascii") + b":" + headers + b","


def uwsgi_request(params: Pairs) -> bytes:
    data = b"".join(
        struct.pack("<H", len(k)) + k + struct.pack("<H", len(v)) + v for k, v in params
    )
    return struct.pack("<BHB", 0, len(data), 0) + data


# --- Cases -------------------------------------------------------------------------

Runner = Callable[[int], None]  # processes n requests


@dataclass
class CaseResult:
    name: str
    protocol: str
    level: str  # "parse" or "parse + environ"
    implementation: str  # "wsgiwire" or "flup"
    requests_per_s: float | None = None
    us_per_request: float | None = None
    note: str = ""


class FakeSocket:
    """Just enough of a socket for flup's readers: recv() over a BytesIO."""

    def __init__(self, data: bytes) -> None:
        self._io = io.BytesIO(data)

    def recv(self, size: int) -> bytes:
        return self._io.read(size)

    def fileno(self) -> int:  # flup's __debug__ log formatting asks for it
        return -1

    def reset(self) -> None:
        self._io.seek(0)


def _wsgiwire_case(module: str, cls: str, data: bytes, with_environ: bool) -> Runner:
    """A fresh codec per request: feed ``data``, pull events until BodyEnd."""
    codec_class = getattr(wsgiwire_module(module), cls)
    events = wsgiwire_module("wsgiwire._events")
    NEED_DATA, BodyEnd, RequestStarted = events.NEED_DATA, events.BodyEnd, events.RequestStarted

    builder = wsgiwire_module("wsgiwire.core._environ").EnvironBuilder()
    build = builder.build_from_strings

    def run(n: int) -> None:
        for _ in range(n):
            codec = codec_class()
            codec.receive_data(data)
            while True:
                event = codec.next_event()
                kind = type(event)
                if kind is RequestStarted and with_environ:
                    build(event.params)
                elif kind is BodyEnd:
                    break
                elif event is NEED_DATA:
                    raise RuntimeError(f"{cls} wants more data than one whole request")

    run(1)
    return run


def _wsgiwire_fastcgi_kept(data: bytes, with_environ: bool) -> Runner:
    """One codec for every request, as on a kept-alive connection."""
    events = wsgiwire_module("wsgiwire._events")
    NEED_DATA, BodyEnd, RequestStarted = events.NEED_DATA, events.BodyEnd, events.RequestStarted
    ResponseEnd = events.ResponseEnd
    build = wsgiwire_module("wsgiwire.core._environ").EnvironBuilder().build_from_strings
    codec = wsgiwire_module("wsgiwire.protocols._fastcgi").FastCGIConnection()

    def run(n: int) -> None:
        receive, next_event, send = codec.receive_data, codec.next_event, codec.send
        for _ in range(n):
            receive(data)
            while True:
                event = next_event()
                kind = type(event)
                if kind is RequestStarted and with_environ:
                    build(event.params)
                elif kind is BodyEnd:
                    send(ResponseEnd(1))
                    break
                elif event is NEED_DATA:
                    raise RuntimeError("the codec wants more data than one whole request")

    run(1)
    return run


def _flup_fastcgi_case(data: bytes, with_environ: bool) -> Runner:
    from flup.server import fcgi_base  # type: ignore[import-untyped]

    started: list[Any] = []

    class BenchRequest(fcgi_base.Request):  # type: ignore[misc]
        def run(self) -> None:  # flup runs the app here, at the end of FCGI_PARAMS
            started.append(self)

    server = fcgi_base.BaseFCGIServer(lambda e, s: [], bindAddress="/nonexistent")
    server.request_class = BenchRequest
    record_class = fcgi_base.Record
    begin, params, stdin = (
        fcgi_base.FCGI_BEGIN_REQUEST, fcgi_base.FCGI_PARAMS, fcgi_base.FCGI_STDIN
    )

    def build_environ(req: Any) -> None:
        # The environ steps of flup's WSGIServer.handler (fcgi_base.py), before the app.
        environ = req.params
        environ.update(server.environ)
        environ["wsgi.version"] = (1, 0)
        environ["wsgi.input"] = req.stdin
        environ["wsgi.errors"] = req.stderr
        environ["wsgi.multithread"] = False
        environ["wsgi.multiprocess"] = True
        environ["wsgi.run_once"] = False
        if environ.get("HTTPS", "off") in ("on", "1"):
            environ["wsgi.url_scheme"] = "https"
        else:
            environ["wsgi.url_scheme"] = "http"
        server._sanitizeEnv(environ)

    def run(n: int) -> None:
        sock = FakeSocket(data)
        for _ in range(n):
            sock.reset()
            conn = fcgi_base.Connection(sock, "", server, None)
            while True:
                rec = record_class()
                rec.read(sock)
                if rec.type == begin:
                    conn._do_begin_request(rec)
                elif rec.type == params:
                    conn._do_params(rec)
                elif rec.type == stdin:
                    conn._do_stdin(rec)
                    break
            req = started.pop()
            if with_environ:
                build_environ(req)

    run(1)
    return run


def _flup_scgi_case(data: bytes, with_environ: bool) -> Runner:
    import logging

    from flup.server import scgi_base

    logging.getLogger(scgi_base.LoggerName).handlers.clear()  # its import-time handler
    server = scgi_base.BaseSCGIServer(lambda e, s: [], bindAddress="/nonexistent")

    def run(n: int) -> None:
        sock = FakeSocket(data)
        read_netstring = scgi_base.readNetstring
        for _ in range(n):
            sock.reset()
            # scgi_base.Connection.processInput, up to the Request.
            headers = read_netstring(sock).split(b"\x00")[:-1]
            environ: dict[str, Any] = {}
            for i in range(len(headers) // 2):
                environ[headers[2 * i].decode("latin-1")] = headers[2 * i + 1].decode("latin-1")
            int(environ["CONTENT_LENGTH"])
            if with_environ:
                # The environ steps of flup's BaseSCGIServer.handler, before the app.
                environ.update(server.environ)
                environ["wsgi.version"] = (1, 0)
                environ["wsgi.input"] = sock
                environ["wsgi.errors"] = sys.stderr
                environ["wsgi.multithread"] = False
                environ["wsgi.multiprocess"] = True
                environ["wsgi.run_once"] = False
                if environ.get("HTTPS", "off") in ("on", "1"):
                    environ["wsgi.url_scheme"] = "https"
                else:
                    environ["wsgi.url_scheme"] = "http"
                server._sanitizeEnv(environ)

    run(1)
    return run


@dataclass(frozen=True)
class Case:
    name: str
    protocol: str
    level: str
    implementation: str
    make: Callable[[], Runner]
    note: str = ""


def cases() -> list[Case]:
    fcgi = fastcgi_request(FASTCGI_PARAMS)
    scgi = scgi_request(SCGI_PARAMS)
    uwsgi = uwsgi_request(UWSGI_PARAMS)
    fcgi_mod, scgi_mod, uwsgi_mod = (
        "wsgiwire.protocols._fastcgi", "wsgiwire.protocols._scgi", "wsgiwire.protocols._uwsgi"
    )
    out: list[Case] = []
    for env, level in ((False, "parse"), (True, "parse + environ")):
        out += [
            Case(f"wsgiwire fastcgi {level}", "fastcgi", level, "wsgiwire",
                 partial(_wsgiwire_case, fcgi_mod, "FastCGIConnection", fcgi, env),
                 "new codec per request"),
            Case(f"wsgiwire fastcgi {level}, kept-alive", "fastcgi", level, "wsgiwire",
                 partial(_wsgiwire_fastcgi_kept, fcgi, env),
                 "one codec; includes ResponseEnd framing"),
            Case(f"flup fcgi {level}", "fastcgi", level, "flup",
                 partial(_flup_fastcgi_case, fcgi, env)),
            # Hooks: run as soon as wsgiwire's SCGI and uwsgi codecs exist.
            Case(f"wsgiwire scgi {level}", "scgi", level, "wsgiwire",
                 partial(_wsgiwire_case, scgi_mod, "SCGIConnection", scgi, env)),
            Case(f"wsgiwire uwsgi {level}", "uwsgi", level, "wsgiwire",
                 partial(_wsgiwire_case, uwsgi_mod, "UWSGIConnection", uwsgi, env)),
        ]
    out += [
        Case(f"flup scgi {level}", "scgi", level, "flup", partial(_flup_scgi_case, scgi, env))
        for env, level in ((False, "parse"), (True, "parse + environ"))
    ]
    return out


def measure(run: Runner, seconds: float, rounds: int) -> float:
    """Best requests per CPU-second over ``rounds`` rounds of about ``seconds`` each.

    Timed with ``time.process_time()``: CPU time of this process only, so other
    processes competing for the CPU (this machine is shared) barely move the figure.
    """
    clock = time.process_time
    n = 64
    while True:  # calibrate: a round of n requests takes at least seconds / 4
        start = clock()
        run(n)
        elapsed = clock() - start
        if elapsed >= seconds / 4:
            break
        n *= 4
    n = max(1, int(n * seconds / elapsed))
    best = 0.0
    for _ in range(rounds):
        start = clock()
        run(n)
        best = max(best, n / max(clock() - start, 1e-9))
    return best


def run_all(seconds: float = 0.3, rounds: int = 5, *, echo: bool = True) -> list[CaseResult]:
    results = []
    for case in cases():
        result = CaseResult(case.name, case.protocol, case.level, case.implementation,
                            note=case.note)
        try:
            runner = case.make()
        except ImportError as exc:
            result.note = f"skipped: {exc}"
        except Exception as exc:  # a codec still being written: report, keep going
            result.note = f"failed: {type(exc).__name__}: {exc}"
        else:
            rate = measure(runner, seconds, rounds)
            result.requests_per_s = rate
            result.us_per_request = 1e6 / rate
        results.append(result)
        if echo:
            shown = (f"{result.requests_per_s:12,.0f} req/s {result.us_per_request:7.2f} us"
                     if result.requests_per_s else result.note)
            print(f"  {case.name:45} {shown}", flush=True)
    return results


def markdown(results: Sequence[CaseResult]) -> str:
    best_flup = {
        (r.protocol, r.level): r.requests_per_s for r in results
        if r.implementation == "flup" and r.requests_per_s
    }
    lines = [
        "| codec case | requests/s | us/request | x flup (same protocol and level) | note |",
        "|---|---:|---:|---:|---|",
    ]
    for r in results:
        ref = best_flup.get((r.protocol, r.level))
        ratio = f"{r.requests_per_s / ref:.2f}x" if r.requests_per_s and ref else "-"
        rate = f"{r.requests_per_s:,.0f}" if r.requests_per_s else "-"
        us = f"{r.us_per_request:.2f}" if r.us_per_request else "-"
        lines.append(f"| {r.name} | {rate} | {us} | {ratio} | {r.note} |")
    return "\n".join(lines) + "\n"


def tree_results(tree: Path, seconds: float, rounds: int, *, compiled: bool) -> list[CaseResult]:
    """The wsgiwire cases again, in a child process importing the wsgiwire in ``tree``;
    flup's rows are not repeated. ``compiled``: the tree must hold the compiled build
    (``--compiled``); otherwise it is another checkout (``--base``), its rows marked
    with its commit."""
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--json-only",
         "--seconds", str(seconds), "--rounds", str(rounds)],
        env={**os.environ, _TREE_ENV: str(tree.resolve())},
        capture_output=True, text=True, check=True, timeout=1800,
    )
    rows = json.loads(done.stdout)
    build = rows.pop()["build"]
    if compiled and not build.startswith("compiled"):
        raise SystemExit(f"codec: the wsgiwire in {tree} is not the compiled build ({build})")
    tag = build if compiled else f"base {_commit(tree)}, {build}"
    out = []
    for row in rows:
        if row["implementation"] != "wsgiwire":
            continue
        result = CaseResult(**row)
        result.name = f"{result.name} [{tag}]"
        out.append(result)
        shown = (f"{result.requests_per_s:12,.0f} req/s {result.us_per_request:7.2f} us"
                 if result.requests_per_s else result.note)
        print(f"  {result.name:45} {shown}", flush=True)
    return out


def _commit(tree: Path) -> str:
    done = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=False)
    return done.stdout.strip() or tree.name


def _build_name() -> str:
    """Which build the imported wsgiwire is; "pure" for a checkout from before there
    were two."""
    try:
        build = wsgiwire_module("wsgiwire._build")
    except ModuleNotFoundError:
        return "pure"
    return str(build.name())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=0.3, help="length of one round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per case (best counts)")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results",
                        help="directory for codec.md and codec.json")
    parser.add_argument("--compiled", type=Path, metavar="DIR",
                        help="also measure the wsgiwire cases on the compiled build in DIR "
                        "(./dev test makes build/compiled); rows marked [compiled (mypyc)]")
    parser.add_argument("--base", type=Path, metavar="DIR",
                        help="also measure the wsgiwire cases of another checkout in DIR "
                        "(e.g. a git worktree of an older commit), in the same run")
    parser.add_argument("--json-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    build_name = _build_name

    if args.json_only:  # the child of --compiled or --base: results on stdout
        print(json.dumps([asdict(r) for r in run_all(args.seconds, args.rounds, echo=False)]
                         + [{"build": build_name()}]))
        return 0
    print(f"codec micro-benchmark: {len(FASTCGI_PARAMS)} FastCGI params, "
          f"{len(fastcgi_request(FASTCGI_PARAMS))} bytes per request; wsgiwire build: "
          f"{build_name()}")
    results = run_all(args.seconds, args.rounds)
    if args.compiled is not None:
        results += tree_results(args.compiled, args.seconds, args.rounds, compiled=True)
    if args.base is not None:
        results += tree_results(args.base, args.seconds, args.rounds, compiled=False)
    table = markdown(results)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "codec.md").write_text("# Codec micro-benchmark\n\n" + table)
    (args.out / "codec.json").write_text(
        json.dumps([asdict(r) for r in results], indent=2) + "\n"
    )
    print()
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
