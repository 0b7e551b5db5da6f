"""``wsgiwire serve``: its options, and turning them into a running server."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import TYPE_CHECKING

from . import __version__
from .apploader import AppLoadError, check_app_spec, load_app
from .limits import DEFAULT_LIMITS, Limits

if TYPE_CHECKING:
    from .adapters.runtime import ProtocolDriver
    from .core.gateway import WSGIApp

__all__ = ["add_serve_options", "serve"]

PROTOCOLS = ("fastcgi", "scgi", "uwsgi", "cgi")
DEFAULT_BIND = "127.0.0.1:9000"


def _octal(text: str) -> int:
    return int(text, 8)


def add_serve_options(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--protocol", "-p", choices=PROTOCOLS, default="fastcgi",
        help="gateway protocol (default: fastcgi); cgi serves one request over the environment")
    group = parser.add_argument_group("listening")
    group.add_argument(
        "--bind", "-b", action="append", metavar="ADDR",
        help="unix:/path, HOST:PORT, [v6]:PORT or fd:N; repeatable. Default: the listening "
        "socket on fd 0 if there is one (mod_fcgid, lighttpd bin-path, spawn-fcgi), "
        f"systemd's sockets (LISTEN_FDS), else {DEFAULT_BIND}",
    )
    group.add_argument("--socket-mode", type=_octal, default=0o660, metavar="MODE",
                       help="mode of a unix socket (default 660: never world-writable)")
    group.add_argument("--socket-owner", metavar="USER[:GROUP]",
                       help="owner of a unix socket (e.g. www-data:www-data)")
    group.add_argument("--backlog", type=int, default=1024, help="listen backlog (default 1024)")
    group.add_argument("--allow", action="append", metavar="ADDR",
                       help="TCP peers allowed to connect (repeatable, CIDR allowed; default: "
                       "FCGI_WEB_SERVER_ADDRS if set, else anyone who can reach the socket)")

    group = parser.add_argument_group("processes")
    group.add_argument("--workers", "-w", type=int, default=1, metavar="N",
                       help="worker processes under a master (default 1; 0: serve in this "
                       "process, for debugging)")
    group.add_argument("--threads", "-t", type=int, default=0, metavar="N",
                       help="app threads per worker (default 0: call the app in the loop)")
    group.add_argument("--max-requests", type=int, default=0, metavar="N",
                       help="recycle a worker after N requests; one already sent on a kept"
                       " connection is still served (default 0: never)")
    group.add_argument("--max-requests-jitter", type=int, default=0, metavar="N",
                       help="add up to N to --max-requests, per worker")
    group.add_argument("--graceful-timeout", type=float, default=30.0, metavar="SECONDS",
                       help="on SIGTERM/SIGHUP, how long in-flight requests may finish "
                       "(default 30)")
    group.add_argument("--pid-file", metavar="PATH", help="write the master's pid here")
    group.add_argument("--user", help="switch to this user after binding (when root)")
    group.add_argument("--group", help="switch to this group after binding (when root)")
    group.add_argument("--reload", action="store_true",
                       help="development: restart workers when a .py file under the "
                       "working directory changes")
    group.add_argument("--stats", metavar="ADDR",
                       help="serve a JSON status (workers, requests, errors, busy threads, "
                       "queue) on this address")

    group = parser.add_argument_group("limits and timeouts")
    group.add_argument("--max-body", type=int, default=DEFAULT_LIMITS.max_body_size,
                       metavar="BYTES", help="largest request body (default 1 GiB)")
    group.add_argument("--max-params", type=int, default=DEFAULT_LIMITS.max_params_bytes,
                       metavar="BYTES", help="largest parameter/header block (default 64 KiB)")
    group.add_argument("--queue", type=int, default=DEFAULT_LIMITS.max_queued_requests,
                       metavar="N", help="requests waiting for a thread before refusing "
                       "with 503/FCGI_OVERLOADED (default 1024)")
    group.add_argument("--header-timeout", type=float, default=DEFAULT_LIMITS.header_timeout,
                       metavar="SECONDS", help="time to receive a request head (default 60)")
    group.add_argument("--body-timeout", type=float, default=DEFAULT_LIMITS.body_idle_timeout,
                       metavar="SECONDS", help="idle time while receiving a body (default 60)")
    group.add_argument("--keepalive-timeout", type=float,
                       default=DEFAULT_LIMITS.keepalive_timeout, metavar="SECONDS",
                       help="idle kept-alive connections close after this (default 75)")
    group.add_argument("--write-timeout", type=float, default=DEFAULT_LIMITS.write_timeout,
                       metavar="SECONDS", help="time a stalled peer gets to read (default 60)")
    group.add_argument("--request-timeout", type=float, default=None, metavar="SECONDS",
                       help="a request running longer is cut and its stack logged; its "
                       "worker is replaced (with --threads, after its other requests "
                       "finish) (default: off)")

    group = parser.add_argument_group("application")
    group.add_argument("--mount", metavar="PREFIX",
                       help="the app's mount prefix: SCRIPT_NAME becomes PREFIX and PATH_INFO "
                       "the rest of the request path, whatever the server sent")
    group.add_argument("--strip-script-name", nargs="?", const="", metavar="PREFIX",
                       help="the app is reached through a rewrite to app.fcgi/app.cgi: drop "
                       "the script name from SCRIPT_NAME (PREFIX: the public mount, default /)")
    group.add_argument("--lighttpd-root-fix", nargs="?", const="/", metavar="APP_ROOT",
                       help="lighttpd with the app at / sends the first path segment as "
                       "SCRIPT_NAME: rebuild the split at APP_ROOT (default /)")
    group.add_argument("--trusted-proxy", type=int, default=0, metavar="HOPS",
                       help="a proxy in front of the web server: honour X-Forwarded-For and "
                       "-Proto from that many hops (default 0: off)")
    group.add_argument("--trusted-proxy-host", action="store_true",
                       help="with --trusted-proxy, also X-Forwarded-Host, -Port and -Prefix")
    group.add_argument("--no-detect", action="store_true",
                       help="do not log a hint when a setup looks like it needs a path fix")
    group.add_argument("--role", action="append",
                       choices=("responder", "authorizer", "filter"),
                       help="FastCGI roles to accept (repeatable; default: responder). "
                       "Apache mod_authnz_fcgi needs authorizer")
    group.add_argument("--trust-uwsgi-scheme", action="store_true",
                       help="uwsgi: let the UWSGI_SCHEME variable set wsgi.url_scheme")
    group.add_argument("--preload", action="store_true",
                       help="import the app once in the master (faster start; a reload "
                       "then restarts workers but cannot re-import the app)")
    group.add_argument("--debug", action="store_true",
                       help="show tracebacks in error responses (never in production)")
    group.add_argument("--access-log", action="store_true",
                       help="log one line per request (logger wsgiwire.access)")
    group.add_argument("--log-level", default="info",
                       choices=("debug", "info", "warning", "error"),
                       help="logging level (default: info)")


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _limits(args: argparse.Namespace) -> Limits:
    return DEFAULT_LIMITS.replace(
        max_body_size=args.max_body,
        max_params_bytes=args.max_params,
        max_name_length=min(DEFAULT_LIMITS.max_name_length, args.max_params),
        max_value_length=min(DEFAULT_LIMITS.max_value_length, args.max_params),
        max_queued_requests=args.queue,
        header_timeout=args.header_timeout,
        body_idle_timeout=args.body_timeout,
        keepalive_timeout=args.keepalive_timeout,
        write_timeout=args.write_timeout,
        request_timeout=args.request_timeout,
    )


def _driver(args: argparse.Namespace) -> ProtocolDriver:
    if args.protocol == "scgi":
        from .adapters.scgi import SCGIDriver

        return SCGIDriver()
    if args.protocol == "uwsgi":
        from .adapters.uwsgi import UWSGIDriver

        return UWSGIDriver(trust_uwsgi_scheme=args.trust_uwsgi_scheme)
    from .adapters.fastcgi import FastCGIDriver
    from .events import Role

    return FastCGIDriver([Role[name.upper()] for name in args.role or ("responder",)])


def _wrap(app: WSGIApp, args: argparse.Namespace) -> WSGIApp:
    """The middleware the options ask for: path fix(detector(proxy fix(app)))."""
    from . import middleware

    if args.trusted_proxy:
        hops = args.trusted_proxy
        extra = hops if args.trusted_proxy_host else 0
        app = middleware.TrustedProxy(
            app, x_for=hops, x_proto=hops, x_host=extra, x_port=extra, x_prefix=extra
        )
    if not args.no_detect:
        app = middleware.SetupDetector(app)
    if args.strip_script_name is not None:
        app = middleware.ScriptNameStripper(app, args.strip_script_name)
    if args.lighttpd_root_fix is not None:
        app = middleware.LighttpdCGIRootFix(app, args.lighttpd_root_fix)
    if args.mount is not None:
        app = middleware.MountPrefix(app, args.mount)
    return app


def serve(args: argparse.Namespace) -> int:
    configure_logging(args.log_level)
    log = logging.getLogger("wsgiwire")
    try:
        limits = _limits(args)
    except (TypeError, ValueError) as exc:
        print(f"wsgiwire: {exc}", file=sys.stderr)
        return 2
    preload = args.protocol == "cgi" or args.workers < 1 or args.preload
    try:
        if preload:
            app: WSGIApp | None = _wrap(load_app(args.app), args)
        else:
            check_app_spec(args.app)
            app = None
    except AppLoadError as exc:
        print(f"wsgiwire: {exc}", file=sys.stderr)
        return 2
    if args.protocol == "cgi":
        from .adapters.cgi import run

        if app is None:  # preloaded above; for the type checker
            return 2
        return 0 if run(app, debug=args.debug, limits=limits) else 1

    from .adapters.listeners import (
        BindError,
        PeerFilter,
        chown_socket,
        inherited_fd0,
        open_listener,
        parse_bind,
        systemd_listeners,
    )
    from .adapters.runtime import Server, ServerConfig

    try:
        specs = [parse_bind(a) for a in args.bind or ()]
        listeners = [open_listener(spec, socket_mode=args.socket_mode, backlog=args.backlog)
                     for spec in specs]
        if not listeners:
            listeners = systemd_listeners()
        if not listeners:
            fd0 = inherited_fd0()
            listeners = [fd0] if fd0 is not None else [
                open_listener(parse_bind(DEFAULT_BIND), backlog=args.backlog)
            ]
        owned = [spec.path for spec in specs if spec.kind == "unix"]
        if args.socket_owner:
            for path in owned:
                chown_socket(path, args.socket_owner)
        peers = PeerFilter(args.allow) if args.allow else PeerFilter.from_environ(os.environ)
        stats = open_listener(parse_bind(args.stats)) if args.stats else None
    except BindError as exc:
        print(f"wsgiwire: {exc}", file=sys.stderr)
        return 2
    for sock in listeners:
        log.info("wsgiwire %s serving %s on %s", __version__, args.protocol,
                 sock.getsockname() or "an inherited socket")
    if stats is not None:
        log.info("status page on %s", stats.getsockname())
    app_spec = args.app

    def load() -> WSGIApp:
        return _wrap(load_app(app_spec), args)

    config = ServerConfig(
        app=app,
        app_loader=None if app is not None else load,
        driver=_driver(args),
        listeners=listeners,
        owned_paths=owned,
        workers=args.workers,
        threads=args.threads,
        limits=limits,
        debug=args.debug,
        peer_filter=peers,
        graceful_timeout=args.graceful_timeout,
        max_requests=args.max_requests,
        max_requests_jitter=args.max_requests_jitter,
        access_log=args.access_log,
        pid_file=args.pid_file,
        stats_listener=stats,
        user=args.user,
        group=args.group,
        reload_dirs=[os.getcwd()] if args.reload else [],
    )
    return Server(config).serve()
