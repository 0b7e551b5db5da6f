"""The ``wsgiwire`` command: serve | request | check | config | top | demo."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from . import __version__
from ._serve import add_serve_options, apply_ini, configure_logging, serve

__all__ = ["build_parser", "main"]

class _FromUWSGI(argparse.Action):
    """``wsgiwire config --from-uwsgi INI``: runs when parsed, needs no SERVER."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        from ._serve import ini_command_line

        parser.exit(ini_command_line(str(values), sys.stdout, sys.stderr))


class _VersionAction(argparse.Action):
    """``--version``: "wsgiwire 0.1.0 (compiled (mypyc))" or "... (pure)"; the build is
    looked up only when asked for."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        from ._build import name

        print(f"wsgiwire {__version__} ({name()})")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wsgiwire",
        description="Run a WSGI application behind a web server over CGI, FastCGI, SCGI "
        "or uwsgi.",
    )
    parser.add_argument("--version", action=_VersionAction, nargs=0,
                        help="show the version and which build runs (compiled or pure)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser(
        "serve", help="serve an application",
        description="Serve APP (module:callable or module:factory(); the demo app by default).",
    )
    serve.add_argument("app", nargs="?", metavar="APP", help="module:callable (default: the demo)")
    add_serve_options(serve)

    request = sub.add_parser(
        "request", help="send one request to a backend and show exactly what it answers",
        description="Send one request to a FastCGI, SCGI or uwsgi backend as a web server "
        "would, and print the response exactly as the backend sent it.",
    )
    request.add_argument("url", help="fastcgi://HOST:PORT/path?query, "
                         "fastcgi+unix:///path/to.sock/path; also scgi://, uwsgi://")
    request.add_argument("-X", "--method", default=None, help="request method (default GET)")
    request.add_argument("-H", "--header", action="append", default=[], metavar="NAME: VALUE")
    request.add_argument("-d", "--data", help="request body; @FILE reads a file, @- stdin")
    request.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                         help="an extra CGI parameter (repeatable)")
    request.add_argument("--script-name", default="", help="SCRIPT_NAME to send")
    request.add_argument("--get-values", action="store_true",
                         help="ask FCGI_GET_VALUES instead of sending a request")
    request.add_argument("--timeout", type=float, default=30.0)

    config = sub.add_parser(
        "config", help="print a web-server configuration to paste, or unit files",
        description="Print what to paste for SERVER (nginx, apache, lighttpd, haproxy, "
        "caddy: a site or module block for the distribution's layout; systemd, "
        "supervisor: the backend's own files) on stdout, and where it goes and the "
        "matching backend command on stderr. --full prints the standalone tested file "
        "from server-configs/ instead.",
    )
    config.add_argument("--from-uwsgi", action=_FromUWSGI, metavar="INI",
                        help="print the wsgiwire serve command line equivalent to a uWSGI "
                        "ini file (and what does not map), then exit")
    config.add_argument("server", metavar="SERVER",
                        help="nginx, apache, lighttpd, haproxy, caddy, systemd or supervisor")
    config.add_argument("--protocol", "-p", default="fastcgi",
                        choices=("fastcgi", "scgi", "uwsgi", "cgi"))
    config.add_argument("--bind", "-b", default="127.0.0.1:9000", metavar="ADDR",
                        help="the backend's address: HOST:PORT, [IPV6]:PORT or unix:/path")
    config.add_argument("--mount", default="", metavar="PREFIX",
                        help="URL prefix of the app (default: the site root)")
    config.add_argument("--app", default="myapp:app", metavar="MODULE:APP")
    config.add_argument("--app-file", metavar="PATH",
                        help="a .fcgi (or .cgi) file the web server starts itself")
    config.add_argument("--listen", default="", metavar="ADDR",
                        help="where the web server listens: PORT or HOST:PORT (default 80)")
    config.add_argument("--server-name", default="", metavar="HOST",
                        help="the site's host name (nginx server_name, Apache ServerName, "
                        "Caddy site address)")
    config.add_argument("--location", action="store_true",
                        help="nginx: the location blocks alone (and the http-level part "
                        "they need); Apache: a <Location> block for your <VirtualHost>")
    config.add_argument("--static", action="append", default=[], metavar="URL=DIR",
                        help="serve DIR at URL as static files (repeatable), e.g. "
                        "/static/=/srv/myapp/static (Django's STATIC_ROOT, Flask's static "
                        "folder)")
    config.add_argument("--full", action="store_true",
                        help="print the standalone tested file (nginx, apache, lighttpd)")
    config.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="override a value (an unknown NAME is an error that lists the "
                        "valid ones)")

    check = sub.add_parser(
        "check", help="run one request per protocol through an app, in this process",
        description="Import APP as the server would, send one request through the real "
        "FastCGI, SCGI and uwsgi code paths in this process, validate the app with "
        "wsgiref.validate, and print what it received and answered.",
    )
    check.add_argument("app", nargs="?", metavar="APP", help="module:callable (default: demo)")
    check.add_argument("--protocol", "-p", action="append",
                       choices=("fastcgi", "scgi", "uwsgi"),
                       help="only these protocols (repeatable; default: all three)")
    check.add_argument("--path", default="/", help="request path and query (default /)")

    top = sub.add_parser(
        "top", help="a live view of a server's workers (from its --stats address)",
        description="Show the workers of a running `wsgiwire serve --stats ADDR`: pid, "
        "generation, state, requests, req/s, RSS, busy threads, the current request and "
        "its age. q quits.",
    )
    top.add_argument("address", metavar="ADDR",
                     help="the --stats address: HOST:PORT, unix:/path or http://HOST:PORT/")
    top.add_argument("--once", action="store_true",
                     help="print one screen and exit (the default when stdout is not a "
                     "terminal); rates are measured over --interval")
    top.add_argument("--interval", type=float, default=1.0, metavar="SECONDS",
                     help="refresh interval (default 1)")

    demo = sub.add_parser(
        "demo", help="run the built-in demo application over FastCGI",
        description="Serve the demo application over FastCGI on a private unix socket, with "
        "a small HTTP front on loopback standing in for nginx, so a browser can see what "
        "the application receives.",
    )
    demo.add_argument("--port", type=int, default=8000, help="HTTP port (default 8000)")
    demo.add_argument("--once", metavar="PATH",
                      help="send one request for PATH over FastCGI, print the raw answer, exit")
    return parser


def _request(args: argparse.Namespace) -> int:
    from ._client import (
        ClientError,
        build_params,
        fastcgi_get_values,
        parse_target,
        send_request,
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
        reply = send_request(target, params, body, timeout=args.timeout)
    except (ClientError, OSError) as exc:
        print(f"wsgiwire: {exc}", file=sys.stderr)
        return 1
    sys.stdout.buffer.write(reply.raw)
    sys.stdout.buffer.flush()
    if reply.stderr:
        sys.stderr.buffer.write(reply.stderr)
    if target.protocol != "fastcgi":
        return 0 if reply.status < 500 else 1
    print(
        f"\n-- FCGI_END_REQUEST appStatus={reply.app_status} "
        f"protocolStatus={reply.protocol_status}",
        file=sys.stderr,
    )
    return 0 if reply.app_status == 0 else 1


def _config(args: argparse.Namespace) -> int:
    from ._deploy import ConfigError, Request, generate

    request = Request(
        server=args.server, protocol=args.protocol, bind=args.bind, mount=args.mount,
        app=args.app, app_file=args.app_file, listen=args.listen,
        server_name=args.server_name, location=args.location, static=tuple(args.static),
        full=args.full, sets=tuple(args.set),
    )
    try:
        printed = generate(request)
    except ConfigError as exc:
        print(f"wsgiwire: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(printed.text)
    for line in printed.notes:
        print(line, file=sys.stderr)
    return 0


def _demo(args: argparse.Namespace) -> int:
    import shutil
    import signal
    import subprocess
    import tempfile
    import time

    from ._client import ClientError, build_params, fastcgi_request, parse_target

    configure_logging("info")
    run_dir = tempfile.mkdtemp(prefix="wsgiwire-demo-")
    sock_path = os.path.join(run_dir, "demo.sock")
    backend = subprocess.Popen(
        [sys.executable, "-m", "wsgiwire", "serve", "wsgiwire._demo:app",
         "--bind", f"unix:{sock_path}", "--log-level", "warning"],
    )
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(sock_path):
            if backend.poll() is not None or time.monotonic() > deadline:
                print("wsgiwire: the demo backend did not start", file=sys.stderr)
                return 1
            time.sleep(0.02)
        if args.once is not None:
            target = parse_target(f"fastcgi+unix://{sock_path}{args.once}")
            try:
                reply = fastcgi_request(target, build_params(target))
            except ClientError as exc:
                print(f"wsgiwire: {exc}", file=sys.stderr)
                return 1
            sys.stdout.buffer.write(reply.raw)
            sys.stdout.flush()
            return 0 if reply.app_status == 0 else 1
        from .adapters._httpbridge import HTTPBridge

        def interrupt(signum: int, frame: object) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, interrupt)
        bridge = HTTPBridge(("127.0.0.1", args.port), sock_path)
        print(f"wsgiwire demo: open http://127.0.0.1:{bridge.server_port}/ "
              "(the demo app over FastCGI; Ctrl-C stops)", flush=True)
        try:
            bridge.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            bridge.server_close()
        return 0
    finally:
        backend.terminate()
        try:
            backend.wait(10)
        except subprocess.TimeoutExpired:
            backend.kill()
            backend.wait()
        shutil.rmtree(run_dir, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        if args.ini is not None:
            given = list(sys.argv[1:] if argv is None else argv)
            args = apply_ini(given[given.index("serve") + 1 :])
        return serve(args)
    if args.command == "request":
        return _request(args)
    if args.command == "demo":
        return _demo(args)
    if args.command == "config":
        return _config(args)
    if args.command == "top":
        from ._top import main as top_main

        return top_main(args.address, once=args.once, interval=max(0.0, args.interval))
    if args.command == "check":
        from ._check import PROTOCOLS
        from ._check import main as check_main

        return check_main(args.app, args.protocol or PROTOCOLS, args.path, sys.stdout)
    parser.print_help()
    return 2
