"""The ``wsgiwire`` command: serve | request | demo."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from . import __version__
from .apploader import AppLoadError, load_app

__all__ = ["build_parser", "main"]

SOCKET_PROTOCOLS = ("fastcgi",)
PROTOCOLS = ("cgi", *SOCKET_PROTOCOLS)


def _add_serve_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--protocol", "-p", choices=PROTOCOLS, default="fastcgi",
        help="gateway protocol (default: fastcgi)",
    )
    parser.add_argument(
        "--bind", "-b", action="append", metavar="ADDR",
        help="unix:/path, HOST:PORT, [v6]:PORT or fd:N; repeatable. Default: the listening "
        "socket on fd 0 if there is one (mod_fcgid, lighttpd bin-path, spawn-fcgi), "
        "systemd's sockets, else 127.0.0.1:9000",
    )
    parser.add_argument("--workers", "-w", type=int, default=1, metavar="N",
                        help="worker processes (default 1; 0 or 1: serve in this process)")
    parser.add_argument("--threads", "-t", type=int, default=0, metavar="N",
                        help="app threads per worker (default 0: call the app in the loop)")
    parser.add_argument("--socket-mode", type=lambda s: int(s, 8), default=0o660,
                        metavar="MODE", help="mode of a unix socket (default 660)")
    parser.add_argument("--allow", action="append", metavar="ADDR",
                        help="TCP peers allowed to connect (repeatable; default: "
                        "FCGI_WEB_SERVER_ADDRS if set, else anyone who can reach the socket)")
    parser.add_argument("--debug", action="store_true",
                        help="show tracebacks in error responses (never in production)")
    parser.add_argument("--log-level", default="info",
                        choices=("debug", "info", "warning", "error"),
                        help="logging level (default: info)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wsgiwire",
        description="Run a WSGI application behind a web server over CGI, FastCGI, SCGI "
        "or uwsgi.",
    )
    parser.add_argument("--version", action="version", version=f"wsgiwire {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser(
        "serve", help="serve an application",
        description="Serve APP (module:callable or module:factory(); the demo app by default).",
    )
    serve.add_argument("app", nargs="?", metavar="APP", help="module:callable (default: the demo)")
    _add_serve_options(serve)

    request = sub.add_parser(
        "request", help="send one request to a backend and show exactly what it answers",
        description="Send one request to a FastCGI backend as a web server would, and print "
        "the response exactly as the backend sent it.",
    )
    request.add_argument("url", help="fastcgi://HOST:PORT/path?query or "
                         "fastcgi+unix:///path/to.sock/path")
    request.add_argument("-X", "--method", default=None, help="request method (default GET)")
    request.add_argument("-H", "--header", action="append", default=[], metavar="NAME: VALUE")
    request.add_argument("-d", "--data", help="request body; @FILE reads a file, @- stdin")
    request.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                         help="an extra CGI parameter (repeatable)")
    request.add_argument("--script-name", default="", help="SCRIPT_NAME to send")
    request.add_argument("--get-values", action="store_true",
                         help="ask FCGI_GET_VALUES instead of sending a request")
    request.add_argument("--timeout", type=float, default=30.0)

    demo = sub.add_parser(
        "demo", help="run the built-in demo application",
        description="Run the demo application for one request through the CGI front-end and "
        "print the response exactly as a web server would receive it.",
    )
    demo.add_argument("--path", default="/", help="request path (default: /)")
    return parser


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _serve(args: argparse.Namespace) -> int:
    _configure_logging(args.log_level)
    try:
        app = load_app(args.app)
    except AppLoadError as exc:
        print(f"wsgiwire: {exc}", file=sys.stderr)
        return 2
    if args.protocol == "cgi":
        from .adapters.cgi import run

        return 0 if run(app, debug=args.debug) else 1

    from .adapters.fastcgi import FastCGIDriver
    from .adapters.listeners import (
        BindError,
        PeerFilter,
        inherited_fd0,
        open_listener,
        parse_bind,
        systemd_listeners,
    )
    from .adapters.runtime import Server, ServerConfig

    log = logging.getLogger("wsgiwire")
    try:
        listeners = [open_listener(parse_bind(a), socket_mode=args.socket_mode)
                     for a in args.bind or ()]
        if not listeners:
            listeners = systemd_listeners()
        if not listeners:
            fd0 = inherited_fd0()
            listeners = [fd0] if fd0 is not None else [
                open_listener(parse_bind("127.0.0.1:9000"), socket_mode=args.socket_mode)
            ]
        peers = PeerFilter(args.allow) if args.allow else PeerFilter.from_environ(os.environ)
    except BindError as exc:
        print(f"wsgiwire: {exc}", file=sys.stderr)
        return 2
    for sock in listeners:
        log.info("wsgiwire %s serving %s on %s", __version__, args.protocol,
                 sock.getsockname() or "an inherited socket")
    config = ServerConfig(
        app=app,
        driver=FastCGIDriver(),
        listeners=listeners,
        workers=args.workers,
        threads=args.threads,
        debug=args.debug,
        peer_filter=peers,
    )
    return Server(config).serve()


def _request(args: argparse.Namespace) -> int:
    from .client import (
        ClientError,
        build_params,
        fastcgi_get_values,
        fastcgi_request,
        parse_target,
    )

    try:
        target = parse_target(args.url)
        if args.get_values:
            values = fastcgi_get_values(
                target, ["FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"],
                timeout=args.timeout,
            )
            for name, value in values.items():
                print(f"{name}={value}")
            return 0
        body = b""
        if args.data is not None:
            if args.data == "@-":
                body = sys.stdin.buffer.read()
            elif args.data.startswith("@"):
                with open(args.data[1:], "rb") as f:
                    body = f.read()
            else:
                body = args.data.encode("utf-8")
        headers = []
        for item in args.header:
            name, sep, value = item.partition(":")
            if not sep:
                print(f"wsgiwire: header {item!r} must be NAME: VALUE", file=sys.stderr)
                return 2
            headers.append((name.strip(), value.strip()))
        extra = [tuple(p.split("=", 1)) for p in args.param if "=" in p]
        method = args.method or ("POST" if args.data is not None else "GET")
        params = build_params(
            target, method=method, headers=headers, body_length=len(body),
            script_name=args.script_name, extra=[(k, v) for k, v in extra],
        )
        reply = fastcgi_request(target, params, body, timeout=args.timeout)
    except (ClientError, OSError) as exc:
        print(f"wsgiwire: {exc}", file=sys.stderr)
        return 1
    sys.stdout.buffer.write(reply.raw)
    sys.stdout.buffer.flush()
    if reply.stderr:
        sys.stderr.buffer.write(reply.stderr)
    print(
        f"\n-- FCGI_END_REQUEST appStatus={reply.app_status} "
        f"protocolStatus={reply.protocol_status}",
        file=sys.stderr,
    )
    return 0 if reply.app_status == 0 else 1


def _demo(args: argparse.Namespace) -> int:
    from .adapters.cgi import run
    from .demo import app

    path, _, query = args.path.partition("?")
    os.environ.update(
        {
            "GATEWAY_INTERFACE": "CGI/1.1",
            "REQUEST_METHOD": "GET",
            "SCRIPT_NAME": "",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "SERVER_NAME": "localhost",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "SERVER_SOFTWARE": f"wsgiwire-demo/{__version__}",
        }
    )
    return 0 if run(app) else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "request":
        return _request(args)
    if args.command == "demo":
        return _demo(args)
    parser.print_help()
    return 2
