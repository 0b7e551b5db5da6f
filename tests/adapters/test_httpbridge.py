"""``HTTPBridge``: HTTP on loopback relayed to a FastCGI backend (``wsgiwire demo``).

The backend is an in-process ``Worker`` (see ``test_runtime_inprocess.running``) on a unix
socket or TCP; the client is ``http.client``. The bridge answers what the app answered
(status, reason, headers, body), passes the request body and headers through, and says
502 when the backend cannot be reached.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from wsgiref.validate import validator

import pytest

from tests.adapters.test_runtime_inprocess import Served, StartResponse, read_all, running
from wsgiwire.adapters._httpbridge import HTTPBridge

TIMEOUT = 10.0


def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
    body = read_all(environ["wsgi.input"])
    if environ["PATH_INFO"] == "/missing":
        payload = b"not here"
        start_response("404 Nope", [("Content-Type", "text/plain"),
                                    ("Content-Length", str(len(payload)))])
        return [payload]
    payload = json.dumps({
        "method": environ["REQUEST_METHOD"],
        "path_info": environ["PATH_INFO"],
        "query": environ["QUERY_STRING"],
        "content_type": environ.get("CONTENT_TYPE", ""),
        "probe": environ.get("HTTP_X_PROBE"),
        "body_sha256": hashlib.sha256(body).hexdigest(),
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(payload))),
                              ("X-App", "yes")])
    return [payload]


@contextlib.contextmanager
def bridge_to(backend: str | tuple[str, int]) -> Iterator[HTTPBridge]:
    bridge = HTTPBridge(("127.0.0.1", 0), backend)
    thread = bridge.start()
    try:
        yield bridge
    finally:
        bridge.shutdown()
        bridge.server_close()
        thread.join(TIMEOUT)
    assert not thread.is_alive()


@pytest.fixture
def unix_backend() -> Iterator[Served]:
    with tempfile.TemporaryDirectory(prefix="ww-br-", dir="/tmp") as run_dir, \
            running(validator(app), bind=f"unix:{run_dir}/backend.sock") as served:
        yield served


def fetch(bridge: HTTPBridge, method: str, path: str, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[http.client.HTTPResponse, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", bridge.server_port, timeout=TIMEOUT)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response, response.read()
    finally:
        conn.close()


def test_get_through_the_bridge(unix_backend: Served) -> None:
    with bridge_to(unix_backend.address) as bridge:
        response, body = fetch(bridge, "GET", "/hello/world?x=1&y=2", headers={"X-Probe": "p"})
    assert (response.status, response.reason) == (200, "OK")
    assert response.getheader("X-App") == "yes"
    assert response.getheader("Content-Type") == "application/json"
    assert json.loads(body) == {
        "method": "GET", "path_info": "/hello/world", "query": "x=1&y=2",
        "content_type": "", "probe": "p", "body_sha256": hashlib.sha256(b"").hexdigest(),
    }


def test_post_through_the_bridge(unix_backend: Served) -> None:
    payload = bytes(range(256)) * 1000
    with bridge_to(unix_backend.address) as bridge:
        response, body = fetch(bridge, "POST", "/upload", body=payload,
                              headers={"Content-Type": "application/octet-stream"})
    assert response.status == 200
    info = json.loads(body)
    assert (info["method"], info["content_type"]) == ("POST", "application/octet-stream")
    assert info["body_sha256"] == hashlib.sha256(payload).hexdigest()


def test_app_status_and_reason_are_relayed(unix_backend: Served) -> None:
    with bridge_to(unix_backend.address) as bridge:
        response, body = fetch(bridge, "GET", "/missing")
        head, head_body = fetch(bridge, "HEAD", "/hello")
    assert (response.status, response.reason, body) == (404, "Nope", b"not here")
    assert head.status == 200
    assert head_body == b""


def test_tcp_backend() -> None:
    with running(validator(app)) as served, bridge_to(served.address) as bridge:
        response, body = fetch(bridge, "GET", "/over/tcp")
    assert response.status == 200
    assert json.loads(body)["path_info"] == "/over/tcp"


def test_dead_backend_gives_502() -> None:
    with tempfile.TemporaryDirectory(prefix="ww-br-", dir="/tmp") as run_dir:
        missing = str(Path(run_dir) / "nothing.sock")
        with bridge_to(missing) as bridge:
            response, body = fetch(bridge, "GET", "/x")
            again, _ = fetch(bridge, "POST", "/y", body=b"data")
    assert (response.status, response.reason) == (502, "Bad Gateway")
    assert b"cannot connect" in body
    assert again.status == 502  # the bridge itself keeps going
