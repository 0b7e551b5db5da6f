"""Helpers for the deploy tests (``test_deploy_frontends.py``, ``test_deploy_snippets.py``).

* :func:`self_signed`: a certificate for ``127.0.0.1`` and ``example.test`` made with
  the ``openssl`` CLI (no network), for front ends that terminate TLS;
* :func:`http`: one HTTP/1.1 request (plain or TLS, verified against that
  certificate), headers as a list so a name can repeat;
* :class:`Checks`: what every deployment of ``apps/deploy_app.py`` must answer: the
  request set (mount, query, 1 MiB body, chunked body, HEAD, duplicate Cookie
  headers, httpoxy), and Flask's and Django's view of the host, port and scheme,
  with a Django form POST carrying ``Origin`` through CSRF.
"""

from __future__ import annotations

import hashlib
import http.client as httpclient
import json
import random
import ssl
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from .servers import LOOPBACK, Response, require_binary

APP = "deploy_app:app"
BIG_BODY = random.Random(0x20).randbytes(1024 * 1024)
CHUNKS = [random.Random(i).randbytes(10_000 + i) for i in range(40)]
# HAProxy 2.6 sends a chunked body over FastCGI only when it fits its buffer (16 KiB).
SMALL_CHUNKS = [random.Random(i).randbytes(1000 + i) for i in range(12)]


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path
    pem: Path  # certificate and key in one file (HAProxy)


def self_signed(directory: Path) -> Certificate:
    openssl = require_binary("openssl")
    cert, key, pem = directory / "cert.pem", directory / "key.pem", directory / "both.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:example.test"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    pem.write_bytes(cert.read_bytes() + key.read_bytes())
    for path in (cert, key, pem):
        path.chmod(0o644)  # servers that drop privileges read them (a test key only)
    return Certificate(cert, key, pem)


def http(
    method: str,
    target: str,
    *,
    port: int,
    headers: Sequence[tuple[str, str]] = (),
    body: bytes | Iterable[bytes] | None = None,
    tls: Certificate | None = None,
    host: str = LOOPBACK,
    timeout: float = 30.0,
) -> Response:
    """One request; ``target`` goes on the wire as given. Bytes go with Content-Length,
    another iterable chunked. Without a Host header in ``headers``: ``host:port``."""
    if tls is not None:
        context = ssl.create_default_context(cafile=str(tls.cert))
        conn: httpclient.HTTPConnection = httpclient.HTTPSConnection(
            host, port, timeout=timeout, context=context
        )
    else:
        conn = httpclient.HTTPConnection(host, port, timeout=timeout)
    try:
        names = {name.lower() for name, _ in headers}
        conn.putrequest(method, target, skip_host="host" in names, skip_accept_encoding=True)
        pairs = list(headers)
        if isinstance(body, bytes):
            pairs.append(("Content-Length", str(len(body))))
        elif body is not None:
            pairs.append(("Transfer-Encoding", "chunked"))
        for name, value in pairs:
            conn.putheader(name, value)
        conn.endheaders()
        if isinstance(body, bytes):
            conn.send(body)
        elif body is not None:
            for chunk in body:
                conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            conn.send(b"0\r\n\r\n")
        reply = conn.getresponse()
        return Response(reply.status, reply.getheaders(), reply.read())
    finally:
        conn.close()


def report(reply: Response, context: str) -> dict[str, Any]:
    status, _, data = reply
    assert status == 200, f"{status} {data[:800]!r}\n{context}"
    parsed: dict[str, Any] = json.loads(data)
    return parsed


