"""call_app: running the app, iterating, closing, and mapping failures.

Well-behaved apps run under ``wsgiref.validate.validator`` (see ``serve``); a
test about misuse the validator would catch first runs the bare app
(``validate=False``) so the gateway's own handling is what is tested.
"""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.core import request_params, serve
from wsgiwire._errors import ClientDisconnected
from wsgiwire._limits import Limits
from wsgiwire.core._body import BodyBuffer, attach_input
from wsgiwire.core._environ import EnvironBuilder
from wsgiwire.core._gateway import ErrorStream, FileWrapper, call_app
from wsgiwire.core._response import Response

TEXT = [("Content-Type", "text/plain")]
LABEL = "GET /app/x?q=1"  # what every log line about the request must name


def _request() -> Any:
    return request_params("GET", "/x", "q=1")


class Body:
    """An app iterable that records close() and can fail on a given item."""

    def __init__(self, items: list[Any], fail_at: int | None = None,
                 exc: BaseException | None = None, on_iter: Any = None) -> None:
        self.items = items
        self.fail_at = fail_at
        self.exc = exc or RuntimeError("boom in iteration")
        self.on_iter = on_iter  # called when iteration starts (a lazy app's start_response)
        self.closed = 0

    def __iter__(self) -> Iterator[Any]:
        if self.on_iter is not None:
            self.on_iter()
        for index, item in enumerate(self.items):
            if index == self.fail_at:
                raise self.exc
            yield item
        if self.fail_at == len(self.items):
            raise self.exc

    def close(self) -> None:
        self.closed += 1


def _errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR]


# -- well-behaved apps, validated ----------------------------------------------------------
def test_list_body() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [*TEXT, ("Content-Length", "5")])
        return [b"he", b"llo"]

    result = serve(app)
    assert result.ok
    assert result.status == "200 OK"
    assert result.header("Content-Length") == "5"
    assert result.body == b"hello"


def test_generator_body_and_lazy_start_response() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("201 Created", TEXT)
        yield b""
        yield b"a"
        yield b"b"

    result = serve(app)
    assert (result.ok, result.status, result.body) == (True, "201 Created", b"ab")


def test_write_callable() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        write = start_response("200 OK", TEXT)
        write(b"written ")
        return [b"and returned"]

    result = serve(app)
    assert result.body == b"written and returned"


def test_file_wrapper() -> None:
    data = io.BytesIO(b"x" * 100_000)

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](data, 4096)

    result = serve(app)
    assert result.body == b"x" * 100_000
    assert data.closed  # FileWrapper.close() closed the file


def test_file_wrapper_blocks() -> None:
    wrapper = FileWrapper(io.BytesIO(b"abcdefg"), 3)
    assert list(wrapper) == [b"abc", b"def", b"g"]
    wrapper.close()
    assert wrapper.filelike.closed
    FileWrapper(object(), 1).close()  # type: ignore[arg-type]  # no close(): nothing to do


def test_empty_body_sends_the_head_at_the_end() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", TEXT)
        return []

    result = serve(app)
    assert result.ok and result.raw == b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n"


def test_head_request_sends_no_body_and_closes() -> None:
    body = Body([b"never", b"sent"])

    def app(environ: dict[str, Any], start_response: Any) -> Body:
        start_response("200 OK", [*TEXT, ("Content-Length", "9")])
        return body

    result = serve(app, request_params("HEAD"))
    assert result.ok and result.body == b"" and result.header("Content-Length") == "9"
    assert body.closed == 1


def test_head_request_with_lazy_generator() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", TEXT)
        yield b"chunk"
        yield b"more"

    result = serve(app, request_params("HEAD"))
    assert result.ok and result.status == "200 OK" and result.body == b""


@pytest.mark.parametrize("status", ["204 No Content", "304 Not Modified"])
def test_bodiless_status(status: str) -> None:
    body = Body([b"ignored"])

    def app(environ: dict[str, Any], start_response: Any) -> Body:
        start_response(status, [])
        return body

    result = serve(app)
    assert result.ok and result.status == status and result.body == b""
    assert body.closed == 1


