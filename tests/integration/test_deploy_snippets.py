"""What ``wsgiwire config SERVER`` prints, pasted into a Debian-layout server for real.

For each front end the snippet is written where its paste-into line says, unchanged,
inside a main configuration laid out as Debian's packages lay theirs out (paths moved
into a run dir, nothing bound but loopback):

* nginx: ``nginx.conf`` including ``conf.d/*.conf`` and ``sites-enabled/*``, beside
  ``fastcgi_params``/``scgi_params``/``uwsgi_params``: those installed on this machine,
  Debian's current ones (deb12u12: ``HTTP_HOST $host``) and the ones before that
  update, from ``data/debian-nginx/``;
* Apache: ``apache2.conf`` with ``mods-enabled/*.load``, ``ports.conf``,
  ``sites-enabled/*.conf`` (``--location`` output inside a ``<VirtualHost>``);
* lighttpd: Debian's own ``lighttpd.conf`` (paths moved) including
  ``conf-enabled/*.conf``;
* HAProxy: Debian's own ``haproxy.cfg`` (paths, chroot and daemon mode taken out) with
  the snippet appended; Caddy: a ``Caddyfile`` importing ``sites/*``.

Behind each: Flask's ``url_for(_external=True)`` and Django's
``build_absolute_uri()`` give the scheme, host and port the client used (on a
non-default port); a Django form POST with ``Origin`` passes CSRF; an absolute-form
request never puts its Host header in HTTP_HOST; the path under the mount and a
``--static`` directory are served. With nginx also: the user's own ``fastcgi_param
HTTP_HOST`` after Debian's wins, and on port 80 the host comes without ``:80``.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from . import _deploy_support as ds
from .servers import (
    KEEP_RUN_DIRS_ENV,
    REPO_ROOT,
    SERVER_CLASSES,
    HarnessError,
    ManagedProcess,
    Stage,
    WsgiwireBackend,
    free_port,
    server_user,
    unavailable,
    wait_for_port,
    world_readable_tempdir,
)

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parent / "data" / "debian-nginx"
PARAMS = {
    "installed": Path("/etc/nginx"),
    "deb12u12": DATA / "deb12u12",
    "before-deb12u12": DATA / "before-deb12u12",
}
STATIC_TEXT = b"static file served by the front end\n"


# ---------------------------------------------------------------------------------------
# `wsgiwire config`, as a user runs it


@dataclass(frozen=True)
class Printed:
    text: str
    paste_into: str
    backend: str


def wsgiwire_config(*args: str) -> Printed:
    done = subprocess.run(
        [sys.executable, "-m", "wsgiwire", "config", *args],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=60, check=False,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO_ROOT)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    paste = re.search(r"^# paste into: (.*)$", done.stderr, re.M)
    backend = re.search(r"^# backend: (.*)$", done.stderr, re.M)
    assert paste and backend, done.stderr
    return Printed(done.stdout, paste.group(1), backend.group(1))


# ---------------------------------------------------------------------------------------
# Backends, one per command line


@dataclass
class Backends:
    stage: Stage
    root: Path
    running: dict[tuple[str, ...], WsgiwireBackend] = field(default_factory=dict)

    def start(self, command: str) -> None:
        """Run the ``# backend:`` line (``wsgiwire serve APP --protocol P --bind B ...``)."""
        words = command.split()
        assert words[:2] == ["wsgiwire", "serve"], command
        key = tuple(words)
        if key in self.running:
            return
        app, rest = words[2], words[3:]
        bind = rest[rest.index("--bind") + 1]
        options = [w for i, w in enumerate(rest) if w != "--bind" and rest[i - 1] != "--bind"]
        if "--socket-owner" in options:  # www-data in the printed line: the harness user
            user, group = server_user()
            options[options.index("--socket-owner") + 1] = f"{user}:{group}"
        backend = WsgiwireBackend(
            self.stage, app, [bind], log_path=self.root / f"backend-{len(self.running)}.log",
            options=[*options, "--workers", "1", "--threads", "4"],
        )
        backend.start()
        self.running[key] = backend

    def logs(self) -> str:
        return "\n".join(b.output()[-2000:] for b in self.running.values())

    def stop(self) -> None:
        for backend in self.running.values():
            backend.stop()


