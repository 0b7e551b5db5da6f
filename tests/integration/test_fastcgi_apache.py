"""wsgiwire as the FastCGI backend of a real Apache httpd.

Each setup boots ``server-configs/apache/<config>.conf`` once per module, in front of
``apps/apache_app.py``:

* mod_proxy_fcgi to a ``wsgiwire serve`` backend (TCP or a unix socket), at ``/`` and
  at a prefix, with and without ``proxy-fcgi-pathinfo=unescape``;
* mod_fcgid spawning a flup-style ``app.fcgi`` (``WSGIServer(app).run()``, the listening
  socket on fd 0, run as the web server's user) behind an ``.htaccess`` RewriteRule,
  as on shared hosting;
* mod_authnz_fcgi asking a wsgiwire AUTHORIZER before a mod_proxy_fcgi responder.

What Apache sends is asserted as it is (the captures of real servers agree):
without proxy-fcgi-pathinfo, SCRIPT_NAME is the whole decoded path and no PATH_INFO
comes, so wsgiwire's environ has PATH_INFO "" (SCRIPT_NAME + PATH_INFO still name the
path); under mod_fcgid SCRIPT_NAME is ``/app.fcgi`` and PATH_INFO the rewritten path.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pwd
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes

import pytest

from .servers import (
    APPS_DIR,
    CONFIG_ROOT,
    KEEP_RUN_DIRS_ENV,
    LOOPBACK,
    REPO_ROOT,
    ApacheServer,
    ManagedProcess,
    Response,
    Stage,
    free_port,
    render_file,
    require_path,
    server_user,
    wait_for_path,
    wait_for_port,
    world_readable_tempdir,
)

pytestmark = pytest.mark.integration

MIB = 1 << 20
STREAM_SIZE = 16 * MIB
TIMEOUT = 20.0  # per HTTP request: a backend waiting for input that never comes fails fast
LOG_WAIT = 5.0
ENCODED_PATH = "/a%20b/%E4%B8%AD"


def stream_chunk(index: int) -> bytes:
    """The app's streamed body, piece by piece (a copy of ``apache_app.stream_chunk``)."""
    return hashlib.sha256(b"%d" % index).digest() * 2048


def stream_digest(size: int) -> str:
    digest = hashlib.sha256()
    index = 0
    while size > 0:
        chunk = stream_chunk(index)[:size]
        digest.update(chunk)
        size -= len(chunk)
        index += 1
    return digest.hexdigest()


def require_modules(*names: str) -> None:
    ApacheServer.require()
    for name in names:
        require_path(Path(ApacheServer.modules_dir()) / f"mod_{name}.so", f"Apache mod_{name}")


def wait_for_text(process: ManagedProcess, text: str) -> str:
    """The process's output once it contains ``text``, or after LOG_WAIT seconds."""
    deadline = time.monotonic() + LOG_WAIT
    while True:
        output = process.output()
        if text in output or time.monotonic() >= deadline:
            return output
        time.sleep(0.02)


