"""``wsgiwire config SERVER``: the snippets a user pastes, and its refusals.

What each snippet does behind a real server is checked in
``integration/test_deploy_snippets.py`` (booted inside a Debian-layout main
configuration); here: every combination prints or refuses with one line, the values
that shape a snippet land where they should, and the backend line matches.
"""

from __future__ import annotations

import configparser
import re
import shlex

import pytest

from wsgiwire import _cli as cli

SNIPPET_SERVERS = ("nginx", "apache", "lighttpd", "haproxy", "caddy")
PROTOCOLS = ("fastcgi", "scgi", "uwsgi", "cgi")
BINDS = ("127.0.0.1:9000", "unix:/run/myapp.sock")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["config", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_refused(result: tuple[int, str, str], *words: str) -> str:
    code, out, err = result
    assert code == 2 and out == "", result
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith("wsgiwire: "), err
    for word in words:
        assert word in err, err
    return err


def note(err: str, prefix: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1, err
    return lines[0].removeprefix(prefix)


# What a snippet may be asked for; anything else is refused with one line.
def supported(server: str, protocol: str, bind: str) -> bool:
    if protocol == "cgi":
        return False
    if server in ("haproxy", "caddy"):
        return protocol == "fastcgi"
    if server == "apache":
        return protocol == "fastcgi" or not bind.startswith("unix:")
    return True


@pytest.mark.parametrize("server", SNIPPET_SERVERS)
@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("mount", ["", "/app"])
@pytest.mark.parametrize("bind", BINDS)
def test_every_combination_prints_a_snippet_or_refuses(
    capsys: pytest.CaptureFixture[str], server: str, protocol: str, mount: str, bind: str
) -> None:
    args = [server, "--protocol", protocol, "--bind", bind, *(["--mount", mount] * bool(mount))]
    result = run(capsys, *args)
    if not supported(server, protocol, bind):
        assert_refused(result)
        return
    code, out, err = result
    assert code == 0, err
    assert "{{" not in out and "}}" not in out
    assert note(err, "# paste into: ")
    backend = shlex.split(note(err, "# backend: "))
    assert backend[:7] == ["wsgiwire", "serve", "myapp:app", "--protocol", protocol,
                           "--bind", bind]
    assert ("--socket-owner" in backend) == bind.startswith("unix:")
    needs_mount = protocol == "scgi" and server in ("nginx", "apache") and (
        mount or server == "apache"
    )
    assert ("--mount" in backend) == bool(needs_mount), backend
    # The raw client Host header is never what the snippet passes on.
    assert "$http_host" not in out
    if bind.startswith("unix:"):
        assert bind.removeprefix("unix:") in out
    else:
        assert "127.0.0.1" in out and "9000" in out


def test_nginx_builds_http_host_from_host_and_a_port_map(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(capsys, "nginx", "--listen", "127.0.0.1:8080", "--app", "shop.wsgi:app")
    assert code == 0, err
    assert "upstream wsgiwire_shop {" in out and "keepalive 8;" in out
    assert re.search(r'^map "\$scheme:\$server_port" \$wsgiwire_shop_port \{$', out, re.M)
    assert '"http:80" "";' in out and '"https:443" "";' in out
    # after the include, so it wins over Debian's HTTP_HOST $host
    include = out.index("include fastcgi_params;")
    assert out.index("fastcgi_param HTTP_HOST $host$wsgiwire_shop_port;") > include
    assert "listen 127.0.0.1:8080;" in out
    assert "/etc/nginx/sites-available/shop" in note(err, "# paste into: ")


def test_nginx_location_has_an_http_part_and_a_server_part(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "nginx", "--location", "--mount", "/app")
    assert code == 0
    http_part, _, server_part = out.partition("# ---- inside your server {} ----\n")
    assert "map " in http_part and "upstream " in http_part and "location" not in http_part
    assert server_part.startswith("# /app alone") and "server {" not in server_part
    assert "listen" not in out


def test_static_locations(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "nginx", "--static", "static=/srv/app/static/")
    assert code == 0
    assert "location /static/ {\n        alias /srv/app/static/;\n    }" in out
    code, out, _ = run(capsys, "apache", "--static", "/static/=/srv/app/static")
    assert code == 0
    assert 'ProxyPass "/static/" "!"' in out and 'Alias "/static/" "/srv/app/static/"' in out
    assert out.index('ProxyPass "/static/" "!"') < out.index('ProxyPass "/" ')
    code, out, _ = run(capsys, "caddy", "--static", "/static/=/srv/app/static")
    assert code == 0 and "handle_path /static/* {" in out and "root * /srv/app/static" in out
    code, out, _ = run(capsys, "lighttpd", "--static", "/static/=/srv/app/static")
    assert code == 0 and 'alias.url += ( "/static/" => "/srv/app/static/" )' in out
    assert_refused(run(capsys, "haproxy", "--static", "/static/=/srv/s"), "HAProxy")


@pytest.mark.parametrize("item", ["/static", "/static/=relative", "=/srv", "/a b/=/srv",
                                  "/static/=/srv/x;y"])
def test_malformed_static_is_refused(capsys: pytest.CaptureFixture[str], item: str) -> None:
    assert_refused(run(capsys, "nginx", "--static", item), "--static")


@pytest.mark.parametrize("server", [*SNIPPET_SERVERS, "systemd", "supervisor"])
def test_unknown_set_key_is_refused_with_the_valid_ones(
    capsys: pytest.CaptureFixture[str], server: str
) -> None:
    err = assert_refused(run(capsys, server, "--set", "RUNDIR=/x"), "RUNDIR", "valid: ")
    valid = err.rstrip().rpartition("valid: ")[2].split(", ")
    assert "NAME" in valid and valid == sorted(valid)


def test_unknown_set_key_is_refused_with_full_too(capsys: pytest.CaptureFixture[str]) -> None:
    assert_refused(run(capsys, "nginx", "--full", "--set", "RUNDIR=/x"), "RUNDIR", "RUN_DIR")


@pytest.mark.parametrize("bind", ["9000", "/run/app.sock", "unix:run/app.sock", "host:",
                                  ":9000", "host:99999", "host:9000x", "[::1]9000",
                                  "a b:80"])
@pytest.mark.parametrize("full", [False, True])
def test_malformed_bind_is_refused(
    capsys: pytest.CaptureFixture[str], bind: str, full: bool
) -> None:
    args = ["nginx", "--bind", bind, *(["--full"] * full)]
    assert_refused(run(capsys, *args), "--bind", "HOST:PORT", "unix:/")


@pytest.mark.parametrize("listen", ["0", "http", "1.2.3.4", "65536", "x:y"])
def test_malformed_listen_is_refused(capsys: pytest.CaptureFixture[str], listen: str) -> None:
    assert_refused(run(capsys, "nginx", "--listen", listen), "--listen")


@pytest.mark.parametrize(
    "args",
    [("lighttpd", "--listen", "8080"), ("lighttpd", "--server-name", "example.com"),
     ("haproxy", "--server-name", "example.com"), ("systemd", "--listen", "8080"),
     ("supervisor", "--mount", "/app"), ("caddy", "--location"), ("lighttpd", "--location")],
)
def test_options_a_target_cannot_honour_are_refused(
    capsys: pytest.CaptureFixture[str], args: tuple[str, ...]
) -> None:
    assert_refused(run(capsys, *args), args[1])


@pytest.mark.parametrize("server", ["ngnix", "iis", "Apache"])
def test_unknown_server_is_refused_with_the_valid_ones(
    capsys: pytest.CaptureFixture[str], server: str
) -> None:
    assert_refused(run(capsys, server), repr(server), "nginx", "caddy", "systemd")


def test_ipv6_bind(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "nginx", "--bind", "[::1]:9000")
    assert code == 0 and "server [::1]:9000;" in out
    code, out, _ = run(capsys, "haproxy", "--bind", "[::1]:9000")
    assert code == 0 and "server myapp1 [::1]:9000 proto fcgi" in out


def test_systemd_prints_the_socket_and_the_service(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(capsys, "systemd", "--protocol", "uwsgi", "--bind",
                         "unix:/run/shop.sock", "--app", "shop:app", "--set", "USER=shop")
    assert code == 0, err
    parts = re.split(r"^# ---- /etc/systemd/system/(\S+) ----\n", out, flags=re.M)
    assert parts[0] == "" and parts[1::2] == ["shop.socket", "shop.service"]
    socket_unit, service = parts[2], parts[4]
    assert "ListenStream=/run/shop.sock\n" in socket_unit
    assert "Requires=shop.socket\n" in service and "User=shop\n" in service
    exec_start = re.search(r"^ExecStart=(.*)$", service, re.M)
    assert exec_start is not None
    assert shlex.split(exec_start.group(1))[1:] == [
        "serve", "shop:app", "--protocol", "uwsgi", "--workers", "2"]
    assert "{{" not in out


def test_supervisor_stops_the_whole_group(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "supervisor", "--bind", "unix:/run/shop.sock", "--app", "shop:app")
    assert code == 0
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(out)
    program = parser["program:shop"]
    assert program["stopasgroup"] == "true" and program["killasgroup"] == "true"
    assert "--bind unix:/run/shop.sock" in program["command"]


def test_apache_app_file_prints_the_htaccess(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "apache", "--app-file", "/var/www/html/app.fcgi")
    assert code == 0, err
    assert "RewriteRule ^(.*)$ app.fcgi/$1 [QSA,L]" in out
    assert ".htaccess" in note(err, "# paste into: ")


def test_readme_deploying_section_shows_exactly_what_the_command_prints(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Each block under "Deploying behind a web server" is the output of the
    ``wsgiwire config`` line above it, and the backend line is the one printed."""
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Deploying behind a web server\n", 1)[1].split("\n## ", 1)[0]
    pairs = re.findall(
        r"^```sh\n(wsgiwire config [^\n]*)\n```\n\n```\w+\n(.*?)^```\n"
        r"(?:(?:(?!^```).)*?The backend:\n\n```sh\n([^\n]*)\n```)?",
        section, re.M | re.S,
    )
    assert len(pairs) == 6, [p[0] for p in pairs]
    assert sum(bool(p[2]) for p in pairs) == 5  # every web server shows its backend
    for command, block, backend in pairs:
        code, out, err = run(capsys, *shlex.split(command)[2:])
        assert code == 0, err
        assert out == block, command
        if backend:
            assert note(err, "# backend: ") == backend, command


@pytest.mark.parametrize("server", ["haproxy", "caddy"])
@pytest.mark.parametrize("mount", ["", "/app"])
def test_full_prints_the_tested_haproxy_and_caddy_files(
    capsys: pytest.CaptureFixture[str], server: str, mount: str
) -> None:
    from pathlib import Path

    name = "fastcgi-prefix" if mount else "fastcgi-root"
    source = Path(__file__).resolve().parent.parent / "server-configs" / server / f"{name}.conf"
    args = [server, "--full", "--bind", "unix:/run/a.sock", *(["--mount", mount] * bool(mount))]
    code, out, err = run(capsys, *args)
    assert code == 0, err
    assert note(err, "# tested file: ") == f"server-configs/{server}/{name}.conf"
    values = {"PORT": "80", "RUN_DIR": f"/var/lib/wsgiwire/{server}", "DOC_ROOT": "/var/www/html",
              "USER": "www-data", "GROUP": "www-data", "MOUNT": mount, "TLS_PORT": "443",
              "CERT": "/etc/ssl/certs/ssl-cert-snakeoil.pem",
              "KEY": "/etc/ssl/private/ssl-cert-snakeoil.key",
              "CERT_PEM": "/etc/haproxy/site.pem",
              # each server's spelling of a unix socket
              "BACKEND": "/run/a.sock" if server == "haproxy" else "unix//run/a.sock"}
    expected = re.sub(r"\{\{([A-Z_]+)\}\}", lambda m: values[m.group(1)], source.read_text())
    assert out == expected
    assert_refused(run(capsys, server, "--full", "--protocol", "scgi"))
