"""TrustedProxy, table-driven after werkzeug's ``tests/middleware/test_proxy_fix.py``.

werkzeug's own ``Request`` reads the result, so the rows check what a
framework makes of the environ (``remote_addr``, ``url_root``), not only the
keys. Malformed values leave the environ exactly as it was.
"""

from __future__ import annotations

import ipaddress
import re
from io import BytesIO
from typing import Any
from wsgiref.validate import validator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from werkzeug.wrappers import Request as WerkzeugRequest

from tests.corpus import load_setups
from tests.middleware import BUILDER, Recorder, build, call, plain
from wsgiwire.core._environ import host_name, split_host
from wsgiwire.core._gateway import WSGIApp
from wsgiwire.middleware import LighttpdCGIRootFix, TrustedProxy
from wsgiwire.middleware import _proxy as proxy

INNER = {
    "REQUEST_METHOD": "GET",
    "SCRIPT_NAME": "",
    "PATH_INFO": "/x",
    "QUERY_STRING": "",
    "SERVER_NAME": "inner",
    "SERVER_PORT": "8080",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "HTTP_HOST": "inner:8080",
    "REMOTE_ADDR": "10.0.0.2",
}


def environ_of(extra: dict[str, str], drop: tuple[str, ...] = ()) -> dict[str, Any]:
    params = {k: v for k, v in {**INNER, **extra}.items() if k not in drop}
    environ, _ = BUILDER.build_from_strings(params.items())
    environ["wsgi.input"] = BytesIO()
    return environ


def through(middleware: WSGIApp, recorder: Recorder, environ: dict[str, Any]) -> dict[str, Any]:
    assert call(validator(middleware), environ)[0] == "200 OK"
    assert recorder.environ is not None
    return recorder.environ


