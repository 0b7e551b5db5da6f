"""``wsgiwire serve``: its options, and turning them into a running server."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import TYPE_CHECKING, TextIO

from . import _logs as logs
from ._accesslog import ATOMS, AccessLog
from ._apploader import AppLoadError, check_app_spec, describe_load_error, load_app
from ._limits import DEFAULT_LIMITS, Limits
from ._logs import LOG_FORMATS
from ._prepare import StartupError, check_options, prepare_process

if TYPE_CHECKING:
    from .adapters._runtime import ProtocolDriver
    from .core._gateway import WSGIApp

__all__ = ["add_serve_options", "apply_ini", "serve", "serve_parser"]

PROTOCOLS = ("fastcgi", "scgi", "uwsgi", "cgi")
DEFAULT_BIND = "127.0.0.1:9000"
DEFAULT_STATS = "127.0.0.1:9191"  # uWSGI's customary stats port


def _octal(text: str) -> int:
    return int(text, 8)


SIGNALS_HELP = """\
signals (to the master, whose pid --pid-file holds):
  TERM, INT   graceful stop: in-flight requests finish (--graceful-timeout)
  QUIT        fast stop: in-flight requests are cut
  HUP         reload: new workers load the app afresh; the old ones drain only
              once every new one is ready. If the new code cannot load, one
              line is logged and the old workers go on serving
  USR1        reopen log files (after logrotate), in the master and workers
  TTIN, TTOU  one worker more, one worker fewer