def start_backend(log_dir: Path, bind: str) -> ManagedProcess:
    """``wsgiwire serve apache_app:application`` on ``bind`` (``HOST:PORT`` or ``unix:PATH``)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    argv = [
        sys.executable, "-m", "wsgiwire", "serve", "apache_app:application",
        "--protocol", "fastcgi", "--bind", bind, "--workers", "2",
        # Apache's children ({{USER}}) connect to the unix socket.
        "--socket-mode", "666",
    ]  # fmt: skip
    process = ManagedProcess(argv, log_path=log_dir / "backend.log", env=env, cwd=APPS_DIR)
    process.start()
    try:
        if bind.startswith("unix:"):
            wait_for_path(Path(bind[5:]))
        else:
            host, _, port = bind.rpartition(":")
            wait_for_port(int(port), host=host, process=process)
    except BaseException:
        process.stop()
        raise
    return process


# ---------------------------------------------------------------------------------------
# Setups


@dataclass(frozen=True)
class Setup:
    config: str
    mount: str  # URL prefix ("" at the root)
    backend: str  # "tcp", "unix" (wsgiwire serve) or "fcgid" (Apache spawns app.fcgi)
    split: str  # "whole-path-in-script-name", "pathinfo" or "fcgid-rewrite"
    modules: tuple[str, ...]

    def expected_paths(self, request_path: str) -> tuple[bytes, bytes]:
        """(SCRIPT_NAME, PATH_INFO) as bytes for an HTTP request path (no query)."""
        decoded = unquote_to_bytes(request_path)
        if self.split == "fcgid-rewrite":
            # The rewrite to app.fcgi/$1 decodes the path, then Apache decodes the
            # rewritten URL again.
            return b"/app.fcgi", unquote_to_bytes(decoded)
        if self.split == "pathinfo":
            mount = self.mount.encode()
            assert decoded.startswith(mount)
            return mount, decoded[len(mount) :]
        # Apache sends SCRIPT_NAME=<decoded path> and no PATH_INFO; wsgiwire derives
        # PATH_INFO from REQUEST_URI: "" (a trailing slash moves to PATH_INFO).
        if decoded.endswith(b"/"):
            return decoded[:-1], b"/"
        return decoded, b""


PROXY = ("proxy", "proxy_fcgi")
SETUPS = [
    pytest.param(
        Setup("fastcgi-root", "", "tcp", "whole-path-in-script-name", PROXY),
        id="proxy_fcgi-root",
    ),
    pytest.param(
        Setup("fastcgi-prefix", "/app", "tcp", "whole-path-in-script-name", PROXY),
        id="proxy_fcgi-prefix",
    ),
    pytest.param(
        Setup("fastcgi-root-pathinfo", "", "tcp", "pathinfo", (*PROXY, "setenvif")),
        id="proxy_fcgi-root-pathinfo",
    ),
    pytest.param(
        Setup("fastcgi-prefix-pathinfo", "/app", "unix", "pathinfo", (*PROXY, "setenvif")),
        id="proxy_fcgi-unix-prefix-pathinfo",
    ),
    pytest.param(
        Setup("fcgid-htaccess", "", "fcgid", "fcgid-rewrite", ("fcgid", "rewrite")),
        id="fcgid-htaccess",
    ),
]


@dataclass
class Site:
    setup: Setup
    server: ApacheServer
    backend: ManagedProcess | None

    def logs(self) -> str:
        backend = self.backend.output() if self.backend else ""
        return f"{self.server.error_log_text()}\n--- backend ---\n{backend}"

    def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> Response:
        return self.server.request(method, self.setup.mount + path, headers, body, timeout=TIMEOUT)

    def report(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> dict[str, Any]:
        """Ask the app to describe the request; checks for a clean 200 JSON answer."""
        reply = self.request(method, path, headers, body)
        context = f"{method} {self.setup.mount + path} -> {reply.status}\n{reply.body[:2000]!r}"
        assert reply.status == 200, f"{context}\n{self.logs()}"
        assert reply.header("Content-Type") == "application/json", context
        document: dict[str, Any] = json.loads(reply.body)
        assert document["environ"]["REQUEST_METHOD"] == method
        return document

    def assert_paths(self, document: dict[str, Any], request_path: str) -> None:
        script_name, path_info = self.setup.expected_paths(request_path)
        assert (document["SCRIPT_NAME_hex"], document["PATH_INFO_hex"]) == (
            script_name.hex(),
            path_info.hex(),
        ), (document["environ"]["SCRIPT_NAME"], document["environ"]["PATH_INFO"])


def _cleanup(dirs: list[Path]) -> None:
    if os.environ.get(KEEP_RUN_DIRS_ENV) != "1":
        for directory in dirs:
            shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module", params=SETUPS)
def site(request: pytest.FixtureRequest) -> Iterator[Site]:
    setup: Setup = request.param
    require_modules(*setup.modules)
    work = world_readable_tempdir("wsgiwire-apache-fcgi-")
    try:
        values = {"MOUNT": setup.mount} if setup.mount else {}
        doc_root = None
        backend = None
        if setup.backend == "fcgid":
            # The shared-hosting layout: app.fcgi and .htaccess in the document root;
            # app.fcgi runs as {{USER}}, so it uses the world-readable staged package.
            stage: Stage = request.getfixturevalue("stage")
            doc_root = work / "htdocs"
            doc_root.mkdir(mode=0o755)
            render_file(
                APPS_DIR / "apache_app.fcgi.in",
                doc_root / "app.fcgi",
                {"PYTHON": stage.python, "STAGE_DIR": str(stage.root)},
                mode=0o755,
            )
            render_file(
                CONFIG_ROOT / "apache" / "fcgid-htaccess.htaccess", doc_root / ".htaccess", {}
            )
        elif setup.backend == "unix":
            socket_path = work / "app.sock"
            backend = start_backend(work, f"unix:{socket_path}")
            values["BACKEND"] = str(socket_path)
        else:
            port = free_port()
            backend = start_backend(work, f"{LOOPBACK}:{port}")
            values["BACKEND"] = f"{LOOPBACK}:{port}"
        try:
            with ApacheServer(setup.config, values=values, doc_root=doc_root) as server:
                yield Site(setup, server, backend)
        finally:
            if backend is not None:
                backend.stop()
    finally:
        _cleanup([work])


# ---------------------------------------------------------------------------------------
# Every setup


def test_get_path_and_query(site: Site) -> None:
    document = site.report("GET", "/x/y?q=1&e=%E4%B8%AD&word1+word2")
    environ = document["environ"]
    site.assert_paths(document, site.setup.mount + "/x/y")
    decoded = (environ["SCRIPT_NAME"] + environ["PATH_INFO"]).encode("latin-1")
    if site.setup.split != "fcgid-rewrite":
        assert decoded == (site.setup.mount + "/x/y").encode()
    assert environ["QUERY_STRING"] == "q=1&e=%E4%B8%AD&word1+word2"  # as sent, not decoded
    assert environ["REQUEST_URI"] == site.setup.mount + "/x/y?q=1&e=%E4%B8%AD&word1+word2"
    assert environ["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert environ["SERVER_PORT"] == str(site.server.port)
    assert document["wsgi.url_scheme"] == "http"
    assert document["body_length"] == 0
    if site.setup.backend == "fcgid":
        # mod_fcgid ran app.fcgi as the web server's user, with PATH as its only
        # environment variable (Python adds LC_CTYPE itself under the C locale, PEP 538).
        user, _ = server_user()
        assert document["process"]["uid"] == pwd.getpwnam(user).pw_uid
        assert set(document["process"]["environ_keys"]) <= {"PATH", "LC_CTYPE"}


def test_mount_root_slash(site: Site) -> None:
    site.assert_paths(site.report("GET", "/"), site.setup.mount + "/")


def test_percent_encoded_non_ascii_path(site: Site) -> None:
    document = site.report("GET", ENCODED_PATH)
    site.assert_paths(document, site.setup.mount + ENCODED_PATH)
    environ = document["environ"]
    # PEP 3333: the decoded bytes, as latin-1 native strings.
    path = (environ["SCRIPT_NAME"] + environ["PATH_INFO"]).encode("latin-1")
    assert path.endswith("/a b/中".encode())


def test_encoded_percent_sign_in_path(site: Site) -> None:
    """``%2541`` is decoded once (to ``%41``) by mod_proxy_fcgi, and twice (to ``A``)
    under mod_fcgid behind the RewriteRule, which REDIRECT_URL shows decoded once.
    A later middleware undoes the second decoding; here it is only recorded."""
    document = site.report("GET", "/p%2541/z?a=%2541")
    site.assert_paths(document, site.setup.mount + "/p%2541/z")
    environ = document["environ"]
    assert environ["QUERY_STRING"] == "a=%2541"
    if site.setup.split == "fcgid-rewrite":
        assert environ["PATH_INFO"] == "/pA/z"
        assert environ["REDIRECT_URL"] == "/p%41/z"
        assert environ["SCRIPT_FILENAME"].endswith("/app.fcgi")


def test_post_one_mib_checked_by_sha256(site: Site) -> None:
    body = os.urandom(MIB)
    document = site.report("POST", "/upload", {"Content-Type": "application/octet-stream"}, body)
    environ = document["environ"]
    assert environ["CONTENT_LENGTH"] == str(MIB)
    assert environ["CONTENT_TYPE"] == "application/octet-stream"
    assert document["body_length"] == MIB
    assert document["body_sha256"] == hashlib.sha256(body).hexdigest()


def test_head_sends_no_body(site: Site) -> None:
    path = f"{site.setup.mount}/head?h=1"
    reply = site.server.raw_exchange(
        f"HEAD {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode(),
        timeout=TIMEOUT,
    )
    head, sep, rest = reply.partition(b"\r\n\r\n")
    context = f"{reply!r}\n{site.logs()}"
    assert sep, context
    status_line, *header_lines = head.split(b"\r\n")
    assert status_line.split(b" ")[1] == b"200", context
    fields = (line.partition(b":") for line in header_lines)
    headers = {name.strip().lower(): value.strip() for name, _, value in fields}
    assert headers[b"x-app-method"] == b"HEAD", context  # the app ran, as HEAD
    assert rest == b"", context


def test_sixteen_mib_streamed_response(site: Site) -> None:
    reply = site.request("GET", "/big/stream")
    assert reply.status == 200, site.logs()
    assert reply.header("Content-Type") == "application/octet-stream"
    assert len(reply.body) == STREAM_SIZE
    assert hashlib.sha256(reply.body).hexdigest() == stream_digest(STREAM_SIZE)


# ---------------------------------------------------------------------------------------
# mod_authnz_fcgi: a wsgiwire AUTHORIZER


@dataclass
class AuthzSite:
    server: ApacheServer
    backend: ManagedProcess

    def logs(self) -> str:
        return f"{self.server.error_log_text()}\n--- backend ---\n{self.backend.output()}"

    def get(self, token: str, credentials: str | None) -> Response:
        headers = {}
        if credentials is not None:
            encoded = base64.b64encode(credentials.encode()).decode()
            headers["Authorization"] = f"Basic {encoded}"
        return self.server.request("GET", f"/app/x?t={token}", headers, timeout=TIMEOUT)

    def authorizer_saw(self, token: str) -> dict[str, Any]:
        """What the authorizer logged for the request carrying ``?t=token``."""
        uri = f"/app/x?t={token}"
        output = wait_for_text(self.backend, uri)
        for line in output.splitlines():
            if line.startswith("AUTHORIZER ") and f'"REQUEST_URI": "{uri}"' in line:
                seen: dict[str, Any] = json.loads(line[len("AUTHORIZER ") :])
                return seen
        raise AssertionError(f"the authorizer was not called for {uri}\n{self.logs()}")

    def responder_called(self, token: str) -> bool:
        return f"RESPONDER /app/x?t={token}" in self.backend.output()


@pytest.fixture(scope="module")
def authz() -> Iterator[AuthzSite]:
    require_modules("proxy", "proxy_fcgi", "authn_core", "authz_user", "authnz_fcgi")
    work = world_readable_tempdir("wsgiwire-apache-authz-")
    port = free_port()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    backend = ManagedProcess(
        [sys.executable, str(APPS_DIR / "apache_app.py"), f"{LOOPBACK}:{port}"],
        log_path=work / "backend.log",
        env=env,
    )
    try:
        backend.start()
        wait_for_port(port, process=backend)
        values = {"MOUNT": "/app", "BACKEND": f"{LOOPBACK}:{port}"}
        with ApacheServer("fastcgi-authorizer", values=values) as server:
            yield AuthzSite(server, backend)
    finally:
        try:
            backend.stop()
        finally:
            _cleanup([work])


def test_authorizer_grants_good_credentials_and_variables_reach_the_responder(
    authz: AuthzSite,
) -> None:
    reply = authz.get("good", "alice:secret")
    assert reply.status == 200, f"{reply.body!r}\n{authz.logs()}"
    environ = json.loads(reply.body)["environ"]
    # "Variable-X-Foo: bar" from the authorizer arrives as the param X-Foo=bar.
    assert environ["X-Foo"] == "bar"
    assert environ["AUTHZ_USER"] == "alice"
    assert environ["AUTHZ_ROLE"] == "AUTHORIZER"
    assert environ["AUTHZ_BODY_LENGTH"] == "0"
    assert environ["REMOTE_USER"] == "alice"
    assert "FCGI_ROLE" not in environ  # the protected request is a plain RESPONDER
    seen = authz.authorizer_saw("good")
    assert seen["FCGI_ROLE"] == "AUTHORIZER"
    assert seen["FCGI_APACHE_ROLE"] == "AUTHENTICATOR"
    assert (seen["REMOTE_USER"], seen["REMOTE_PASSWD"], seen["AUTH_TYPE"]) == (
        "alice",
        "secret",
        "Basic",
    )
    # Apache sends no FCGI_STDIN at all to an authorizer; the request ran anyway.
    assert seen["CONTENT_LENGTH"] is None
    assert seen["body_length"] == 0
    assert authz.responder_called("good")


def test_authorizer_denies_bad_credentials(authz: AuthzSite) -> None:
    reply = authz.get("bad", "alice:wrong")
    assert reply.status == 403, f"{reply.body!r}\n{authz.logs()}"
    assert reply.body == b"Denied by the wsgiwire authorizer.\n"  # the authorizer's own body
    seen = authz.authorizer_saw("bad")
    assert (seen["REMOTE_USER"], seen["REMOTE_PASSWD"]) == ("alice", "wrong")
    assert not authz.responder_called("bad")


def test_authorizer_challenges_missing_credentials(authz: AuthzSite) -> None:
    reply = authz.get("none", None)
    assert reply.status == 401, f"{reply.body!r}\n{authz.logs()}"
    assert reply.header("WWW-Authenticate") == 'Basic realm="wsgiwire"'
    assert reply.body == b"Credentials required by the wsgiwire authorizer.\n"
    seen = authz.authorizer_saw("none")
    assert seen["FCGI_ROLE"] == "AUTHORIZER"
    assert (seen["REMOTE_USER"], seen["REMOTE_PASSWD"], seen["AUTH_TYPE"]) == (None, None, None)
    assert not authz.responder_called("none")
