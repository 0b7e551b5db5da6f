"""wsgiwire's FastCGI backend driven by libfcgi's ``cgi-fcgi`` as a raw client.

``cgi-fcgi -bind -connect ADDR`` turns its own process into one FastCGI request: its
whole environment goes out as the params, ``CONTENT_LENGTH`` bytes of its stdin as
FCGI_STDIN, and it writes the FCGI_STDOUT stream (the CGI-style response, exactly as
the backend framed it) to stdout and FCGI_STDERR to stderr; its exit status is the
FCGI_END_REQUEST appStatus. No web server sits in between, so what the test sees is
what wsgiwire sent.

The backend is ``wsgiwire serve fcgi_apps`` on TCP and on a unix socket. Replies longer
than one TCP segment go through :class:`AlignedRelay`, a byte-for-byte relay that keeps
cgi-fcgi clear of its own bug with record headers split across reads.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import selectors
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

from .servers import LOOPBACK, Stage, WsgiwireBackend, require_binary

pytestmark = pytest.mark.integration

MIB = 1 << 20
RUN_TIMEOUT = 30.0
SCRIPT_NAME = "/cgi-fcgi"


@dataclass
class Backend:
    process: WsgiwireBackend
    connect: str  # what cgi-fcgi -connect takes: HOST:PORT or a socket path
    cgi_fcgi: str
    family: int
    address: str | tuple[str, int]
    run_dir: Path


@dataclass
class Result:
    returncode: int
    head: dict[str, str]  # lower-cased names
    status: int
    body: bytes
    stderr: bytes
    raw: bytes


@pytest.fixture(scope="module", params=["tcp", "unix"])
def backend(
    request: pytest.FixtureRequest, stage: Stage, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Backend]:
    cgi_fcgi = require_binary("cgi-fcgi")
    run_dir = tmp_path_factory.mktemp(f"cgifcgi-{request.param}")
    if request.param == "unix":
        sock = run_dir / "app.sock"
        process = WsgiwireBackend(
            stage, "fcgi_apps", [f"unix:{sock}"], log_path=run_dir / "backend.log"
        )
        with process:
            yield Backend(process, str(sock), cgi_fcgi, socket.AF_UNIX, str(sock), run_dir)
    else:
        process = WsgiwireBackend(
            stage, "fcgi_apps", [f"{LOOPBACK}:0"], log_path=run_dir / "backend.log"
        )
        with process:
            address = (LOOPBACK, process.port)
            connect = f"{LOOPBACK}:{process.port}"
            yield Backend(process, connect, cgi_fcgi, socket.AF_INET, address, run_dir)


class AlignedRelay:
    """Relays one cgi-fcgi connection to the backend, passing the backend's bytes on
    unchanged but cut into 8-byte-aligned sends of at most 8 KiB, over a unix socket.

    Why: cgi-fcgi (libfcgi 2.4.2) cannot read a record header that arrives split across
    two of its 8 KiB reads: ``memcpy(&header + headerLen, ...)`` in cgi-fcgi.c scales the
    offset by the header's size, so the run dies with FCGX_UNSUPPORTED_VERSION (exit 254)
    or silently writes corrupt output. Over a direct TCP connection a segment boundary
    lands inside a header in a few percent of 16 MiB responses. wsgiwire pads every
    record to a multiple of 8, so headers sit at 8-aligned offsets; a unix stream socket
    queues each send of at most 8 KiB as one unit and a read returns 8 KiB or all that is
    queued, so every read then ends on an aligned offset and never cuts a header. The
    relay knows nothing of FastCGI and changes no byte.
    """

    def __init__(self, path: Path, backend: Backend, timeout: float = RUN_TIMEOUT) -> None:
        self.path = path
        self.backend = backend
        self.timeout = timeout
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.thread = threading.Thread(target=self._serve, name="aligned-relay", daemon=True)
        self.error: BaseException | None = None
        self.relayed = 0

    def __enter__(self) -> AlignedRelay:
        self.listener.bind(str(self.path))
        self.listener.listen(1)
        self.listener.settimeout(self.timeout)
        self.thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.listener.close()
        self.thread.join(self.timeout)
        assert not self.thread.is_alive(), "the relay did not finish"
        if self.error is not None and exc is None:
            raise self.error

    def _serve(self) -> None:
        try:
            client, _ = self.listener.accept()
            with client, socket.socket(self.backend.family, socket.SOCK_STREAM) as upstream:
                upstream.settimeout(self.timeout)
                upstream.connect(self.backend.address)
                client.settimeout(self.timeout)
                self._pump(client, upstream)
        except BaseException as exc:  # reported by __exit__
            self.error = exc

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        deadline = time.monotonic() + self.timeout
        pending = bytearray()
        with selectors.DefaultSelector() as selector:
            selector.register(client, selectors.EVENT_READ)
            selector.register(upstream, selectors.EVENT_READ)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("relay: no end of the response in time")
                for key, _ in selector.select(remaining):
                    if key.fileobj is client:
                        data = client.recv(65536)
                        if data:
                            upstream.sendall(data)
                        else:
                            selector.unregister(client)
                        continue
                    data = upstream.recv(65536)
                    pending += data
                    while len(pending) >= 8:
                        size = min(8192, len(pending) & ~7)
                        client.sendall(pending[:size])
                        del pending[:size]
                        self.relayed += size
                    if not data:  # the backend closed: pass the rest on and stop
                        if pending:
                            client.sendall(pending)
                            self.relayed += len(pending)
                        return


def cgi_env(method: str, path_info: bytes | None, query: str = "", **extra: str) -> dict[str, Any]:
    env: dict[str, Any] = {
        "PATH": "/usr/bin:/bin",
        "GATEWAY_INTERFACE": "CGI/1.1",
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": SCRIPT_NAME,
        "QUERY_STRING": query,
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
    }
    if path_info is not None:
        env["PATH_INFO"] = path_info
    env.update(extra)
    return env


def run(
    backend: Backend,
    env: Mapping[str, Any],
    body: bytes = b"",
    *,
    connect: str | None = None,
) -> Result:
    """One request through cgi-fcgi; the environment is exactly ``env``."""
    proc = subprocess.run(
        [backend.cgi_fcgi, "-bind", "-connect", connect or backend.connect],
        env=env,
        input=body,
        capture_output=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    raw = proc.stdout
    head_bytes, sep, content = raw.partition(b"\r\n\r\n")
    assert sep, f"no end of head in {raw[:500]!r}\n{proc.stderr!r}\n{backend.process.output()}"
    head: dict[str, str] = {}
    for line in head_bytes.decode("latin-1").split("\r\n"):
        name, _, value = line.partition(":")
        head[name.strip().lower()] = value.strip()
    return Result(proc.returncode, head, int(head["status"].split()[0]), content, proc.stderr, raw)


def probe(backend: Backend, env: Mapping[str, Any], body: bytes = b"") -> dict[str, Any]:
    result = run(backend, env, body)
    context = f"{result.raw[:2000]!r}\n{result.stderr!r}\n{backend.process.output()}"
    assert (result.returncode, result.status) == (0, 200), context
    assert result.head["content-type"] == "application/json", context
    assert int(result.head["content-length"]) == len(result.body), context
    report: dict[str, Any] = json.loads(result.body)
    assert report["REQUEST_METHOD"] == env["REQUEST_METHOD"]
    return report


# ---------------------------------------------------------------------------------------


def test_get_with_query_string_and_forwarded_environment(backend: Backend) -> None:
    query = "q=1&e=%E4%B8%AD&w=a+b"
    report = probe(backend, cgi_env("GET", b"/x/y", query, HTTP_X_MARKER="from-env"))
    assert (report["SCRIPT_NAME"], report["PATH_INFO"]) == (SCRIPT_NAME, "/x/y")
    assert report["QUERY_STRING"] == query
    assert report["CONTENT_LENGTH"] is None
    assert report["body_length"] == 0
    assert report["http_headers"] == {"HTTP_X_MARKER": "from-env"}  # its environ, as params


def test_non_ascii_path_info_arrives_as_latin1_of_the_bytes(backend: Backend) -> None:
    raw = "/a b/中".encode()
    report = probe(backend, cgi_env("GET", raw, REQUEST_URI=f"{SCRIPT_NAME}/a%20b/%E4%B8%AD"))
    assert report["PATH_INFO_hex"] == raw.hex()
    assert report["PATH_INFO"] == raw.decode("latin-1")
    assert report["SCRIPT_NAME"] == SCRIPT_NAME


def test_path_info_derived_from_percent_encoded_request_uri(backend: Backend) -> None:
    """No PATH_INFO param: it is REQUEST_URI percent-decoded, minus SCRIPT_NAME."""
    raw = "/a b/中".encode()
    report = probe(backend, cgi_env("GET", None, REQUEST_URI=f"{SCRIPT_NAME}/a%20b/%E4%B8%AD?z"))
    assert report["PATH_INFO_hex"] == raw.hex()
    assert report["SCRIPT_NAME"] == SCRIPT_NAME


def test_post_one_mib_body(backend: Backend) -> None:
    body = os.urandom(MIB)
    env = cgi_env(
        "POST", b"/upload", CONTENT_LENGTH=str(MIB), CONTENT_TYPE="application/octet-stream"
    )
    report = probe(backend, env, body)
    assert report["CONTENT_LENGTH"] == str(MIB)
    assert report["CONTENT_TYPE"] == "application/octet-stream"
    assert (report["body_length"], report["body_sha256"]) == (
        MIB,
        hashlib.sha256(body).hexdigest(),
    )


def test_head_sends_no_body_bytes_at_all(backend: Backend) -> None:
    result = run(backend, cgi_env("HEAD", b"/head"))
    assert (result.returncode, result.status) == (0, 200), result.raw
    assert result.head["x-probe-method"] == "HEAD"
    assert int(result.head["content-length"]) > 0  # the length a GET would have
    assert result.body == b""  # not one byte after the head on the wire


def test_head_of_a_streamed_response_sends_no_body(backend: Backend) -> None:
    result = run(backend, cgi_env("HEAD", b"/big/stream"))
    assert (result.returncode, result.status, result.body) == (0, 200, b""), result.raw[:500]


def run_relayed(backend: Backend, env: Mapping[str, Any]) -> Result:
    """:func:`run` through an :class:`AlignedRelay`: for replies of more than one TCP
    segment (about 64 KiB), where cgi-fcgi's split-header bug could strike."""
    relay_path = backend.run_dir / "relay.sock"
    try:
        with AlignedRelay(relay_path, backend) as relay:
            result = run(backend, env, connect=str(relay_path))
    finally:
        relay_path.unlink(missing_ok=True)
    assert relay.relayed > len(result.body)  # every byte went through the relay
    return result