# -- errors ------------------------------------------------------------------------------------
def _raises_before_head(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    raise ValueError("secret detail")


def test_exception_before_head_is_a_short_500(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        result = serve(_raises_before_head, _request())
    assert result.ok is True  # the 500 went out whole
    assert result.status == "500 Internal Server Error"
    assert result.body == b"500 Internal Server Error\n"
    assert result.header("Content-Length") == str(len(result.body))
    assert b"Traceback" not in result.raw and b"secret" not in result.raw
    (record,) = _errors(caplog)
    assert LABEL in record.getMessage() and "ValueError" in record.getMessage()
    assert record.exc_info is not None  # the traceback goes to the log


def test_debug_shows_the_traceback() -> None:
    result = serve(_raises_before_head, _request(), debug=True)
    assert result.status == "500 Internal Server Error"
    assert result.body.startswith(b"500 Internal Server Error\nTraceback (most recent call last)")
    assert b"ValueError: secret detail" in result.body
    assert result.header("Content-Length") == str(len(result.body))


def test_exception_before_head_of_a_head_request() -> None:
    result = serve(_raises_before_head, request_params("HEAD"))
    assert result.status == "500 Internal Server Error" and result.body == b""


def test_exception_after_head_cuts_the_response(caplog: pytest.LogCaptureFixture) -> None:
    body = Body([b"first", b"second"], fail_at=1)

    def app(environ: dict[str, Any], start_response: Any) -> Body:
        start_response("200 OK", TEXT)
        return body

    with caplog.at_level(logging.INFO):
        result = serve(app, _request())
    assert result.ok is False
    assert result.status == "200 OK" and result.body == b"first"
    assert body.closed == 1
    (record,) = _errors(caplog)
    assert LABEL in record.getMessage() and "RuntimeError" in record.getMessage()


def test_app_replaces_the_head_with_exc_info(caplog: pytest.LogCaptureFixture) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", TEXT)
        try:
            raise LookupError("handled by the app")
        except LookupError:
            start_response("503 Service Unavailable", TEXT, sys.exc_info())
        return [b"sorry"]

    with caplog.at_level(logging.INFO):
        result = serve(app)
    assert result.ok and result.status == "503 Service Unavailable" and result.body == b"sorry"
    assert _errors(caplog) == []


def test_exc_info_after_head_reraises_original_and_logs_it_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", TEXT)
        yield b"partial"
        try:
            raise KeyError("late failure")
        except KeyError:
            start_response("500 Internal Server Error", TEXT, sys.exc_info())
        yield b"never"

    with caplog.at_level(logging.INFO):
        result = serve(app, _request())
    assert result.ok is False and result.body == b"partial"
    (record,) = _errors(caplog)
    assert "KeyError" in record.getMessage() and LABEL in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is KeyError


def test_second_start_response_is_misuse(caplog: pytest.LogCaptureFixture) -> None:
    body = Body([b"x"])

    def app(environ: dict[str, Any], start_response: Any) -> Body:
        start_response("200 OK", TEXT)
        start_response("404 Not Found", TEXT)
        return body

    with caplog.at_level(logging.INFO):
        result = serve(app, _request(), validate=False)
    assert result.status == "500 Internal Server Error"
    (record,) = _errors(caplog)
    assert "misuse of start_response" in record.getMessage() and LABEL in record.getMessage()


def test_no_start_response_is_a_500(caplog: pytest.LogCaptureFixture) -> None:
    body = Body([])

    def app(environ: dict[str, Any], start_response: Any) -> Body:
        return body

    with caplog.at_level(logging.INFO):
        result = serve(app, _request(), validate=False)
    assert result.status == "500 Internal Server Error"
    assert body.closed == 1
    assert len(_errors(caplog)) == 1


def test_str_body_is_refused() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[str]:
        start_response("200 OK", TEXT)
        return ["text, not bytes"]

    result = serve(app, validate=False)
    assert result.status == "500 Internal Server Error"
    assert b"text, not bytes" not in result.raw


# -- close() is always called exactly once ------------------------------------------------------
def _ok(sr: Any) -> None:
    sr("200 OK", TEXT)


# name: (what the app does before returning, the iterable it returns given start_response)
SCENARIOS: dict[str, tuple[Any, Any]] = {
    "normal": (_ok, lambda sr: Body([b"a"])),
    "iteration raises": (_ok, lambda sr: Body([b"a", b"b"], fail_at=1)),
    "raises before any item": (_ok, lambda sr: Body([b"a"], fail_at=0)),
    "never starts the response": (lambda sr: None, lambda sr: Body([b"a"])),
    "invalid header while iterating": (
        lambda sr: None,
        lambda sr: Body([b"a"], on_iter=lambda: sr("200 OK", [("Bad Name", "v")])),
    ),
    "start_response twice while iterating": (
        _ok, lambda sr: Body([b"a"], on_iter=lambda: sr("404 Not Found", TEXT))),
    "str item": (_ok, lambda sr: Body(["str"])),
    "too long for Content-Length": (
        lambda sr: sr("200 OK", [*TEXT, ("Content-Length", "1")]), lambda sr: Body([b"abc"])),
    "too short for Content-Length": (
        lambda sr: sr("200 OK", [*TEXT, ("Content-Length", "9")]), lambda sr: Body([b"abc"])),
    "204 with items": (lambda sr: sr("204 No Content", []), lambda sr: Body([b"a", b"b"])),
    "HEAD": (_ok, lambda sr: Body([b"a"])),
    "base exception subclass": (
        _ok, lambda sr: Body([b"a"], fail_at=0, exc=GeneratorExit())),
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_close_is_always_called(scenario: str) -> None:
    start, make_body = SCENARIOS[scenario]
    bodies: list[Body] = []

    def app(environ: dict[str, Any], start_response: Any) -> Body:
        start(start_response)
        bodies.append(make_body(start_response))
        return bodies[0]

    request = request_params("HEAD" if scenario == "HEAD" else "GET")
    if scenario == "base exception subclass":
        with pytest.raises(GeneratorExit):  # not the app's Exception: it propagates ...
            serve(app, request, validate=False)
    else:
        result = serve(app, request, validate=False)
        assert result.status  # a response went out in every case
    assert bodies[0].closed == 1  # ... and close() still ran


def test_close_raising_is_logged_and_the_response_stands(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Bad(Body):
        def close(self) -> None:
            raise OSError("close failed")

    def app(environ: dict[str, Any], start_response: Any) -> Body:
        start_response("200 OK", TEXT)
        return Bad([b"fine"])

    with caplog.at_level(logging.INFO):
        result = serve(app, _request())
    assert result.ok and result.body == b"fine"
    (record,) = _errors(caplog)
    assert "closing" in record.getMessage() and LABEL in record.getMessage()


# -- Content-Length accounting through call_app -----------------------------------------
def test_short_body_returns_false_and_names_the_request(caplog: pytest.LogCaptureFixture) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [*TEXT, ("Content-Length", "10")])
        return [b"abc"]

    with caplog.at_level(logging.INFO):
        result = serve(app, _request())
    assert result.ok is False and result.body == b"abc"
    (record,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert LABEL in record.getMessage()


def test_overflow_is_cut_and_named_once(caplog: pytest.LogCaptureFixture) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [*TEXT, ("Content-Length", "2")])
        return [b"abc", b"def"]

    with caplog.at_level(logging.INFO):
        result = serve(app, _request())
    assert result.ok is True and result.body == b"ab"
    (record,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert LABEL in record.getMessage()


# -- after the request -----------------------------------------------------------------
def test_the_spooled_input_is_closed_after_the_request() -> None:
    """A spooled body is a temporary file: the gateway closes it, not the validator's wrapper."""
    held: dict[str, Any] = {}
    builder = EnvironBuilder(errors=ErrorStream())
    environ, declared = builder.build(request_params("POST", CONTENT_LENGTH="100"))
    buffer = BodyBuffer(declared, Limits(spool_threshold=10))
    buffer.feed(b"y" * 100)
    stream = buffer.finish()
    attach_input(environ, stream, terminated=False)

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        held["data"] = environ["wsgi.input"].read(100)
        start_response("200 OK", TEXT)
        return [b"ok"]

    from wsgiref.validate import validator

    out: list[bytes] = []
    assert call_app(validator(app), environ, Response(out.append)) is True
    assert held["data"] == b"y" * 100
    assert not isinstance(stream, io.BytesIO)
    assert stream.closed


def test_wsgi_errors_is_flushed_after_the_request(caplog: pytest.LogCaptureFixture) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        environ["wsgi.errors"].write("complete line\nno newline at the end")
        start_response("200 OK", TEXT)
        return [b"ok"]

    with caplog.at_level(logging.INFO, logger="wsgiwire.app"):
        serve(app)
    messages = [r.getMessage() for r in caplog.records if r.name == "wsgiwire.app"]
    assert messages == ["complete line", "no newline at the end"]


def test_client_disconnect_is_not_an_application_error(caplog: pytest.LogCaptureFixture) -> None:
    def out(data: bytes) -> None:
        raise ClientDisconnected()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", TEXT)
        return [b"x"]

    environ, _ = EnvironBuilder().build(_request())
    attach_input(environ, io.BytesIO(), terminated=True)
    with caplog.at_level(logging.INFO):
        assert call_app(app, environ, Response(out)) is False
    assert _errors(caplog) == []
    assert any(LABEL in r.getMessage() for r in caplog.records)


# -- wsgi.errors ---------------------------------------------------------------------------
def test_error_stream(caplog: pytest.LogCaptureFixture) -> None:
    sink: list[bytes] = []
    stream = ErrorStream(sink.append)
    with caplog.at_level(logging.INFO, logger="wsgiwire.app"):
        assert stream.write("a\nb") == 3
        stream.writelines(["c\n", "\u2603\n"])
        stream.flush()
        stream.flush()
    assert [r.getMessage() for r in caplog.records] == ["a", "bc", "\u2603"]
    assert b"".join(sink) == "a\nbc\n\u2603\n".encode()
    with pytest.raises(TypeError):
        stream.write(b"bytes")  # type: ignore[arg-type]
