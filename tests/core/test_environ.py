"""EnvironBuilder: CGI params (ordered bytes pairs) -> a PEP 3333 environ."""

from __future__ import annotations

import io
import logging
import sys
from typing import Any
from urllib.parse import quote_from_bytes
from wsgiref.validate import check_environ

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.core import params
from tests.support import scgi_spec, uwsgi_spec
from wsgiwire._errors import BadRequest
from wsgiwire._events import RequestStarted, pairs_of
from wsgiwire.core._body import attach_input
from wsgiwire.core._environ import (
    EnvironBuilder,
    decode_request_path,
    host_name,
    request_label,
    request_uri,
    split_host,
    split_script_name,
)
from wsgiwire.core._gateway import ErrorStream, FileWrapper
from wsgiwire.protocols._scgi import SCGIConnection
from wsgiwire.protocols._uwsgi import UWSGIConnection

BUILDER = EnvironBuilder()


def build(*pairs: tuple[str | bytes, str | bytes], strip: bool = False) -> dict[str, Any]:
    raw = [
        (n if isinstance(n, bytes) else n.encode("latin-1"),
         v if isinstance(v, bytes) else v.encode("latin-1"))
        for n, v in pairs
    ]
    environ, _ = BUILDER.build(raw, script_name_in_path_info=strip)
    return environ


# -- native strings ---------------------------------------------------------------
def test_every_byte_survives_as_latin1() -> None:
    every_byte = bytes(range(256))
    environ = build(("HTTP_X_RAW", every_byte), ("PATH_INFO", b"/\xe4\xb8\xad\xff"))
    assert environ["HTTP_X_RAW"] == every_byte.decode("latin-1")
    assert environ["HTTP_X_RAW"].encode("latin-1") == every_byte
    assert environ["PATH_INFO"] == "/\xe4\xb8\xad\xff"
    for key, value in environ.items():
        if "." not in key:
            assert type(key) is str and type(value) is str, key


def test_names_are_latin1_too() -> None:
    environ = build((b"X_\xe9", b"v"))
    assert environ["X_\xe9"] == "v"


# -- required keys and wsgi.* ---------------------------------------------------------
def test_required_keys_from_nothing() -> None:
    environ = build()
    assert environ["REQUEST_METHOD"] == "GET"
    assert environ["SCRIPT_NAME"] == ""
    assert environ["PATH_INFO"] == ""
    assert environ["QUERY_STRING"] == ""
    assert environ["SERVER_NAME"] == "localhost"
    assert environ["SERVER_PORT"] == "80"
    assert environ["SERVER_PROTOCOL"] == "HTTP/1.0"
    assert "CONTENT_LENGTH" not in environ


@pytest.mark.parametrize(
    ("host", "server_name"),
    [("example.org", "example.org"), ("example.org:8080", "example.org"),
     ("[::1]:8080", "[::1]"), ("[::1]", "[::1]")],
)
def test_server_name_from_host_when_missing(host: str, server_name: str) -> None:
    assert build(("HTTP_HOST", host))["SERVER_NAME"] == server_name


