"""The ``wsgiwire`` command: serve | demo (more sub-commands join as protocols land)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from . import __version__
from .apploader import AppLoadError, load_app

__all__ = ["build_parser", "main"]

PROTOCOLS = ("cgi",)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wsgiwire",
        description="Run a WSGI application behind a web server over CGI, FastCGI, SCGI or uwsgi.",
    )
    parser.add_argument("--version", action="version", version=f"wsgiwire {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser(
        "serve",
        help="serve an application",
        description="Serve APP (module:callable or module:factory(); the demo app by default).",
    )
    serve.add_argument("app", nargs="?", metavar="APP", help="module:callable (default: the demo)")
    serve.add_argument(
        "--protocol", "-p", choices=PROTOCOLS, default="cgi", help="gateway protocol (default: cgi)"
    )
    serve.add_argument("--debug", action="store_true", help="show tracebacks in error responses")
    serve.add_argument(
        "--log-level",
        default="info",
        choices=("debug", "info", "warning", "error"),
        help="logging level (default: info)",
    )

    demo = sub.add_parser(
        "demo",
        help="run the built-in demo application",
        description="Run the demo application for one request through the CGI front-end "
        "and print the response exactly as a web server would receive it.",
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
    from .adapters.cgi import run

    return 0 if run(app, debug=args.debug) else 1


def _demo(args: argparse.Namespace) -> int:
    import os

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
    if args.command == "demo":
        return _demo(args)
    parser.print_help()
    return 2