# (id, kwargs, extra environ, keys to drop, REMOTE_ADDR, url_root) -------------------------
ROWS: list[tuple[str, dict[str, int], dict[str, str], tuple[str, ...], str, str]] = [
    ("for", {}, {"HTTP_X_FORWARDED_FOR": "203.0.113.7"}, (),
     "203.0.113.7", "http://inner:8080/"),
    ("for-and-proto", {}, {"HTTP_X_FORWARDED_FOR": "203.0.113.7",
                           "HTTP_X_FORWARDED_PROTO": "https"}, (),
     "203.0.113.7", "https://inner:8080/"),
    ("proto-any-case", {}, {"HTTP_X_FORWARDED_PROTO": "HTTPS"}, (),
     "10.0.0.2", "https://inner:8080/"),
    ("host", {"x_host": 1}, {"HTTP_X_FORWARDED_HOST": "example.org"}, (),
     "10.0.0.2", "http://example.org/"),
    ("host-with-port", {"x_host": 1}, {"HTTP_X_FORWARDED_HOST": "example.org:8443"}, (),
     "10.0.0.2", "http://example.org:8443/"),
    ("host-https", {"x_host": 1}, {"HTTP_X_FORWARDED_HOST": "example.org",
                                   "HTTP_X_FORWARDED_PROTO": "https"}, (),
     "10.0.0.2", "https://example.org/"),
    ("port-host-without-port", {"x_port": 1}, {"HTTP_HOST": "inner",
                                               "HTTP_X_FORWARDED_PORT": "8443"}, (),
     "10.0.0.2", "http://inner:8443/"),
    ("port-host-with-port", {"x_port": 1}, {"HTTP_HOST": "inner:9000",
                                            "HTTP_X_FORWARDED_PORT": "8443"}, (),
     "10.0.0.2", "http://inner:8443/"),
    ("port-no-host", {"x_port": 1}, {"HTTP_X_FORWARDED_PORT": "8443"}, ("HTTP_HOST",),
     "10.0.0.2", "http://inner:8443/"),
    ("prefix", {"x_prefix": 1}, {"HTTP_X_FORWARDED_PREFIX": "/shop"}, (),
     "10.0.0.2", "http://inner:8080/shop/"),
    ("prefix-before-the-mount", {"x_prefix": 1}, {"HTTP_X_FORWARDED_PREFIX": "/shop/",
                                                  "SCRIPT_NAME": "/app"}, (),
     "10.0.0.2", "http://inner:8080/shop/app/"),
    ("prefix-decoded", {"x_prefix": 1}, {"HTTP_X_FORWARDED_PREFIX": "/a%20b"}, (),
     "10.0.0.2", "http://inner:8080/a%20b/"),
    ("prefix-slash-only", {"x_prefix": 1}, {"HTTP_X_FORWARDED_PREFIX": "/"}, (),
     "10.0.0.2", "http://inner:8080/"),
    ("prefix-protocol-relative", {"x_prefix": 1}, {"HTTP_X_FORWARDED_PREFIX": "//evil.example"},
     (), "10.0.0.2", "http://inner:8080/evil.example/"),
    ("all", {"x_for": 1, "x_proto": 1, "x_host": 1, "x_port": 1, "x_prefix": 1},
     {"HTTP_X_FORWARDED_FOR": "203.0.113.7", "HTTP_X_FORWARDED_PROTO": "https",
      "HTTP_X_FORWARDED_HOST": "example.org", "HTTP_X_FORWARDED_PORT": "443",
      "HTTP_X_FORWARDED_PREFIX": "/shop"}, (), "203.0.113.7", "https://example.org/shop/"),
    ("two-hops", {"x_for": 2}, {"HTTP_X_FORWARDED_FOR": "203.0.113.7, 10.0.0.1"}, (),
     "203.0.113.7", "http://inner:8080/"),
    ("untrusted-left-entries-ignored", {}, {"HTTP_X_FORWARDED_FOR": "6.6.6.6, 203.0.113.7"}, (),
     "203.0.113.7", "http://inner:8080/"),
    ("zero-hops-ignores", {"x_for": 0}, {"HTTP_X_FORWARDED_FOR": "203.0.113.7"}, (),
     "10.0.0.2", "http://inner:8080/"),
    ("fewer-entries-than-hops", {"x_for": 3}, {"HTTP_X_FORWARDED_FOR": "203.0.113.7, 10.0.0.1"},
     (), "10.0.0.2", "http://inner:8080/"),
    ("empty-entry-at-the-hop", {"x_for": 2}, {"HTTP_X_FORWARDED_FOR": ", 10.0.0.1"}, (),
     "10.0.0.2", "http://inner:8080/"),
    ("prefix-fewer-hops-than-for", {"x_for": 2, "x_prefix": 1},
     {"HTTP_X_FORWARDED_FOR": "203.0.113.7, 10.0.0.1", "HTTP_X_FORWARDED_PREFIX": "/ham, /eggs"},
     (), "203.0.113.7", "http://inner:8080/eggs/"),
    ("for-ipv6", {}, {"HTTP_X_FORWARDED_FOR": "2001:db8::1"}, (),
     "2001:db8::1", "http://inner:8080/"),
    ("for-ipv6-bracketed-with-port", {}, {"HTTP_X_FORWARDED_FOR": "[2001:db8::1]:4711"}, (),
     "2001:db8::1", "http://inner:8080/"),
    ("for-ipv4-with-port", {}, {"HTTP_X_FORWARDED_FOR": "192.0.2.1:4711"}, (),
     "192.0.2.1", "http://inner:8080/"),
    ("host-ipv6", {"x_host": 1}, {"HTTP_X_FORWARDED_HOST": "[2001:db8::a]"}, (),
     "10.0.0.2", "http://[2001:db8::a]/"),
    ("port-ipv6-host-without-port", {"x_port": 1}, {"HTTP_HOST": "[2001:db8::a]",
                                                    "HTTP_X_FORWARDED_PORT": "8443"}, (),
     "10.0.0.2", "http://[2001:db8::a]:8443/"),
    ("port-ipv6-host-with-port", {"x_port": 1}, {"HTTP_HOST": "[2001:db8::a]:9000",
                                                 "HTTP_X_FORWARDED_PORT": "8443"}, (),
     "10.0.0.2", "http://[2001:db8::a]:8443/"),
]


