"""A client for the gateway protocols: ask a backend exactly what a web server would.

``wsgiwire request fastcgi://127.0.0.1:9000/path`` uses it; so do the tests.
It builds the CGI parameters nginx would send for an HTTP request, speaks the
protocol over TCP or a unix socket, and returns what the backend answered,
byte for byte (the tool for "premature end of script headers").

Targets: ``fastcgi://HOST:PORT/path?query``, ``fastcgi+unix:///run/app.sock/path``
(the socket path ends at the first existing socket file, or at ``.sock``);
``scgi://`` and ``uwsgi://`` take the same forms.
"""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes, urlsplit

from ._errors import LocalProtocolError, ProtocolError
from ._events import NEED_DATA, ConnectionClosed, Role
from .protocols import _uwsgi as uwsgi
from .protocols._fastcgi import (
    EndRequest,
    FastCGIClient,
    StderrData,
    StdoutData,
    UnknownTypeResult,
    ValuesResult,
)
from .protocols._scgi import encode_request as encode_scgi

__all__ = [
    "ClientError",
    "FastCGIRecords",
    "Reply",
    "Target",
    "build_params",
    "encode_scgi",
    "encode_uwsgi",
    "fastcgi_get_values",
    "fastcgi_request",
    "parse_head",
    "parse_target",
    "scgi_request",
    "send_request",
    "uwsgi_request",
]

Pairs = list[tuple[bytes, bytes]]


class ClientError(Exception):
    """The backend could not be reached or answered something unreadable."""


@dataclass(frozen=True)
class Target:
    protocol: str  # "fastcgi", "scgi", "uwsgi"
    family: int
    address: str | tuple[str, int]
    path: str  # percent-encoded, as it would appear in REQUEST_URI
    query: str

    def connect(self, timeout: float) -> socket.socket:
        sock = socket.socket(self.family, socket.SOCK_STREAM)
        if self.family != socket.AF_UNIX:
            # Requests go out in a few writes; don't let Nagle hold them back.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(timeout)
        try:
            sock.connect(self.address)
        except OSError as exc:
            sock.close()
            reason = exc.strerror or str(exc)
            raise ClientError(f"cannot connect to {self.address!r}: {reason}") from None
        return sock


def parse_target(url: str) -> Target:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    protocol, _, transport = scheme.partition("+")
    if protocol not in ("fastcgi", "fcgi", "scgi", "uwsgi"):
        raise ClientError(f"unknown protocol {parts.scheme!r}: use fastcgi://, scgi:// or uwsgi://")
    protocol = "fastcgi" if protocol == "fcgi" else protocol
    if transport == "unix":
        sock_path, rest = _split_socket_path(parts.path)
        return Target(protocol, socket.AF_UNIX, sock_path, rest or "/", parts.query)
    if transport:
        raise ClientError(f"unknown transport {transport!r} in {parts.scheme!r}")
    host = parts.hostname or "127.0.0.1"
    try:
        port = parts.port
    except ValueError:
        raise ClientError(f"bad port in {url!r}") from None
    if port is None:
        raise ClientError(f"{url!r} needs a port")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return Target(protocol, family, (host, port), parts.path or "/", parts.query)


def _split_socket_path(path: str) -> tuple[str, str]:
    segments = path.split("/")
    for i in range(2, len(segments) + 1):
        candidate = "/".join(segments[:i])
        try:
            if stat.S_ISSOCK(os.stat(candidate).st_mode):
                return candidate, "/".join(["", *segments[i:]])
        except OSError:
            pass
        if candidate.endswith(".sock"):
            return candidate, "/".join(["", *segments[i:]])
    return path, "/"