@dataclass
class Checks:
    """The checks for one front end serving ``deploy_app`` at ``mount`` on ``port``.

    ``logs`` gives the server's and the backend's logs for failure messages.
    """

    port: int
    mount: str
    logs: Any  # () -> str
    tls: Certificate | None = None
    tls_port: int = 0

    def get(self, target: str, **kw: Any) -> Response:
        return http("GET", target, port=self.port, **kw)

    def echo(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        return report(http(method, self.mount + path, port=self.port, **kw), self.logs())

    # -- the request set --------------------------------------------------------------

    def path_and_query(self) -> None:
        got = self.echo("GET", "/x/a%20b?q=1&r=%C3%A9")
        assert (got["SCRIPT_NAME"], got["PATH_INFO"], got["QUERY_STRING"]) == (
            self.mount, "/x/a b", "q=1&r=%C3%A9"), got
        assert got["wsgi.url_scheme"] == "http" and got["REQUEST_METHOD"] == "GET", got

    def big_body(self) -> None:
        got = self.echo("POST", "/up", body=BIG_BODY,
                        headers=[("Content-Type", "application/octet-stream")])
        assert (got["body_length"], got["body_sha256"]) == (
            len(BIG_BODY), hashlib.sha256(BIG_BODY).hexdigest()), got

    def chunked_body(self, chunks: Sequence[bytes] = CHUNKS) -> dict[str, Any]:
        whole = b"".join(chunks)
        got = self.echo("POST", "/chunked", body=iter(chunks),
                        headers=[("Content-Type", "application/octet-stream")])
        assert (got["body_length"], got["body_sha256"]) == (
            len(whole), hashlib.sha256(whole).hexdigest()), got
        return got

    def head(self) -> None:
        reply = http("HEAD", self.mount + "/x", port=self.port)
        assert reply.status == 200 and reply.body == b"", (reply, self.logs())
        assert reply.header("Content-Type") == "application/json"

    def duplicate_cookies(self) -> str:
        got = self.echo("GET", "/c", headers=[("Cookie", "a=1"), ("Cookie", "b=2")])
        cookie: str = got["HTTP_COOKIE"]
        # Both values reach the app whatever the front end does with two headers.
        assert "a=1" in cookie and "b=2" in cookie, got
        return cookie

    def httpoxy(self) -> None:
        got = self.echo("GET", "/p", headers=[("Proxy", "http://evil.example:3128/")])
        assert "HTTP_PROXY" not in got, got

    def tls_scheme(self) -> None:
        assert self.tls is not None
        reply = http("GET", self.mount + "/flask/url", port=self.tls_port, tls=self.tls)
        got = report(reply, self.logs())
        assert got["external"] == (
            f"https://127.0.0.1:{self.tls_port}{self.mount}/flask/url"), got
        got = report(http("GET", self.mount + "/x", port=self.tls_port, tls=self.tls),
                     self.logs())
        assert got["wsgi.url_scheme"] == "https", got

    # -- host, port and scheme as the frameworks see them -----------------------------

    def frameworks_see_the_port(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        port = port or self.port
        authority = host if port == 80 else f"{host}:{port}"
        headers = [("Host", authority)]
        got = report(self.get(self.mount + "/flask/url", headers=headers), self.logs())
        assert got["external"] == f"http://{authority}{self.mount}/flask/url", got
        got = report(self.get(self.mount + "/django/abs?q=1", headers=headers), self.logs())
        assert got["absolute"] == f"http://{authority}{self.mount}/django/abs?q=1", got
        got = self.echo("GET", "/h", headers=headers)
        assert got["HTTP_HOST"] == authority, got

    def django_csrf_with_origin(self) -> None:
        origin = f"http://127.0.0.1:{self.port}"
        form = self.mount + "/django/form"
        reply = self.get(form)
        token = report(reply, self.logs())["token"]
        cookies = SimpleCookie()
        for name, value in reply.headers:
            if name.lower() == "set-cookie":
                cookies.load(value)
        cookie = f"csrftoken={cookies['csrftoken'].value}"
        body = urlencode({"csrfmiddlewaretoken": token, "field": "v"}).encode()
        headers = [("Cookie", cookie), ("Origin", origin),
                   ("Content-Type", "application/x-www-form-urlencoded")]
        ok = http("POST", form, port=self.port, headers=headers, body=body)
        assert report(ok, self.logs()) == {"posted": "v"}
        # The check is live: another origin is refused.
        bad = [(n, "http://evil.example" if n == "Origin" else v) for n, v in headers]
        refused = http("POST", form, port=self.port, headers=bad, body=body)
        assert refused.status == 403, refused

    def absolute_form_never_uses_the_host_header(self) -> None:
        """``GET http://a.test/ HTTP/1.1`` with ``Host: b.test``: ``b.test`` never
        reaches HTTP_HOST (the front end uses the target's host, or refuses)."""
        reply = http("GET", f"http://a.test{self.mount}/abs", port=self.port,
                     headers=[("Host", "b.test")])
        if reply.status == 200:
            got = json.loads(reply.body)
            assert "b.test" not in got.get("HTTP_HOST", ""), got
            assert got["HTTP_HOST"].partition(":")[0] == "a.test", got
        else:
            assert reply.status == 400, reply