@pytest.fixture(scope="module")
def work() -> Iterator[Path]:
    path = world_readable_tempdir("wsgiwire-snippets-")
    (path / "static").mkdir(mode=0o755)
    (path / "static" / "hello.txt").write_bytes(STATIC_TEXT)
    (path / "static" / "hello.txt").chmod(0o644)
    yield path
    if os.environ.get(KEEP_RUN_DIRS_ENV) != "1":
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def backends(stage: Stage, work: Path) -> Iterator[Backends]:
    pool = Backends(stage, work)
    try:
        yield pool
    finally:
        pool.stop()


# ---------------------------------------------------------------------------------------
# Debian layouts


@contextlib.contextmanager
def running(argv: list[str], root: Path, port: int, host: str = "127.0.0.1") -> Iterator[None]:
    process = ManagedProcess(argv, log_path=root / "server-output.log", cwd=root)
    process.start()
    try:
        try:
            wait_for_port(port, host=host, process=process)
        except (HarnessError, TimeoutError) as exc:
            logs = "".join(p.read_text(errors="replace") for p in root.glob("*.log"))
            raise HarnessError(f"{argv[0]} did not start: {exc}\n{logs}") from None
        yield
    finally:
        process.stop()


def layout_root(work: Path, name: str) -> Path:
    root = work / name
    root.mkdir(mode=0o755)
    (root / "tmp").mkdir(mode=0o1777)
    (root / "tmp").chmod(0o1777)
    log = root / "error.log"
    log.touch(mode=0o666)
    log.chmod(0o666)  # written after privileges drop (lighttpd, Caddy as root: either)
    return root


def nginx_site(work: Path, name: str, snippet: Printed, params: Path, port: int, *,
               host: str = "127.0.0.1") -> contextlib.AbstractContextManager[None]:
    binary = SERVER_CLASSES["nginx"].require()
    root = layout_root(work, name)
    etc = root / "etc" / "nginx"
    for sub in ("conf.d", "sites-available", "sites-enabled"):
        (etc / sub).mkdir(parents=True)
    for params_file in ("fastcgi_params", "scgi_params", "uwsgi_params"):
        shutil.copyfile(params / params_file, etc / params_file)
    shutil.copyfile("/etc/nginx/mime.types", etc / "mime.types")
    user, group = server_user()
    (etc / "nginx.conf").write_text(f"""\
user {user} {group};
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 256; }}
http {{
    sendfile on;
    include mime.types;
    default_type application/octet-stream;
    access_log {root}/access.log;
    client_body_temp_path {root}/tmp/body;
    fastcgi_temp_path {root}/tmp/fastcgi;
    scgi_temp_path {root}/tmp/scgi;
    uwsgi_temp_path {root}/tmp/uwsgi;
    proxy_temp_path {root}/tmp/proxy;
    include {etc}/conf.d/*.conf;
    include {etc}/sites-enabled/*;
}}
""")
    if snippet.paste_into.startswith("/etc/nginx/sites-available/"):
        site = etc / "sites-available" / snippet.paste_into.split()[0].rpartition("/")[2]
        site.write_text(snippet.text)
        (etc / "sites-enabled" / site.name).symlink_to(f"../sites-available/{site.name}")
    else:  # --location: the http part in conf.d/, the locations in a server {}
        http_part, marker, server_part = snippet.text.partition(
            "# ---- inside your server {} ----\n")
        assert marker, snippet.text
        (etc / "conf.d" / "wsgiwire-myapp.conf").write_text(http_part)
        (etc / "sites-enabled" / "default").write_text(
            f"server {{\n    listen {host}:{port};\n    server_name _;\n"
            + server_part + "}\n")
    argv = [binary, "-p", str(root), "-c", str(etc / "nginx.conf"), "-e",
            str(root / "error.log"), "-g", "daemon off;"]
    return running(argv, root, port, host)


