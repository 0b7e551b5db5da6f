"""``wsgiwire config``: the tested web-server configuration for a setup, filled in.

The templates are the files under ``server-configs/`` (shipped in the package
as ``wsgiwire/server_configs``): the integration tests boot exactly these
files, so what this prints is what was tested. A template's ``{{NAME}}``
placeholders are filled from the command line or sensible defaults; an
unknown placeholder left over is an error, never silently kept.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources

__all__ = [
    "FULL_SERVERS",
    "SERVERS",
    "TARGETS",
    "UNITS",
    "Bind",
    "ConfigError",
    "Printed",
    "Request",
    "Setup",
    "choose",
    "defaults",
    "generate",
    "parse_bind",
    "render",
    "template_text",
]

#: Servers whose complete, standalone tested file ``--full`` prints (the matrix boots them).
FULL_SERVERS = ("nginx", "apache", "lighttpd", "haproxy", "caddy")
#: Every web server ``wsgiwire config`` writes a snippet for.
SERVERS = ("nginx", "apache", "lighttpd", "haproxy", "caddy")
#: Process managers ``wsgiwire config`` writes the backend's own files for.
UNITS = ("systemd", "supervisor")
TARGETS = SERVERS + UNITS

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
    ("haproxy", "fastcgi", False): (Setup("haproxy", "fastcgi-root", "fastcgi"),),
    ("haproxy", "fastcgi", True): (Setup("haproxy", "fastcgi-prefix", "fastcgi"),),
    ("caddy", "fastcgi", False): (Setup("caddy", "fastcgi-root", "fastcgi"),),
    ("caddy", "fastcgi", True): (Setup("caddy", "fastcgi-prefix", "fastcgi"),),
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
    if server not in FULL_SERVERS:
        raise ConfigError(
            f"no standalone tested file for {server!r}; --full takes "
            f"{', '.join(FULL_SERVERS)}"
        )
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
    if server in ("haproxy", "caddy"):
        # Where they terminate TLS (Debian's snakeoil certificate as a placeholder).
        values.update(TLS_PORT="443", CERT="/etc/ssl/certs/ssl-cert-snakeoil.pem",
                      KEY="/etc/ssl/private/ssl-cert-snakeoil.key",
                      CERT_PEM="/etc/haproxy/site.pem")
        del values["MODULES_DIR"], values["SCRIPT"], values["TMP_DIR"]
    if bind.startswith("unix:"):
        path = bind[5:]
        spelled = {"nginx": f"unix:{path}", "caddy": f"unix/{path}"}
        values["BACKEND"] = spelled.get(server, path)
        values["BACKEND_HOST"] = path
        values["BACKEND_PORT"] = "0"
    else:
        host, _, port = bind.rpartition(":")
        host = host.strip("[]") or "127.0.0.1"
        values["BACKEND"] = bind
        values["BACKEND_HOST"] = host
        values["BACKEND_PORT"] = port
    return values


# ---------------------------------------------------------------------------------------
# Snippets: what a user pastes into a distribution's layout (sites-available,
# conf-available, haproxy.cfg, the Caddyfile) and the backend's own unit files.
# Every branch below is booted by tests/integration/test_deploy_snippets.py, included
# into a Debian-layout main configuration exactly as printed.

_BIND_FORMS = "HOST:PORT, [IPV6]:PORT or unix:/absolute/path"
_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?\Z")
_APP_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
_URL_PATH = re.compile(r"/(?:[A-Za-z0-9._~-]+/)*\Z")
_MOUNT_TEXT = re.compile(r"(?:/[A-Za-z0-9._~-]+)*\Z")
_FS_PATH = re.compile(r"/[^\s\"'{};#$\\]*\Z")


@dataclass(frozen=True)
class Bind:
    """A backend address: a unix socket ``path``, or ``host`` and ``port``."""

    text: str
    path: str = ""
    host: str = ""
    port: int = 0

    @property
    def is_unix(self) -> bool:
        return bool(self.path)

    @property
    def host_port(self) -> str:
        """``host:port`` with an IPv6 host in brackets, as every server writes it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def _host_and_port(text: str, option: str, forms: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        inner = host[1:-1]
        ok = bool(inner) and all(c in "0123456789abcdefABCDEF:." for c in inner)
        host = inner
    else:
        ok = bool(_HOSTNAME.match(host))
    if not (sep and ok and port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise ConfigError(f"{option} takes {forms}, not {text!r}")
    return host, int(port)


def parse_bind(text: str, *, option: str = "--bind") -> Bind:
    """``unix:/path``, ``HOST:PORT`` or ``[V6]:PORT``; anything else (a bare port, a
    relative socket path) is a :class:`ConfigError` naming the valid forms."""
    if text.startswith("unix:"):
        path = text[5:]
        if not _FS_PATH.match(path) or path.endswith("/"):
            raise ConfigError(f"{option} takes {_BIND_FORMS}, not {text!r}")
        return Bind(text, path=path)
    host, port = _host_and_port(text, option, _BIND_FORMS)
    return Bind(text, host=host, port=port)


@dataclass(frozen=True)
class Listen:
    """Where the web server listens: ``host`` ("" for every address) and ``port``."""

    host: str
    port: int

    def joined(self, all_hosts: str = "") -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        if not host:
            return f"{all_hosts}{self.port}" if all_hosts else str(self.port)
        return f"{host}:{self.port}"


def parse_listen(text: str) -> Listen:
    if text.isascii() and text.isdigit():
        port = int(text)
        if 0 < port < 65536:
            return Listen("", port)
    forms = "PORT, HOST:PORT or [IPV6]:PORT"
    if ":" not in text:
        raise ConfigError(f"--listen takes {forms}, not {text!r}")
    host, port = _host_and_port(text, "--listen", forms)
    return Listen(host, port)


def parse_static(item: str) -> tuple[str, str]:
    """``--static URL=DIR`` as ``("/url/", "/dir/")`` (both with a trailing slash)."""
    url, sep, directory = item.partition("=")
    url = "/" + url.strip("/") + "/" if url.strip("/") else ""
    directory = directory.rstrip("/") + "/"
    if not sep or not _URL_PATH.match(url) or not _FS_PATH.match(directory):
        raise ConfigError(
            f"--static takes URL=DIR (a URL path and an absolute directory, e.g. "
            f"/static/=/srv/myapp/static), not {item!r}"
        )
    return url, directory


@dataclass(frozen=True)
class Request:
    """One ``wsgiwire config`` command line."""

    server: str
    protocol: str = "fastcgi"
    bind: str = "127.0.0.1:9000"
    mount: str = ""
    app: str = "myapp:app"
    app_file: str | None = None
    listen: str = ""  # "": port 80 on every address
    server_name: str = ""
    location: bool = False
    static: tuple[str, ...] = ()
    full: bool = False
    sets: tuple[str, ...] = ()


@dataclass(frozen=True)
class Printed:
    """What ``wsgiwire config`` prints: ``text`` (stdout) and ``notes`` (stderr lines)."""

    text: str
    notes: tuple[str, ...]


def _sets(items: Sequence[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set takes NAME=VALUE, not {item!r}")
        values[name] = value
    return values


def _check_sets(sets: Mapping[str, str], valid: Iterable[str], what: str) -> None:
    unknown = sorted(set(sets) - set(valid))
    if unknown:
        raise ConfigError(
            f"unknown --set {'key' if len(unknown) == 1 else 'keys'} "
            f"{', '.join(unknown)} for {what}; valid: {', '.join(sorted(set(valid)))}"
        )


def _mount(text: str) -> str:
    mount = "/" + text.strip("/") if text.strip("/") else ""
    if not _MOUNT_TEXT.match(mount):
        raise ConfigError(
            f"--mount takes a URL path of letters, digits and . _ ~ - (e.g. /app), "
            f"not {text!r}"
        )
    return mount


def _app_name(app: str) -> str:
    module = app.partition(":")[0].split(".")[0]
    name = re.sub(r"[^A-Za-z0-9_]", "_", module)
    return name if _APP_NAME.match(name) else "app"


def _backend_command(
    app: str, protocol: str, bind: Bind, serve_args: Sequence[str], *, owner: tuple[str, str]
) -> str:
    user, group = owner
    options = list(serve_args)
    if bind.is_unix:
        # The web server's workers must be able to open the 0660 socket.
        options += ["--socket-owner", f"{user}:{group}"]
    extra = " ".join(options)
    return f"wsgiwire serve {app} --protocol {protocol} --bind {bind.text}" + (
        f" {extra}" if extra else ""
    )


def generate(req: Request) -> Printed:
    """The text and the notes for ``req``; raises :class:`ConfigError` (one line)."""
    if req.server not in TARGETS:
        raise ConfigError(f"unknown server {req.server!r}; choose from {', '.join(TARGETS)}")
    bind = parse_bind(req.bind)
    mount = _mount(req.mount)
    sets = _sets(req.sets)
    if req.full:
        return _full(req, bind, sets)
    if req.server in UNITS:
        return _units(req, bind, sets)
    listen = parse_listen(req.listen or "80")
    statics = [parse_static(item) for item in req.static]
    if req.server == "lighttpd" and (req.listen or req.server_name):
        raise ConfigError(
            "lighttpd's listener and host are lighttpd.conf's (server.port, $HTTP[\"host\"]); "
            "--listen and --server-name are for nginx, Apache, HAProxy and Caddy"
        )
    if req.server == "haproxy" and req.server_name:
        raise ConfigError("the HAProxy snippet answers any host: --server-name is for nginx, "
                          "Apache and Caddy")
    if req.server_name and not (req.server_name == "_" or _HOSTNAME.match(req.server_name)):
        raise ConfigError(f"--server-name takes a host name, not {req.server_name!r}")
    snippet = _SNIPPETS[req.server](req, bind, mount, listen, statics)
    # The mount is written out, not a value to --set: it also shaped the snippet.
    template = snippet.template.replace("{{MOUNT}}", mount)
    serve_args = [a.replace("{{MOUNT}}", mount) for a in snippet.serve_args]
    values = {
        "NAME": _app_name(req.app),
        "SERVER_NAME": req.server_name or snippet.default_server_name,
        "USER": "www-data",
        "GROUP": "www-data",
        "DOC_ROOT": "/var/www/html",
    }
    used = set(_PLACEHOLDER_NAMES.findall(template)) | {"USER", "GROUP"}
    _check_sets(sets, used, f"this {req.server} snippet")
    values.update(sets)
    if not _APP_NAME.match(values["NAME"]):
        raise ConfigError(f"NAME must be a letter, then letters, digits or _: {values['NAME']!r}")
    text = render(template, values, source=f"the {req.server} snippet")
    notes = [f"# paste into: {render(snippet.paste_into, values)}"]
    if req.app_file is not None:
        notes.append(
            f"# backend: {req.app_file}: a script calling WSGIServer(app).run() from "
            "wsgiwire.adapters.fastcgi; the web server starts it"
        )
    else:
        notes.append("# backend: " + _backend_command(
            req.app, req.protocol, bind, serve_args,
            owner=(values["USER"], values["GROUP"]),
        ))
    notes += [f"# note: {render(note, values)}" for note in snippet.notes]
    return Printed(text, tuple(notes))


_PLACEHOLDER_NAMES = re.compile(r"\{\{([A-Z][A-Z0-9_]*)\}\}")


@dataclass(frozen=True)
class _Snippet:
    template: str
    paste_into: str
    serve_args: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    default_server_name: str = "_"


def _refuse_unless(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _regex_path(path: str) -> str:
    return re.sub(r"([.~-])", r"\\\1", path)


# -- nginx ------------------------------------------------------------------------------

_NGINX_HOST_COMMENT = """\
# HTTP_HOST for the app: the host nginx resolved ($host, never the raw Host header,
# which can disagree with an absolute-form request target) plus the port when it is
# not the scheme's default, so absolute URLs, redirects and CSRF origin checks are
# right on any port, with old and new Debian *_params files alike (they set
# HTTP_HOST $host, without the port; the line below comes later and wins).
# Behind a proxy that maps ports, write the public port instead of $server_port.
# nginx 1.30+: "$host$is_request_port$request_port" does the same without the map.
"""


def _nginx(
    req: Request, bind: Bind, mount: str, listen: Listen, statics: list[tuple[str, str]]
) -> _Snippet:
    protocol = req.protocol
    _refuse_unless(protocol in ("fastcgi", "scgi", "uwsgi") and req.app_file is None,
                   "nginx passes requests to a running backend: --protocol fastcgi, scgi "
                   "or uwsgi, no --app-file")
    p = {"fastcgi": "fastcgi", "scgi": "scgi", "uwsgi": "uwsgi"}[protocol]
    address = bind.text if bind.is_unix else bind.host_port
    upstream = ["upstream wsgiwire_{{NAME}} {", f"    server {address};"]
    if protocol == "fastcgi":
        upstream += ["    # idle connections each nginx worker keeps open to the backend",
                     "    keepalive 8;"]
    upstream.append("}")
    host_map = _NGINX_HOST_COMMENT + (
        'map "$scheme:$server_port" $wsgiwire_{{NAME}}_port {\n'
        '    default ":$server_port";\n'
        '    "http:80" "";\n'
        '    "https:443" "";\n'
        "}\n"
    )
    body = [f"include {p}_params;"]
    serve_args: tuple[str, ...] = ()
    if protocol == "fastcgi":
        if mount:
            body += [f"fastcgi_split_path_info ^({_regex_path(mount)})(.*)$;",
                     "fastcgi_param SCRIPT_NAME $fastcgi_script_name;",
                     "fastcgi_param PATH_INFO $fastcgi_path_info;"]
        else:
            body += ['fastcgi_param SCRIPT_NAME "";',
                     "fastcgi_param PATH_INFO $fastcgi_script_name;"]
    elif protocol == "uwsgi" and mount:
        body += ["uwsgi_param SCRIPT_NAME {{MOUNT}};",
                 "# wsgiwire strips SCRIPT_NAME from PATH_INFO (as uWSGI's mount does)",
                 "uwsgi_modifier1 30;"]
    elif protocol == "scgi" and mount:
        serve_args = ("--mount", "{{MOUNT}}")  # nginx cannot tell an SCGI backend
    body.append(f"{p}_param HTTP_HOST $host$wsgiwire_{{{{NAME}}}}_port;")
    if protocol == "fastcgi":
        body.append("fastcgi_keep_conn on;")
    body.append(f"{p}_pass wsgiwire_{{{{NAME}}}};")
    locations: list[str] = []
    if mount:
        locations += ["# {{MOUNT}} alone becomes {{MOUNT}}/ (PATH_INFO \"/\").",
                      "location = {{MOUNT}} {", "    rewrite ^ {{MOUNT}}/ last;", "}"]
    locations.append(f"location {mount}/ {{")
    locations += [f"    {line}" for line in body]
    locations.append("}")
    for url, directory in statics:
        locations += [f"location {url} {{", f"    alias {directory};", "}"]
    if req.location:
        text = (
            "# ---- once, at http {} level: /etc/nginx/conf.d/wsgiwire-{{NAME}}.conf ----\n"
            + "\n".join(upstream) + "\n\n" + host_map
            + "# ---- inside your server {} ----\n"
            + "\n".join(locations) + "\n"
        )
        paste = ("the first part in /etc/nginx/conf.d/wsgiwire-{{NAME}}.conf, the "
                 "locations in your server {} block")
    else:
        server = ["server {", f"    listen {listen.joined()};", "    server_name {{SERVER_NAME}};",
                  "    client_max_body_size 64m;", ""]
        server += [f"    {line}" if line else "" for line in locations]
        server.append("}")
        text = (
            "# nginx site for {{NAME}}: /etc/nginx/sites-available/{{NAME}}, then\n"
            "#   ln -s ../sites-available/{{NAME}} /etc/nginx/sites-enabled/\n"
            "#   nginx -t && systemctl reload nginx\n"
            + "\n".join(upstream) + "\n\n" + host_map + "\n" + "\n".join(server) + "\n"
        )
        paste = "/etc/nginx/sites-available/{{NAME}} (and a link in sites-enabled/)"
    notes: tuple[str, ...] = ()
    if not req.location and not req.server_name:
        notes = ("server_name _ answers only requests no other site claims: give "
                 "--server-name, or remove Debian's sites-enabled/default (its "
                 "default_server takes the rest)",)
    return _Snippet(text, paste, serve_args, notes)


# -- Apache httpd -----------------------------------------------------------------------

_APACHE_HOST_COMMENT = (
    "# HTTP_HOST: Apache passes the Host the request was addressed to (an absolute-form\n"
    "# request target replaces the header), port included: nothing to add.\n"
)


def _apache(
    req: Request, bind: Bind, mount: str, listen: Listen, statics: list[tuple[str, str]]
) -> _Snippet:
    protocol = req.protocol
    if req.app_file is not None:
        _refuse_unless(protocol == "fastcgi" and not mount and not req.location and not statics,
                       "--app-file under Apache is the mod_fcgid .htaccess, tested at the "
                       "directory it sits in: --protocol fastcgi, no --mount, --location "
                       "or --static")
        text = (resources.files("wsgiwire").joinpath("server_configs").joinpath("apache")
                .joinpath("fcgid-htaccess.htaccess").read_text(encoding="utf-8"))
        return _Snippet(
            text, "{{DOC_ROOT}}/.htaccess, beside app.fcgi (mode 755)",
            notes=("mod_fcgid enabled (a2enmod fcgid rewrite) and AllowOverride FileInfo "
                   "Options for the directory; the script wraps the app in "
                   "ScriptNameStripper from wsgiwire.middleware",),
        )
    _refuse_unless(protocol in ("fastcgi", "scgi", "uwsgi"),
                   "Apache proxies to a running backend: --protocol fastcgi, scgi or uwsgi "
                   "(CGI: wsgiwire config apache --protocol cgi --full)")
    _refuse_unless(protocol == "fastcgi" or not bind.is_unix,
                   f"the tested Apache {protocol} setup uses a HOST:PORT --bind")
    scheme = {"fastcgi": "fcgi", "scgi": "scgi", "uwsgi": "uwsgi"}[protocol]
    if bind.is_unix:
        target = f"unix:{bind.path}|{scheme}://localhost/"
    else:
        target = f"{scheme}://{bind.host_port}/"
    serve_args: tuple[str, ...] = ()
    if protocol == "scgi":
        # mod_proxy_scgi sends the whole path as SCRIPT_NAME: the backend splits it.
        serve_args = ("--mount", mount or "/")
    modules = {"fastcgi": "proxy proxy_fcgi setenvif", "scgi": "proxy proxy_scgi",
               "uwsgi": "proxy proxy_uwsgi"}[protocol]
    static_lines: list[str] = []
    for url, directory in statics:
        static_lines += [f'Alias "{url}" "{directory}"', f'<Directory "{directory}">',
                         "    Require all granted", "</Directory>"]
    lines: list[str] = []
    if req.location:
        lines += static_lines
        lines.append(f'<Location "{mount}/">')
        if protocol == "fastcgi":
            lines.append("    SetEnvIf Request_URI . proxy-fcgi-pathinfo=unescape")
        lines += [f'    ProxyPass "{target}"', "</Location>"]
        for url, _ in statics:
            lines += [f'<Location "{url}">', '    ProxyPass "!"', "</Location>"]
        text = (
            "# Apache: inside your <VirtualHost> (a2enmod " + modules + ")\n"
            + _APACHE_HOST_COMMENT + "\n".join(lines) + "\n"
        )
        return _Snippet(text, "your <VirtualHost> block", serve_args)
    vhost = f"*:{listen.port}" if not listen.host else listen.joined()
    head = [] if listen.port == 80 and not listen.host else [f"Listen {listen.joined()}"]
    body = ["ServerName {{SERVER_NAME}}"] if req.server_name else []
    body += static_lines
    body += [f'ProxyPass "{url}" "!"' for url, _ in statics]
    if protocol == "fastcgi":
        body.append("# SCRIPT_NAME the mount, PATH_INFO the decoded rest")
        body.append("SetEnvIf Request_URI . proxy-fcgi-pathinfo=unescape")
    body.append(f'ProxyPass "{mount}/" "{target}"')
    text = (
        "# Apache site for {{NAME}}: /etc/apache2/sites-available/{{NAME}}.conf, then\n"
        f"#   a2enmod {modules} && a2ensite {{{{NAME}}}} && systemctl reload apache2\n"
        + _APACHE_HOST_COMMENT
        + "".join(f"{line}\n" for line in head)
        + f"<VirtualHost {vhost}>\n" + "".join(f"    {line}\n" for line in body)
        + "</VirtualHost>\n"
    )
    notes: tuple[str, ...] = ()
    if not req.server_name:
        notes = ("without --server-name (ServerName) this site answers only when it is the "
                 f"first <VirtualHost> on {vhost}: a2dissite 000-default, or give "
                 "--server-name",)
    return _Snippet(text, "/etc/apache2/sites-available/{{NAME}}.conf (a2ensite {{NAME}})",
                    serve_args, notes)


# -- lighttpd ---------------------------------------------------------------------------


def _lighttpd(
    req: Request, bind: Bind, mount: str, listen: Listen, statics: list[tuple[str, str]]
) -> _Snippet:
    protocol = req.protocol
    _refuse_unless(protocol in ("fastcgi", "scgi", "uwsgi") and req.app_file is None,
                   "this lighttpd snippet passes requests to a running backend: --protocol "
                   "fastcgi, scgi or uwsgi (a spawned .fcgi: --app-file ... --full)")
    _refuse_unless(not req.location, "--location is for nginx and Apache")
    module = "mod_fastcgi" if protocol == "fastcgi" else "mod_scgi"
    var = "fastcgi.server" if protocol == "fastcgi" else "scgi.server"
    if bind.is_unix:
        where = [f'"socket" => "{bind.path}",']
    else:
        where = [f'"host" => "{bind.host}",', f'"port" => {bind.port},']
    options = [*where, '"check-local" => "disable",']
    if not mount:
        # without it lighttpd sends the first path segment as SCRIPT_NAME
        options.append('"fix-root-scriptname" => "enable",')
    lines = [f'server.modules += ( "{module}" )']
    if statics:
        lines.append('server.modules += ( "mod_alias" )')
        for url, directory in statics:
            lines.append(f'alias.url += ( "{url}" => "{directory}" )')
    if mount:
        condition = f'$HTTP["url"] =~ "^{_regex_path(mount)}(/|$)"'
    elif statics:
        alternatives = "|".join(_regex_path(url) for url, _ in statics)
        condition = f'$HTTP["url"] !~ "^({alternatives})"'
    else:
        condition = '$HTTP["url"] =~ "^/"'
    lines.append(condition + " {")
    if protocol == "uwsgi":
        lines.append('    scgi.protocol = "uwsgi"')
    lines.append(f'    {var} += ( "{mount or "/"}" => ((')
    lines += [f"        {option}" for option in options]
    lines += ["    )) )", "}"]
    text = (
        "# lighttpd module block for {{NAME}}: /etc/lighttpd/conf-available/50-{{NAME}}.conf,\n"
        "# then: lighty-enable-mod {{NAME}} && systemctl reload lighttpd\n"
        "# HTTP_HOST: lighttpd passes the Host header, port included (it answers 400\n"
        "# when an absolute-form request target disagrees with it).\n"
        + "\n".join(lines) + "\n"
    )
    return _Snippet(text, "/etc/lighttpd/conf-available/50-{{NAME}}.conf "
                    "(lighty-enable-mod {{NAME}})")


# -- HAProxy ----------------------------------------------------------------------------


def _haproxy(
    req: Request, bind: Bind, mount: str, listen: Listen, statics: list[tuple[str, str]]
) -> _Snippet:
    _refuse_unless(req.protocol == "fastcgi" and req.app_file is None,
                   "HAProxy speaks FastCGI to a running backend: --protocol fastcgi")
    _refuse_unless(not statics, "HAProxy serves no files: --static is for nginx, Apache, "
                   "lighttpd and Caddy")
    _refuse_unless(not req.location, "--location is for nginx and Apache")
    if mount:
        path_info = f"^({_regex_path(mount)})(/.*)?$"
        route = (f"    use_backend wsgiwire_{{{{NAME}}}} if {{ path {mount} }} || "
                 f"{{ path_beg {mount}/ }}\n"
                 "    # default_backend ...   (what answers outside {{MOUNT}})\n")
    else:
        path_info = "^()(/.*)$"
        route = "    default_backend wsgiwire_{{NAME}}\n"
    server = bind.path if bind.is_unix else bind.host_port
    text = (
        "# HAProxy (2.1+) for {{NAME}}: append to /etc/haproxy/haproxy.cfg, after its\n"
        "# global and defaults sections (mode http), then:\n"
        "#   haproxy -c -f /etc/haproxy/haproxy.cfg && systemctl reload haproxy\n"
        "# HTTP_HOST: HAProxy passes the Host header, port included (it answers 400 when\n"
        "# an absolute-form request target disagrees with it).\n"
        "fcgi-app wsgiwire_{{NAME}}\n"
        "    # required by HAProxy; wsgiwire does not read SCRIPT_FILENAME\n"
        "    docroot {{DOC_ROOT}}\n"
        "    # SCRIPT_NAME the first capture, PATH_INFO the second (decoded)\n"
        f"    path-info {path_info}\n"
        "    # multiplex only if FCGI_GET_VALUES says the backend does (wsgiwire: no, so\n"
        "    # HAProxy keeps one connection per request in flight)\n"
        "    option mpxs-conns\n"
        "    option get-values\n"
        "    option keep-conn\n"
        "\n"
        "frontend wsgiwire_{{NAME}}\n"
        f"    bind {listen.joined(':')}\n"
        + route +
        "\n"
        "backend wsgiwire_{{NAME}}\n"
        "    use-fcgi-app wsgiwire_{{NAME}}\n"
        "    # FastCGI needs CONTENT_LENGTH: HAProxy 2.6 computes it for a chunked upload\n"
        "    # only from a body it holds whole (up to tune.bufsize, 16 KiB by default;\n"
        "    # raise it for bigger chunked uploads, a larger one gets HAProxy's 400)\n"
        "    option http-buffer-request\n"
        f"    server {{{{NAME}}}}1 {server} proto fcgi\n"
    )
    notes: tuple[str, ...] = ()
    if bind.is_unix:
        notes = ("Debian's HAProxy runs chrooted in /var/lib/haproxy: put the socket "
                 "inside it, or give the path as seen from there",)
    return _Snippet(text, "the end of /etc/haproxy/haproxy.cfg", notes=notes)


# -- Caddy ------------------------------------------------------------------------------


def _caddy(
    req: Request, bind: Bind, mount: str, listen: Listen, statics: list[tuple[str, str]]
) -> _Snippet:
    _refuse_unless(req.protocol == "fastcgi" and req.app_file is None,
                   "Caddy's built-in transport to a backend is fastcgi: --protocol fastcgi")
    _refuse_unless(not req.location, "--location is for nginx and Apache")
    upstream = f"unix/{bind.path}" if bind.is_unix else bind.host_port
    if req.server_name and req.server_name != "_":
        site = "{{SERVER_NAME}}" + (f":{listen.port}" if listen.port != 80 else "")
    else:
        site = f"http://:{listen.port}"
    lines = [f"{site} {{"]
    if listen.host:
        lines.append(f"\tbind {listen.host}")
    for url, directory in statics:
        lines += [f"\thandle_path {url}* {{", f"\t\troot * {directory.rstrip('/') or '/'}",
                  "\t\tfile_server", "\t}"]
    if mount:
        lines += [f"\tredir {mount} {mount}/", f"\thandle_path {mount}/* {{",
                  f"\t\treverse_proxy {upstream} {{", "\t\t\ttransport fastcgi {",
                  "\t\t\t\t# handle_path took the mount off PATH_INFO; tell the app",
                  f"\t\t\t\tenv SCRIPT_NAME {mount}", "\t\t\t}", "\t\t}", "\t}"]
    else:
        lines += ["\thandle {", f"\t\treverse_proxy {upstream} {{", "\t\t\ttransport fastcgi",
                  "\t\t}", "\t}"]
    lines.append("}")
    text = (
        "# Caddy (2.6+) site for {{NAME}}: add to /etc/caddy/Caddyfile (or a file it\n"
        "# imports), then: caddy validate --config /etc/caddy/Caddyfile --adapter caddyfile\n"
        "# && systemctl reload caddy. With a domain name as the site address Caddy also\n"
        "# gets a certificate and serves HTTPS (the app then sees https).\n"
        "# HTTP_HOST: Caddy passes the request's host (an absolute-form target's if\n"
        "# given), port included. A chunked upload arrives with CONTENT_LENGTH -1,\n"
        "# which wsgiwire reads as 'to the end of FCGI_STDIN'.\n"
        + "\n".join(lines) + "\n"
    )
    return _Snippet(text, "/etc/caddy/Caddyfile (or a file it imports)")


_SNIPPETS = {
    "nginx": _nginx,
    "apache": _apache,
    "lighttpd": _lighttpd,
    "haproxy": _haproxy,
    "caddy": _caddy,
}


# -- systemd and supervisor -------------------------------------------------------------


def _unit_text(server: str, name: str) -> str:
    root = resources.files("wsgiwire").joinpath("server_configs")
    return root.joinpath(server).joinpath(name).read_text(encoding="utf-8")


def _units(req: Request, bind: Bind, sets: dict[str, str]) -> Printed:
    _refuse_unless(req.protocol in ("fastcgi", "scgi", "uwsgi") and req.app_file is None,
                   f"{req.server} runs `wsgiwire serve`: --protocol fastcgi, scgi or uwsgi")
    _refuse_unless(
        not (req.mount or req.static or req.location or req.listen or req.server_name),
        f"--mount, --static, --location, --listen and --server-name are for web servers, "
        f"not {req.server}",
    )
    import os
    import sys

    script = os.path.join(os.path.dirname(sys.executable), "wsgiwire")
    values = {
        "NAME": _app_name(req.app),
        "APP": req.app,
        "APP_DIR": os.getcwd(),
        "PROTOCOL": req.protocol,
        "WSGIWIRE": script if os.access(script, os.X_OK) else "/usr/local/bin/wsgiwire",
        "USER": "www-data",
        "GROUP": "www-data",
        "SOCKET_USER": "www-data",
        "SOCKET_GROUP": "www-data",
        "SOCKET": bind.path or bind.host_port,
        "BIND": bind.text,
    }
    if req.server == "systemd":
        parts = [("socket", "wsgiwire.socket"), ("service", "wsgiwire.service")]
        templates = {kind: _unit_text("systemd", f) for kind, f in parts}
    else:
        templates = {"conf": _unit_text("supervisor", "wsgiwire.conf")}
    used: set[str] = set()
    for template in templates.values():
        used |= set(_PLACEHOLDER_NAMES.findall(template))
    _check_sets(sets, used, f"the {req.server} files")
    values.update(sets)
    if not _APP_NAME.match(values["NAME"]):
        raise ConfigError(f"NAME must be a letter, then letters, digits or _: {values['NAME']!r}")
    if req.server == "systemd":
        text = "".join(
            f"# ---- /etc/systemd/system/{values['NAME']}.{kind} ----\n"
            + render(template, values, source=f"systemd/wsgiwire.{kind}")
            for kind, template in templates.items()
        )
        notes = (
            f"# paste into: /etc/systemd/system/{values['NAME']}.socket and "
            f"{values['NAME']}.service (the two parts), then systemctl daemon-reload && "
            f"systemctl enable --now {values['NAME']}.socket",
            f"# backend: started by systemd on {bind.text} (socket activation)",
        )
    else:
        text = render(templates["conf"], values, source="supervisor/wsgiwire.conf")
        notes = (
            f"# paste into: /etc/supervisor/conf.d/{values['NAME']}.conf, then "
            "supervisorctl update",
            f"# backend: started by supervisord on {bind.text}",
        )
    return Printed(text, notes)


# -- --full: the standalone tested files ------------------------------------------------


def _full(req: Request, bind: Bind, sets: dict[str, str]) -> Printed:
    if req.server not in FULL_SERVERS:
        raise ConfigError(
            f"no standalone tested file for {req.server}; --full takes "
            f"{', '.join(FULL_SERVERS)}"
        )
    setup = choose(req.server, req.protocol, bind=req.bind, mount=req.mount,
                   app_file=req.app_file)
    values = defaults(req.server, bind=req.bind, mount=req.mount, app_file=req.app_file)
    _check_sets(sets, values, f"--full {req.server} files")
    values.update(sets)
    text = render(template_text(setup.server, setup.template), values,
                  source=f"{setup.server}/{setup.template}.conf")
    if setup.protocol == "cgi":
        backend = f"the CGI script {values['SCRIPT']}: run(app) from wsgiwire.adapters.cgi"
    elif req.app_file is not None:
        backend = (f"{req.app_file}: a script calling WSGIServer(app).run() from "
                   "wsgiwire.adapters.fastcgi; the web server starts it")
    else:
        backend = _backend_command(
            req.app, setup.protocol, bind, [render(a, values) for a in setup.serve_args],
            owner=(values["USER"], values["GROUP"]),
        )
    notes = [f"# tested file: server-configs/{setup.server}/{setup.template}.conf",
             f"# backend: {backend}"]
    if setup.note:
        notes.append(f"# note: {setup.note}")
    return Printed(text, tuple(notes))