@pytest.mark.parametrize(
    ("kwargs", "extra", "drop", "remote_addr", "url_root"),
    [r[1:] for r in ROWS],
    ids=[r[0] for r in ROWS],
)
def test_trusted_proxy(
    kwargs: dict[str, int], extra: dict[str, str], drop: tuple[str, ...],
    remote_addr: str, url_root: str,
) -> None:
    environ = environ_of(extra, drop)
    before = plain(environ)
    recorder = Recorder()
    seen = through(TrustedProxy(validator(recorder), **kwargs), recorder, environ)
    # every replaced value is kept, and only those
    changed = {k for k, v in plain(seen).items() if k != "wsgiwire.orig" and before.get(k) != v}
    assert seen.get("wsgiwire.orig", {}) == {k: before.get(k) for k in changed}
    request = WerkzeugRequest(dict(seen))
    assert request.remote_addr == remote_addr
    assert request.url_root == url_root


def test_host_sets_server_name_and_port() -> None:
    recorder = Recorder()
    environ = environ_of({"HTTP_X_FORWARDED_HOST": "example.org",
                          "HTTP_X_FORWARDED_PROTO": "https"})
    seen = through(TrustedProxy(validator(recorder), x_host=1), recorder, environ)
    assert (seen["HTTP_HOST"], seen["SERVER_NAME"], seen["SERVER_PORT"]) == (
        "example.org", "example.org", "443")
    environ = environ_of({"HTTP_X_FORWARDED_HOST": "[2001:db8::a]:8443"})
    seen = through(TrustedProxy(validator(recorder), x_host=1), recorder, environ)
    assert (seen["SERVER_NAME"], seen["SERVER_PORT"]) == ("[2001:db8::a]", "8443")


ALL = {"x_for": 1, "x_proto": 1, "x_host": 1, "x_port": 1, "x_prefix": 1}
MALFORMED: list[tuple[str, str, str]] = [
    ("for-name", "HTTP_X_FORWARDED_FOR", "client.example"),
    ("for-unknown", "HTTP_X_FORWARDED_FOR", "unknown"),
    ("for-obfuscated", "HTTP_X_FORWARDED_FOR", "_hidden"),
    ("for-empty", "HTTP_X_FORWARDED_FOR", ""),
    ("for-only-commas", "HTTP_X_FORWARDED_FOR", " , "),
    ("for-five-octets", "HTTP_X_FORWARDED_FOR", "1.2.3.4.5"),
    ("for-octet-too-big", "HTTP_X_FORWARDED_FOR", "1.2.3.256"),
    ("for-unclosed-bracket", "HTTP_X_FORWARDED_FOR", "[2001:db8::1"),
    ("for-junk-after-bracket", "HTTP_X_FORWARDED_FOR", "[2001:db8::1]x"),
    ("for-bad-port", "HTTP_X_FORWARDED_FOR", "192.0.2.1:99999"),
    ("for-crlf", "HTTP_X_FORWARDED_FOR", "192.0.2.1\r\nX: y"),
    ("proto-ftp", "HTTP_X_FORWARDED_PROTO", "ftp"),
    ("proto-script", "HTTP_X_FORWARDED_PROTO", "javascript"),
    ("proto-empty-entry", "HTTP_X_FORWARDED_PROTO", "https, "),
    ("host-with-path", "HTTP_X_FORWARDED_HOST", "evil.example/path"),
    ("host-with-space", "HTTP_X_FORWARDED_HOST", "a b"),
    ("host-userinfo", "HTTP_X_FORWARDED_HOST", "user@evil.example"),
    ("host-port-not-numeric", "HTTP_X_FORWARDED_HOST", "example.org:http"),
    ("host-port-too-big", "HTTP_X_FORWARDED_HOST", "example.org:65536"),
    ("host-port-zero", "HTTP_X_FORWARDED_HOST", "example.org:0"),
    ("host-bad-ipv6", "HTTP_X_FORWARDED_HOST", "[zz::1]"),
    ("host-unclosed-bracket", "HTTP_X_FORWARDED_HOST", "[2001:db8::a"),
    ("host-junk-after-bracket", "HTTP_X_FORWARDED_HOST", "[2001:db8::a]x"),
    ("host-empty-port", "HTTP_X_FORWARDED_HOST", "example.org:"),
    ("host-two-ports", "HTTP_X_FORWARDED_HOST", "example.org:80:81"),
    ("for-bracket-alone", "HTTP_X_FORWARDED_FOR", "["),
    ("for-empty-brackets", "HTTP_X_FORWARDED_FOR", "[]:80"),
    ("for-unclosed-bracket-v6-inside", "HTTP_X_FORWARDED_FOR", "[::1"),
    ("port-name", "HTTP_X_FORWARDED_PORT", "https"),
    ("port-zero", "HTTP_X_FORWARDED_PORT", "0"),
    ("port-too-big", "HTTP_X_FORWARDED_PORT", "65536"),
    ("port-negative", "HTTP_X_FORWARDED_PORT", "-1"),
    ("port-decimal", "HTTP_X_FORWARDED_PORT", "80.5"),
    ("prefix-relative", "HTTP_X_FORWARDED_PREFIX", "shop"),
    ("prefix-query", "HTTP_X_FORWARDED_PREFIX", "/shop?x=1"),
    ("prefix-fragment", "HTTP_X_FORWARDED_PREFIX", "/shop#x"),
    ("prefix-dot-dot", "HTTP_X_FORWARDED_PREFIX", "/a/../b"),
    ("prefix-encoded-dot-dot", "HTTP_X_FORWARDED_PREFIX", "/%2e%2e/b"),
    ("prefix-backslash", "HTTP_X_FORWARDED_PREFIX", "/a\\b"),
    ("prefix-space", "HTTP_X_FORWARDED_PREFIX", "/a b"),
    ("prefix-encoded-nul", "HTTP_X_FORWARDED_PREFIX", "/a%00b"),
    ("prefix-absolute-url", "HTTP_X_FORWARDED_PREFIX", "http://evil.example/"),
]