APACHE_MODULES = ("mpm_event", "authz_core", "mime", "alias", "setenvif", "proxy",
                  "proxy_fcgi", "proxy_scgi", "proxy_uwsgi")


def apache_site(work: Path, name: str, snippet: Printed, port: int
                ) -> contextlib.AbstractContextManager[None]:
    server_cls = SERVER_CLASSES["apache"]
    binary = server_cls.require()
    modules = Path(server_cls.modules_dir())
    root = layout_root(work, name)
    etc = root / "etc" / "apache2"
    for sub in ("mods-enabled", "conf-enabled", "sites-available", "sites-enabled", "run"):
        (etc / sub).mkdir(parents=True)
    for module in APACHE_MODULES:
        (etc / "mods-enabled" / f"{module}.load").write_text(
            f"LoadModule {module}_module {modules}/mod_{module}.so\n")
    user, group = server_user()
    # Debian's ports.conf says "Listen 80"; a test may not bind it, so the sites do.
    (etc / "ports.conf").write_text("# Listen 80 (Debian's), left to the sites here\n")
    (etc / "apache2.conf").write_text(f"""\
DefaultRuntimeDir {etc}/run
PidFile {root}/apache2.pid
Mutex file:{etc}/run default
User {user}
Group {group}
ErrorLog {root}/error.log
LogLevel warn
TypesConfig /etc/mime.types
IncludeOptional mods-enabled/*.load
Include ports.conf
<Directory />
    AllowOverride None
    Require all denied
</Directory>
IncludeOptional conf-enabled/*.conf
IncludeOptional sites-enabled/*.conf
""")
    if snippet.paste_into.startswith("/etc/apache2/sites-available/"):
        site_name = snippet.paste_into.split()[0].rpartition("/")[2]
        (etc / "sites-available" / site_name).write_text(snippet.text)
    else:  # --location: inside a <VirtualHost>
        site_name = "000-default.conf"
        (etc / "sites-available" / site_name).write_text(
            f"Listen 127.0.0.1:{port}\n<VirtualHost 127.0.0.1:{port}>\n"
            + snippet.text + "</VirtualHost>\n")
    (etc / "sites-enabled" / site_name).symlink_to(f"../sites-available/{site_name}")
    argv = [binary, "-d", str(etc), "-f", str(etc / "apache2.conf"), "-DFOREGROUND"]
    return running(argv, root, port)


def lighttpd_site(work: Path, name: str, snippet: Printed, port: int
                  ) -> contextlib.AbstractContextManager[None]:
    server_cls = SERVER_CLASSES["lighttpd"]
    binary = server_cls.require()
    root = layout_root(work, name)
    etc = root / "etc" / "lighttpd"
    for sub in ("conf-available", "conf-enabled"):
        (etc / sub).mkdir(parents=True)
    (root / "htdocs").mkdir(mode=0o755)
    user, group = server_user()
    main = Path("/etc/lighttpd/lighttpd.conf").read_text()
    replaced = {
        "server.document-root": f'"{root}/htdocs"',
        "server.upload-dirs": f'( "{root}/tmp" )',
        "server.errorlog": f'"{root}/error.log"',
        "server.pid-file": f'"{root}/lighttpd.pid"',
        "server.username": f'"{user}"',
        "server.groupname": f'"{group}"',
        "server.port": f"{port}\nserver.bind = \"127.0.0.1\"",
    }
    for key, value in replaced.items():
        main, count = re.subn(rf"^{re.escape(key)}\s*=.*$", f"{key} = {value}", main,
                              flags=re.M)
        assert count == 1, key
    main = re.sub(r"^include_shell \"/usr/share/lighttpd/use-ipv6.pl.*$",
                  "# (use-ipv6.pl left out: loopback only)", main, flags=re.M)
    main = main.replace('include "/etc/lighttpd/conf-enabled/*.conf"',
                        f'include "{etc}/conf-enabled/*.conf"')
    (etc / "lighttpd.conf").write_text(main)
    file_name = snippet.paste_into.split()[0].rpartition("/")[2]
    (etc / "conf-available" / file_name).write_text(snippet.text)
    (etc / "conf-enabled" / file_name).symlink_to(f"../conf-available/{file_name}")
    argv = [binary, "-D", "-f", str(etc / "lighttpd.conf"), "-m", server_cls.modules_dir()]
    return running(argv, root, port)


