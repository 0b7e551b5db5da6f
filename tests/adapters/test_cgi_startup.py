"""A CGI process imports only what its request needs (``wsgiwire.adapters.cgi.run``).

Each case runs a real ``.cgi``-style script in a fresh interpreter with a CGI
environment; after ``run(app)`` the script reports which of the heavy modules are in
``sys.modules``. A good GET and a good POST must load none of them; the control
cases (an app that fails, a body past the spool threshold) must load exactly the one
they need, which shows the probe sees an import when there is one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("logging", "tempfile", "dataclasses", "inspect", "typing", "re", "enum",
         "traceback", "urllib.parse", "threading", "contextlib")

SCRIPT = textwrap.dedent(
    """
    import sys  # not json: it imports re
    from wsgiwire.adapters.cgi import run
    from wsgiwire._limits import Limits

    def app(environ, start_response):
        if environ["PATH_INFO"] == "/fail":
            raise RuntimeError("the app failed")
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(body) + 5))])
        return [b"hello", body]

    ok = run(app, limits=Limits(spool_threshold=1024))
    loaded = [m for m in sys.argv[1].split(",") if m in sys.modules]
    print("ok=%s loaded=%s" % (ok, ",".join(loaded)), file=sys.stderr)
    """
)


def run_cgi(tmp_path: Path, path: str, body: bytes = b"",
            method: str = "GET") -> tuple[bytes, dict[str, object]]:
    script = tmp_path / "app.cgi"
    script.write_text(SCRIPT)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO),
        "GATEWAY_INTERFACE": "CGI/1.1", "REQUEST_METHOD": method, "SCRIPT_NAME": "/app.cgi",
        "PATH_INFO": path, "QUERY_STRING": "a=%20b", "REQUEST_URI": f"/app.cgi{path}?a=%20b",
        "SERVER_NAME": "localhost", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_SOFTWARE": "Apache/2.4", "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "localhost", "HTTP_USER_AGENT": "test",
    }
    if body:
        env["CONTENT_LENGTH"] = str(len(body))
        env["CONTENT_TYPE"] = "application/octet-stream"
    done = subprocess.run([sys.executable, "-S", str(script), ",".join(HEAVY)], input=body,
                          capture_output=True, env=env, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    last = done.stderr.decode().strip().splitlines()[-1]
    ok, _, loaded = last.partition(" loaded=")
    return done.stdout, {"ok": ok == "ok=True", "loaded": [m for m in loaded.split(",") if m]}


@pytest.mark.parametrize(("method", "body"), [("GET", b""), ("POST", b"x" * 1000)],
                         ids=["get", "post"])
def test_a_good_request_imports_nothing_heavy(tmp_path: Path, method: str, body: bytes) -> None:
    out, report = run_cgi(tmp_path, "/hello", body, method)
    assert out.startswith(b"Status: 200 OK\r\n"), out[:200]
    assert out.endswith(b"\r\n\r\nhello" + body)
    assert report == {"ok": True, "loaded": []}


def test_the_probe_sees_imports_when_a_request_needs_them(tmp_path: Path) -> None:
    out, report = run_cgi(tmp_path, "/fail")
    assert out.startswith(b"Status: 500 ")
    assert "logging" in report["loaded"]  # the failure is logged
    out, report = run_cgi(tmp_path, "/big", b"y" * 4096, "POST")  # past the spool threshold
    assert out.endswith(b"hello" + b"y" * 4096)
    assert "tempfile" in report["loaded"]
    assert "logging" not in report["loaded"]