def build_params(
    target: Target,
    *,
    method: str = "GET",
    headers: Sequence[tuple[str, str]] = (),
    body_length: int | None = 0,
    script_name: str = "",
    extra: Sequence[tuple[str, str]] = (),
) -> Pairs:
    """The parameters nginx's stock ``fastcgi_params`` would send for this request."""
    raw_path = target.path
    decoded = unquote_to_bytes(raw_path)
    script = script_name.encode("latin-1")
    path_info = decoded[len(script) :] if script and decoded.startswith(script) else decoded
    request_uri = raw_path + (f"?{target.query}" if target.query else "")
    pairs: Pairs = [
        (b"GATEWAY_INTERFACE", b"CGI/1.1"),
        (b"SERVER_SOFTWARE", b"wsgiwire-client"),
        (b"REQUEST_METHOD", method.encode("latin-1")),
        (b"REQUEST_URI", request_uri.encode("latin-1")),
        (b"QUERY_STRING", target.query.encode("latin-1")),
        (b"SCRIPT_NAME", script),
        (b"PATH_INFO", path_info),
        (b"SERVER_PROTOCOL", b"HTTP/1.1"),
        (b"SERVER_NAME", b"localhost"),
        (b"SERVER_PORT", b"80"),
        (b"REMOTE_ADDR", b"127.0.0.1"),
        (b"REMOTE_PORT", b"0"),
        (b"CONTENT_LENGTH", b"" if body_length is None else str(body_length).encode()),
    ]
    if target.protocol == "scgi":
        # SCGI requires CONTENT_LENGTH first and SCGI=1.
        pairs.insert(0, pairs.pop())
        pairs.insert(1, (b"SCGI", b"1"))
    for name, value in headers:
        key = name.upper().replace("-", "_")
        if key == "CONTENT_TYPE":
            pairs.append((b"CONTENT_TYPE", value.encode("latin-1")))
        elif key != "CONTENT_LENGTH":
            pairs.append((b"HTTP_" + key.encode("latin-1"), value.encode("latin-1")))
    if not any(name.lower() == "host" for name, _ in headers):
        pairs.append((b"HTTP_HOST", b"localhost"))
    pairs.extend((k.encode("latin-1"), v.encode("latin-1")) for k, v in extra)
    return pairs


@dataclass
class Reply:
    """What the backend sent: the raw response and, for FastCGI, its records' meta."""

    raw: bytes
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    stderr: bytes = b""
    app_status: int | None = None
    protocol_status: int | None = None
    closed_by_backend: bool = False
    extra: dict[str, object] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        lname = name.lower()
        for key, value in self.headers:
            if key.lower() == lname:
                return value
        return None


class FastCGIRecords:
    """One FastCGI reply as its records arrive: FCGI_STDOUT, FCGI_STDERR, FCGI_END_REQUEST."""

    def __init__(self) -> None:
        self.stdout: list[bytes] = []
        self.stderr: list[bytes] = []
        self.end: EndRequest | None = None

    def collect(self, codec: FastCGIClient) -> None:
        """Take every event the codec can give now (raises its ``ProtocolError``)."""
        while True:
            event = codec.next_event()
            if event is NEED_DATA or isinstance(event, ConnectionClosed):
                return
            if isinstance(event, StdoutData):
                self.stdout.append(event.data)
            elif isinstance(event, StderrData):
                self.stderr.append(event.data)
            elif isinstance(event, EndRequest):
                self.end = event

    def reply(self, closed_by_backend: bool = False) -> Reply:
        """The reply so far; ``app_status`` and ``protocol_status`` are None without
        FCGI_END_REQUEST."""
        raw = b"".join(self.stdout)
        status, reason, headers, content = parse_head(raw) if raw else (0, "", [], b"")
        end = self.end
        return Reply(
            raw=raw,
            status=status,
            reason=reason,
            headers=headers,
            body=content,
            stderr=b"".join(self.stderr),
            app_status=end.app_status if end is not None else None,
            protocol_status=end.protocol_status if end is not None else None,
            closed_by_backend=closed_by_backend,
        )


