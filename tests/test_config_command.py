"""``wsgiwire config --full``: what it prints is the tested file, filled in, byte for byte.

(The snippets ``wsgiwire config`` prints by default are checked in
``test_config_snippets.py`` and booted in ``integration/test_deploy_snippets.py``.)

For every setup (server x protocol x site root or prefix x TCP or unix ``--bind``, plus
``--app-file`` for a ``.fcgi`` the server spawns) the expected answer is written here
independently of ``wsgiwire._deploy``: which file under ``server-configs/`` (read from
the repo, not through the package), which values (the documented host defaults, BACKEND
as each server spells a backend address), which ``wsgiwire serve`` line on stderr, or
a refusal (exit 2, one line). The file is then rendered here by a plain substitution
and must equal stdout exactly.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from wsgiwire import _cli as cli
from wsgiwire import _deploy as deploy

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_ROOT = REPO_ROOT / "server-configs"
README = REPO_ROOT / "README.md"

SERVERS = ("nginx", "apache", "lighttpd")
PROTOCOLS = ("fastcgi", "scgi", "uwsgi", "cgi")
TCP = "127.0.0.1:9000"
UNIX = "unix:/run/myapp.sock"
MOUNT = "/app"
APP_FILE = "/var/www/app.fcgi"


# ---------------------------------------------------------------------------------------
# The oracle


@dataclass(frozen=True)
class Expected:
    template: str  # under server-configs/<server>/, without .conf
    serve_extra: tuple[str, ...] = ()  # options after "--protocol P --bind B"


# (server, protocol, at a prefix?, transport) -> the tested file. Missing: refused.
# From server-configs/README.md and the README's "Path fixes" table: Apache's
# mod_proxy_fcgi without proxy-fcgi-pathinfo and mod_proxy_scgi need --mount; nginx's
# scgi_pass at a prefix needs --mount; Apache proxies and lighttpd's TCP files take a
# HOST:PORT only; lighttpd has no tested FastCGI file at the site root.
EXPECTED: dict[tuple[str, str, bool, str], Expected] = {}
for _transport in ("tcp", "unix"):
    EXPECTED.update({
        ("nginx", "fastcgi", False, _transport): Expected("fastcgi-keepconn"),
        ("nginx", "fastcgi", True, _transport): Expected("fastcgi-prefix"),
        ("nginx", "scgi", False, _transport): Expected("scgi-root"),
        ("nginx", "scgi", True, _transport): Expected("scgi-prefix", ("--mount", MOUNT)),
        ("nginx", "uwsgi", False, _transport): Expected("uwsgi-root"),
        ("nginx", "uwsgi", True, _transport): Expected("uwsgi-prefix30"),
        ("apache", "cgi", False, _transport): Expected("cgi-root"),
        ("apache", "cgi", True, _transport): Expected("cgi-scriptalias"),
        ("lighttpd", "cgi", False, _transport): Expected("cgi-root"),
        ("lighttpd", "cgi", True, _transport): Expected("cgi"),
    })  # fmt: skip
EXPECTED.update({
    ("apache", "fastcgi", False, "tcp"): Expected("fastcgi-root-pathinfo"),
    ("apache", "fastcgi", True, "tcp"): Expected("fastcgi-prefix", ("--mount", MOUNT)),
    ("apache", "fastcgi", True, "unix"): Expected("fastcgi-prefix-pathinfo"),
    ("apache", "scgi", False, "tcp"): Expected("scgi-root", ("--mount", "/")),
    ("apache", "scgi", True, "tcp"): Expected("scgi-prefix", ("--mount", MOUNT)),
    ("apache", "uwsgi", False, "tcp"): Expected("uwsgi-root"),
    ("apache", "uwsgi", True, "tcp"): Expected("uwsgi-prefix"),
    ("lighttpd", "fastcgi", True, "tcp"): Expected("fastcgi-prefix"),
    ("lighttpd", "fastcgi", True, "unix"): Expected("fastcgi-unix"),
    ("lighttpd", "scgi", False, "tcp"): Expected("scgi-root"),
    ("lighttpd", "scgi", True, "tcp"): Expected("scgi-prefix"),
    ("lighttpd", "uwsgi", False, "tcp"): Expected("uwsgi-root"),
    ("lighttpd", "uwsgi", True, "tcp"): Expected("uwsgi-prefix"),
})  # fmt: skip
# --app-file: a .fcgi the web server starts (mod_fcgid + .htaccess; lighttpd bin-path).
SPAWNED = {"apache": "fcgid-htaccess", "lighttpd": "fastcgi-spawn"}


def expected_values(server: str, bind: str, mount: str, app_file: str | None) -> dict[str, str]:
    """The values a file is filled with: Debian's layout for a real host, and the
    backend address the way the server's config takes it (server-configs/README.md)."""
    run_dir = f"/var/lib/wsgiwire/{server}"
    values = {
        "PORT": "80",
        "RUN_DIR": run_dir,
        "TMP_DIR": f"{run_dir}/tmp",
        "DOC_ROOT": "/var/www/html",
        "USER": "www-data",
        "GROUP": "www-data",
        "MOUNT": "/" + mount.strip("/") if mount.strip("/") else "",
        "SCRIPT": app_file or "/var/www/app.cgi",
    }
    if server == "apache":
        values["MODULES_DIR"] = "/usr/lib/apache2/modules"
    elif server == "lighttpd":
        values["MODULES_DIR"] = "/usr/lib/lighttpd"
    if bind.startswith("unix:"):
        path = bind.removeprefix("unix:")
        # nginx's upstream/fastcgi_pass take "unix:/path"; Apache and lighttpd a path.
        values["BACKEND"] = bind if server == "nginx" else path
    else:
        host, _, port = bind.rpartition(":")
        values.update(BACKEND=bind, BACKEND_HOST=host, BACKEND_PORT=port)
    return values


