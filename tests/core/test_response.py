"""Response: start_response/write validation, the head, Content-Length, bodiless responses.

Misuse tests drive ``Response`` directly: ``wsgiref.validate`` would refuse the
bad call itself before it reached the writer, which is what is under test here.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsgiwire._errors import ResponseHeaderError, StartResponseError
from wsgiwire.core._response import (
    HeadStyle,
    Response,
    send_status,
    status_line,
    validate_headers,
    validate_status,
)

REPO = Path(__file__).resolve().parents[2]
TEXT = [("Content-Type", "text/plain")]


def make(method: str = "GET", style: HeadStyle = HeadStyle.CGI,
         protocol: str = "HTTP/1.1") -> tuple[Response, list[bytes]]:
    out: list[bytes] = []
    return Response(out.append, method=method, style=style, protocol=protocol), out


# -- status ------------------------------------------------------------------------
@pytest.mark.parametrize("status", ["200 OK", "404 Not Found", "599 Custom reason", "200 ",
                                    "201 Cr\xe9\xe9", "418 I'm a teapot\t(tab)"])
def test_valid_status(status: str) -> None:
    assert validate_status(status) == status


@pytest.mark.parametrize(
    "status",
    ["200", "200OK", "20 OK", "2000 OK", "099 Low", "abc OK", " 200 OK", "200 OK\r\nX: y",
     "200 OK\n", "200 OK\x00", "200 O\x7fK", "200 \u2603", b"200 OK", None, 200],
    ids=repr,
)
def test_invalid_status(status: Any) -> None:
    with pytest.raises(ResponseHeaderError):
        validate_status(status)
    response, out = make()
    with pytest.raises(ResponseHeaderError):
        response.start_response(status, TEXT)
    assert response.status is None and out == []


# -- headers -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "headers",
    [
        [("X Bad", "v")],
        [("X:Bad", "v")],
        [("", "v")],
        [("X-\xe9", "v")],
        [("X-A\r\nX-B", "v")],
        [("X-A", "v\r\nSet-Cookie: evil=1")],
        [("X-A", "v\nw")],
        [("X-A", "v\rw")],
        [("X-A", "v\x00w")],
        [("X-A", "\u2603")],
        [("Connection", "close")],
        [("Keep-Alive", "timeout=5")],
        [("Transfer-Encoding", "chunked")],
        [("TE", "trailers")],
        [("Trailer", "X")],
        [("Upgrade", "h2c")],
        [("Proxy-Authenticate", "Basic")],
        [("proxy-authorization", "x")],
        [("Status", "500 Oops")],
        [("Content-Length", "12a")],
        [("Content-Length", "-1")],
        [("Content-Length", " 5")],
        [("Content-Length", "5"), ("Content-Length", "6")],
        [(b"X-A", "v")],
        [("X-A", b"v")],
        [["X-A", "v"]],
        [("X-A", "v", "w")],
        (("X-A", "v"),),
        {"X-A": "v"},
    ],
    ids=repr,
)
def test_invalid_headers_refused(headers: Any) -> None:
    response, out = make()
    with pytest.raises(ResponseHeaderError):
        response.start_response("200 OK", headers)
    assert response.status is None and out == []


def test_valid_headers_accepted() -> None:
    headers = [("Content-Type", "text/plain"), ("X-Token!#$%&'*+-.^_`|~09az", "v \t\xe9"),
               ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("Content-Length", "5"),
               ("content-length", "5")]
    assert validate_headers(headers) is headers
    response, _ = make()
    response.start_response("200 OK", headers)
    assert response.content_length == 5


class _Str(str):
    pass


class _Pair(tuple):  # type: ignore[type-arg]
    pass


def test_known_pairs_are_refused_in_subclass_clothing() -> None:
    """A pair seen before is reused only for exact tuples of exact strings."""
    response, _ = make()
    response.start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    for item in [
        ("Content-Type", _Str("text/plain")),
        (_Str("Content-Type"), "text/plain"),
        _Pair(("Content-Type", "text/plain")),
    ]:
        fresh, out = make()
        with pytest.raises(ResponseHeaderError, match=r"native str|tuple"):
            fresh.start_response("200 OK", [item])
        assert fresh.status is None and out == []


def test_known_pairs_still_conflict_and_render_alike() -> None:
    headers = [("Content-Type", "text/plain"), ("Content-Length", "5")]
    for _ in range(2):  # the second time alike (once, a cache answered it)
        response, out = make()
        response.start_response("200 OK", headers)
        response.write(b"hello")
        assert out == [b"Status: 200 OK\r\nContent-Type: text/plain\r\n"
                       b"Content-Length: 5\r\n\r\nhello"]
        assert response.content_length == 5
    response, _ = make()
    with pytest.raises(ResponseHeaderError, match="conflicting Content-Length"):
        response.start_response("200 OK", [("Content-Length", "5"), ("Content-Length", "6")])


def test_validation_caches_stay_bounded() -> None:
    """Whatever an application sends, the verdict caches stay small: distinct values
    churn them, long lines are never kept, and every value is still checked."""
    from wsgiwire.core import _response as module

    for number in range(3 * 1024):
        make()[0].start_response("200 OK", [("Content-Length", str(number))])
        make()[0].start_response(f"{200 + number % 700} X{number}", [])
    assert len(module._VALID_PAIRS) <= module._VALID_PAIRS_MAX
    assert len(module._VALID_STATUS) <= module._VALID_STATUS_MAX
    response, _ = make()
    response.start_response("200 OK", [("Content-Length", "7")])
    assert response.content_length == 7
    long_value = "v" * 513
    response, out = make()
    response.start_response("200 OK", [("X-Long", long_value)])
    response.finish()
    assert out == [f"Status: 200 OK\r\nX-Long: {long_value}\r\n\r\n".encode()]
    assert ("X-Long", long_value) not in module._VALID_PAIRS


def _verdict(status: object, headers: object) -> tuple[str, object]:
    """What start_response makes of ``status`` and ``headers``: the head, or the error."""
    response, out = make()
    try:
        response.start_response(status, headers)
        response.finish()
    except (ResponseHeaderError, StartResponseError) as exc:
        return type(exc).__name__, str(exc)
    return "ok", (out, response.content_length)


_NAMES = st.one_of(
    st.sampled_from(["Content-Type", "Content-Length", "content-length", "X-A", "Set-Cookie",
                     "Connection", "Status", "X A", "", "X\r\nY", "Ä"]),
    st.text(max_size=6),
)
_VALUES = st.one_of(
    st.sampled_from(["text/plain", "5", "6", " 5", "+5", "05", "v\r\nX: y", "\x00", "é", "€",
                     "a\tb", ""]),
    st.text(max_size=8),
)


@st.composite
def _header_items(draw: st.DrawFn) -> object:
    name, value = draw(_NAMES), draw(_VALUES)
    shape = draw(st.integers(0, 9))
    if shape == 0:
        return (_Str(name), value)
    if shape == 1:
        return (name, _Str(value))
    if shape == 2:
        return _Pair((name, value))
    if shape == 3:
        return [name, value]
    if shape == 4:
        return (name, value, value)
    return (name, value)


@settings(max_examples=400, deadline=None)
@given(
    status=st.one_of(
        st.sampled_from(["200 OK", "204 No Content", "304 X", "404 Not Found", "099 X",
                         "200 OK\r\nX: y", "200  ", "2000 OK", "200 \t tab", "200 é", "200 €"]),
        st.text(max_size=8),
        st.builds(_Str, st.sampled_from(["200 OK", "404 Not Found"])),
    ),
    headers=st.lists(_header_items(), max_size=4),
)
def test_cached_and_uncached_validation_agree(status: object, headers: list[object]) -> None:
    """The verdict caches never change a verdict: with both emptied (every check
    runs) and then warm (the same input again, and once more after other input
    filled them), start_response says the same, head or error, word for word."""
    from wsgiwire.core import _response as module

    module._VALID_PAIRS.clear()
    module._VALID_STATUS.clear()
    cold = _verdict(status, headers)
    assert _verdict(status, headers) == cold
    plain = [(str(item[0]), str(item[1])) for item in headers
             if isinstance(item, tuple) and len(item) == 2
             and isinstance(item[0], str) and isinstance(item[1], str)]
    _verdict(str(status), plain)  # the exact-type twins, cached when valid
    assert _verdict(status, headers) == cold


def test_header_validation_survives_python_O(tmp_path: Path) -> None:
    """No assert does the checking: under -O an injected header is still refused."""
    code = textwrap.dedent(
        """
        import sys
        from wsgiwire.core._response import Response
        from wsgiwire._errors import ResponseHeaderError
        if __debug__:
            sys.exit("not running under -O")
        out = []
        r = Response(out.append)
        bad = [
            ("200 OK", [("X-A", "v\\r\\nSet-Cookie: evil=1")]),
            ("200 OK", [("X A", "v")]),
            ("200 OK", [("Connection", "close")]),
            ("200 OK\\r\\nX: y", []),
            ("2000 OK", []),
        ]
        for status, headers in bad:
            try:
                r.start_response(status, headers)
            except ResponseHeaderError:
                continue
            sys.exit("accepted: %r %r" % (status, headers))
        if out or r.status is not None:
            sys.exit("something was sent")
        print("all refused")
        """
    )
    done = subprocess.run([sys.executable, "-O", "-c", code], cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr + done.stdout
    assert done.stdout.strip() == "all refused"


# -- the head ---------------------------------------------------------------------------
def test_cgi_head() -> None:
    response, out = make()
    write = response.start_response("404 Not Found", [("Content-Type", "text/plain"),
                                                      ("X-A", "1")])
    assert out == []  # start_response sends nothing
    write(b"body")
    assert b"".join(out) == (
        b"Status: 404 Not Found\r\nContent-Type: text/plain\r\nX-A: 1\r\n\r\nbody"
    )
    assert response.finish() is True


@pytest.mark.parametrize(
    ("protocol", "line"),
    [("HTTP/1.1", b"HTTP/1.1"), ("HTTP/1.0", b"HTTP/1.0"), ("HTTP/2.0", b"HTTP/1.1"),
     ("", b"HTTP/1.1"), ("HTTP/1.1\r\nX: y", b"HTTP/1.1")],
)
def test_http_head(protocol: str, line: bytes) -> None:
    response, out = make(style=HeadStyle.HTTP, protocol=protocol)
    response.start_response("200 OK", TEXT)
    assert response.finish() is True
    assert b"".join(out) == line + b" 200 OK\r\nContent-Type: text/plain\r\n\r\n"


def test_head_waits_for_the_first_non_empty_chunk() -> None:
    response, out = make()
    response.start_response("200 OK", TEXT)
    response.write(b"")
    assert out == [] and not response.head_sent
    response.write(b"x")
    assert response.head_sent and b"".join(out).endswith(b"\r\n\r\nx")


def test_small_first_chunk_goes_out_with_the_head_large_one_separately() -> None:
    response, out = make()
    response.start_response("200 OK", TEXT)
    response.write(b"small")
    assert len(out) == 1
    response2, out2 = make()
    response2.start_response("200 OK", TEXT)
    big = b"x" * 100_000
    response2.write(big)
    assert len(out2) == 2 and out2[1] is big


def test_after_write_follows_the_apps_write_callable_only() -> None:
    """``after_write`` runs after each call of the ``write()`` that ``start_response``
    returned (the app runs on from there), never after ``Response.write`` for a chunk
    of the iterable (whose caller may pause instead)."""
    out: list[bytes] = []
    calls: list[int] = []
    response = Response(out.append, after_write=lambda: calls.append(len(out)))
    write = response.start_response("200 OK", TEXT)
    write(b"by the app")
    assert calls == [1]
    response.write(b"a chunk of the iterable")
    assert calls == [1]
    write(b"again")
    assert calls == [1, 3]
    assert response.finish() and b"".join(out).endswith(b"by the appa chunk of the iterableagain")
    plain, _ = make()
    assert plain.start_response("200 OK", TEXT) == plain.write  # no hook: write itself


def test_write_accepts_only_bytes() -> None:
    response, out = make()
    response.start_response("200 OK", TEXT)
    with pytest.raises(StartResponseError):
        response.write("text")  # type: ignore[arg-type]
    response.write(bytearray(b"ba"))
    response.write(memoryview(b"mv"))
    assert b"".join(out).endswith(b"bamv")


def test_write_before_start_response() -> None:
    response, out = make()
    with pytest.raises(StartResponseError):
        response.write(b"x")
    assert out == []


def test_finish_without_start_response() -> None:
    response, _ = make()
    with pytest.raises(StartResponseError):
        response.finish()


# -- start_response twice, exc_info ------------------------------------------------------------
def test_second_start_response_without_exc_info_is_an_error() -> None:
    response, _ = make()
    response.start_response("200 OK", TEXT)
    with pytest.raises(StartResponseError):
        response.start_response("500 Oops", TEXT)
    assert response.status == "200 OK"


def _exc_info() -> Any:
    try:
        raise KeyError("original")
    except KeyError:
        return sys.exc_info()


def test_exc_info_before_the_head_replaces_status_and_headers() -> None:
    response, out = make()
    response.start_response("200 OK", [("Content-Type", "text/html"), ("Content-Length", "100")])
    response.start_response("500 Internal Server Error", TEXT, _exc_info())
    response.write(b"oops")
    assert response.finish() is True
    assert b"".join(out) == (
        b"Status: 500 Internal Server Error\r\nContent-Type: text/plain\r\n\r\noops"
    )


def test_exc_info_after_the_head_reraises_the_original_exception() -> None:
    response, out = make()
    response.start_response("200 OK", TEXT)
    response.write(b"partial")
    info = _exc_info()
    with pytest.raises(KeyError) as caught:
        response.start_response("500 Internal Server Error", TEXT, info)
    assert caught.value is info[1]
    assert caught.value.__traceback__ is not None
    assert response.status == "200 OK"
    assert b"".join(out).endswith(b"partial")


def test_exc_info_on_the_first_call_is_allowed() -> None:
    response, _ = make()
    response.start_response("500 Internal Server Error", TEXT, _exc_info())
    assert response.status == "500 Internal Server Error"


# -- Content-Length accounting ------------------------------------------------------------------
def test_never_more_than_content_length(caplog: pytest.LogCaptureFixture) -> None:
    response, out = make()
    response.start_response("200 OK", [*TEXT, ("Content-Length", "5")])
    with caplog.at_level(logging.WARNING, logger="wsgiwire"):
        response.write(b"abc")
        response.write(b"defgh")
        response.write(b"ijk")
    assert b"".join(out).endswith(b"\r\n\r\nabcde")
    assert response.sent == 5 and response.overflowed
    assert response.finish() is True
    assert len([r for r in caplog.records if "more than" in r.getMessage()]) == 1


def test_extra_bytes_with_content_length_zero_still_send_the_head() -> None:
    response, out = make()
    response.start_response("200 OK", [*TEXT, ("Content-Length", "0")])
    response.write(b"abc")
    assert b"".join(out).endswith(b"Content-Length: 0\r\n\r\n")


def test_short_body_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    response, _ = make()
    response.start_response("200 OK", [*TEXT, ("Content-Length", "10")])
    response.write(b"abc")
    with caplog.at_level(logging.WARNING, logger="wsgiwire"):
        assert response.finish() is False
    assert response.complete is False  # what call_app reports
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "3 bytes" in caplog.text and "10" in caplog.text


def test_exact_content_length_is_complete() -> None:
    response, _ = make()
    response.start_response("200 OK", [*TEXT, ("Content-Length", "3")])
    response.write(b"abc")
    assert response.complete is False  # not before finish()
    assert response.finish() is True
    assert response.complete is True


# -- bodiless responses ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "status"),
    [("HEAD", "200 OK"), ("HEAD", "404 Not Found"), ("GET", "204 No Content"),
     ("GET", "304 Not Modified"), ("GET", "100 Continue"), ("GET", "103 Early Hints"),
     ("POST", "204 No Content")],
)
def test_no_body(method: str, status: str) -> None:
    response, out = make(method)
    response.start_response(status, [("Content-Length", "4")])
    response.write(b"body")
    response.write(b"more")
    assert response.finish() is True  # a declared length is not "short" without a body
    raw = b"".join(out)
    assert raw == f"Status: {status}\r\nContent-Length: 4\r\n\r\n".encode()


def test_head_request_without_content_length() -> None:
    response, out = make("HEAD")
    response.start_response("200 OK", TEXT)
    assert response.finish() is True
    assert b"".join(out) == b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n"


# -- short replies -------------------------------------------------------------------------
def test_send_status() -> None:
    out: list[bytes] = []
    send_status(out.append, 400)
    assert b"".join(out) == (
        b"Status: 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: 16\r\n\r\n400 Bad Request\n"
    )
    out.clear()
    send_status(out.append, 413, style=HeadStyle.HTTP, protocol="HTTP/1.0", method="HEAD")
    raw = b"".join(out)
    assert raw.startswith(f"HTTP/1.0 {status_line(413)}\r\n".encode())
    assert raw.endswith(b"\r\n\r\n")  # HEAD: no body


def test_status_line() -> None:
    assert status_line(404) == "404 Not Found"
    assert status_line(599) == "599 Error"


def test_send_error_after_the_head_is_refused() -> None:
    response, _ = make()
    response.start_response("200 OK", TEXT)
    response.write(b"x")
    with pytest.raises(StartResponseError):
        response.send_error("500 Internal Server Error", b"no")