"""


def add_serve_options(parser: argparse.ArgumentParser) -> None:
    parser.epilog = SIGNALS_HELP
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
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
    group.add_argument("--boot-timeout", type=float, default=120.0, metavar="SECONDS",
                       help="how long new workers may take to load the app (at start, on "
                       "a reload or a respawn) before the attempt counts as failed: at start "
                       "the server exits 2; on a reload the old workers go on serving "
                       "(default 120; 0: wait for ever)")
    group.add_argument("--pid-file", metavar="PATH", help="write the master's pid here")
    group.add_argument("--user", help="switch to this user after binding (when root)")
    group.add_argument("--group", help="switch to this group after binding (when root)")
    group.add_argument("--reload", action="store_true",
                       help="development: reload (as SIGHUP does) when a .py file under "
                       "the working directory changes")
    group.add_argument("--touch-reload", action="append", default=[], metavar="FILE",
                       help="reload (as SIGHUP does) when FILE's modification time changes "
                       "(`touch FILE` after a deploy); repeatable")
    group.add_argument("--stats", nargs="?", const=DEFAULT_STATS, metavar="ADDR",
                       help="serve the status: JSON at / (uwsgitop reads it), Prometheus "
                       f"at /metrics; ADDR: HOST:PORT or unix:/path (default {DEFAULT_STATS}, "
                       "loopback only)")

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

    # Operations: logs (wsgiwire/_logs.py, wsgiwire/_accesslog.py)
    group = parser.add_argument_group(
        "logs", "wsgiwire configures only its own loggers (wsgiwire, wsgiwire.access), "
        "never the root logger; log files are reopened on SIGUSR1 (logrotate)")
    group.add_argument("--access-log", action="store_true",
                       help="log one line per request (logger wsgiwire.access; to stderr "
                       "unless --access-log-file)")
    group.add_argument("--access-log-file", metavar="PATH",
                       help="write the access log to PATH (implies --access-log)")
    group.add_argument("--access-log-format", metavar="FORMAT",
                       help="gunicorn-style atoms, e.g. '%%(h)s \"%%(r)s\" %%(s)s %%(D)s'; "
                       "default: the combined format plus the request time in seconds; "
                       "atoms: " + "; ".join(f"%%({k})s {v}" for k, v in ATOMS.items()))
    group.add_argument("--log-file", metavar="PATH",
                       help="write wsgiwire's own log to PATH instead of stderr")
    group.add_argument("--log-format", choices=LOG_FORMATS, default="text",
                       help="text (default) or json: one JSON object per line")
    group.add_argument("--log-level", default="info",
                       choices=("debug", "info", "warning", "error"),
                       help="logging level (default: info)")


    group = parser.add_argument_group(
        "migration (uWSGI's ini file and its environment options)")
    group.add_argument("--ini", metavar="FILE",
                       help="read serve options from a uWSGI ini file; options on the command "
                       "line override it (wsgiwire config --from-uwsgi FILE shows the mapping)")
    group.add_argument("--ini-section", default="uwsgi", metavar="NAME",
                       help="the ini section to read (default: uwsgi)")
    group.add_argument("--strict-ini", action="store_true",
                       help="refuse to start (exit 2) when the ini file has options wsgiwire "
                       "does not support, instead of listing them")
    group.add_argument("--chdir", metavar="DIR",
                       help="change to DIR before loading the app (and before binding: a "
                       "relative socket path is then relative to DIR)")
    group.add_argument("--env", action="append", metavar="NAME=VALUE",
                       help="set an environment variable for the app (repeatable)")
    group.add_argument("--pythonpath", action="append", metavar="DIR",
                       help="put DIR first on sys.path (repeatable)")
    group.add_argument("--virtualenv", metavar="DIR",
                       help="load the app's packages from this virtualenv (made for this "
                       "Python version)")
    group.add_argument("--reload-on-rss", type=int, default=0, metavar="MiB",
                       help="recycle a worker gracefully after a request that leaves it "
                       "using more than this much resident memory (default 0: never)")


def serve_parser() -> argparse.ArgumentParser:
    """``wsgiwire serve`` on its own (the ini merge parses with it)."""
    parser = argparse.ArgumentParser(prog="wsgiwire serve")
    parser.add_argument("app", nargs="?", metavar="APP",
                        help="module:callable (default: the demo)")
    add_serve_options(parser)
    return parser


def apply_ini(serve_argv: list[str]) -> argparse.Namespace:
    """The serve options of ``--ini FILE`` with ``serve_argv`` (the command line) over them.

    The ini keys become argv-style options parsed by the same parser, so a
    value is checked exactly as on the command line. The translation (what
    was skipped, and why) is kept in ``ini_report`` for :func:`serve` to log.
    """
    from ._uwsgiini import IniError, placeholders, read_ini, translate

    parser = serve_parser()
    cli = parser.parse_args(serve_argv)
    known = parser._option_string_actions
    try:
        pairs = read_ini(cli.ini, cli.ini_section)
        names = placeholders(cli.ini, cli.ini_section)
    except IniError as exc:
        parser.exit(2, f"wsgiwire: {exc}\n")
    translation = translate(pairs, known=lambda option: option in known, placeholders=names)
    merged = parser.parse_args(translation.argv)
    # Which options the command line named: parse it again with no defaults.
    probe = serve_parser()
    for action in probe._actions:
        action.default = argparse.SUPPRESS
    for name, value in vars(probe.parse_args(serve_argv)).items():
        setattr(merged, name, value)
    if merged.app is None:
        merged.app = translation.app
    merged.ini_report = translation
    return merged


def ini_command_line(path: str, out: TextIO, err: TextIO, section: str = "uwsgi") -> int:
    """``wsgiwire config --from-uwsgi``: the serve command for an ini file, on ``out``;
    what does not map, on ``err``. 0, or 2 when the file cannot be read."""
    import shlex

    from ._uwsgiini import IniError, placeholders, read_ini, translate

    known = serve_parser()._option_string_actions
    try:
        pairs = read_ini(path, section)
        names = placeholders(path, section)
    except IniError as exc:
        print(f"wsgiwire: {exc}", file=err)
        return 2
    translation = translate(pairs, known=lambda option: option in known, placeholders=names)
    words = ["wsgiwire", "serve"]
    if translation.app is not None:
        words.append(translation.app)
    words += translation.argv
    print(shlex.join(words), file=out)
    for skipped in translation.unsupported:
        print(f"# not mapped: {skipped.key} = {skipped.value}: {skipped.reason}", file=err)
    for warning in translation.warnings:
        print(f"# note: {warning}", file=err)
    for skipped in translation.noops:
        print(f"# nothing to do: {skipped.key} = {skipped.value}: {skipped.reason}", file=err)
    if translation.app is None:
        print("# note: the file names no app (module, wsgi-file or mount): the demo app "
              "would be served", file=err)
    return 0


def _report_ini(args: argparse.Namespace, log: logging.Logger) -> bool:
    """Log what the ini file mapped to nothing; False when --strict-ini refuses it."""
    report = getattr(args, "ini_report", None)
    if report is None:
        return True
    for skipped in report.noops:
        log.debug("%s: %s = %s: nothing to do (%s)", args.ini, skipped.key, skipped.value,
                  skipped.reason)
    if report.unsupported and args.strict_ini:
        for skipped in report.unsupported:
            print(f"wsgiwire: {args.ini}: {skipped.key} = {skipped.value}: {skipped.reason}",
                  file=sys.stderr)
        print(f"wsgiwire: --strict-ini: {len(report.unsupported)} option(s) of {args.ini} "
              "are not supported", file=sys.stderr)
        return False
    for skipped in report.unsupported:
        log.warning("%s: %s = %s is ignored: %s", args.ini, skipped.key, skipped.value,
                    skipped.reason)
    for warning in report.warnings:
        log.warning("%s: %s", args.ini, warning)
    return True


def configure_logging(
    level: str, *, log_file: str | None = None, access_log_file: str | None = None,
    log_format: str = "text",
) -> None:
    """The ``wsgiwire`` loggers only (see :mod:`wsgiwire._logs`); never the root logger."""
    logs.configure_logging(level, log_file=log_file, access_log_file=access_log_file,
                           log_format=log_format)


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
        from .adapters._drivers import SCGIDriver

        return SCGIDriver()
    if args.protocol == "uwsgi":
        from .adapters._drivers import UWSGIDriver

        return UWSGIDriver(trust_uwsgi_scheme=args.trust_uwsgi_scheme)
    from ._events import Role
    from .adapters._drivers import FastCGIDriver

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
    try:
        configure_logging(args.log_level, log_file=args.log_file,
                          access_log_file=args.access_log_file, log_format=args.log_format)
    except OSError as exc:
        print(f"wsgiwire: cannot open a log file: {exc}", file=sys.stderr)
        return 2
    log = logging.getLogger("wsgiwire")
    if not _report_ini(args, log):
        return 2
    access_log = bool(args.access_log or args.access_log_file)
    if access_log:
        try:
            AccessLog(args.access_log_format)
        except ValueError as exc:
            print(f"wsgiwire: --access-log-format: {exc}", file=sys.stderr)
            return 2
    try:
        limits = _limits(args)
        prepare_process(args)
        check_options(args)
    except (TypeError, ValueError, StartupError) as exc:
        print(f"wsgiwire: {exc}", file=sys.stderr)
        return 2
    preload = args.protocol == "cgi" or args.workers < 1 or args.preload
    try:
        if preload:
            app: WSGIApp | None = _wrap(load_app(args.app), args)
        else:
            check_app_spec(args.app)
            app = None
    except (Exception, SystemExit) as exc:  # the app's import may raise anything
        if isinstance(exc, AppLoadError) and not preload:
            print(f"wsgiwire: {exc}", file=sys.stderr)  # the module is not there at all
        else:
            print(f"wsgiwire: cannot load the application: {describe_load_error(exc)}",
                  file=sys.stderr)
        return 2
    if args.protocol == "cgi":
        from .adapters.cgi import run

        if app is None:  # preloaded above; for the type checker
            return 2
        return 0 if run(app, debug=args.debug, limits=limits) else 1

    from .adapters._listeners import (
        BindError,
        PeerFilter,
        chown_socket,
        inherited_fd0,
        open_listener,
        parse_bind,
        systemd_listeners,
    )
    from .adapters._master import describe_listener
    from .adapters._runtime import Server, ServerConfig

    try:
        specs = [parse_bind(a) for a in args.bind or ()]
        listeners = [open_listener(spec, socket_mode=args.socket_mode, backlog=args.backlog)
                     for spec in specs]
        # As a person writes them; an inherited socket also shows what it is.
        names = [f"{spec} ({describe_listener(sock)})" if spec.kind == "fd"
                 else describe_listener(sock)
                 for spec, sock in zip(specs, listeners, strict=True)]
        if not listeners:
            listeners = systemd_listeners()
            names = [f"fd:{sock.fileno()} ({describe_listener(sock)}, from systemd)"
                     for sock in listeners]
        if not listeners:
            fd0 = inherited_fd0()
            listeners = [fd0] if fd0 is not None else [
                open_listener(parse_bind(DEFAULT_BIND), backlog=args.backlog)
            ]
            names = [f"fd:0 ({describe_listener(fd0)})" if fd0 is not None
                     else describe_listener(listeners[0])]
        owned = [spec.path for spec in specs if spec.kind == "unix"]
        if args.socket_owner:
            for path in owned:
                chown_socket(path, args.socket_owner)
        peers = PeerFilter(args.allow) if args.allow else PeerFilter.from_environ(os.environ)
        stats = None
        if args.stats:
            stats_spec = parse_bind(args.stats)
            stats = open_listener(stats_spec)
            if stats_spec.kind == "unix":
                owned.append(stats_spec.path)  # removed at exit, like the app's socket
    except BindError as exc:
        print(f"wsgiwire: {exc}", file=sys.stderr)
        return 2
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
        boot_timeout=args.boot_timeout,
        max_requests=args.max_requests,
        max_requests_jitter=args.max_requests_jitter,
        reload_on_rss=args.reload_on_rss << 20,
        access_log=access_log,
        access_log_format=args.access_log_format,
        pid_file=args.pid_file,
        stats_listener=stats,
        user=args.user,
        group=args.group,
        reload_dirs=[os.getcwd()] if args.reload else [],
        touch_reload=[os.path.abspath(path) for path in args.touch_reload],
    )
    # The server logs "serving PROTOCOL on ADDRESS" once its workers serve.
    return Server(config, names).serve()