@pytest.mark.parametrize(("header", "value"), [r[1:] for r in MALFORMED],
                         ids=[r[0] for r in MALFORMED])
def test_malformed_values_change_nothing(header: str, value: str) -> None:
    environ = environ_of({header: value})
    before = plain(environ)
    recorder = Recorder()
    seen = through(TrustedProxy(validator(recorder), **ALL), recorder, environ)
    assert plain(seen) == before


def test_a_malformed_header_does_not_stop_the_others() -> None:
    environ = environ_of({"HTTP_X_FORWARDED_FOR": "203.0.113.7",
                          "HTTP_X_FORWARDED_HOST": "evil.example/x"})
    recorder = Recorder()
    seen = through(TrustedProxy(validator(recorder), **ALL), recorder, environ)
    assert seen["REMOTE_ADDR"] == "203.0.113.7"
    assert seen["HTTP_HOST"] == "inner:8080"


@pytest.mark.parametrize(
    "kwargs",
    [{"x_for": -1}, {"x_prefix": -3}, {"x_host": True}, {"x_port": 1.0}, {"x_proto": "1"}],
    ids=["negative", "negative-prefix", "bool", "float", "str"],
)
def test_bad_counts_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="number of proxies"):
        TrustedProxy(Recorder(), **kwargs)


def test_non_string_values_are_ignored() -> None:
    """A server that put something odd in the environ does not make it crash."""
    seen: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.update(environ)
        return []

    environ = {"HTTP_X_FORWARDED_FOR": 1, "HTTP_X_FORWARDED_PROTO": None,
               "HTTP_X_FORWARDED_HOST": b"example.org", "HTTP_X_FORWARDED_PREFIX": ["/x"],
               "HTTP_X_FORWARDED_PORT": 443}
    TrustedProxy(app, **ALL)(dict(environ), lambda *a: None)
    assert seen == environ


