"""wsgi.input: BodyBuffer collects the body; the app gets an io stream bounded by it."""

from __future__ import annotations

import io
import itertools
import os
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.core import request_params, serve
from wsgiwire._errors import BadRequest, LimitExceeded
from wsgiwire._limits import Limits
from wsgiwire.core._body import BodyBuffer, attach_input

BODY = b"first line\nsecond\n\nlast, no newline"


@contextmanager
def stream_of(body: bytes, *, declared: int | None = -1, spool_at: int = 1 << 20,
              chunk: int = 7) -> Iterator[IO[bytes]]:
    limits = Limits(spool_threshold=spool_at)
    buffer = BodyBuffer(len(body) if declared == -1 else declared, limits)
    for i in range(0, len(body), chunk):
        buffer.feed(body[i : i + chunk])
    stream = buffer.finish()
    try:
        yield stream
    finally:
        stream.close()


# -- PEP 3333 / io semantics, in memory and spooled --------------------------------
@pytest.fixture(params=["memory", "spooled"])
def spool_at(request: pytest.FixtureRequest) -> int:
    return 1 << 20 if request.param == "memory" else 4


def test_read_all_forms(spool_at: int) -> None:
    for read in (lambda s: s.read(), lambda s: s.read(None), lambda s: s.read(-1)):
        with stream_of(BODY, spool_at=spool_at) as stream:
            assert read(stream) == BODY
            assert stream.read() == b""
            assert stream.read(10) == b""


def test_read_n(spool_at: int) -> None:
    with stream_of(BODY, spool_at=spool_at) as stream:
        assert stream.read(5) == b"first"
        assert stream.read(0) == b""
        assert stream.read(6) == b" line\n"
        assert stream.read(1000) == BODY[11:]
        assert stream.read(1) == b""


def test_readline(spool_at: int) -> None:
    with stream_of(BODY, spool_at=spool_at) as stream:
        assert stream.readline() == b"first line\n"
        assert stream.readline(3) == b"sec"
        assert stream.readline(-1) == b"ond\n"
        assert stream.readline(None) == b"\n"
        assert stream.readline() == b"last, no newline"
        assert stream.readline() == b""


def test_readlines_and_iteration(spool_at: int) -> None:
    lines = [b"first line\n", b"second\n", b"\n", b"last, no newline"]
    with stream_of(BODY, spool_at=spool_at) as stream:
        assert stream.readlines() == lines
    with stream_of(BODY, spool_at=spool_at) as stream:
        # hint: stop once the total reaches the hint (io semantics)
        assert stream.readlines(12) == lines[:2]
        assert stream.readlines() == lines[2:]
    with stream_of(BODY, spool_at=spool_at) as stream:
        assert list(stream) == lines


def test_empty_body() -> None:
    for declared in (0, None):
        with stream_of(b"", declared=declared) as stream:
            assert stream.read() == b""
            assert stream.readline() == b""
            assert list(stream) == []


# -- bounds ------------------------------------------------------------------------
def test_longer_than_declared_is_bad_request() -> None:
    buffer = BodyBuffer(5)
    buffer.feed(b"abc")
    with pytest.raises(BadRequest) as caught:
        buffer.feed(b"def")
    assert caught.value.status_hint == 400
    assert buffer.received == 3


def test_shorter_than_declared_is_bad_request_at_finish() -> None:
    buffer = BodyBuffer(5)
    buffer.feed(b"abc")
    assert not buffer.complete
    with pytest.raises(BadRequest) as caught:
        buffer.finish()
    assert "shorter" in caught.value.msg


def test_complete() -> None:
    buffer = BodyBuffer(3)
    buffer.feed(b"abc")
    assert buffer.complete
    assert BodyBuffer(0).complete
    assert not BodyBuffer(None).complete


def test_declared_over_max_body_size_is_413() -> None:
    with pytest.raises(LimitExceeded) as caught:
        BodyBuffer(101, Limits(max_body_size=100, spool_threshold=10))
    assert caught.value.status_hint == 413
    assert caught.value.limit == "max_body_size"
    BodyBuffer(100, Limits(max_body_size=100, spool_threshold=10))  # inclusive


def test_undeclared_body_over_max_body_size_is_413() -> None:
    buffer = BodyBuffer(None, Limits(max_body_size=100, spool_threshold=10))
    buffer.feed(b"x" * 100)  # exactly the limit passes
    with pytest.raises(LimitExceeded) as caught:
        buffer.feed(b"x")
    assert caught.value.status_hint == 413
    buffer.discard()


def test_memoryview_and_bytearray_chunks() -> None:
    buffer = BodyBuffer(6)
    buffer.feed(memoryview(b"abc"))
    buffer.feed(bytearray(b"def"))
    with buffer.finish() as stream:
        assert stream.read() == b"abcdef"


def test_attach_input() -> None:
    environ: dict[str, Any] = {}
    stream = io.BytesIO(b"x")
    attach_input(environ, stream, terminated=False)
    assert environ["wsgi.input"] is stream
    assert "wsgi.input_terminated" not in environ
    attach_input(environ, stream, terminated=True)
    assert environ["wsgi.input_terminated"] is True


# -- spooling ------------------------------------------------------------------------
def test_past_threshold_the_body_is_in_a_temporary_file() -> None:
    body = os.urandom(64 * 1024)
    limits = Limits(spool_threshold=1024)
    buffer = BodyBuffer(len(body), limits)
    for i in range(0, len(body), 1000):
        buffer.feed(body[i : i + 1000])
    stream = buffer.finish()
    try:
        assert not isinstance(stream, io.BytesIO)
        assert os.fstat(stream.fileno()).st_size == len(body)  # a real file holds it
        assert stream.read() == body
    finally:
        stream.close()


