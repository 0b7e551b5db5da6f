"""The built-in demo app: what it reports, as HTML and JSON, and ``wsgiwire demo``."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from wsgiref.validate import validator

import pytest

from wsgiwire import _demo as demo
from wsgiwire.adapters.cgi import CGIGateway

REPO = Path(__file__).resolve().parents[1]


def cgi(app: Any, path: str = "/x", query: str = "", method: str = "GET",
        body: bytes = b"", **extra: bytes) -> tuple[str, dict[str, str], bytes]:
    params = {
        b"REQUEST_METHOD": method.encode(),
        b"SCRIPT_NAME": b"/demo",
        b"PATH_INFO": path.encode("latin-1"),
        b"QUERY_STRING": query.encode("latin-1"),
        b"SERVER_NAME": b"localhost",
        b"SERVER_PORT": b"443",
        b"SERVER_PROTOCOL": b"HTTP/1.1",
        b"HTTPS": b"on",
        **{k.encode("latin-1"): v for k, v in extra.items()},
    }
    if body:
        params[b"CONTENT_LENGTH"] = str(len(body)).encode()
    out = io.BytesIO()
    assert CGIGateway(app).handle(params, io.BytesIO(body), out)
    head, _, payload = out.getvalue().partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    return status_line, headers, payload


def test_json_report() -> None:
    body = b"posted \x00\xff bytes"
    status, headers, payload = cgi(demo.app, "/a b/\xe4", "format=json&x=1", "POST", body,
                                   HTTP_COOKIE=b"k=v")
    assert status == "Status: 200 OK"
    assert headers["Content-Type"] == "application/json"
    assert headers["Content-Length"] == str(len(payload))
    info = json.loads(payload)
    assert info["method"] == "POST"
    assert (info["script_name"], info["path_info"]) == ("/demo", "/a b/\xe4")
    assert info["query_string"] == "format=json&x=1"
    assert info["url_scheme"] == "https"
    assert (info["multithread"], info["multiprocess"], info["run_once"]) == (False, True, True)
    assert info["input_terminated"] is False
    assert info["body_length"] == len(body)
    assert info["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert info["cgi"]["HTTP_COOKIE"] == "k=v"
    assert not any("." in key for key in info["cgi"])  # wsgi.* objects are not listed


def test_html_report_escapes_what_it_shows() -> None:
    status, headers, payload = cgi(demo.app, "/<script>alert(1)</script>")
    assert status == "Status: 200 OK"
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert headers["Content-Length"] == str(len(payload))
    page = payload.decode("utf-8")
    assert page.startswith("<!doctype html>")
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_describe() -> None:
    environ = {
        "REQUEST_METHOD": "GET", "wsgi.url_scheme": "http", "wsgi.multithread": True,
        "wsgi.multiprocess": False, "wsgi.run_once": False, "wsgi.input": io.BytesIO(b""),
        "wsgi.input_terminated": True, "PATH_INFO": "/p",
    }
    info = demo.describe(environ)
    assert info["script_name"] == "" and info["path_info"] == "/p"
    assert info["input_terminated"] is True
    assert info["body_sha256"] == hashlib.sha256(b"").hexdigest()
    assert info["cgi"] == {"PATH_INFO": "/p", "REQUEST_METHOD": "GET"}


def test_demo_under_the_validator() -> None:
    status, _, payload = cgi(validator(demo.app), "/v", "format=json", "POST", b"abc")
    assert status == "Status: 200 OK"
    assert json.loads(payload)["body_length"] == 3


def test_demo_as_a_cgi_script() -> None:
    """The documented CGI use, ``run(app)``, in a real process with a CGI environment."""
    env = {
        "PYTHONPATH": str(REPO), "GATEWAY_INTERFACE": "CGI/1.1", "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "", "PATH_INFO": "/hello", "QUERY_STRING": "format=json",
        "SERVER_NAME": "localhost", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
    }
    code = "from wsgiwire.adapters.cgi import run; from wsgiwire._demo import app; run(app)"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          timeout=60, check=False, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    head, _, payload = done.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"Status: 200 OK\r\n")
    info = json.loads(payload)
    assert (info["path_info"], info["query_string"]) == ("/hello", "format=json")
    assert info["run_once"] is True


def test_demo_page_shows_what_its_http_front_received(tmp_path: Path) -> None:
    """``wsgiwire demo``, a real process: the page reports the client's own port and the
    front's port, not placeholders."""
    import http.client
    import re

    from tests.integration.servers import ManagedProcess, wait_for_output

    demo_proc = ManagedProcess(
        [sys.executable, "-m", "wsgiwire", "demo", "--port", "0"],
        log_path=tmp_path / "demo.log",
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO)},
        cwd=tmp_path,
    )
    with demo_proc:
        output = wait_for_output(demo_proc, "wsgiwire demo: open http://")
        match = re.search(r"open http://127\.0\.0\.1:(\d+)/", output)
        assert match is not None, output
        port = int(match.group(1))
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            conn.connect()
            client_port = conn.sock.getsockname()[1]
            conn.request("GET", "/probe?format=json", headers={"Host": f"127.0.0.1:{port}"})
            response = conn.getresponse()
            info = json.loads(response.read())
        finally:
            conn.close()
    assert response.status == 200
    cgi_vars = info["cgi"]
    assert cgi_vars["REMOTE_PORT"] == str(client_port)
    assert cgi_vars["SERVER_PORT"] == str(port)
    assert (cgi_vars["REMOTE_ADDR"], cgi_vars["SERVER_ADDR"]) == ("127.0.0.1", "127.0.0.1")
    assert cgi_vars["SERVER_NAME"] == "127.0.0.1"
    assert cgi_vars["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert cgi_vars["HTTP_HOST"] == f"127.0.0.1:{port}"


TEST_TOOLS = ("pytest", "hypothesis", "mypy", "ruff", "flask", "flup", "pyuwsgi",
              "uwsgi-tools", "uwsgi_tools", "atheris", "werkzeug")


@pytest.mark.integration
def test_dev_demo_installs_the_package_alone(tmp_path: Path) -> None:
    """``./dev demo`` in a fresh virtualenv (``VENV=``, built by the same script, not
    the repository's .venv): the package and nothing of the test extra."""
    venv_dir = tmp_path / "venv"
    env = {**os.environ, "VENV": str(venv_dir), "PYTHON": sys.executable}
    env.pop("VIRTUAL_ENV", None)
    done = subprocess.run([str(REPO / "dev"), "demo", "--once", "/?format=json"],
                          cwd=REPO, env=env, capture_output=True, timeout=300, check=False,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    assert b'"path_info": "/"' in done.stdout  # the demo ran from that venv
    listed = subprocess.run([str(venv_dir / "bin" / "python"), "-m", "pip", "list",
                             "--format=freeze", "--disable-pip-version-check"],
                            capture_output=True, text=True, timeout=120, check=True)
    installed = {line.split("==")[0].lower() for line in listed.stdout.split()}
    assert "wsgiwire" in installed
    assert installed & set(TEST_TOOLS) == set(), installed
    assert installed <= {"wsgiwire", "pip", "setuptools"}, installed
    scripts = {p.name for p in (venv_dir / "bin").iterdir()}
    assert "wsgiwire" in scripts
    assert not scripts & {"pytest", "mypy", "ruff", "uwsgi", "hypothesis"}