def haproxy_site(work: Path, name: str, snippet: Printed, port: int
                 ) -> contextlib.AbstractContextManager[None]:
    binary = SERVER_CLASSES["haproxy"].require()
    root = layout_root(work, name)
    user, group = server_user()
    main = Path("/etc/haproxy/haproxy.cfg").read_text()
    main = re.sub(r"^\s*log /dev/log.*\n", "", main, flags=re.M)
    main = re.sub(r"^\s*(chroot|stats socket|daemon)\b.*\n", "", main, flags=re.M)
    main = re.sub(r"^(\s*)user haproxy$", rf"\1user {user}", main, flags=re.M)
    main = re.sub(r"^(\s*)group haproxy$", rf"\1group {group}", main, flags=re.M)
    main = main.replace("global\n", "global\n\tlog stderr format short local0 warning\n", 1)
    config = root / "haproxy.cfg"
    config.write_text(main.rstrip("\n") + "\n\n" + snippet.text)
    return running([binary, "-f", str(config), "-db"], root, port)


def caddy_site(work: Path, name: str, snippet: Printed, port: int
               ) -> contextlib.AbstractContextManager[None]:
    binary = SERVER_CLASSES["caddy"].require()
    root = layout_root(work, name)
    sites = root / "etc" / "caddy" / "sites"
    sites.mkdir(parents=True)
    (sites / "myapp.caddy").write_text(snippet.text)
    config = root / "etc" / "caddy" / "Caddyfile"
    config.write_text(
        "{\n\tadmin off\n\tstorage file_system " + f"{root}/data\n"
        + f"\tlog {{\n\t\toutput file {root}/error.log\n\t\tlevel WARN\n\t}}\n}}\n"
        + f"import {sites}/*.caddy\n")
    argv = ["/usr/bin/env", f"HOME={root}", f"XDG_DATA_HOME={root}/data",
            f"XDG_CONFIG_HOME={root}/config", binary, "run", "--config", str(config),
            "--adapter", "caddyfile"]
    return running(argv, root, port)


# ---------------------------------------------------------------------------------------
# The cases


@dataclass(frozen=True)
class Case:
    id: str
    server: str
    args: tuple[str, ...]
    mount: str = ""
    params: str = "installed"  # nginx: which *_params files
    static: bool = False


def static_args(work: Path) -> tuple[str, ...]:
    return ("--static", f"/static/={work}/static")


