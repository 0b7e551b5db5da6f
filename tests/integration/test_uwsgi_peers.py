"""wsgiwire's uwsgi server against real uwsgi peers.

* ``uwsgi_curl`` (pip package uwsgi-tools), a uwsgi *client* written independently of
  wsgiwire, asks wsgiwire's server: status line, headers and body come back right, and
  its exit status says 2xx or not.
* Real uWSGI 2.0 (pyuwsgi) and ``wsgiwire serve --protocol uwsgi`` serve the same app
  (``apps/gw_app.py``) from the same staged dir, and wsgiwire's uwsgi client sends both
  the same requests: the answers must be the same.

What is compared, and what is left out on purpose:

* the status line, whole (``HTTP/1.1 200 OK``: both echo SERVER_PROTOCOL);
* the headers the app set (Content-Type, Content-Length, X-Gw-Custom) and the set of
  header names: neither server adds a header of its own on the uwsgi protocol (no
  Date, no Server), so any extra one is a difference;
* the body, byte for byte, except for the JSON report, which is compared as data (key
  order is the app's own, but a parsed compare says what differs). The report holds
  only request-derived values: SERVER_SOFTWARE, ``wsgi.*`` flags (multithread,
  multiprocess, run_once, file_wrapper and input types), ``uwsgi.*`` keys and the
  process ids legitimately differ between two servers and are not in it;
* HEAD: the status line and headers only: see :func:`test_head`.

Where the two differ on purpose, a test pins the difference: HEAD bodies, modifier1 30,
repeated request headers, and a missing SCRIPT_NAME (uwsgi_curl sends none).
"""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from wsgiwire._client import Reply, build_params, uwsgi_request

from . import _gateway_support as gw
from .servers import Stage

pytestmark = pytest.mark.integration

BLOB_SIZE = 4 * gw.MIB
COMPARED_HEADERS = ("content-type", "content-length", "x-gw-custom")


@pytest.fixture(scope="module")
def blob(tmp_path_factory: pytest.TempPathFactory) -> gw.Blob:
    return gw.make_blob(tmp_path_factory.mktemp("peers-blob"), BLOB_SIZE)


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("peers-logs")


@pytest.fixture(scope="module")
def wsgiwire_uwsgi(stage: Stage, blob: gw.Blob, log_dir: Path) -> Iterator[gw.DirectBackend]:
    with gw.direct_backend(stage, "uwsgi", log_dir, env={gw.FILE_ENV: str(blob.path)}) as running:
        yield running


@pytest.fixture(scope="module")
def real_uwsgi(stage: Stage, blob: gw.Blob, log_dir: Path) -> Iterator[gw.DirectBackend]:
    gw.require_pyuwsgi()
    server = gw.PyUwsgiBackend(stage, log_dir / "uwsgi.log", env={gw.FILE_ENV: str(blob.path)})
    server.start()
    try:
        yield gw.DirectBackend("uwsgi", server, server.port)
    finally:
        server.stop()


# ---------------------------------------------------------------------------------------
# uwsgi_curl -> wsgiwire


@dataclass
class CurlAnswer:
    returncode: int
    status_line: str
    headers: dict[str, str]
    body: str


def uwsgi_curl(port: int, url: str, *options: str) -> CurlAnswer:
    """Run ``uwsgi_curl 127.0.0.1:PORT URL OPTIONS``; it prints the raw response (as
    UTF-8 text, plus a newline) and exits 0 for a 2xx status, else 1."""
    done = subprocess.run(
        [gw.require_uwsgi_curl(), "-t", "10", f"127.0.0.1:{port}", url, *options],
        capture_output=True,
        timeout=30,
        check=False,
    )
    # Bytes: text mode would turn the response's CRLFs into LFs.
    stdout = done.stdout.decode("utf-8")
    head, sep, body = stdout.partition("\r\n\r\n")
    assert sep, f"no head in uwsgi_curl's output: {stdout[:500]!r} {done.stderr[-2000:]!r}"
    status_line, *lines = head.split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return CurlAnswer(done.returncode, status_line, headers, body.removesuffix("\n"))


