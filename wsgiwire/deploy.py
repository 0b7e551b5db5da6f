"""``wsgiwire config``: the tested web-server configuration for a setup, filled in.

The templates are the files under ``server-configs/`` (shipped in the package
as ``wsgiwire/server_configs``): the integration tests boot exactly these
files, so what this prints is what was tested. A template's ``{{NAME}}``
placeholders are filled from the command line or sensible defaults; an
unknown placeholder left over is an error, never silently kept.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources

__all__ = [
    "SERVERS",
    "ConfigError",
    "Setup",
    "choose",
    "defaults",
    "render",
    "template_text",
]

SERVERS = ("nginx", "apache", "lighttpd")

_PLACEHOLDER = re.compile(r"\{\{([^{}]*)\}\}")
_NAME = re.compile(r"[A-Z][A-Z0-9_]*\Z")


class ConfigError(Exception):
    """The setup asked for is not one we have a tested file for, or a value is missing."""


@dataclass(frozen=True)
class Setup:
    """One tested file and what the backend must be run with to match it.

    ``transport`` is the kind of ``--bind`` the file is written for: ``tcp``,
    ``unix`` or ``any``.
    """

    server: str
    template: str  # name under server-configs/<server>/, without .conf
    protocol: str
    transport: str = "any"
    serve_args: tuple[str, ...] = ()  # extra `wsgiwire serve` options the setup needs
    note: str = ""


_MOUNT_ARGS = ("--mount", "{{MOUNT}}")

# (server, protocol, mounted at a prefix?) -> the tested files, best first.
_TABLE: dict[tuple[str, str, bool], tuple[Setup, ...]] = {
    ("nginx", "fastcgi", False): (Setup("nginx", "fastcgi-keepconn", "fastcgi"),),
    ("nginx", "fastcgi", True): (Setup("nginx", "fastcgi-prefix", "fastcgi"),),
    ("nginx", "scgi", False): (Setup("nginx", "scgi-root", "scgi"),),
    ("nginx", "scgi", True): (Setup("nginx", "scgi-prefix", "scgi", serve_args=_MOUNT_ARGS),),
    ("nginx", "uwsgi", False): (Setup("nginx", "uwsgi-root", "uwsgi"),),
    ("nginx", "uwsgi", True): (Setup("nginx", "uwsgi-prefix30", "uwsgi"),),
    ("apache", "fastcgi", False): (
        Setup("apache", "fastcgi-root-pathinfo", "fastcgi", "tcp"),
    ),
    ("apache", "fastcgi", True): (
        Setup("apache", "fastcgi-prefix-pathinfo", "fastcgi", "unix"),
        Setup("apache", "fastcgi-prefix", "fastcgi", "tcp", serve_args=_MOUNT_ARGS),
    ),
    ("apache", "scgi", False): (Setup("apache", "scgi-root", "scgi", "tcp", ("--mount", "/")),),
    ("apache", "scgi", True): (Setup("apache", "scgi-prefix", "scgi", "tcp", _MOUNT_ARGS),),
    ("apache", "uwsgi", False): (Setup("apache", "uwsgi-root", "uwsgi", "tcp"),),
    ("apache", "uwsgi", True): (Setup("apache", "uwsgi-prefix", "uwsgi", "tcp"),),
    ("apache", "cgi", False): (Setup("apache", "cgi-root", "cgi"),),
    ("apache", "cgi", True): (Setup("apache", "cgi-scriptalias", "cgi"),),
    ("lighttpd", "fastcgi", True): (
        Setup("lighttpd", "fastcgi-prefix", "fastcgi", "tcp"),
        Setup("lighttpd", "fastcgi-unix", "fastcgi", "unix"),
    ),
    ("lighttpd", "scgi", False): (Setup("lighttpd", "scgi-root", "scgi", "tcp"),),
    ("lighttpd", "scgi", True): (Setup("lighttpd", "scgi-prefix", "scgi", "tcp"),),
    ("lighttpd", "uwsgi", False): (Setup("lighttpd", "uwsgi-root", "uwsgi", "tcp"),),
    ("lighttpd", "uwsgi", True): (Setup("lighttpd", "uwsgi-prefix", "uwsgi", "tcp"),),
    ("lighttpd", "cgi", False): (Setup("lighttpd", "cgi-root", "cgi"),),
    ("lighttpd", "cgi", True): (Setup("lighttpd", "cgi", "cgi"),),
}
# A .fcgi file the server starts itself (shared hosting, lighttpd bin-path).
_SPAWNED: dict[str, Setup] = {
    "apache": Setup("apache", "fcgid-htaccess", "fastcgi",
                    note="put app.fcgi and the .htaccess from fcgid-htaccess.htaccess in "
                    "the document root"),
    "lighttpd": Setup("lighttpd", "fastcgi-spawn", "fastcgi"),
}
_LIGHTTPD_SPAWN_AT_ROOT = Setup(
    "lighttpd", "fastcgi-spawn", "fastcgi",
    note="at the site root lighttpd sends the whole path as SCRIPT_NAME: wrap the app, "
    "WSGIServer(LighttpdCGIRootFix(app)).run(), with LighttpdCGIRootFix from "
    "wsgiwire.middleware",
)


def choose(
    server: str, protocol: str, *, bind: str = "", mount: str = "", app_file: str | None = None
) -> Setup:
    """The tested setup for ``server`` speaking ``protocol`` on ``bind`` at ``mount``."""
    if server not in SERVERS:
        raise ConfigError(f"unknown server {server!r}; choose from {', '.join(SERVERS)}")
    prefixed = bool(mount.strip("/"))
    if app_file is not None and protocol != "cgi":  # a CGI script is the file itself
        if protocol != "fastcgi" or server not in _SPAWNED:
            raise ConfigError(
                "--app-file (a .fcgi the web server starts) is tested with "
                "apache (mod_fcgid) and lighttpd (bin-path) over fastcgi"
            )
        if server == "apache" and prefixed:
            raise ConfigError(
                "the tested mod_fcgid setup (.htaccess rewrite to app.fcgi) serves the "
                "directory it sits in: put the files there and drop --mount"
            )
        if server == "lighttpd" and not prefixed:
            return _LIGHTTPD_SPAWN_AT_ROOT
        return _SPAWNED[server]
    where = "a prefix" if prefixed else "the site root"
    candidates = _TABLE.get((server, protocol, prefixed))
    if not candidates:
        raise ConfigError(f"no tested {server} setup for {protocol} at {where}")
    transport = "unix" if bind.startswith(("unix:", "/")) else "tcp"
    for setup in candidates:
        if setup.transport in ("any", transport):
            return setup
    wanted = " or ".join(sorted({c.transport for c in candidates}))
    raise ConfigError(
        f"the tested {server} setup for {protocol} at {where} uses a {wanted} --bind"
    )


def template_text(server: str, name: str) -> str:
    root = resources.files("wsgiwire").joinpath("server_configs")
    return root.joinpath(server).joinpath(f"{name}.conf").read_text(encoding="utf-8")


def render(text: str, values: Mapping[str, str], *, source: str = "<template>") -> str:
    """Replace every ``{{NAME}}``; a placeholder without a value is an error."""
    missing: list[str] = []

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if not _NAME.match(name):
            raise ConfigError(f"{source}: malformed placeholder {match.group(0)!r}")
        if name not in values:
            missing.append(name)
            return match.group(0)
        return values[name]

    result = _PLACEHOLDER.sub(substitute, text)
    if missing:
        raise ConfigError(f"{source}: no value for {', '.join(sorted(set(missing)))}")
    return result


def defaults(server: str, *, bind: str, mount: str, app_file: str | None) -> dict[str, str]:
    """Values for a real host (every one can be overridden with ``--set NAME=VALUE``)."""
    mount = "/" + mount.strip("/") if mount.strip("/") else ""
    run_dir = f"/var/lib/wsgiwire/{server}"
    values = {
        "PORT": "80",
        "RUN_DIR": run_dir,
        "TMP_DIR": f"{run_dir}/tmp",
        "DOC_ROOT": "/var/www/html",
        "USER": "www-data",
        "GROUP": "www-data",
        "MODULES_DIR": "/usr/lib/apache2/modules" if server == "apache" else "/usr/lib/lighttpd",
        "MOUNT": mount,
        "SCRIPT": app_file or "/var/www/app.cgi",
    }
    if bind.startswith("unix:"):
        path = bind[5:]
        values["BACKEND"] = f"unix:{path}" if server == "nginx" else path
        values["BACKEND_HOST"] = path
        values["BACKEND_PORT"] = "0"
    else:
        host, _, port = bind.rpartition(":")
        host = host.strip("[]") or "127.0.0.1"
        values["BACKEND"] = bind
        values["BACKEND_HOST"] = host
        values["BACKEND_PORT"] = port
    return values