CASES = [
    Case("nginx-fastcgi-root-unix", "nginx", ("--bind", "unix:{sock}"), static=True),
    Case("nginx-fastcgi-prefix-before-deb12u12", "nginx", ("--bind", "{tcp}"), "/app",
         params="before-deb12u12"),
    Case("nginx-scgi-prefix-deb12u12", "nginx", ("--protocol", "scgi", "--bind", "{tcp}"),
         "/app", params="deb12u12"),
    Case("nginx-uwsgi-prefix", "nginx", ("--protocol", "uwsgi", "--bind", "{tcp}"), "/app"),
    Case("nginx-location-fastcgi-prefix", "nginx", ("--location", "--bind", "{tcp}"), "/app"),
    Case("apache-fastcgi-root", "apache", ("--bind", "{tcp}"), static=True),
    Case("apache-location-fastcgi-prefix-unix", "apache",
         ("--location", "--bind", "unix:{sock}"), "/app"),
    Case("apache-uwsgi-prefix", "apache", ("--protocol", "uwsgi", "--bind", "{tcp}"), "/app"),
    Case("apache-scgi-root", "apache", ("--protocol", "scgi", "--bind", "{tcp}")),
    Case("lighttpd-fastcgi-root", "lighttpd", ("--bind", "{tcp}"), static=True),
    Case("lighttpd-uwsgi-prefix-unix", "lighttpd",
         ("--protocol", "uwsgi", "--bind", "unix:{sock}"), "/app"),
    Case("haproxy-root", "haproxy", ("--bind", "{tcp}")),
    Case("haproxy-prefix-unix", "haproxy", ("--bind", "unix:{sock}"), "/app"),
    Case("caddy-root-unix", "caddy", ("--bind", "unix:{sock}"), static=True),
    Case("caddy-prefix", "caddy", ("--bind", "{tcp}"), "/app"),
]


@dataclass
class Site:
    case: Case
    port: int
    snippet: Printed
    checks: ds.Checks


def boot(case: Case, work: Path, name: str, snippet: Printed, port: int, *,
         host: str = "127.0.0.1") -> contextlib.AbstractContextManager[None]:
    if case.server == "nginx":
        return nginx_site(work, name, snippet, PARAMS[case.params], port, host=host)
    starters = {"apache": apache_site, "lighttpd": lighttpd_site, "haproxy": haproxy_site,
                "caddy": caddy_site}
    return starters[case.server](work, name, snippet, port)


_addresses: dict[tuple[str, str], str] = {}


def backend_address(protocol: str, kind: str, work: Path, extra: str) -> str:
    """One address per backend command line (protocol, transport, path options)."""
    key = (protocol, kind + extra)
    if key not in _addresses:
        _addresses[key] = (f"{work}/b{len(_addresses)}.sock" if kind == "unix"
                           else f"127.0.0.1:{free_port()}")
    return _addresses[key]


@pytest.fixture(scope="module", params=CASES, ids=[c.id for c in CASES])
def site(request: pytest.FixtureRequest, work: Path, backends: Backends) -> Iterator[Site]:
    case: Case = request.param
    SERVER_CLASSES[case.server].require()
    if case.params == "installed" and case.server == "nginx":
        for name in ("fastcgi_params", "scgi_params", "uwsgi_params"):
            if not (PARAMS["installed"] / name).exists():
                pytest.fail(f"nginx is installed without /etc/nginx/{name}")
    port = free_port()
    protocol = case.args[case.args.index("--protocol") + 1] if "--protocol" in case.args \
        else "fastcgi"
    needs_mount = protocol == "scgi" and (case.mount or case.server == "apache")
    extra = f"--mount {case.mount or '/'}" if needs_mount else ""
    args = [a.format(sock=backend_address(protocol, "unix", work, extra),
                     tcp=backend_address(protocol, "tcp", work, extra)) for a in case.args]
    if case.server != "lighttpd":  # lighttpd.conf's server.port is the listener
        args += ["--listen", f"127.0.0.1:{port}"]
    args += ["--app", ds.APP]
    if case.mount:
        args += ["--mount", case.mount]
    if case.static:
        args += static_args(work)
    snippet = wsgiwire_config(case.server, *args)
    backends.start(snippet.backend)
    with boot(case, work, case.id, snippet, port):
        root = work / case.id

        def logs() -> str:
            text = "".join(f"--- {p.name} ---\n{p.read_text(errors='replace')[-3000:]}"
                           for p in root.glob("*.log"))
            return f"[{case.id}]\n{snippet.text}\n{text}\n--- backends ---\n{backends.logs()}"

        yield Site(case, port, snippet, ds.Checks(port, case.mount, logs))


def test_path_and_query(site: Site) -> None:
    site.checks.path_and_query()