def test_at_threshold_the_body_stays_in_memory() -> None:
    buffer = BodyBuffer(1024, Limits(spool_threshold=1024))
    buffer.feed(b"x" * 1024)
    with buffer.finish() as stream:
        assert isinstance(stream, io.BytesIO)


def test_a_spooled_body_does_not_stay_in_memory() -> None:
    """8 MiB fed in 64 KiB chunks: the process never holds more than a few chunks."""
    size, chunk = 8 << 20, b"\xab" * 65536
    buffer = BodyBuffer(size, Limits(spool_threshold=256 * 1024))
    tracemalloc.start()
    try:
        for _ in range(size // len(chunk)):
            buffer.feed(chunk)
        stream = buffer.finish()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    try:
        assert peak < 2 << 20, f"peak {peak} bytes while spooling {size}"
        assert not isinstance(stream, io.BytesIO)
        assert os.fstat(stream.fileno()).st_size == size
        stream.seek(size - 3)
        assert stream.read() == b"\xab\xab\xab"
    finally:
        stream.close()


def test_discard_closes_the_spool() -> None:
    buffer = BodyBuffer(None, Limits(spool_threshold=4))
    buffer.feed(b"0123456789")
    stream = buffer.finish()
    buffer.discard()
    assert stream.closed


# -- any chunking, any body, every read method ----------------------------------------
def _read_all(stream: IO[bytes], how: str, size: int) -> bytes:
    if how == "read()":
        return stream.read()
    if how == "read(None)":
        return stream.read(None)
    if how == "read(-1)":
        return stream.read(-1)
    if how == "read(n)":
        return b"".join(iter(lambda: stream.read(size), b""))
    if how == "readline()":
        return b"".join(iter(stream.readline, b""))
    if how == "readline(n)":
        parts = []
        while part := stream.readline(size):
            assert len(part) <= size
            parts.append(part)
        return b"".join(parts)
    if how == "readlines()":
        return b"".join(stream.readlines())
    if how == "readlines(hint)":
        parts = []
        while lines := stream.readlines(size):
            parts.extend(lines)
        return b"".join(parts)
    assert how == "iter"
    return b"".join(stream)


READS = ["read()", "read(None)", "read(-1)", "read(n)", "readline()", "readline(n)",
         "readlines()", "readlines(hint)", "iter"]


@settings(max_examples=150, deadline=None)
@given(
    body=st.binary(max_size=600) | st.lists(st.sampled_from([b"a", b"\n", b"\r\n", b"xyz"]),
                                            max_size=80).map(b"".join),
    cuts=st.lists(st.integers(min_value=0, max_value=600), max_size=12),
    declare=st.booleans(),
    spool_at=st.sampled_from([1, 16, 100, 1 << 20]),
    size=st.integers(min_value=1, max_value=40),
)
def test_any_chunking_gives_the_same_bytes_back(
    body: bytes, cuts: list[int], declare: bool, spool_at: int, size: int
) -> None:
    points = sorted({min(c, len(body)) for c in cuts} | {0, len(body)})
    chunks = [body[a:b] for a, b in itertools.pairwise(points)]
    for how in READS:
        buffer = BodyBuffer(len(body) if declare else None, Limits(spool_threshold=spool_at))
        for piece in chunks:
            buffer.feed(piece)
        stream = buffer.finish()
        try:
            assert _read_all(stream, how, size) == body, how
            assert stream.read(1) == b""
        finally:
            stream.close()


# -- through the core, under wsgiref.validate --------------------------------------
def _echo(read: Callable[[Any], bytes]) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        data = read(environ["wsgi.input"])
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(len(data)))])
        return [data]

    return app


BODY_2 = b"line one\nline two\n"


@pytest.mark.parametrize(
    ("read", "expected"),
    [
        (lambda s: s.read(1 << 20), BODY_2),
        (lambda s: b"".join(iter(lambda: s.read(3), b"")), BODY_2),
        (lambda s: b"".join(s.readlines()), BODY_2),
        (lambda s: b"".join(s.readlines(3)), b"line one\n"),
        (lambda s: b"".join(line for line in s), BODY_2),
        (lambda s: s.readline(), b"line one\n"),
        (lambda s: s.readline(4), b"line"),
    ],
    ids=["read(n)", "read(3)-loop", "readlines", "readlines(hint)", "iter", "readline",
         "readline(size)"],
)
def test_app_reads_the_body_through_the_validator(
    read: Callable[[Any], bytes], expected: bytes
) -> None:
    result = serve(_echo(read), request_params("POST", CONTENT_LENGTH=str(len(BODY_2))),
                   [BODY_2[:5], BODY_2[5:]])
    assert result.ok
    assert result.body == expected


def test_app_cannot_read_past_content_length() -> None:
    result = serve(_echo(lambda s: s.read(1 << 20)),
                   request_params("POST", CONTENT_LENGTH="4"), b"abcd")
    assert result.body == b"abcd"
    assert result.environ["CONTENT_LENGTH"] == "4"
    assert "wsgi.input_terminated" not in result.environ


def test_undeclared_body_is_terminated_input() -> None:
    result = serve(_echo(lambda s: b"".join(iter(lambda: s.read(2), b""))),
                   request_params("POST"), [b"chunk", b"ed"])
    assert result.body == b"chunked"
    assert result.environ["wsgi.input_terminated"] is True
