"""Reading uWSGI ini files (``wsgiwire._uwsgiini``) and ``wsgiwire config --from-uwsgi``."""

from __future__ import annotations

import io
import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from wsgiwire._serve import apply_ini, ini_command_line, serve_parser
from wsgiwire._uwsgiini import IniError, placeholders, read_ini, translate

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str, name: str = "site.ini") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_section_comments_repeats_and_flags(tmp_path: Path) -> None:
    path = write(tmp_path, "[other]\nprocesses = 9\n[uwsgi]\n; a comment\n# another\n"
                 "env = A=1\nenv = B=2\nmaster\nprocesses = 3\n[after]\nprocesses = 7\n")
    assert read_ini(str(path)) == [
        ("env", "A=1"), ("env", "B=2"), ("master", "true"), ("processes", "3"),
    ]
    assert read_ini(str(path), "other") == [("processes", "9")]


def test_magic_variables(tmp_path: Path) -> None:
    path = write(tmp_path, "[uwsgi]\nd = %d\np = %p\ns = %s\nn = %n\ne = %e\nc = %c\n"
                 "x = %x\npct = 100%%\nk = %k\nh = %h\nunknown = %Z\n", "my.app.ini")
    values = dict(read_ini(str(path)))
    assert values["d"] == f"{tmp_path}/"
    assert values["p"] == str(path)
    assert (values["s"], values["n"], values["e"]) == ("my.app.ini", "my.app", ".ini")
    assert values["c"] == tmp_path.name
    assert values["x"] == "uwsgi"
    assert values["pct"] == "100%"
    assert values["k"] == str(os.cpu_count())
    assert values["h"] == socket.gethostname()
    assert values["unknown"] == "%Z"


def test_references_and_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "[uwsgi]\nbase = /srv/%n\nchdir = %(base)/app\nbase = /other\n"
                 "late = %(later)\nlater = L\nhome = $(WSGIWIRE_T_HOME)/venv\n"
                 "missing = [$(WSGIWIRE_T_UNSET)]\n")
    values = read_ini(str(path), environ={"WSGIWIRE_T_HOME": "/opt/x"})
    assert ("chdir", "/srv/site/app") in values  # the value given before the reference
    assert ("late", "L") in values  # else the first one after
    assert ("home", "/opt/x/venv") in values
    assert ("missing", "[]") in values
    assert placeholders(str(path)) == {"base", "later"}


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(IniError, match="no \\[uwsgi\\] section"):
        read_ini(str(write(tmp_path, "[app]\nx = 1\n")))
    with pytest.raises(IniError, match="%\\(nowhere\\)"):
        read_ini(str(write(tmp_path, "[uwsgi]\nchdir = %(nowhere)\n")))
    with pytest.raises(IniError, match="cannot read"):
        read_ini(str(tmp_path / "absent.ini"))
    big = tmp_path / "big.ini"
    big.write_bytes(b"[uwsgi]\n" + b";" * (2 << 20))
    with pytest.raises(IniError, match="larger than"):
        read_ini(str(big))


def test_translation_of_every_mapped_key() -> None:
    pairs = [
        ("socket", "/run/app.sock"), ("chmod-socket", "660"), ("chown-socket", "www-data"),
        ("processes", "4"), ("threads", "2"), ("harakiri", "30"), ("max-requests", "1000"),
        ("max-requests-delta", "50"), ("reload-on-rss", "300"), ("buffer-size", "32768"),
        ("limit-post", "1048576"), ("chdir", "/srv"), ("env", "A=1"), ("env", "B=2"),
        ("pythonpath", "/srv/lib"), ("virtualenv", "/srv/venv"), ("uid", "app"),
        ("gid", "app"), ("pidfile", "/run/app.pid"), ("stats", "127.0.0.1:9191"),
        ("module", "mysite.wsgi"), ("listen", "128"), ("touch-reload", "/srv/reload"),
        ("logto", "/var/log/app.log"),
    ]
    result = translate(pairs)
    assert result.app == "mysite.wsgi:application"  # uWSGI's default callable
    assert result.argv == [
        "--protocol", "uwsgi", "--bind", "unix:/run/app.sock", "--socket-mode", "660",
        "--socket-owner", "www-data", "--workers", "4", "--threads", "2",
        "--request-timeout", "30", "--max-requests", "1000", "--max-requests-jitter", "50",
        "--reload-on-rss", "300", "--max-params", "32768", "--max-body", "1048576",
        "--chdir", "/srv", "--env", "A=1", "--env", "B=2", "--pythonpath", "/srv/lib",
        "--virtualenv", "/srv/venv", "--user", "app", "--group", "app",
        "--pid-file", "/run/app.pid", "--stats", "127.0.0.1:9191", "--backlog", "128",
        "--touch-reload", "/srv/reload", "--log-file", "/var/log/app.log",
    ]
    assert result.unsupported == []


def test_options_this_build_lacks_are_reported_not_passed() -> None:
    result = translate([("touch-reload", "/x"), ("processes", "2")],
                       known=lambda option: option != "--touch-reload")
    assert result.argv == ["--workers", "2"]
    assert [(s.key, s.reason) for s in result.unsupported] == [
        ("touch-reload", "this wsgiwire has no --touch-reload option")
    ]