def test_streamed_16_mib_response(backend: Backend, fcgi_stream_body: bytes) -> None:
    result = run_relayed(backend, cgi_env("GET", b"/big/stream"))
    assert (result.returncode, result.status) == (0, 200), result.raw[:500]
    assert "content-length" not in result.head
    assert len(result.body) == len(fcgi_stream_body)
    assert result.body == fcgi_stream_body


def test_wsgi_errors_arrive_on_stderr(backend: Backend) -> None:
    token = secrets.token_hex(8)
    result = run(backend, cgi_env("GET", b"/errors", token))
    assert (result.returncode, result.status, result.body) == (0, 200, b"logged\n")
    assert result.stderr == f"wsgi.errors: {token}\n".encode()


def test_failure_after_the_head_is_a_nonzero_app_status(backend: Backend) -> None:
    """cgi-fcgi exits with FCGI_END_REQUEST's appStatus: the cut response is visible."""
    result = run_relayed(backend, cgi_env("GET", b"/raise-after-head"))
    assert result.status == 200
    assert len(result.body) == 65536  # the one piece sent before the error
    assert result.returncode != 0, result.raw[:300]


def test_params_named_like_wsgi_keys_never_replace_the_servers(backend: Backend) -> None:
    """cgi-fcgi forwards any variable, even one named ``wsgi.errors``: it must not turn
    the server's ``wsgi.*`` keys into strings."""
    env = cgi_env("GET", b"/x")
    env["wsgi.errors"] = "not a stream"
    env["wsgi.input"] = "not a stream"
    report = probe(backend, env)  # the validator-wrapped probe rejects a str stream
    assert report["PATH_INFO"] == "/x"