def parse_head(raw: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
    """Split a CGI-style (``Status:``) or HTTP-style response into status, headers, body."""
    end = raw.find(b"\r\n\r\n")
    sep = 4
    if end < 0:
        end = raw.find(b"\n\n")
        sep = 2
    if end < 0:
        raise ClientError(f"no end of headers in the response: {raw[:200]!r}")
    head = raw[:end].decode("latin-1")
    body = raw[end + sep :]
    lines = head.replace("\r\n", "\n").split("\n")
    status, reason = 200, "OK"
    headers: list[tuple[str, str]] = []
    if lines and lines[0].startswith("HTTP/"):
        _, _, rest = lines.pop(0).partition(" ")
        code, _, reason = rest.partition(" ")
        status = int(code)
    for line in lines:
        name, _, value = line.partition(":")
        value = value.strip()
        if name.lower() == "status":
            code, _, reason = value.partition(" ")
            status = int(code)
        else:
            headers.append((name, value))
    return status, reason, headers, body


def _recv_all(sock: socket.socket) -> Iterable[bytes]:
    while True:
        try:
            data = sock.recv(262144)
        except OSError as exc:
            raise ClientError(f"reading from the backend failed: {exc}") from None
        yield data
        if not data:
            return


def fastcgi_request(
    target: Target,
    params: Pairs,
    body: bytes | Iterable[bytes] = b"",
    *,
    timeout: float = 30.0,
    role: Role = Role.RESPONDER,
    request_id: int = 1,
    sock: socket.socket | None = None,
    keep_conn: bool = False,
    filter_data: bytes | None = None,
) -> Reply:
    """One FastCGI request; ``sock`` (kept open when ``keep_conn``) may be reused."""
    codec = FastCGIClient()
    own = sock is None
    conn = target.connect(timeout) if sock is None else sock
    try:
        conn.sendall(codec.begin(request_id, params, role=role, keep_conn=keep_conn))
        if role is not Role.AUTHORIZER:
            chunks = [body] if isinstance(body, (bytes, bytearray)) else body
            for chunk in chunks:
                if chunk:
                    conn.sendall(codec.stdin(request_id, chunk))
            conn.sendall(codec.end_stdin(request_id))
        if filter_data is not None:
            if filter_data:
                conn.sendall(codec.data(request_id, filter_data))
            conn.sendall(codec.end_data(request_id))
        records = FastCGIRecords()
        closed = False
        for data in _recv_all(conn):
            if not data:
                closed = True
            codec.receive_data(data)
            try:
                records.collect(codec)
            except ProtocolError as exc:
                raise ClientError(f"the backend broke the FastCGI protocol: {exc}") from None
            if records.end is not None or closed:
                break
        if records.end is None:
            raise ClientError("the backend closed the connection without FCGI_END_REQUEST")
        return records.reply(closed_by_backend=closed)
    finally:
        if own and not keep_conn:
            conn.close()


def fastcgi_get_values(
    target: Target, names: Sequence[str], *, timeout: float = 10.0
) -> dict[str, str]:
    """FCGI_GET_VALUES: what the backend says of FCGI_MAX_CONNS, MAX_REQS, MPXS_CONNS."""
    codec = FastCGIClient()
    with target.connect(timeout) as conn:
        conn.sendall(codec.get_values([n.encode("latin-1") for n in names]))
        for data in _recv_all(conn):
            codec.receive_data(data)
            event = codec.next_event()
            if isinstance(event, ValuesResult):
                return {k.decode("latin-1"): v.decode("latin-1") for k, v in event.pairs}
            if isinstance(event, UnknownTypeResult):
                raise ClientError("the backend answered FCGI_UNKNOWN_TYPE to FCGI_GET_VALUES")
            if not data:
                break
    raise ClientError("no FCGI_GET_VALUES_RESULT before the connection closed")


def _stream_exchange(target: Target, head: bytes, body: bytes | Iterable[bytes],
                     timeout: float) -> Reply:
    with target.connect(timeout) as conn:
        conn.sendall(head)
        chunks = [body] if isinstance(body, (bytes, bytearray)) else body
        for chunk in chunks:
            if chunk:
                conn.sendall(chunk)
        raw = b"".join(_recv_all(conn))
    if not raw:
        raise ClientError("the backend closed the connection without answering")
    status, reason, headers, content = parse_head(raw)
    return Reply(raw=raw, status=status, reason=reason, headers=headers, body=content,
                 closed_by_backend=True)


def encode_uwsgi(params: Pairs, modifier1: int = 0, modifier2: int = 0) -> bytes:
    """A uwsgi request head (:func:`wsgiwire.protocols._uwsgi.encode_request`); a
    variable or block too long for the format is a ``ClientError``."""
    try:
        return uwsgi.encode_request(params, modifier1, modifier2)
    except LocalProtocolError as exc:
        raise ClientError(exc.msg) from None


def scgi_request(target: Target, params: Pairs, body: bytes | Iterable[bytes] = b"",
                 *, timeout: float = 30.0) -> Reply:
    """One SCGI request (``params`` must start with CONTENT_LENGTH and hold SCGI=1)."""
    return _stream_exchange(target, encode_scgi(params), body, timeout)


def uwsgi_request(target: Target, params: Pairs, body: bytes | Iterable[bytes] = b"",
                  *, timeout: float = 30.0, modifier1: int = 0) -> Reply:
    """One uwsgi request."""
    return _stream_exchange(target, encode_uwsgi(params, modifier1), body, timeout)


def send_request(target: Target, params: Pairs, body: bytes = b"",
                 *, timeout: float = 30.0) -> Reply:
    """One request over whichever protocol ``target`` names."""
    if target.protocol == "scgi":
        return scgi_request(target, params, body, timeout=timeout)
    if target.protocol == "uwsgi":
        return uwsgi_request(target, params, body, timeout=timeout)
    return fastcgi_request(target, params, body, timeout=timeout)