def test_uwsgi_curl_get(wsgiwire_uwsgi: gw.DirectBackend) -> None:
    # uwsgi_curl sends PATH_INFO as the raw (still percent-encoded) path, as it is.
    answer = uwsgi_curl(wsgiwire_uwsgi.port, "/hello/a%20b?x=1&y=%20z")
    assert answer.returncode == 0, answer
    assert answer.status_line == "HTTP/1.1 200 OK"
    assert answer.headers["content-type"] == "application/json"
    assert int(answer.headers["content-length"]) == len(answer.body.encode())
    report = json.loads(answer.body)
    assert (report["SCRIPT_NAME"], report["PATH_INFO"]) == ("", "/hello/a%20b")
    assert report["QUERY_STRING"] == "x=1&y=%20z"
    assert report["REQUEST_METHOD"] == "GET"


def test_uwsgi_curl_error_status_and_headers(wsgiwire_uwsgi: gw.DirectBackend) -> None:
    # uwsgi_curl makes HTTP_ + NAME.upper() without turning "-" into "_": name the
    # headers with underscores so they arrive as HTTP_X_GW_*.
    answer = uwsgi_curl(
        wsgiwire_uwsgi.port, "/missing", "-H", "X_Gw_Action: status", "-H",
        "X_Gw_Status: 404 Not Found",
    )  # fmt: skip
    assert answer.returncode == 1  # not 2xx
    assert answer.status_line == "HTTP/1.1 404 Not Found"
    assert answer.headers["x-gw-custom"] == "yes"
    assert answer.body == "status 404 Not Found\n"


def test_uwsgi_curl_post_without_content_length(
    wsgiwire_uwsgi: gw.DirectBackend, real_uwsgi: gw.DirectBackend
) -> None:
    """uwsgi_curl sends a ``-d`` body but no CONTENT_LENGTH: both servers see no body
    (uwsgi frames the body by CONTENT_LENGTH only) and answer at once.

    uwsgi_curl sends no SCRIPT_NAME either: uWSGI leaves it out of the environ (PEP 3333
    allows that for an empty value), wsgiwire sets it to "" (as CGI servers do). That
    is the one difference in the reports."""
    answers = [
        uwsgi_curl(backend.port, "/post", "-X", "POST", "-d", "hello")
        for backend in (wsgiwire_uwsgi, real_uwsgi)
    ]
    reports = [json.loads(answer.body) for answer in answers]
    assert reports[0]["body_length"] == 0
    assert reports[0]["REQUEST_METHOD"] == "POST"
    assert answers[0].status_line == answers[1].status_line == "HTTP/1.1 200 OK"
    assert (reports[0]["missing_keys"], reports[1]["missing_keys"]) == ([], ["SCRIPT_NAME"])
    del reports[0]["missing_keys"], reports[1]["missing_keys"]
    assert reports[0] == reports[1]


# ---------------------------------------------------------------------------------------
# The same requests to real uWSGI and to wsgiwire


@dataclass(frozen=True)
class Case:
    path: str
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    script_name: str = ""
    json: bool = True  # the answer is gw_app's report


ONE_MIB = random.Random(7).randbytes(gw.MIB)

CASES = {
    "get-query": Case(f"/hello?{gw.QUERY}"),
    "encoded-path": Case(gw.ENCODED_PATH),
    "script-name": Case("/app/x/y", script_name="/app"),
    "post-1mib": Case("/upload", "POST", (("Content-Type", "application/octet-stream"),), ONE_MIB),
    "post-empty": Case("/upload", "POST"),
    "x-headers": Case("/h", headers=(("X-Gw-One", "1"), ("X-Gw-Two", "a, b"))),
    "status-404": Case(
        "/s", headers=(("X-Gw-Action", "status"), ("X-Gw-Status", "404 Not Found")), json=False
    ),
    "status-custom": Case(
        "/s", headers=(("X-Gw-Action", "status"), ("X-Gw-Status", "299 Odd But Fine")), json=False
    ),
    "stream-no-length": Case("/stream", headers=(("X-Gw-Action", "stream"),), json=False),
    "write-callable": Case("/write", headers=(("X-Gw-Action", "write"),), json=False),
    "file-wrapper": Case("/file", headers=(("X-Gw-Action", "file"),), json=False),
    "unknown-action": Case("/x", headers=(("X-Gw-Action", "nope"),), json=False),
}


def ask(backend: gw.DirectBackend, case: Case) -> Reply:
    return backend.send(
        case.path,
        method=case.method,
        headers=case.headers,
        body=case.body,
        script_name=case.script_name,
    )


def header_view(reply: Reply) -> dict[str, Any]:
    names = sorted(name.lower() for name, _ in reply.headers)
    values = {name: reply.header(name) for name in COMPARED_HEADERS}
    return {"names": names, **values}


def status_line(reply: Reply) -> bytes:
    return reply.raw.split(b"\r\n", 1)[0]


