"""`wsgiwire check`: one request per protocol through the app, validated, reported."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from wsgiwire._check import PROTOCOLS, check_app, main

REPO = Path(__file__).resolve().parent.parent

GOOD = """
def app(environ, start_response):
    body = (environ["PATH_INFO"] + "|" + environ["QUERY_STRING"]).encode("latin-1")
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
"""
STR_BODY = """
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return ["not bytes"]
"""
RAISES_AT_IMPORT = """
raise RuntimeError("the app's own import fails")
"""
NOT_CALLABLE = """
app = 42
"""


def write_app(tmp_path: Path, source: str) -> None:
    (tmp_path / "checked_app.py").write_text(textwrap.dedent(source))


def run_check(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wsgiwire", "check", *args],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )


def test_good_app_is_all_good_on_every_protocol(tmp_path: Path) -> None:
    write_app(tmp_path, GOOD)
    done = run_check(tmp_path, "checked_app:app", "--path", "/a%20b/x?q=1")
    assert done.returncode == 0, done.stdout + done.stderr
    for protocol in PROTOCOLS:
        assert f"== {protocol}: 200 OK, 10 body bytes" in done.stdout
    # What the app received is shown: the decoded path and the raw query.
    assert '"PATH_INFO": "/a b/x"' in done.stdout
    assert '"QUERY_STRING": "q=1"' in done.stdout
    assert done.stdout.rstrip().endswith("all good")


def test_a_str_body_is_reported_with_the_validator_complaint(tmp_path: Path) -> None:
    write_app(tmp_path, STR_BODY)
    done = run_check(tmp_path, "checked_app:app", "-p", "fastcgi")
    assert done.returncode == 1
    assert "== fastcgi: 500 Internal Server Error" in done.stdout
    assert "PROBLEM:" in done.stdout and "non-bytestring" in done.stdout
    assert "problems with: fastcgi" in done.stdout


def test_an_app_that_cannot_be_found_is_a_one_line_error(tmp_path: Path) -> None:
    done = run_check(tmp_path, "no_such_module:app")
    assert done.returncode == 2
    assert done.stdout.strip().splitlines() == [
        f"wsgiwire check: cannot import module 'no_such_module' (searched {tmp_path} and "
        "sys.path)"
    ]


def test_a_missing_or_uncallable_attribute_is_named(tmp_path: Path) -> None:
    write_app(tmp_path, NOT_CALLABLE)
    done = run_check(tmp_path, "checked_app:app")
    assert done.returncode == 2
    assert "checked_app:app is not callable" in done.stdout
    done = run_check(tmp_path, "checked_app:nothing")
    assert done.returncode == 2
    assert "has no attribute 'nothing'" in done.stdout


def test_an_import_that_raises_shows_its_traceback(tmp_path: Path) -> None:
    write_app(tmp_path, RAISES_AT_IMPORT)
    done = run_check(tmp_path, "checked_app:app")
    assert done.returncode != 0
    assert "the app's own import fails" in done.stderr


def test_check_app_in_process_reports_what_the_app_saw() -> None:
    results = check_app(None, protocols=["uwsgi"], path="/x?format=json")
    (result,) = results
    assert result.ok, result.problems
    assert result.reply is not None and result.reply.status == 200
    assert result.environ["PATH_INFO"] == "/x"
    assert result.environ["wsgi.url_scheme"] == "http"


def test_main_writes_a_report() -> None:
    out = io.StringIO()
    assert main(None, ["scgi"], "/", out) == 0
    assert out.getvalue().startswith("== scgi: 200 OK")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_large_reply_does_not_deadlock_the_check(tmp_path: Path, protocol: str) -> None:
    write_app(tmp_path, """
        def app(environ, start_response):
            start_response("200 OK", [("Content-Type", "application/octet-stream")])
            return [b"x" * 65536] * 64
    """)
    done = run_check(tmp_path, "checked_app:app", "-p", protocol)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"== {protocol}: 200 OK, {65536 * 64} body bytes" in done.stdout
