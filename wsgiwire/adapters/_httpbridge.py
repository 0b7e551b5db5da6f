"""A tiny HTTP front for trying wsgiwire without a web server (``wsgiwire demo``).

It plays the part nginx plays in production: it accepts HTTP on loopback,
turns each request into FastCGI parameters with :mod:`wsgiwire._client`, and
relays the backend's answer. It is for a first look and for debugging, not
for production: one request per connection, no TLS, no request buffering.
"""

from __future__ import annotations

import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .._client import ClientError, Target, build_params, fastcgi_request

__all__ = ["HTTPBridge"]

log = logging.getLogger("wsgiwire")

_MAX_BODY = 16 << 20


class HTTPBridge(ThreadingHTTPServer):
    """HTTP on ``(host, port)`` relayed to the FastCGI backend at ``backend``."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], backend: str | tuple[str, int]) -> None:
        self.backend = backend
        super().__init__(address, _Handler)

    def target(self, raw_path: str) -> Target:
        path, _, query = raw_path.partition("?")
        family = socket.AF_UNIX if isinstance(self.backend, str) else socket.AF_INET
        return Target("fastcgi", family, self.backend, path or "/", query)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="wsgiwire-http-bridge")
        thread.daemon = True
        thread.start()
        return thread


class _Handler(BaseHTTPRequestHandler):
    server: HTTPBridge
    protocol_version = "HTTP/1.0"

    def _relay(self) -> None:
        length_text = self.headers.get("Content-Length", "0")
        length = int(length_text) if length_text.isdigit() else 0
        if length > _MAX_BODY:
            self.send_error(413)
            return
        body = self.rfile.read(length) if length else b""
        target = self.server.target(self.path)
        headers = [(k, v) for k, v in self.headers.items() if k.lower() != "content-length"]
        params = build_params(
            target, method=self.command, headers=headers, body_length=len(body)
        )
        # What this front really received, as nginx's fastcgi_params pass it (the
        # client helper fills in placeholders: port 80, remote port 0).
        server_host, server_port = self.connection.getsockname()[:2]
        client_host, client_port = self.client_address[:2]
        host = self.headers.get("Host") or f"{server_host}:{server_port}"
        real = {
            b"SERVER_PROTOCOL": self.request_version.encode("latin-1"),
            b"SERVER_NAME": host.rsplit(":", 1)[0].strip("[]").encode("latin-1"),
            b"SERVER_ADDR": str(server_host).encode("latin-1"),
            b"SERVER_PORT": str(server_port).encode("ascii"),
            b"REMOTE_ADDR": str(client_host).encode("latin-1"),
            b"REMOTE_PORT": str(client_port).encode("ascii"),
            b"REQUEST_SCHEME": b"http",
            b"SERVER_SOFTWARE": b"wsgiwire-demo-front",
        }
        params = [(k, v) for k, v in params if k not in real] + list(real.items())
        try:
            reply = fastcgi_request(target, params, body)
        except (ClientError, OSError) as exc:
            log.error("backend failed: %s", exc)
            self.send_error(502, "Bad Gateway", str(exc))
            return
        self.send_response(reply.status, reply.reason)
        for name, value in reply.headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _relay

    def log_message(self, format: str, *args: object) -> None:
        log.info("%s %s", self.address_string(), format % args)