@pytest.mark.parametrize("name", list(CASES))
def test_same_answer_as_real_uwsgi(
    name: str, wsgiwire_uwsgi: gw.DirectBackend, real_uwsgi: gw.DirectBackend
) -> None:
    case = CASES[name]
    ours, theirs = ask(wsgiwire_uwsgi, case), ask(real_uwsgi, case)
    context = f"wsgiwire: {ours.raw[:600]!r}\nuWSGI: {theirs.raw[:600]!r}"
    assert status_line(ours) == status_line(theirs), context
    assert header_view(ours) == header_view(theirs), context
    if case.json:
        assert ours.status == 200, context
        assert json.loads(ours.body) == json.loads(theirs.body), context
    else:
        assert len(ours.body) == len(theirs.body), context
        assert hashlib.sha256(ours.body).digest() == hashlib.sha256(theirs.body).digest()


def test_file_wrapper_body_is_the_file(wsgiwire_uwsgi: gw.DirectBackend, blob: gw.Blob) -> None:
    reply = ask(wsgiwire_uwsgi, CASES["file-wrapper"])
    assert (len(reply.body), hashlib.sha256(reply.body).hexdigest()) == (blob.size, blob.sha256)


def test_head(wsgiwire_uwsgi: gw.DirectBackend, real_uwsgi: gw.DirectBackend) -> None:
    """Same status line and headers for HEAD. The body is where they part: wsgiwire
    sends none (PEP 3333 servers drop it; nginx would drop it anyway), uWSGI passes
    the app's body through and leaves the web server to drop it."""
    case = Case("/head", "HEAD")
    ours, theirs = ask(wsgiwire_uwsgi, case), ask(real_uwsgi, case)
    context = f"wsgiwire: {ours.raw[:600]!r}\nuWSGI: {theirs.raw[:600]!r}"
    assert status_line(ours) == status_line(theirs) == b"HTTP/1.1 200 OK", context
    assert header_view(ours) == header_view(theirs), context
    assert ours.body == b"", context
    assert json.loads(theirs.body)["REQUEST_METHOD"] == "HEAD", context


def test_modifier1_30_is_where_wsgiwire_and_uwsgi_differ(
    wsgiwire_uwsgi: gw.DirectBackend, real_uwsgi: gw.DirectBackend
) -> None:
    """nginx ``uwsgi_modifier1 30`` with ``uwsgi_param SCRIPT_NAME /app`` sends PATH_INFO
    ``/app/x/y``. wsgiwire strips SCRIPT_NAME from it, as the modifier asks; uWSGI 2.0.30
    ignores the modifier and leaves the prefix in PATH_INFO (a documented difference:
    the Flask-docs recipe works on wsgiwire, not on current uWSGI)."""
    target = wsgiwire_uwsgi.target("/app/x/y")
    params = [
        *(p for p in build_params(target) if p[0] not in (b"SCRIPT_NAME", b"PATH_INFO")),
        (b"PATH_INFO", b"/app/x/y"),
        (b"SCRIPT_NAME", b"/app"),
    ]
    reports = {}
    for name, backend in (("wsgiwire", wsgiwire_uwsgi), ("uWSGI", real_uwsgi)):
        reply = uwsgi_request(backend.target("/app/x/y"), params, modifier1=30, timeout=10)
        assert reply.status == 200, f"{name}: {reply.raw[:500]!r}"
        report = json.loads(reply.body)
        reports[name] = (report["SCRIPT_NAME"], report["PATH_INFO"])
    assert reports == {"wsgiwire": ("/app", "/x/y"), "uWSGI": ("/app", "/app/x/y")}


def test_repeated_header_is_where_wsgiwire_and_uwsgi_differ(
    wsgiwire_uwsgi: gw.DirectBackend, real_uwsgi: gw.DirectBackend
) -> None:
    """nginx sends a repeated request header as repeated HTTP_* variables. wsgiwire joins
    them (", "; "; " for Cookie), as Apache and lighttpd do before sending; uWSGI keeps
    only the last one (a documented difference: nothing is lost on wsgiwire)."""
    case = Case("/h", headers=(("X-Gw-Dup", "a"), ("X-Gw-Dup", "b")))
    ours, theirs = ask(wsgiwire_uwsgi, case), ask(real_uwsgi, case)
    assert json.loads(ours.body)["x_headers"] == {"HTTP_X_GW_DUP": "a, b"}
    assert json.loads(theirs.body)["x_headers"] == {"HTTP_X_GW_DUP": "b"}
