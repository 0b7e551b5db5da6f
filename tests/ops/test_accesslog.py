"""The access log's format: atoms, escaping, the raw request URI (no I/O)."""

from __future__ import annotations

import re

import pytest

from wsgiwire._accesslog import ATOMS, DEFAULT_FORMAT, AccessLog, escape, request_uri
from wsgiwire.core._response import Response

from .combined import parse, unescape

HOSTILE = [
    pytest.param(b"/a\r\nb", id="crlf"),
    pytest.param(b"/a\nb", id="lf"),
    pytest.param(b"/a\x00b", id="nul"),
    pytest.param(b'/a"b', id="quote"),
    pytest.param(b"/a\\b", id="backslash"),
    pytest.param(b"/a\\x41b", id="literal-escape"),
    pytest.param(b"/\x1b[31mred\x1b[0m", id="ansi"),
    pytest.param(b"/\xff\xfe\xc3(", id="invalid-utf8"),
    pytest.param(b"/\x7f\x80\x9b", id="del-c1"),
    pytest.param(b'/x" 200 1 "-" "-" 0.0\n127.0.0.1 - - [x] "GET /admin', id="forged-line"),
]


def response(status: str = "200 OK", body: bytes = b"hello") -> Response:
    resp = Response(lambda data: None)
    resp.start_response(status, [("Content-Type", "text/plain"), ("X-Out", "v\x01")])
    resp.write(body)
    return resp


def environ(raw: bytes, **extra: str) -> dict[str, str]:
    text = raw.decode("latin-1")  # PEP 3333: one char per byte
    env = {
        "REMOTE_ADDR": "127.0.0.1",
        "REQUEST_METHOD": "GET",
        "REQUEST_URI": text + "?q=" + text,
        "QUERY_STRING": "q=" + text,
        "PATH_INFO": text,
        "SCRIPT_NAME": "",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_USER_AGENT": "agent " + text,
        "HTTP_REFERER": "http://ref" + text,
    }
    env.update(extra)
    return env


@pytest.mark.parametrize("raw", HOSTILE)
def test_hostile_bytes_make_one_line_that_parses_back_to_the_original_bytes(raw: bytes) -> None:
    line = AccessLog().line(environ(raw), response(), 0.0125)
    assert "\n" not in line and "\r" not in line and "\x1b" not in line
    assert line.isascii() and line.isprintable()
    fields = parse(line)
    assert unescape(fields["r"]) == b"GET " + raw + b"?q=" + raw + b" HTTP/1.1"
    assert unescape(fields["a"]) == b"agent " + raw
    assert unescape(fields["f"]) == b"http://ref" + raw
    assert (fields["h"], fields["s"], fields["b"], fields["L"]) == ("127.0.0.1", "200", "5",
                                                                    "0.012500")


def test_every_byte_value_round_trips() -> None:
    raw = bytes(range(256))
    assert unescape(escape(raw.decode("latin-1"))) == raw


def test_escaping_follows_nginx_and_apache() -> None:
    assert escape('a"b\\c\x00\x1f\x7f\xe9') == 'a\\"b\\\\c\\x00\\x1F\\x7F\\xE9'
    assert escape("/plain/path?x=1") == "/plain/path?x=1"
    # Text that is not a latin-1 environ string: its UTF-8 bytes, escaped.
    assert escape("\u20ac") == "\\xE2\\x82\\xAC"


def test_the_default_is_combined_plus_request_time() -> None:
    assert DEFAULT_FORMAT.startswith('%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"')
    line = AccessLog().line(environ(b"/x"), response(), 1.5)
    assert re.fullmatch(
        r'127\.0\.0\.1 - - \[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] '
        r'"GET /x\?q=/x HTTP/1\.1" 200 5 "http://ref/x" "agent /x" 1\.500000', line
    ), line


def test_the_raw_request_uri_is_logged_not_the_decoded_path() -> None:
    env = environ(b"/x", REQUEST_URI="/a%2Fb%0A?x=%22", PATH_INFO="/a/b\n", QUERY_STRING="x=%22")
    assert parse(AccessLog().line(env, response(), 0.0))["r"] == "GET /a%2Fb%0A?x=%22 HTTP/1.1"


def test_without_request_uri_the_path_is_requoted() -> None:
    env = {"SCRIPT_NAME": "/app", "PATH_INFO": "/a b\n\xff", "QUERY_STRING": "k=v"}
    assert request_uri(env) == "/app/a%20b%0A%FF?k=v"


def test_every_documented_atom_formats() -> None:
    fmt = " ".join(f"%({name})s" for name in ATOMS if not name.startswith("{"))
    fmt += " %({x-forwarded-for}i)s %({X-Out}o)s %({HTTPS}e)s %({missing}i)s 100%%"
    env = environ(b"/p", HTTP_X_FORWARDED_FOR="10.0.0.1", HTTPS="on", REMOTE_USER="bob")
    line = AccessLog(fmt).line(env, response("404 Not Found", b""), 2.25)
    values = line.split(" ")
    assert values[:3] == ["127.0.0.1", "-", "bob"]
    assert line.endswith(' 10.0.0.1 v\\x01 on - 100%'), line
    assert "GET /p?q=/p HTTP/1.1" in line
    assert " 404 0 - " in line  # %(s)s %(B)s %(b)s
    assert " 2 2250 2250000 2.250000 " in line  # %(T)s %(M)s %(D)s %(L)s


def test_an_unknown_atom_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="unknown access log atom"):
        AccessLog("%(h)s %(Z)s")


@pytest.mark.parametrize("fmt", ["%(nope)s", "%(h)s %(zz)s", "%(h)d", "%(h)", "50%", "%({ua}x)s"])
def test_anything_like_an_atom_that_is_not_one_is_refused(fmt: str) -> None:
    # Written literally on every line, a typo would go unnoticed for months.
    with pytest.raises(ValueError, match="access log atom"):
        AccessLog(fmt)


def test_a_doubled_percent_is_a_literal_percent() -> None:
    line = AccessLog("100%% %(s)s%%").line(environ(b"/"), response(), 0.0)
    assert line == "100% 200%"


def test_json_fields_carry_each_atom() -> None:
    fields = AccessLog('%(h)s "%(r)s" %(s)s').fields(environ(b"/j\n"), response(), 0.0)
    assert fields == {"h": "127.0.0.1", "r": "GET /j\\x0A?q=/j\\x0A HTTP/1.1", "s": "200"}


@pytest.mark.parametrize("raw", [*HOSTILE, pytest.param(b"/plain", id="plain")])
def test_the_written_out_default_equals_the_generic_formatter(raw: bytes) -> None:
    fast = AccessLog()
    generic = AccessLog()
    generic._default = False
    env = environ(raw, REMOTE_USER="u\n")
    for resp in (response(), response("204 No Content", b"")):
        assert fast.line(env, resp, 0.25) == generic.line(env, resp, 0.25)
    del env["REQUEST_URI"], env["REMOTE_ADDR"]
    assert fast.line(env, response(), 0.0) == generic.line(env, response(), 0.0)