def test_flask_and_django_see_the_port(site: Site) -> None:
    site.checks.frameworks_see_the_port()
    site.checks.frameworks_see_the_port("example.test")


def test_django_form_post_with_origin_passes_csrf(site: Site) -> None:
    site.checks.django_csrf_with_origin()


def test_absolute_form_target(site: Site) -> None:
    site.checks.absolute_form_never_uses_the_host_header()


def test_static_files(site: Site) -> None:
    """With --static the front end serves the directory; without, the file is not
    exposed (the URL goes to the app, or nowhere)."""
    reply = ds.http("GET", "/static/hello.txt", port=site.port)
    if site.case.static:
        assert (reply.status, reply.body) == (200, STATIC_TEXT), site.checks.logs()
    else:
        assert reply.body != STATIC_TEXT, reply


def test_cases_cover_every_server_and_option() -> None:
    assert {c.server for c in CASES} == {"nginx", "apache", "lighttpd", "haproxy", "caddy"}
    assert {c.server for c in CASES if c.static} == {"nginx", "apache", "lighttpd", "caddy"}
    assert {c.params for c in CASES if c.server == "nginx"} == set(PARAMS)
    assert {c.server for c in CASES if "--location" in c.args} == {"nginx", "apache"}


# ---------------------------------------------------------------------------------------
# nginx: the user's own HTTP_HOST line, and the default port


def test_nginx_users_own_http_host_after_debians_wins(work: Path, backends: Backends) -> None:
    """Debian's current fastcgi_params sets HTTP_HOST $host; a user's line after the
    include sets it again: nginx sends both, and the later one is what the app sees."""
    tcp = backend_address("fastcgi", "tcp", work, "")
    port = free_port()
    snippet = wsgiwire_config("nginx", "--bind", tcp, "--app", ds.APP, "--listen",
                              f"127.0.0.1:{port}")
    backends.start(snippet.backend)
    own = snippet.text.replace(
        "fastcgi_param HTTP_HOST $host$wsgiwire_deploy_app_port;",
        'fastcgi_param HTTP_HOST "user.example:1234";')
    assert own != snippet.text
    case = Case("own", "nginx", (), params="deb12u12")
    with boot(case, work, "nginx-own-host", Printed(own, snippet.paste_into, ""), port):
        got = ds.report(ds.http("GET", "/h", port=port), backends.logs())
        assert got["HTTP_HOST"] == "user.example:1234", got


@pytest.mark.parametrize("params", ["installed", "before-deb12u12"])
def test_nginx_on_the_default_port_gives_the_host_alone(
    work: Path, backends: Backends, params: str
) -> None:
    """On port 80 (a loopback address of its own, so no other test's port 80 is taken)
    HTTP_HOST is ``example.test``, without ``:80``, and so are the frameworks' URLs."""
    if os.geteuid() != 0:
        unavailable("binding port 80 needs root (CI runs as root)")
    host = f"127.{random.randrange(1, 255)}.{random.randrange(1, 255)}.{random.randrange(2, 255)}"
    tcp = backend_address("fastcgi", "tcp", work, "")
    snippet = wsgiwire_config("nginx", "--bind", tcp, "--app", ds.APP, "--listen", f"{host}:80")
    assert f"listen {host}:80;" in snippet.text
    backends.start(snippet.backend)
    case = Case("port80", "nginx", (), params=params)
    with boot(case, work, f"nginx-port80-{params}", snippet, 80, host=host):
        checks = ds.Checks(80, "", backends.logs)
        for authority in ("example.test", "127.0.0.1"):
            headers = [("Host", authority)]
            got = ds.report(ds.http("GET", "/h", port=80, host=host, headers=headers),
                            backends.logs())
            assert got["HTTP_HOST"] == authority, got
            got = ds.report(ds.http("GET", "/flask/url", port=80, host=host,
                                    headers=headers), backends.logs())
            assert got["external"] == f"http://{authority}/flask/url", got
        assert checks.port == 80