def render_by_hand(server: str, template: str, values: dict[str, str]) -> str:
    text = (CONFIG_ROOT / server / f"{template}.conf").read_bytes().decode("utf-8")
    rendered = re.sub(r"\{\{([A-Z][A-Z0-9_]*)\}\}", lambda m: values[m.group(1)], text)
    assert "{{" not in rendered and "}}" not in rendered
    return rendered


# ---------------------------------------------------------------------------------------
# Running the command


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    def stderr_line(self, prefix: str) -> str:
        lines = [line for line in self.err.splitlines() if line.startswith(prefix)]
        assert len(lines) == 1, self.err
        return lines[0].removeprefix(prefix)


def run_config(capsys: pytest.CaptureFixture[str], *args: str) -> Run:
    """``wsgiwire config ARGS --full``: the standalone tested file."""
    code = cli.main(["config", *args, "--full"])
    captured = capsys.readouterr()
    return Run(code, captured.out, captured.err)


def assert_refused(run: Run) -> None:
    assert run.code == 2, run
    assert run.out == ""
    lines = run.err.splitlines()
    assert len(lines) == 1 and run.err.endswith("\n"), run.err
    assert lines[0].startswith("wsgiwire: ") and len(lines[0]) > 20, run.err


def transport_of(bind: str) -> str:
    return "unix" if bind.startswith("unix:") else "tcp"


# ---------------------------------------------------------------------------------------
# Every combination


COMBINATIONS = [
    pytest.param(server, protocol, mount, bind, id=f"{server}-{protocol}-{where}-{kind}")
    for server in SERVERS
    for protocol in PROTOCOLS
    for mount, where in (("", "root"), (MOUNT, "prefix"))
    for bind, kind in ((TCP, "tcp"), (UNIX, "unix"))
]


@pytest.mark.parametrize(("server", "protocol", "mount", "bind"), COMBINATIONS)
def test_every_combination_prints_the_tested_file_or_refuses(
    capsys: pytest.CaptureFixture[str], server: str, protocol: str, mount: str, bind: str
) -> None:
    args = [server, "--protocol", protocol, "--bind", bind]
    run = run_config(capsys, *args, *(["--mount", mount] if mount else []))
    expected = EXPECTED.get((server, protocol, bool(mount), transport_of(bind)))
    if expected is None:
        assert_refused(run)
        return
    assert run.code == 0, run.err
    values = expected_values(server, bind, mount, None)
    assert run.out == render_by_hand(server, expected.template, values)
    assert run.stderr_line("# tested file: ") == (
        f"server-configs/{server}/{expected.template}.conf"
    )
    backend = run.stderr_line("# backend: ")
    if protocol == "cgi":
        assert values["SCRIPT"] in backend and "wsgiwire.adapters.cgi" in backend, backend
    else:
        owner = ["--socket-owner", "www-data:www-data"] if bind.startswith("unix:") else []
        assert shlex.split(backend) == [
            "wsgiwire", "serve", "myapp:app", "--protocol", protocol, "--bind", bind,
            *expected.serve_extra, *owner,
        ]  # fmt: skip


APP_FILE_COMBINATIONS = [
    pytest.param(server, protocol, mount, id=f"{server}-{protocol}-{where}")
    for server in SERVERS
    for protocol in ("fastcgi", "scgi", "uwsgi")
    for mount, where in (("", "root"), (MOUNT, "prefix"))
    # apache's fcgid file has no mount: refused, see the test below
    if not (server == "apache" and protocol == "fastcgi" and mount)
]


