"""``TrustedProxy``: honour X-Forwarded-* from a known number of proxies in front.

For a web server (nginx, Apache, lighttpd) that itself sits behind another
proxy or load balancer: the environ then names the inner hop (its address,
its scheme, its host) instead of the client's. Modelled on werkzeug's
``ProxyFix``: each header is trusted for a configured number of hops and the
value that many places from the right is taken, since every proxy appends
to the list and only the rightmost entries were written by proxies you run;
anything further left came from the client and may be forged.

Differences from werkzeug's ``ProxyFix``, all on the side of caution:

* every value is checked (an IP address, ``http``/``https``, a host name or
  bracketed IPv6 with an optional port, a port 1-65535, an absolute path
  without query or dot segments); a malformed or missing one is ignored,
  that header alone, and never raises;
* ``X-Forwarded-Prefix`` is percent-decoded (SCRIPT_NAME is decoded text) and
  put *in front of* SCRIPT_NAME rather than replacing it, so an app that the
  inner server mounts at ``/app`` behind an outer ``/shop`` prefix gets
  ``/shop/app``;
* ``X-Forwarded-Host`` without a port sets SERVER_PORT to the scheme's
  default rather than leaving the inner server's port;
* the replaced values go to ``environ["wsgiwire.orig"]`` like every
  wsgiwire middleware (only the keys actually changed; first original wins).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from ..core._environ import decode_request_path, host_name, split_host
from ..core._gateway import StartResponse, WSGIApp
from ._mount import Environ, keep_originals, normalise_prefix

__all__ = ["TrustedProxy"]

# RFC 3986 reg-name restricted to what DNS and hosts files use (letters,
# digits, "-", ".", "_", "~"); an IPv6 literal is checked by ipaddress.
_HOST_NAME = re.compile(r"\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~-]+")
_PORT = re.compile(r"[0-9]{1,5}")
_SCHEMES = frozenset({"http", "https"})
_DEFAULT_PORTS = {"http": "80", "https": "443"}


def _trusted(hops: int, header: object) -> str | None:
    """The value ``hops`` places from the right of a comma-separated header, if any."""
    if not hops or not isinstance(header, str) or not header:
        return None
    values = header.split(",")
    if len(values) < hops:
        return None
    value = values[-hops].strip()
    return value or None


def _client_address(value: str) -> str | None:
    """The IP address in an X-Forwarded-For entry: ``1.2.3.4``, ``2001:db8::1``,
    ``[2001:db8::1]``, ``[2001:db8::1]:80`` or ``1.2.3.4:80``; None if malformed."""
    host = value
    if value.startswith("[") or value.count(":") == 1:  # bracketed, or IPv4 with a port
        host, rest = split_host(value)
        if rest and not (rest.startswith(":") and _is_port(rest[1:])):
            return None
        if host.startswith("["):
            if not host.endswith("]"):
                return None
            host = host[1:-1]
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None
    return host


def _is_port(text: str) -> bool:
    return _PORT.fullmatch(text) is not None and 0 < int(text) < 65536


def _has_controls(text: str) -> bool:
    return any(ord(c) < 0x20 or ord(c) == 0x7F for c in text)


def _host(value: str) -> tuple[str, str | None] | None:
    """(name, port or None) of an X-Forwarded-Host value, or None if malformed."""
    name, rest = split_host(value)
    if _HOST_NAME.fullmatch(name) is None:
        return None
    if name.startswith("["):
        try:
            ipaddress.IPv6Address(name[1:-1])
        except ValueError:
            return None
    if not rest:
        return name, None
    port = rest[1:]
    if not rest.startswith(":") or not _is_port(port):
        return None
    return name, port


def _prefix(value: str) -> str | None:
    """The decoded, normalised path of an X-Forwarded-Prefix value; None if malformed."""
    if not value.startswith("/") or any(c in value for c in "?#\\ ") or _has_controls(value):
        return None
    path = decode_request_path(value)
    if _has_controls(path) or any(s in (".", "..") for s in path.split("/")):
        return None
    return normalise_prefix(path)


class TrustedProxy:
    """Take the client's address, scheme, host, port and prefix from X-Forwarded-* headers.

    Each count is the number of proxies in front of this server that set that
    header (0: ignore the header). The value that many entries from the right
    is used; with fewer entries than hops, or a malformed value, that header
    is ignored. The defaults trust one proxy for the client address and the
    scheme, as werkzeug's ``ProxyFix`` does; wrapping an app in this class is
    itself the decision to trust the proxies in front (nothing enables it on
    its own: the CLI adds it only when asked, with explicit hop counts).

    Reads ``HTTP_X_FORWARDED_FOR``, ``HTTP_X_FORWARDED_PROTO``,
    ``HTTP_X_FORWARDED_HOST``, ``HTTP_X_FORWARDED_PORT``,
    ``HTTP_X_FORWARDED_PREFIX``, ``HTTP_HOST`` and ``wsgi.url_scheme``. Writes:

    * X-Forwarded-For -> ``REMOTE_ADDR`` (the address only: a port or IPv6
      brackets are dropped; REMOTE_PORT is left alone);
    * X-Forwarded-Proto -> ``wsgi.url_scheme`` (``http`` or ``https``, any case);
    * X-Forwarded-Host -> ``HTTP_HOST``, ``SERVER_NAME`` and ``SERVER_PORT``
      (its port, else the default port of the scheme);
    * X-Forwarded-Port -> ``SERVER_PORT`` and the port in ``HTTP_HOST``;
    * X-Forwarded-Prefix -> ``SCRIPT_NAME`` (the decoded prefix in front of it).

    Each replaced value is kept in ``environ["wsgiwire.orig"]`` (a dict;
    ``setdefault``, so the first original wins when stacked; ``None`` for a key
    that was absent). The counts are keyword-only; ``ValueError`` for a
    negative one.

    Stack it inside the path fixes (``ScriptNameStripper(TrustedProxy(app))``):
    a path fix sets SCRIPT_NAME outright, so it must run before the prefix is
    added in front.
    """

    def __init__(
        self,
        app: WSGIApp,
        *,
        x_for: int = 1,
        x_proto: int = 1,
        x_host: int = 0,
        x_port: int = 0,
        x_prefix: int = 0,
    ) -> None:
        counts = {"x_for": x_for, "x_proto": x_proto, "x_host": x_host,
                  "x_port": x_port, "x_prefix": x_prefix}
        for name, count in counts.items():
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise ValueError(f"{name} must be a number of proxies (0 or more), not {count!r}")
        self.app = app
        self.x_for = x_for
        self.x_proto = x_proto
        self.x_host = x_host
        self.x_port = x_port
        self.x_prefix = x_prefix

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        get = environ.get

        value = _trusted(self.x_for, get("HTTP_X_FORWARDED_FOR"))
        address = _client_address(value) if value else None
        if address is not None:
            self._set(environ, "REMOTE_ADDR", address)

        value = _trusted(self.x_proto, get("HTTP_X_FORWARDED_PROTO"))
        if value is not None and value.lower() in _SCHEMES:
            self._set(environ, "wsgi.url_scheme", value.lower())

        value = _trusted(self.x_host, get("HTTP_X_FORWARDED_HOST"))
        host = _host(value) if value else None
        if value and host:
            name, port = host
            self._set(environ, "HTTP_HOST", value)
            self._set(environ, "SERVER_NAME", name)
            scheme = get("wsgi.url_scheme")
            if port is None and isinstance(scheme, str):
                port = _DEFAULT_PORTS.get(scheme)
            if port is not None:
                self._set(environ, "SERVER_PORT", port)

        value = _trusted(self.x_port, get("HTTP_X_FORWARDED_PORT"))
        if value is not None and _is_port(value):
            current = get("HTTP_HOST")
            if isinstance(current, str) and current:
                self._set(environ, "HTTP_HOST", f"{host_name(current)}:{value}")
            self._set(environ, "SERVER_PORT", value)

        value = _trusted(self.x_prefix, get("HTTP_X_FORWARDED_PREFIX"))
        prefix = _prefix(value) if value else None
        if prefix:
            script_name = get("SCRIPT_NAME", "")
            if isinstance(script_name, str):
                self._set(environ, "SCRIPT_NAME", prefix + script_name)

        return self.app(environ, start_response)

    @staticmethod
    def _set(environ: Environ, key: str, value: str) -> None:
        if environ.get(key) != value:
            keep_originals(environ, key)
            environ[key] = value