def test_app_forms_and_sockets(tmp_path: Path) -> None:
    assert translate([("module", "a.b:make()")]).app == "a.b:make()"
    assert translate([("module", "a.b"), ("callable", "app")]).app == "a.b:app"
    wsgi_file = translate([("wsgi-file", "/srv/site/wsgi.py")])
    assert wsgi_file.app == "wsgi:application"
    assert wsgi_file.argv == ["--pythonpath", "/srv/site"]
    mount = translate([("mount", "/app=site:app"), ("manage-script-name", "true")])
    assert (mount.app, mount.argv) == ("site:app", ["--mount", "/app"])
    assert translate([("wsgi-file", "/srv/app.wsgi")]).unsupported[0].key == "wsgi-file"
    assert translate([("fastcgi-socket", "127.0.0.1:9000")]).argv == [
        "--protocol", "fastcgi", "--bind", "127.0.0.1:9000"]
    assert translate([("scgi-socket", "/s.sock")]).argv == [
        "--protocol", "scgi", "--bind", "unix:/s.sock"]
    anywhere = translate([("socket", ":3031")])
    assert anywhere.argv[-1] == "0.0.0.0:3031"
    assert "every interface" in anywhere.warnings[0]
    mixed = translate([("socket", "/a.sock"), ("http-socket", ":8080"),
                       ("fastcgi-socket", "/b.sock")])
    assert [s.key for s in mixed.unsupported] == ["http-socket", "fastcgi-socket"]
    assert translate([("limit-post", "0")]).argv == []  # uWSGI's 0: no limit
    bare_chmod = translate([("chmod-socket", "")])
    assert bare_chmod.argv == ["--socket-mode", "666"]  # uWSGI's default for a bare key
    assert "world-writable" in bare_chmod.warnings[0]
    assert translate([("chmod-socket", "66x")]).unsupported[0].key == "chmod-socket"
    assert "every interface" in translate([("stats", ":9191")]).warnings[0]
    assert translate([("processes", "many")]).unsupported[0].reason.startswith("cannot be")


def test_noops_and_unknown_keys() -> None:
    result = translate([("master", "true"), ("thunder-lock", "true"), ("vacuum", "true"),
                        ("single-interpreter", "true"), ("static-map", "/s=/srv/s"),
                        ("frobnicate", "1"), ("base", "/srv")], placeholders={"base"})
    assert [s.key for s in result.noops] == [
        "master", "thunder-lock", "vacuum", "single-interpreter", "base"]
    assert [s.key for s in result.unsupported] == ["static-map", "frobnicate"]
    assert "web server" in result.unsupported[0].reason
    assert result.argv == []


def test_command_line_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[uwsgi]\nmodule = site:app\nsocket = /run/a.sock\n"
                 "processes = 4\nenv = A=1\nthreads = 2\n")
    args = apply_ini(["--ini", str(path), "--workers", "1", "--bind", "unix:/run/b.sock"])
    assert (args.app, args.workers, args.threads) == ("site:app", 1, 2)
    assert args.bind == ["unix:/run/b.sock"]  # replaced, not appended to
    assert args.env == ["A=1"] and args.protocol == "uwsgi"
    assert apply_ini(["other:app", "--ini", str(path)]).app == "other:app"
    defaults = serve_parser().parse_args([])
    assert apply_ini(["--ini", str(path)]).graceful_timeout == defaults.graceful_timeout


def test_config_from_uwsgi(tmp_path: Path) -> None:
    path = write(tmp_path, "[uwsgi]\nmodule = site.wsgi:application\nsocket = %dapp.sock\n"
                 "processes = 2\nstatic-map = /static=%dstatic\nmaster = true\n")
    out, err = io.StringIO(), io.StringIO()
    assert ini_command_line(str(path), out, err) == 0
    assert shlex.split(out.getvalue()) == [
        "wsgiwire", "serve", "site.wsgi:application", "--protocol", "uwsgi",
        "--bind", f"unix:{tmp_path}/app.sock", "--workers", "2"]
    assert "# not mapped: static-map = " in err.getvalue()
    assert "# nothing to do: master = true" in err.getvalue()
    # The real command, with no SERVER argument.
    done = subprocess.run([sys.executable, "-m", "wsgiwire", "config", "--from-uwsgi", str(path)],
                          capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    assert done.stdout == out.getvalue()
    missing = subprocess.run(
        [sys.executable, "-m", "wsgiwire", "config", "--from-uwsgi", str(tmp_path / "no.ini")],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    assert missing.returncode == 2 and "cannot read" in missing.stderr


@pytest.mark.parametrize(
    ("key", "value", "argv"),
    [
        ("wsgi", "site:app", []),
        ("uwsgi-socket", "/u.sock", ["--protocol", "uwsgi", "--bind", "unix:/u.sock"]),
        ("workers", "3", ["--workers", "3"]),
        ("home", "/venv", ["--virtualenv", "/venv"]),
        ("venv", "/venv", ["--virtualenv", "/venv"]),
        ("py-autoreload", "2", ["--reload"]),
        ("py-autoreload", "0", []),
        ("pidfile2", "/p.pid", ["--pid-file", "/p.pid"]),
    ],
)
def test_aliases(key: str, value: str, argv: list[str]) -> None:
    result = translate([(key, value)])
    assert (result.argv, result.unsupported) == (argv, [])
