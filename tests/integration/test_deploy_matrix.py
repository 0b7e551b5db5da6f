"""The deployment matrix: every server config that puts wsgiwire behind nginx, Apache
httpd or lighttpd, booted for real with a Flask app behind it.

For each file under ``server-configs/{nginx,apache,lighttpd}/`` (but the ones in
:data:`SKIPPED`, each with its reason; :func:`test_every_config_file_is_in_the_matrix`
keeps a new file from going untested silently):

* the config comes from ``wsgiwire config SERVER --protocol P --bind ADDR [--mount M]
  [--app-file PATH]`` when that command can print the file (the README's path), else the
  file is rendered directly (:data:`Case.via_config` says which; a test checks the split
  agrees with ``wsgiwire._deploy.choose``);
* the backend is the command ``wsgiwire config`` printed on its ``# backend:`` line (for
  a rendered file: the ``wsgiwire serve`` line the file documents), plus the path fix
  the README's "Path fixes" table prescribes for that setup when the command lacks it;
  spawned ``.fcgi`` scripts apply the fix as middleware inside the script; backends with
  the same command line are shared (:class:`~._matrix_support.BackendPool`);
* the app is ``apps/matrix_app.py``, a real Flask app. Under CGI, mod_fcgid and
  lighttpd ``bin-path`` the server runs ``/usr/bin/python3``, which has no Flask, so the
  stage holds a copy of Flask and its pure-Python dependencies: the URLs checked are
  those real Flask builds, not an imitation's.

Every setup answers ``MOUNT/``, ``MOUNT/x/y?q=1``, ``MOUNT/a%20b/%E4%B8%AD`` and a POST
(body checked by sha256) with a 200 whose ``url_for('page', name='z')`` is the public
URL ``MOUNT/page/z`` (no ``app.fcgi``, the right prefix) and whose PATH_INFO is the
decoded path under the mount; following that URL reaches the ``page`` route.

Then the README's Deployment guide, run as written: the ``app.fcgi`` + ``.htaccess`` of
user 1 under mod_fcgid and the ``.cgi`` of user 3 under mod_cgi, with only the
``sys.path`` line and the ``from myapp import app`` line replaced.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from wsgiwire import _deploy as deploy

from . import _matrix_support as mx
from .servers import (
    APPS_DIR,
    CONFIG_ROOT,
    KEEP_RUN_DIRS_ENV,
    REPO_ROOT,
    SERVER_CLASSES,
    HarnessError,
    Response,
    RunningServer,
    Stage,
    WsgiwireBackend,
    render,
    render_file,
    require_path,
    world_readable_tempdir,
)

pytestmark = pytest.mark.integration

SERVERS = ("nginx", "apache", "lighttpd")
MOUNT = "/app"
ENCODED = "/a%20b/%E4%B8%AD"
DECODED = "/a b/中"
POST_BODY = random.Random(0x3A7).randbytes(3000)
# The PATH every spawned script sees in the README check: a newcomer's shell, no venv.
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"


# ---------------------------------------------------------------------------------------
# The matrix


@dataclass(frozen=True)
class Case:
    """One config file, and how the matrix deploys behind it.

    ``kind``: ``serve`` (a ``wsgiwire serve`` backend on ``transport``), ``spawn`` (an
    ``app.fcgi`` the server starts itself), ``cgi`` (an ``app.cgi``). ``serve_fix``:
    the ``wsgiwire serve`` flags the README's Path fixes table prescribes;
    ``script_fix``: the ``wsgiwire.middleware`` class a spawned script wraps the app
    in. ``via_config``: obtained with ``wsgiwire config`` (else rendered directly).
    """

    file: str  # "<server>/<name>" under server-configs/, without .conf
    protocol: str
    mount: str
    kind: str = "serve"
    transport: str = "tcp"
    via_config: bool = True
    serve_fix: tuple[str, ...] = ()
    script_fix: str = ""

    @property
    def server(self) -> str:
        return self.file.partition("/")[0]

    @property
    def name(self) -> str:
        return self.file.partition("/")[2]

    @property
    def fix(self) -> str:
        if self.script_fix:
            return f"{self.script_fix} in the script"
        return " ".join(self.serve_fix) or "none"


ROOT_MOUNT = ("--mount", "/")
APP_MOUNT = ("--mount", MOUNT)

CASES = [
    # nginx
    Case("nginx/fastcgi-keepconn", "fastcgi", "", transport="unix"),
    Case("nginx/fastcgi-prefix", "fastcgi", MOUNT),
    Case("nginx/fastcgi-root", "fastcgi", "", via_config=False),
    Case("nginx/fastcgi-nobuffer", "fastcgi", "", via_config=False),
    Case("nginx/scgi-root", "scgi", ""),
    Case("nginx/scgi-prefix", "scgi", MOUNT, serve_fix=APP_MOUNT),
    Case("nginx/scgi-prefix-params", "scgi", MOUNT, via_config=False),
    Case("nginx/uwsgi-root", "uwsgi", ""),
    Case("nginx/uwsgi-prefix30", "uwsgi", MOUNT),
    # Apache httpd
    Case("apache/fastcgi-root-pathinfo", "fastcgi", ""),
    Case("apache/fastcgi-prefix-pathinfo", "fastcgi", MOUNT, transport="unix"),
    Case("apache/fastcgi-prefix", "fastcgi", MOUNT, serve_fix=APP_MOUNT),
    Case("apache/fastcgi-root", "fastcgi", "", via_config=False, serve_fix=ROOT_MOUNT),
    Case("apache/fcgid-htaccess", "fastcgi", "", kind="spawn", script_fix="ScriptNameStripper"),
    Case("apache/scgi-root", "scgi", "", serve_fix=ROOT_MOUNT),
    Case("apache/scgi-prefix", "scgi", MOUNT, serve_fix=APP_MOUNT),
    Case("apache/uwsgi-root", "uwsgi", ""),
    Case("apache/uwsgi-prefix", "uwsgi", MOUNT),
    Case("apache/cgi-root", "cgi", "", kind="cgi"),
    Case("apache/cgi-scriptalias", "cgi", MOUNT, kind="cgi"),
    Case("apache/cgid-scriptalias", "cgi", MOUNT, kind="cgi", via_config=False),
    # lighttpd
    Case("lighttpd/fastcgi-prefix", "fastcgi", MOUNT),
    Case("lighttpd/fastcgi-unix", "fastcgi", MOUNT, transport="unix"),
    # `wsgiwire config lighttpd --app-file PATH` with no --mount: the app at the root,
    # and no fix-root-scriptname in this file.
    Case("lighttpd/fastcgi-spawn", "fastcgi", "", kind="spawn", script_fix="LighttpdCGIRootFix"),
    Case("lighttpd/scgi-root", "scgi", ""),
    Case("lighttpd/scgi-prefix", "scgi", MOUNT),
    Case("lighttpd/uwsgi-root", "uwsgi", ""),
    Case("lighttpd/uwsgi-prefix", "uwsgi", MOUNT),
    Case("lighttpd/cgi-root", "cgi", "", kind="cgi"),
    Case("lighttpd/cgi", "cgi", MOUNT, kind="cgi"),
]

#: Files under server-configs/{nginx,apache,lighttpd}/ the matrix does not boot, and why.
SKIPPED = {
    "nginx/static.conf": "static files only, no wsgiwire behind it (the nginx skeleton)",
    "apache/static.conf": "static files only, no wsgiwire behind it (the Apache skeleton)",
    "lighttpd/static.conf": "static files only, no wsgiwire behind it (the lighttpd skeleton)",
    "apache/fastcgi-authorizer.conf": (
        "a FastCGI AUTHORIZER guarding a path (mod_authnz_fcgi), not a way to deploy an "
        "app; `wsgiwire config` never prints it; booted by test_fastcgi_apache.py"
    ),
}
#: Files that are not server configs but part of a tested case.
COMPANIONS = {"apache/fcgid-htaccess.htaccess": "apache/fcgid-htaccess"}


def test_every_config_file_is_in_the_matrix() -> None:
    on_disk = {
        f"{server}/{path.name}" for server in SERVERS for path in (CONFIG_ROOT / server).iterdir()
    }
    tested = {f"{case.file}.conf" for case in CASES}
    assert len(tested) == len(CASES), "a file is in the matrix twice"
    assert not tested & set(SKIPPED), "a file is both tested and skipped"
    assert all(owner in {case.file for case in CASES} for owner in COMPANIONS.values())
    untested = on_disk - tested - set(SKIPPED) - set(COMPANIONS)
    assert not untested, f"add these to CASES or SKIPPED (with a reason): {sorted(untested)}"
    assert not (tested | set(SKIPPED) | set(COMPANIONS)) - on_disk, "stale entries"


def test_matrix_uses_wsgiwire_config_exactly_where_it_can() -> None:
    """``via_config`` is True exactly for the files ``choose()`` hands out."""
    printable = set()
    for server in SERVERS:
        for protocol in ("fastcgi", "scgi", "uwsgi", "cgi"):
            for mount in ("", MOUNT):
                for bind in ("127.0.0.1:9000", "unix:/run/app.sock"):
                    try:
                        setup = deploy.choose(server, protocol, bind=bind, mount=mount)
                    except deploy.ConfigError:
                        continue
                    printable.add(f"{setup.server}/{setup.template}")
        try:
            setup = deploy.choose(server, "fastcgi", app_file="/srv/app.fcgi")
        except deploy.ConfigError:
            continue
        printable.add(f"{setup.server}/{setup.template}")
    assert {case.file for case in CASES if case.via_config} == printable


# ---------------------------------------------------------------------------------------
# Booting one case


@dataclass
class Site:
    case: Case
    server: RunningServer
    config: mx.ConfigOutput | None
    backend_command: mx.ServeCommand | None
    backend_log: str

    def logs(self) -> str:
        text = f"[{self.case.file}; path fix: {self.case.fix}]\n{self.server.error_log_text()}"
        if self.backend_log:
            text += f"\n--- backend ---\n{Path(self.backend_log).read_text(errors='replace')}"
        return text[-6000:]


@pytest.fixture(scope="module")
def matrix_stage() -> Iterator[Stage]:
    with mx.matrix_stage() as stage:
        yield stage


@pytest.fixture(scope="module")
def pool(matrix_stage: Stage) -> Iterator[mx.BackendPool]:
    backends = mx.BackendPool(matrix_stage)
    try:
        yield backends
    finally:
        backends.stop()


def require_modules(case: Case) -> None:
    """Skip (fail in CI) when the server or an Apache module the file loads is missing.

    (lighttpd builds mod_fastcgi, mod_scgi and mod_alias in: booting is the check.)
    """
    server_cls = SERVER_CLASSES[case.server]
    server_cls.require()
    text = (CONFIG_ROOT / f"{case.file}.conf").read_text()
    for module in re.findall(r"^LoadModule \w+ \{\{MODULES_DIR\}\}/(\S+)$", text, re.M):
        require_path(Path(server_cls.modules_dir()) / module, f"{case.server} {module}")


def config_args(case: Case, *extra: str) -> list[str]:
    args = ["--protocol", case.protocol, *extra]
    return [*args, "--mount", case.mount] if case.mount else args


def backend_values(case: Case, bind: str) -> dict[str, str]:
    """What a user puts in for BACKEND (and friends) when copying the file by hand."""
    if bind.startswith("unix:"):
        path = bind[5:]
        backend = bind if case.server == "nginx" else path
        return {"BACKEND": backend, "BACKEND_HOST": path, "BACKEND_PORT": "0"}
    host, _, port = bind.rpartition(":")
    return {"BACKEND": bind, "BACKEND_HOST": host, "BACKEND_PORT": port}


def contains(options: tuple[str, ...], flags: tuple[str, ...]) -> bool:
    n = len(flags)
    return not flags or any(options[i : i + n] == flags for i in range(len(options) - n + 1))


BIND_ATTEMPTS = 3


def serve_backend(
    case: Case, pool: mx.BackendPool
) -> tuple[mx.ConfigOutput | None, mx.ServeCommand, dict[str, str], WsgiwireBackend]:
    """The config (if printed), the backend command, the values to render the file
    with (if not printed) and the running backend, for a ``serve`` case.

    A TCP port that another process took between choosing and binding it gets a new
    address (and so a new ``wsgiwire config`` run), up to :data:`BIND_ATTEMPTS` times.
    """
    for attempt in range(1, BIND_ATTEMPTS + 1):
        bind = pool.address(case.protocol, case.transport, case.serve_fix)
        config: mx.ConfigOutput | None = None
        values: dict[str, str] = {}
        extra: tuple[str, ...] = ()
        if case.via_config:
            config = mx.wsgiwire_config(
                case.server, *config_args(case, "--bind", bind, "--app", mx.APP)
            )
            command = config.serve_command()
            # The printed command is complete: the app, the bind, the protocol and the
            # path fix this setup needs are all on it.
            assert (command.app, command.binds) == (mx.APP, (bind,)), config.backend
            assert command.option("--protocol") == case.protocol, config.backend
            assert contains(command.options, case.serve_fix), (
                f"`wsgiwire config` printed {config.backend!r}, without the path fix "
                f"{' '.join(case.serve_fix)} the README prescribes for {case.file}"
            )
        else:
            values = {**backend_values(case, bind), "MOUNT": case.mount}
            text = (CONFIG_ROOT / f"{case.file}.conf").read_text()
            documented = mx.ServeCommand.documented_in(text)
            options = tuple(render(o, values) for o in documented.options)
            if documented.option("--protocol") is None:  # serve's default: fastcgi
                options = ("--protocol", "fastcgi", *options)
            command = mx.ServeCommand(mx.APP, (bind,), options)
            if not contains(options, case.serve_fix):
                extra = case.serve_fix  # the file's own command lacks the README's fix
        try:
            return config, command, values, pool.start(command, extra)
        except HarnessError as exc:
            if "Address already in use" not in str(exc) or attempt == BIND_ATTEMPTS:
                raise
            pool.forget(bind)
    raise AssertionError("unreachable")


@pytest.fixture(scope="module", params=CASES, ids=[case.file for case in CASES])
def site(
    request: pytest.FixtureRequest, matrix_stage: Stage, pool: mx.BackendPool
) -> Iterator[Site]:
    case: Case = request.param
    require_modules(case)
    work = world_readable_tempdir("wsgiwire-matrix-case-")
    try:
        config: mx.ConfigOutput | None = None
        command: mx.ServeCommand | None = None
        backend_log = ""
        values: dict[str, str] = {}
        doc_root: Path | None = None
        if case.kind == "serve":
            config, command, values, backend = serve_backend(case, pool)
            backend_log = str(backend.log_path)
        elif case.kind == "spawn":
            if case.server == "apache":
                # Shared hosting: app.fcgi and the .htaccess in the document root.
                doc_root = work / "htdocs"
                doc_root.mkdir(mode=0o755)
                script = render_file(
                    APPS_DIR / "matrix_app.fcgi.in",
                    doc_root / "app.fcgi",
                    {
                        "PYTHON": matrix_stage.python,
                        "STAGE_DIR": str(matrix_stage.root),
                        "PATH_FIX": case.script_fix,
                    },
                    mode=0o755,
                )
                shutil.copyfile(
                    CONFIG_ROOT / "apache" / "fcgid-htaccess.htaccess", doc_root / ".htaccess"
                )
                (doc_root / ".htaccess").chmod(0o644)
            else:
                script = matrix_stage.script(
                    "matrix_app.fcgi.in", "app.fcgi", {"PATH_FIX": case.script_fix}
                )
            config = mx.wsgiwire_config(case.server, *config_args(case, "--app-file", str(script)))
        else:  # cgi
            script = matrix_stage.script("matrix_app.cgi.in", "app.cgi")
            if case.via_config:
                # --set SCRIPT: `--app-file app.cgi` is refused (see test_config_command.py).
                config = mx.wsgiwire_config(
                    case.server, *config_args(case, "--set", f"SCRIPT={script}")
                )
            else:
                values = {"MOUNT": case.mount, "SCRIPT": str(script)}
        if config is not None:
            assert config.tested_file == case.file, config.argv
            source: str | Path = mx.write_config(config, work, f"{case.name}.conf")
        else:
            source = case.name
        server_cls = SERVER_CLASSES[case.server]
        with server_cls(source, values=values, doc_root=doc_root) as server:
            yield Site(case, server, config, command, backend_log)
    finally:
        if os.environ.get(KEEP_RUN_DIRS_ENV) != "1":
            shutil.rmtree(work, ignore_errors=True)


# ---------------------------------------------------------------------------------------
# What every deployment answers


def test_mount_root_and_the_link_url_for_gives(site: Site) -> None:
    mount = site.case.mount
    reply = site.server.request("GET", mount + "/")
    report = mx.check_page(reply, mount=mount, path_info="/", context=site.logs())
    status, _, body = site.server.request("GET", report["url_for"])
    assert (status, body) == (200, b"page z"), f"{report['url_for']}: {status} {body[:300]!r}"


def test_path_and_query(site: Site) -> None:
    mount = site.case.mount
    reply = site.server.request("GET", mount + "/x/y?q=1")
    mx.check_page(reply, mount=mount, path_info="/x/y", query="q=1", context=site.logs())


def test_percent_encoded_utf8_path(site: Site) -> None:
    mount = site.case.mount
    reply = site.server.request("GET", mount + ENCODED)
    mx.check_page(reply, mount=mount, path_info=DECODED, context=site.logs())


def test_post_body(site: Site) -> None:
    mount = site.case.mount
    reply = site.server.request(
        "POST",
        mount + "/form?q=1",
        {"Content-Type": "application/octet-stream"},
        POST_BODY,
    )
    mx.check_page(
        reply,
        mount=mount,
        path_info="/form",
        query="q=1",
        method="POST",
        body=POST_BODY,
        context=site.logs(),
    )


def test_lighttpd_spawn_at_root_says_the_plain_script_needs_the_fix(
    matrix_stage: Stage,
) -> None:
    """At the site root lighttpd hands a spawned script the whole path as SCRIPT_NAME:
    `wsgiwire config` says to wrap the app in LighttpdCGIRootFix (the matrix boots it
    that way), and a plain script really does see the wrong split."""
    SERVER_CLASSES["lighttpd"].require()
    script = matrix_stage.script("matrix_app.fcgi.in", "plain.fcgi", {"PATH_FIX": ""})
    config = mx.wsgiwire_config("lighttpd", "--protocol", "fastcgi", "--app-file", str(script))
    assert config.tested_file == "lighttpd/fastcgi-spawn"
    assert config.note is not None and "LighttpdCGIRootFix" in config.note, config
    work = world_readable_tempdir("wsgiwire-matrix-spawn-root-")
    try:
        source = mx.write_config(config, work, "lighttpd.conf")
        with SERVER_CLASSES["lighttpd"](source) as server:
            reply = server.request("GET", "/x/y")
            with pytest.raises(AssertionError):
                mx.check_page(reply, mount="", path_info="/x/y", context="")
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ---------------------------------------------------------------------------------------
# The README's Deployment guide, run as written


README = REPO_ROOT / "README.md"
README_LIB_LINE = 'sys.path.insert(0, "/home/me/lib")'
README_APP_LINE = "from myapp import app"


def readme_blocks(heading: str) -> dict[str, str]:
    """The fenced code blocks (by language) of the README section whose ``###``
    heading starts with ``heading``."""
    text = README.read_text(encoding="utf-8")
    section = re.search(rf"^### {re.escape(heading)}.*?$(.*?)(?=^##)", text, re.M | re.S)
    assert section is not None, f"README.md has no '### {heading}' section"
    blocks = re.findall(r"^```(\w+)\n(.*?)^```$", section.group(1), re.M | re.S)
    return dict(blocks)


def directives(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


def readme_script(code: str, stage: Stage) -> str:
    """``code`` with only the lib path and the app import replaced."""
    assert code.count(README_LIB_LINE) == 1, code
    assert code.count(README_APP_LINE) == 1, code
    return code.replace(README_LIB_LINE, f"sys.path.insert(0, {str(stage.root)!r})").replace(
        README_APP_LINE, "from matrix_app import app"
    )


def check_readme_site(server: RunningServer, mount: str) -> None:
    logs = server.error_log_text
    reply = server.request("GET", mount + "/")
    report = mx.check_page(reply, mount=mount, path_info="/", context=logs())
    status, _, body = server.request("GET", report["url_for"])
    assert (status, body) == (200, b"page z"), f"{report['url_for']}: {status}\n{logs()}"
    reply = server.request("GET", mount + "/x/y?q=1")
    mx.check_page(reply, mount=mount, path_info="/x/y", query="q=1", context=logs())
    reply = server.request("GET", mount + ENCODED)
    mx.check_page(reply, mount=mount, path_info=DECODED, context=logs())
    reply = server.request("POST", mount + "/form", {"Content-Type": "text/plain"}, POST_BODY)
    mx.check_page(
        reply, mount=mount, path_info="/form", method="POST", body=POST_BODY, context=logs()
    )


def test_readme_user1_fcgi_and_htaccess_under_mod_fcgid(
    matrix_stage: Stage, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = readme_blocks("1.")
    assert set(blocks) == {"python", "apache"}, blocks
    # The README's .htaccess is the tested one (comments aside).
    tested = (CONFIG_ROOT / "apache" / "fcgid-htaccess.htaccess").read_text()
    assert directives(blocks["apache"]) == directives(tested)
    monkeypatch.setenv("PATH", SYSTEM_PATH)  # what `#!/usr/bin/env python3` searches
    require_modules(Case("apache/fcgid-htaccess", "fastcgi", "", kind="spawn"))
    work = world_readable_tempdir("wsgiwire-readme-fcgid-")
    try:
        doc_root = work / "htdocs"
        doc_root.mkdir(mode=0o755)
        script = doc_root / "app.fcgi"
        script.write_text(readme_script(blocks["python"], matrix_stage))
        script.chmod(0o755)  # "Put app.fcgi (mode 755) and .htaccess in your web directory"
        (doc_root / ".htaccess").write_text(blocks["apache"])
        (doc_root / ".htaccess").chmod(0o644)
        config = mx.wsgiwire_config("apache", "--protocol", "fastcgi", "--app-file", str(script))
        assert config.tested_file == "apache/fcgid-htaccess"
        source = mx.write_config(config, work, "apache.conf")
        with SERVER_CLASSES["apache"](source, doc_root=doc_root) as server:
            check_readme_site(server, "")
        # "Run from a shell (python3 app.fcgi), the same script acts as a CGI program
        # and prints the page": a complete CGI response on stdout, exit status 0.
        # With no CGI variables at all wsgiwire asks for "/" (the app's root page);
        # naming a path gives that page.
        for shell_env, status, path_info in (
            ({}, b"200", None),
            ({"PATH_INFO": "/x/y", "QUERY_STRING": "q=1"}, b"200", "/x/y"),
        ):
            shell = subprocess.run(
                ["python3", str(script)],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                env={"PATH": SYSTEM_PATH, **shell_env},
                cwd=doc_root,
                timeout=60,
                check=False,
            )
            head, sep, body = shell.stdout.partition(b"\r\n\r\n")
            context = f"{shell_env}: {shell.stdout[:600]!r}\n{shell.stderr[-2000:]!r}"
            assert shell.returncode == 0 and sep, context
            assert head.startswith(b"Status: " + status), context
            if path_info is not None:
                page = Response(200, [("Content-Type", "application/json")], body)
                mx.check_page(page, mount="", path_info=path_info, query="q=1", context=context)
    finally:
        if os.environ.get(KEEP_RUN_DIRS_ENV) != "1":
            shutil.rmtree(work, ignore_errors=True)


def test_readme_user3_cgi_under_mod_cgi(
    matrix_stage: Stage, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = readme_blocks("3.")
    # The .htaccess block (a rewrite at the site root) is booted by test_cgi_htaccess.py.
    assert set(blocks) == {"python", "apache"}, blocks
    monkeypatch.setenv("PATH", SYSTEM_PATH)
    require_modules(Case("apache/cgi-scriptalias", "cgi", MOUNT, kind="cgi"))
    work = world_readable_tempdir("wsgiwire-readme-cgi-")
    try:
        script = work / "app.cgi"
        code = readme_script(blocks["python"], matrix_stage)
        # Here a ScriptAlias at MOUNT: "in a subdirectory, ScriptNameStripper(app, prefix)".
        assert code.count("ScriptNameStripper(app)") == 1, code
        code = code.replace("ScriptNameStripper(app)", f"ScriptNameStripper(app, {MOUNT!r})")
        script.write_text(code)
        script.chmod(0o755)  # "chmod 755 app.cgi"
        config = mx.wsgiwire_config(
            "apache", "--protocol", "cgi", "--mount", MOUNT, "--set", f"SCRIPT={script}"
        )
        assert config.tested_file == "apache/cgi-scriptalias"
        source = mx.write_config(config, work, "apache.conf")
        with SERVER_CLASSES["apache"](source) as server:
            check_readme_site(server, MOUNT)
    finally:
        if os.environ.get(KEEP_RUN_DIRS_ENV) != "1":
            shutil.rmtree(work, ignore_errors=True)