# -- on a real capture: nginx behind a load balancer -----------------------------------------
def test_on_a_captured_request() -> None:
    (setup,) = [s for s in load_setups() if s.setup == "nginx-fastcgi-root"]
    exchange = setup.requests["get_path_query"].exchanges[0]
    params = [*exchange.params,
              # nginx passes each header line as its own param; the translator joins them
              ("HTTP_X_FORWARDED_FOR", "6.6.6.6"), ("HTTP_X_FORWARDED_FOR", "203.0.113.7"),
              ("HTTP_X_FORWARDED_PROTO", "https"), ("HTTP_X_FORWARDED_HOST", "shop.example"),
              ("HTTP_X_FORWARDED_PREFIX", "/store")]
    environ = build(type(exchange)(params=params))
    recorder = Recorder()
    seen = through(TrustedProxy(validator(recorder), x_for=1, x_proto=1, x_host=1, x_prefix=1),
                   recorder, environ)
    request = WerkzeugRequest(seen)
    assert request.remote_addr == "203.0.113.7"
    assert request.url == "https://shop.example/store/app/x/y?q=1"


def test_with_a_path_fix_on_a_capture() -> None:
    """lighttpd at "/" behind a proxy that strips "/outer": the fix first, then the prefix."""
    (setup,) = [s for s in load_setups() if s.setup == "lighttpd-fastcgi-root"]
    exchange = setup.requests["get_path_query"].exchanges[0]
    environ = build(type(exchange)(params=[*exchange.params,
                                           ("HTTP_X_FORWARDED_PREFIX", "/outer")]))
    recorder = Recorder()
    app = LighttpdCGIRootFix(TrustedProxy(validator(recorder), x_prefix=1))
    seen = through(app, recorder, environ)
    assert (seen["SCRIPT_NAME"], seen["PATH_INFO"]) == ("/outer", "/app/x/y")
    assert seen["wsgiwire.orig"]["SCRIPT_NAME"] == "/app"  # the server's, not the fix's


# -- any header text: never an exception, never an invalid environ ------------------------
HEADER_TEXT = st.text(st.characters(min_codepoint=0, max_codepoint=0xFF), max_size=40) | \
    st.sampled_from(["1.2.3.4", "[::1]:80", "https", "example.org:8080", "/p", "8443",
                     "a, b", "/a%2Fb"])


HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST",
           "HTTP_X_FORWARDED_PORT", "HTTP_X_FORWARDED_PREFIX")


@given(headers=st.fixed_dictionaries({h: HEADER_TEXT for h in HEADERS}),
       hops=st.integers(min_value=0, max_value=3))
def test_any_header_text_is_safe(headers: dict[str, str], hops: int) -> None:
    environ = environ_of(headers)
    recorder = Recorder()
    seen = through(
        TrustedProxy(validator(recorder), x_for=hops, x_proto=hops, x_host=hops, x_port=hops,
                     x_prefix=hops),
        recorder, environ,
    )
    ipaddress.ip_address(seen["REMOTE_ADDR"])
    assert seen["wsgi.url_scheme"] in ("http", "https")
    assert seen["SERVER_PORT"].isdigit()
    assert seen["SCRIPT_NAME"] == "" or seen["SCRIPT_NAME"].startswith("/")
    assert not seen["SCRIPT_NAME"].startswith("//")
    assert all(ord(c) >= 0x20 for c in seen["HTTP_HOST"] + seen["SCRIPT_NAME"])


_OLD_HOST = re.compile(r"(?P<name>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~-]+)(?::(?P<port>[0-9]{1,5}))?")


def _old_host(value: str) -> tuple[str, str | None] | None:
    """X-Forwarded-Host as the middleware read it with its own regex, before the
    host was split by the core's ``split_host`` (the oracle for the change)."""
    match = _OLD_HOST.fullmatch(value)
    if match is None:
        return None
    name, port = match.group("name"), match.group("port")
    if name.startswith("["):
        try:
            ipaddress.IPv6Address(name[1:-1])
        except ValueError:
            return None
    if port is not None and not 0 < int(port) < 65536:
        return None
    return name, port


@given(st.text(alphabet="[]:.0123456789abfgAz-_~/@ ", max_size=24))
def test_host_split_by_the_core_reads_as_the_old_pattern(value: str) -> None:
    assert proxy._host(value) == _old_host(value)
    name, rest = split_host(value)
    assert name + rest == value and host_name(value) == name