@pytest.mark.parametrize(("server", "protocol", "mount"), APP_FILE_COMBINATIONS)
def test_app_file_prints_the_spawning_setup_or_refuses(
    capsys: pytest.CaptureFixture[str], server: str, protocol: str, mount: str
) -> None:
    args = [server, "--protocol", protocol, "--app-file", APP_FILE]
    run = run_config(capsys, *args, *(["--mount", mount] if mount else []))
    template = SPAWNED.get(server) if protocol == "fastcgi" else None
    if template is None:
        assert_refused(run)
        return
    assert run.code == 0, run.err
    values = expected_values(server, TCP, mount, APP_FILE)  # --bind: its default
    assert run.out == render_by_hand(server, template, values)
    assert run.stderr_line("# tested file: ") == f"server-configs/{server}/{template}.conf"
    backend = run.stderr_line("# backend: ")
    assert backend.startswith(f"{APP_FILE}: ") and "WSGIServer(app).run()" in backend, backend
    if server == "apache":
        note = run.stderr_line("# note: ")
        assert "app.fcgi" in note and "fcgid-htaccess.htaccess" in note, note


def test_subprocess_entry_point_prints_the_same_bytes(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["nginx", "--protocol", "uwsgi", "--bind", UNIX, "--mount", MOUNT]
    in_process = run_config(capsys, *args)
    done = subprocess.run(
        [sys.executable, "-m", "wsgiwire", "config", *args, "--full"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, in_process.out, in_process.err)


def test_readme_example_prints_the_backend_line_the_readme_shows(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = README.read_text(encoding="utf-8")
    guide = text[text.index("## Deployment guide") :]
    block = re.search(
        r"^```sh\n(wsgiwire config [^\n]*?) > \S+\n(# backend: [^\n]*)\n```", guide, re.M
    )
    assert block is not None, "the Deployment guide's first sh block changed shape"
    command, backend_line = block.groups()
    run = run_config(capsys, *shlex.split(command)[2:])
    assert run.code == 0, run.err
    assert run.stderr_line("# backend: ") == backend_line.removeprefix("# backend: ")


# ---------------------------------------------------------------------------------------
# Values


def test_set_overrides_a_value(capsys: pytest.CaptureFixture[str]) -> None:
    run = run_config(capsys, "nginx", "--protocol", "fastcgi", "--bind", TCP, "--set", "PORT=8080")
    assert run.code == 0, run.err
    values = {**expected_values("nginx", TCP, "", None), "PORT": "8080"}
    assert run.out == render_by_hand("nginx", "fastcgi-keepconn", values)
    assert "listen 127.0.0.1:8080;" in run.out


def test_set_overrides_several_and_the_last_one_wins(capsys: pytest.CaptureFixture[str]) -> None:
    run = run_config(
        capsys, "apache", "--protocol", "cgi", "--mount", "/cgi",
        "--set", "SCRIPT=/srv/site/app.cgi", "--set", "USER=site", "--set", "USER=web",
    )  # fmt: skip
    assert run.code == 0, run.err
    values = {
        **expected_values("apache", TCP, "/cgi", None),
        "SCRIPT": "/srv/site/app.cgi",
        "USER": "web",
    }
    assert run.out == render_by_hand("apache", "cgi-scriptalias", values)
    assert "/srv/site/app.cgi" in run.stderr_line("# backend: ")


def test_set_without_equals_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert_refused(run_config(capsys, "nginx", "--bind", TCP, "--set", "PORT"))


@pytest.mark.parametrize("spelling", ["/app", "/app/", "app", "app/", "//app"])
def test_mount_spellings_give_one_prefix(capsys: pytest.CaptureFixture[str], spelling: str) -> None:
    run = run_config(capsys, "nginx", "--protocol", "scgi", "--bind", TCP, "--mount", spelling)
    assert run.code == 0, run.err
    assert run.out == render_by_hand(
        "nginx", "scgi-prefix", expected_values("nginx", TCP, MOUNT, None)
    )
    assert shlex.split(run.stderr_line("# backend: "))[-2:] == ["--mount", MOUNT]


@pytest.mark.parametrize("spelling", ["/", "", "//"])
def test_mount_at_the_root_is_the_root_setup(
    capsys: pytest.CaptureFixture[str], spelling: str
) -> None:
    run = run_config(capsys, "apache", "--protocol", "uwsgi", "--bind", TCP, "--mount", spelling)
    assert run.code == 0, run.err
    assert run.stderr_line("# tested file: ") == "server-configs/apache/uwsgi-root.conf"


# ---------------------------------------------------------------------------------------
# deploy.render


def test_render_refuses_a_placeholder_without_a_value() -> None:
    with pytest.raises(deploy.ConfigError, match=r"NOPE") as info:
        deploy.render("listen {{PORT}};\npass {{NOPE}};\n", {"PORT": "80"}, source="x.conf")
    assert "x.conf" in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("text", ["{{ PORT }}", "{{port}}", "{{}}", "{{PORT-2}}"])
def test_render_refuses_a_malformed_placeholder(text: str) -> None:
    with pytest.raises(deploy.ConfigError, match="malformed"):
        deploy.render(f"listen {text};", {"PORT": "80", "port": "80"})


def test_render_does_not_rescan_values() -> None:
    # A value may itself look like a placeholder (the integration matrix passes
    # "{{PORT}}" through for the harness to fill): it is inserted as is.
    values = {"PORT": "{{PORT}}", "DOC_ROOT": "/srv/{{x}}"}
    assert deploy.render("{{PORT}} {{DOC_ROOT}}", values) == "{{PORT}} /srv/{{x}}"


def test_every_shipped_template_renders_with_the_defaults() -> None:
    """No template under server-configs/{nginx,apache,lighttpd} needs a value the
    command cannot give (the package's copy is the repo's)."""
    for server in SERVERS:
        for path in sorted((CONFIG_ROOT / server).glob("*.conf")):
            assert deploy.template_text(server, path.stem) == path.read_text(encoding="utf-8")
            values = deploy.defaults(server, bind=TCP, mount=MOUNT, app_file=APP_FILE)
            deploy.render(path.read_text(encoding="utf-8"), values, source=str(path))


# ---------------------------------------------------------------------------------------
# Each file's own "wsgiwire serve" line agrees with what the command prints

_DOCUMENTED = re.compile(r"^#\s+(wsgiwire serve [^(\n]*?)\s*(?:\(.*\))?$", re.M)

SERVE_SETUPS = [
    pytest.param(
        key,
        id=f"{key[0]}/{expected.template}-{key[3]}",
    )
    for key, expected in EXPECTED.items()
    if key[1] != "cgi"
]


@pytest.mark.parametrize("key", SERVE_SETUPS)
def test_file_documents_the_path_options_the_command_prints(
    capsys: pytest.CaptureFixture[str], key: tuple[str, str, bool, str]
) -> None:
    server, protocol, prefixed, transport = key
    bind = TCP if transport == "tcp" else UNIX
    mount = MOUNT if prefixed else ""
    run = run_config(
        capsys, server, "--protocol", protocol, "--bind", bind, *(["--mount", mount] * prefixed)
    )
    assert run.code == 0, run.err
    documented = _DOCUMENTED.search(run.out)
    assert documented is not None, "the file documents no `wsgiwire serve` command"

    def path_options(line: str) -> list[str]:
        words = shlex.split(line)
        return [w for i, w in enumerate(words) if w == "--mount" or words[i - 1] == "--mount"]

    assert path_options(documented.group(1)) == path_options(run.stderr_line("# backend: "))


# ---------------------------------------------------------------------------------------
# Known bugs


@pytest.mark.parametrize("server", ["apache", "lighttpd"])
def test_app_file_names_the_cgi_script(capsys: pytest.CaptureFixture[str], server: str) -> None:
    run = run_config(capsys, server, "--protocol", "cgi", "--app-file", "/srv/app.cgi")
    assert run.code == 0, run.err
    template = "cgi-root"
    values = expected_values(server, TCP, "", "/srv/app.cgi")
    assert run.out == render_by_hand(server, template, values)


@pytest.mark.parametrize(
    ("server", "mount"), [("nginx", ""), ("apache", MOUNT), ("lighttpd", MOUNT)]
)
def test_unix_bind_backend_line_lets_the_server_connect(
    capsys: pytest.CaptureFixture[str], server: str, mount: str
) -> None:
    args = [server, "--protocol", "fastcgi", "--bind", UNIX, *(["--mount", mount] * bool(mount))]
    run = run_config(capsys, *args)
    assert run.code == 0, run.err
    words = shlex.split(run.stderr_line("# backend: "))
    assert "--socket-owner" in words or "--socket-mode" in words, words


def test_app_file_with_a_mount_is_not_silently_dropped(
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = run_config(
        capsys, "apache", "--protocol", "fastcgi", "--app-file", APP_FILE, "--mount", "/shop"
    )
    assert run.code == 2 or "/shop" in run.out + run.err, run