def test_server_values_win_over_defaults() -> None:
    environ = build(("SERVER_NAME", "srv"), ("SERVER_PORT", "8443"), ("HTTP_HOST", "h:1"),
                    ("SERVER_PROTOCOL", "HTTP/1.1"), ("REQUEST_METHOD", "PUT"))
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("srv", "8443")
    assert environ["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert environ["REQUEST_METHOD"] == "PUT"


def test_wsgi_keys() -> None:
    errors = ErrorStream()
    builder = EnvironBuilder(errors=errors, multithread=True, multiprocess=False,
                             run_once=True, file_wrapper=FileWrapper, extra={"x.extra": 1})
    environ, _ = builder.build([])
    assert environ["wsgi.version"] == (1, 0)
    assert environ["wsgi.errors"] is errors
    assert environ["wsgi.multithread"] is True
    assert environ["wsgi.multiprocess"] is False
    assert environ["wsgi.run_once"] is True
    assert environ["wsgi.file_wrapper"] is FileWrapper
    assert environ["wsgi.url_scheme"] == "http"
    assert environ["x.extra"] == 1
    assert "wsgi.input" not in environ  # the front-end attaches it
    default, _ = EnvironBuilder().build([])
    assert default["wsgi.errors"] is sys.stderr
    assert "wsgi.file_wrapper" not in default


def test_params_never_replace_wsgi_keys() -> None:
    """A server forwarding its environment (cgi-fcgi, Apache SetEnv) cannot clobber wsgi.*."""
    errors = ErrorStream()
    builder = EnvironBuilder(errors=errors, file_wrapper=FileWrapper)
    environ, _ = builder.build(params(**{
        "wsgi.errors": "x", "wsgi.version": "9", "wsgi.multithread": "1",
        "wsgi.run_once": "1", "wsgi.input": "x", "wsgi.input_terminated": "1",
        "wsgi.file_wrapper": "x", "wsgi.url_scheme": "https",
    }))
    assert environ["wsgi.errors"] is errors
    assert environ["wsgi.version"] == (1, 0)
    assert environ["wsgi.multithread"] is False
    assert environ["wsgi.run_once"] is False
    assert environ["wsgi.file_wrapper"] is FileWrapper
    assert environ["wsgi.url_scheme"] == "http"
    assert "wsgi.input" not in environ
    assert "wsgi.input_terminated" not in environ


def test_each_build_is_a_fresh_dict() -> None:
    first = build(("HTTP_COOKIE", "a=1"))
    second = build()
    assert "HTTP_COOKIE" not in second
    first["wsgi.version"] = "changed"
    assert build()["wsgi.version"] == (1, 0)


# -- wsgi.url_scheme ------------------------------------------------------------
@pytest.mark.parametrize(
    ("pairs", "scheme"),
    [
        ([("HTTPS", "on")], "https"),
        ([("HTTPS", "ON")], "https"),
        ([("HTTPS", "On")], "https"),
        ([("HTTPS", "1")], "https"),
        ([("HTTPS", "yes")], "https"),
        ([("HTTPS", "YES")], "https"),
        ([("HTTPS", "off")], "http"),
        ([("HTTPS", "0")], "http"),
        ([("HTTPS", "")], "http"),
        ([("REQUEST_SCHEME", "https")], "https"),
        ([("REQUEST_SCHEME", "HTTPS")], "https"),
        ([("REQUEST_SCHEME", "http")], "http"),
        ([("HTTPS", "off"), ("REQUEST_SCHEME", "https")], "https"),
        # never from a client header
        ([("HTTP_X_FORWARDED_PROTO", "https")], "http"),
        ([("HTTP_X_FORWARDED_SSL", "on")], "http"),
        ([("HTTP_X_FORWARDED_SCHEME", "https")], "http"),
        ([("HTTP_HTTPS", "on")], "http"),
        ([("HTTP_REQUEST_SCHEME", "https")], "http"),
        ([("HTTP_FORWARDED", "proto=https")], "http"),
        ([("REQUEST_SCHEME", "http"), ("HTTP_X_FORWARDED_PROTO", "https")], "http"),
    ],
    ids=lambda v: repr(v) if isinstance(v, list) else v,
)
def test_url_scheme(pairs: list[tuple[str, str]], scheme: str) -> None:
    environ = build(*pairs)
    assert environ["wsgi.url_scheme"] == scheme
    assert environ["SERVER_PORT"] == ("443" if scheme == "https" else "80")


# -- CONTENT_LENGTH / CONTENT_TYPE ------------------------------------------------
@pytest.mark.parametrize(
    ("value", "declared"), [(None, None), ("", None), ("0", 0), ("12", 12), ("007", 7)]
)
def test_content_length(value: str | None, declared: int | None) -> None:
    pairs = [] if value is None else [(b"CONTENT_LENGTH", value.encode())]
    environ, length = BUILDER.build(pairs)
    assert length == declared
    if declared is None:
        assert "CONTENT_LENGTH" not in environ
    else:
        assert environ["CONTENT_LENGTH"] == str(declared)


@pytest.mark.parametrize(
    "value",
    [b"+1_0", b" 5", b"5 ", b"-", b"--1", b"-+1", b"-1 ", b"-" + b"1" * 20, "\u0663".encode(),
     b"0x10", b"1" * 20, b"1,2"],
    ids=repr,
)
def test_malformed_content_length_is_400(value: bytes) -> None:
    with pytest.raises(BadRequest) as caught:
        BUILDER.build([(b"CONTENT_LENGTH", value)])
    assert caught.value.status_hint == 400


@pytest.mark.parametrize("value", ["\u0663", "\uff15", "\udcd9", " 5"], ids=repr)
def test_malformed_content_length_from_strings_is_400(value: str) -> None:
    """build_from_strings takes any str: non-latin-1 text is a 400, not a crash."""
    with pytest.raises(BadRequest):
        BUILDER.build_from_strings([("CONTENT_LENGTH", value)])


def test_a_length_the_codec_parsed_is_taken_as_it_is() -> None:
    """``content_length`` given (a codec framed the body by it): not parsed again."""
    environ, length = BUILDER.build_from_strings([("CONTENT_LENGTH", "007")], content_length=7)
    assert (environ["CONTENT_LENGTH"], length) == ("7", 7)
    environ, length = BUILDER.build_from_strings([("CONTENT_LENGTH", "")], content_length=None)
    assert "CONTENT_LENGTH" not in environ and length is None
    # Not parsed here: a text the core would refuse is not looked at.
    environ, length = BUILDER.build_from_strings([("CONTENT_LENGTH", "x")], content_length=3)
    assert (environ["CONTENT_LENGTH"], length) == ("3", 3)


@pytest.mark.parametrize(
    ("protocol", "length"),
    [("scgi", b"0"), ("scgi", b"5"), ("scgi", b"007"),
     ("uwsgi", None), ("uwsgi", b""), ("uwsgi", b"5"), ("uwsgi", b"007"), ("uwsgi", b"5 5")],
    ids=repr,
)
def test_the_codecs_length_is_the_one_the_core_would_parse(
    protocol: str, length: bytes | None
) -> None:
    """SCGI and uwsgi parse CONTENT_LENGTH to frame the body and hand it over in
    ``RequestStarted``; ``build_request`` uses it, with the same environ and
    length as the core's own parse of the same params."""
    codec: SCGIConnection | UWSGIConnection
    pairs = [(b"REQUEST_METHOD", b"POST"), (b"PATH_INFO", b"/x")]
    if protocol == "scgi":
        assert length is not None
        codec, data = SCGIConnection(), scgi_spec.request(pairs, b"", content_length=length)
    else:
        if length == b"5 5":  # repeated, with the same value: allowed
            pairs += [(b"CONTENT_LENGTH", b"5"), (b"CONTENT_LENGTH", b"5")]
        elif length is not None:
            pairs.append((b"CONTENT_LENGTH", length))
        codec, data = UWSGIConnection(), uwsgi_spec.request(pairs)
    codec.receive_data(data + b"12345")
    event = codec.next_event()
    assert isinstance(event, RequestStarted)
    expected = {b"0": 0, b"5": 5, b"007": 7, b"5 5": 5}.get(length or b"")
    assert event.content_length == expected
    pairs = pairs_of(event.params)  # before build_request, which takes a dict over
    ours = BUILDER.build_request(event)
    assert ours == BUILDER.build_from_strings(pairs)  # the core's own parse agrees
    assert ours[1] == expected


def test_content_type_kept_and_http_duplicates_dropped() -> None:
    environ = build(("CONTENT_TYPE", "text/plain"), ("CONTENT_LENGTH", "3"),
                    ("HTTP_CONTENT_TYPE", "text/html"), ("HTTP_CONTENT_LENGTH", "999"))
    assert environ["CONTENT_TYPE"] == "text/plain"
    assert environ["CONTENT_LENGTH"] == "3"
    assert "HTTP_CONTENT_TYPE" not in environ
    assert "HTTP_CONTENT_LENGTH" not in environ
    assert build(("CONTENT_TYPE", ""))["CONTENT_TYPE"] == ""


# -- duplicates -------------------------------------------------------------------
def test_last_value_wins_for_cgi_variables() -> None:
    """nginx sends SCRIPT_NAME twice: the stock fastcgi_params value, then the config's."""
    environ = build(("SCRIPT_NAME", "/index.php"), ("PATH_INFO", "/a"),
                    ("SCRIPT_NAME", "/app"), ("REQUEST_METHOD", "GET"),
                    ("REQUEST_METHOD", "POST"))
    assert environ["SCRIPT_NAME"] == "/app"
    assert environ["REQUEST_METHOD"] == "POST"


def test_last_content_length_wins() -> None:
    environ, declared = BUILDER.build([(b"CONTENT_LENGTH", b"5"), (b"CONTENT_LENGTH", b"")])
    assert declared is None and "CONTENT_LENGTH" not in environ
    _, declared = BUILDER.build([(b"CONTENT_LENGTH", b""), (b"CONTENT_LENGTH", b"5")])
    assert declared == 5


@pytest.mark.parametrize("value", ["-1", "-0", "-42", "-" + "9" * 19])
def test_negative_content_length_is_no_declared_length(
    value: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Caddy 2.6 sends -1 over FastCGI with a chunked body: the body is framed by
    FCGI_STDIN, so the length is unknown, not malformed (SCGI and uwsgi codecs refuse
    it before the environ is built)."""
    with caplog.at_level(logging.DEBUG, logger="wsgiwire"):
        environ, declared = BUILDER.build([(b"CONTENT_LENGTH", value.encode())])
    assert declared is None and "CONTENT_LENGTH" not in environ
    notes = [r for r in caplog.records if "CONTENT_LENGTH" in r.getMessage()]
    assert [r.levelno for r in notes] == [logging.DEBUG], caplog.records


def test_repeated_http_host_last_wins() -> None:
    """Debian's fastcgi_params sets HTTP_HOST $host; a config line after it sets it
    again: the later one is what the administrator meant, never a joined list."""
    environ = build(("HTTP_HOST", "127.0.0.1"), ("HTTP_COOKIE", "a=1"),
                    ("HTTP_HOST", "127.0.0.1:16080"), ("HTTP_COOKIE", "b=2"))
    assert environ["HTTP_HOST"] == "127.0.0.1:16080"
    assert environ["HTTP_COOKIE"] == "a=1; b=2"
    environ = build(("HTTP_HOST", "a"), ("HTTP_HOST", "b"), ("HTTP_HOST", "c:1"))
    assert environ["HTTP_HOST"] == "c:1"


def test_duplicate_headers_are_joined() -> None:
    environ = build(("HTTP_COOKIE", "a=1"), ("HTTP_X_DUP", "first"), ("HTTP_COOKIE", "b=2"),
                    ("HTTP_X_DUP", "second"), ("HTTP_COOKIE", "c=3"), ("HTTP_ACCEPT", "*/*"))
    assert environ["HTTP_COOKIE"] == "a=1; b=2; c=3"
    assert environ["HTTP_X_DUP"] == "first, second"
    assert environ["HTTP_ACCEPT"] == "*/*"


def test_headers_joined_beside_a_repeated_cgi_variable() -> None:
    """A repeated header is joined even when another, non-header name repeats too."""
    environ = build(("SCRIPT_NAME", "/index.php"), ("HTTP_X_DUP", "a"),
                    ("SCRIPT_NAME", ""), ("HTTP_X_DUP", "a"))
    assert environ["SCRIPT_NAME"] == ""
    assert environ["HTTP_X_DUP"] == "a, a"


@given(st.lists(st.tuples(st.sampled_from(["HTTP_A", "HTTP_B", "SCRIPT_NAME", "X\0HTTP_A",
                                           "HTTP_HOST", "HTTP_COOKIE",
                                           "\0HTTP_", "HTTP_", "A"]),
                          st.text(alphabet="ab", max_size=2)), max_size=8))
def test_repeats_match_a_plain_model(pairs: list[tuple[str, str]]) -> None:
    """The fast dict path and the joining path agree with a one-pass model of the rules."""
    model: dict[str, str] = {}
    for name, value in pairs:
        if name in model and name.startswith("HTTP_") and name != "HTTP_HOST":
            sep = "; " if name == "HTTP_COOKIE" else ", "
            model[name] = model[name] + sep + value
        else:
            model[name] = value
    environ, _ = BUILDER.build_from_strings(pairs)
    for name, value in model.items():
        if name not in ("SCRIPT_NAME",):
            assert environ[name] == value


def test_http_proxy_dropped() -> None:
    """httpoxy: a client's Proxy: header must not look like a proxy setting."""
    environ = build(("HTTP_PROXY", "http://evil:1/"), ("HTTP_PROXY", "http://evil:2/"),
                    ("HTTP_HOST", "h"))
    assert "HTTP_PROXY" not in environ
    assert environ["HTTP_HOST"] == "h"


# -- SCRIPT_NAME / PATH_INFO ------------------------------------------------------
@pytest.mark.parametrize(
    ("pairs", "script_name", "path_info"),
    [
        ([("SCRIPT_NAME", "/"), ("REQUEST_URI", "/")], "", "/"),
        ([("SCRIPT_NAME", "/"), ("PATH_INFO", "/x")], "", "/x"),
        ([("SCRIPT_NAME", "/")], "", "/"),
        ([("SCRIPT_NAME", "/app/")], "/app", "/"),
        ([("SCRIPT_NAME", "/app/"), ("PATH_INFO", "/")], "/app", "/"),
        ([("SCRIPT_NAME", "/app/"), ("PATH_INFO", "x")], "/app", "/x"),
        ([("SCRIPT_NAME", "/app/"), ("PATH_INFO", "")], "/app", "/"),
        ([("SCRIPT_NAME", "/app//"), ("PATH_INFO", "/x")], "/app", "/x"),
        ([("SCRIPT_NAME", "/app/"), ("REQUEST_URI", "/app/?q")], "/app", "/"),
        ([("SCRIPT_NAME", "/app"), ("PATH_INFO", "")], "/app", ""),
        ([("SCRIPT_NAME", "/app"), ("PATH_INFO", "/x/")], "/app", "/x/"),
        ([("PATH_INFO", "/x")], "", "/x"),
    ],
)
def test_script_name_rules(
    pairs: list[tuple[str, str]], script_name: str, path_info: str
) -> None:
    environ = build(*pairs)
    assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == (script_name, path_info)
    assert environ["SCRIPT_NAME"] != "/" and not environ["SCRIPT_NAME"].endswith("/")


def test_path_info_from_request_uri_is_decoded_not_sliced() -> None:
    """flup slices the still-encoded REQUEST_URI by len(SCRIPT_NAME); this decodes first."""
    script_name, uri = "/app", "/app/a%20b/%E4%B8%AD?x=1"
    environ = build(("SCRIPT_NAME", script_name), ("REQUEST_URI", uri), ("QUERY_STRING", "x=1"))
    assert environ["PATH_INFO"] == "/a b/\xe4\xb8\xad"  # the UTF-8 bytes of "中", as latin-1
    assert environ["PATH_INFO"].encode("latin-1").decode("utf-8") == "/a b/\u4e2d"
    flup = uri.split("?", 1)[0][len(script_name) :]  # fcgi_base.py _sanitizeEnv
    assert flup == "/a%20b/%E4%B8%AD" != environ["PATH_INFO"]


def test_script_name_compared_in_decoded_form() -> None:
    """SCRIPT_NAME arrives decoded ("/my app"), REQUEST_URI encoded ("/my%20app")."""
    uri = "/my%20app/x%2Fy"
    environ = build(("SCRIPT_NAME", "/my app"), ("REQUEST_URI", uri))
    assert environ["PATH_INFO"] == "/x/y"
    flup = uri[len("/my app") :]
    assert flup == "pp/x%2Fy"  # what slicing the encoded URI gives


def test_raw_non_ascii_bytes_in_request_uri_beside_escapes() -> None:
    """A client may send raw bytes >= 0x80 unescaped; they must come out as those bytes."""
    environ = build(("SCRIPT_NAME", "/app"), (b"REQUEST_URI", b"/app/caf\xc3\xa9/%20x"))
    assert environ["PATH_INFO"] == "/caf\xc3\xa9/ x"
    assert decode_request_path("/caf\xc3\xa9/%41") == "/caf\xc3\xa9/A"


@pytest.mark.parametrize(
    ("uri", "path"),
    [
        ("/a/b?x=1", "/a/b"),
        ("/a/b#frag", "/a/b"),
        ("/p%2541", "/p%41"),  # decoded once only
        ("/s%2Fl", "/s/l"),
        ("http://host:8080/a%20b?q", "/a b"),
        ("https://host", "/"),
        ("/", "/"),
    ],
)
def test_decode_request_path(uri: str, path: str) -> None:
    assert decode_request_path(uri) == path


@pytest.mark.parametrize(
    ("script_name", "path", "rest"),
    [("/app", "/app/x", "/x"), ("/app", "/app", ""), ("/app", "/apple", None),
     ("/app", "/other", None), ("", "/x", "/x")],
)
def test_split_script_name(script_name: str, path: str, rest: str | None) -> None:
    assert split_script_name(script_name, path) == rest


def test_request_uri_not_under_script_name() -> None:
    environ = build(("SCRIPT_NAME", "/app.fcgi"), ("REQUEST_URI", "/elsewhere"))
    assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == ("/app.fcgi", "")


def test_path_info_sent_is_never_rederived() -> None:
    environ = build(("SCRIPT_NAME", "/app"), ("PATH_INFO", "/given"), ("REQUEST_URI", "/app/uri"))
    assert environ["PATH_INFO"] == "/given"


# -- uwsgi modifier1 30 / IIS: SCRIPT_NAME repeated at the front of PATH_INFO --------
@pytest.mark.parametrize(
    ("path_info", "stripped"),
    [("/app/x/y", "/x/y"), ("/app/", "/"), ("/app", ""), ("/apple", "/apple"),
     ("/other/app", "/other/app"), ("/app/a b/\xe4", "/a b/\xe4")],
)
def test_script_name_in_path_info(path_info: str, stripped: str) -> None:
    environ = build(("SCRIPT_NAME", "/app"), ("PATH_INFO", path_info), strip=True)
    assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == ("/app", stripped)
    untouched = build(("SCRIPT_NAME", "/app"), ("PATH_INFO", path_info))
    assert untouched["PATH_INFO"] == path_info


def test_script_name_in_path_info_without_script_name() -> None:
    environ = build(("PATH_INFO", "/x"), strip=True)
    assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == ("", "/x")


# -- properties -------------------------------------------------------------------
NAMES = st.sampled_from(
    ["SCRIPT_NAME", "PATH_INFO", "REQUEST_URI", "QUERY_STRING", "HTTP_COOKIE", "HTTP_X_A",
     "HTTP_PROXY", "HTTPS", "REQUEST_SCHEME", "CONTENT_LENGTH", "CONTENT_TYPE",
     "SERVER_NAME", "HTTP_HOST", "wsgi.errors", "OTHER"]
)
PAIRS = st.lists(st.tuples(NAMES.map(str.encode), st.binary(max_size=12)), max_size=12)


@given(PAIRS)
def test_any_params_give_an_environ_or_bad_request(pairs: list[tuple[bytes, bytes]]) -> None:
    try:
        environ, declared = BUILDER.build(pairs)
    except BadRequest:
        return
    assert environ["SCRIPT_NAME"] != "/" and not environ["SCRIPT_NAME"].endswith("/")
    assert "HTTP_PROXY" not in environ
    assert environ["wsgi.url_scheme"] in ("http", "https")
    assert environ["wsgi.errors"] is sys.stderr
    for key, value in environ.items():
        if "." not in key:
            assert type(value) is str
    # build_from_strings gives the same environ for the same (latin-1) params
    same, same_declared = BUILDER.build_from_strings(
        (n.decode("latin-1"), v.decode("latin-1")) for n, v in pairs
    )
    assert same == environ and same_declared == declared


SEGMENT = st.binary(max_size=6)


@given(
    mount=st.lists(st.binary(min_size=1, max_size=4).filter(lambda b: b"/" not in b), max_size=2),
    rest=st.lists(SEGMENT.filter(lambda b: b"/" not in b), max_size=3),
    query=st.binary(max_size=6).filter(lambda b: b"#" not in b),
)
def test_path_info_derived_from_any_encoded_uri(
    mount: list[bytes], rest: list[bytes], query: bytes
) -> None:
    """Any bytes, percent-encoded by the client, come back as those bytes in latin-1."""
    script = b"".join(b"/" + m for m in mount)
    path = b"".join(b"/" + r for r in rest)
    uri = quote_from_bytes(script + path, safe="/") + "?" + quote_from_bytes(query)
    environ = build((b"SCRIPT_NAME", script), ("REQUEST_URI", uri))
    assert environ["SCRIPT_NAME"] == script.decode("latin-1")
    assert environ["PATH_INFO"] == path.decode("latin-1")


@given(
    method=st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"]),
    script=st.sampled_from(["", "/", "/app", "/app/", "/a b/"]),
    path=st.one_of(st.none(), st.sampled_from(["", "/", "/x", "/x/y/"])),
    uri=st.one_of(st.none(), st.sampled_from(["/", "/app/x?y", "/a%20b/c", "/zz"])),
)
def test_environ_passes_wsgiref_check_environ(
    method: str, script: str, path: str | None, uri: str | None
) -> None:
    pairs: list[tuple[str, str]] = [("REQUEST_METHOD", method), ("SCRIPT_NAME", script)]
    if path is not None:
        pairs.append(("PATH_INFO", path))
    if uri is not None:
        pairs.append(("REQUEST_URI", uri))
    environ = build(*pairs)
    attach_input(environ, io.BytesIO(), terminated=True)
    check_environ(environ)  # raises AssertionError / warns (an error here) on any flaw


# -- the one rendering of a request, the one host split -----------------------------
@pytest.mark.parametrize(
    ("environ", "label"),
    [
        ({"REQUEST_METHOD": "GET", "REQUEST_URI": "/a%20b?x=1", "PATH_INFO": "/a b"},
         "GET /a%20b?x=1"),
        ({"REQUEST_METHOD": "POST", "SCRIPT_NAME": "/app", "PATH_INFO": "/a b\n\xff",
          "QUERY_STRING": "k=v"}, "POST /app/a%20b%0A%FF?k=v"),
        ({"REQUEST_METHOD": "GET", "QUERY_STRING": "k=v"}, "GET /?k=v"),
        ({"REQUEST_METHOD": "GET", "REQUEST_URI": ""}, "GET /"),
        ({}, "- /"),
        ({"REQUEST_METHOD": "", "PATH_INFO": "/x"}, "- /x"),
    ],
    ids=["request-uri", "requoted", "empty-path", "empty-request-uri", "nothing", "no-method"],
)
def test_request_label(environ: dict[str, str], label: str) -> None:
    """``METHOD target``, the raw REQUEST_URI first: what the access log's request
    line, error log lines and the status page all show."""
    assert request_label(environ) == label
    assert request_uri(environ) == label.partition(" ")[2]


@pytest.mark.parametrize(
    ("host", "split"),
    [("example.org", ("example.org", "")), ("example.org:8080", ("example.org", ":8080")),
     ("[::1]", ("[::1]", "")), ("[::1]:80", ("[::1]", ":80")), ("[::1]x", ("[::1]", "x")),
     ("[::1", ("[::1", "")), ("a:b:c", ("a", ":b:c")), ("", ("", ""))],
)
def test_split_host(host: str, split: tuple[str, str]) -> None:
    assert split_host(host) == split
    assert host_name(host) == split[0]
