"""Fixtures for tests that boot real web servers (see servers.py for the harness)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator

import pytest

from . import servers


@pytest.fixture(scope="session")
def require_binary() -> Callable[[str], str]:
    """``require_binary(name) -> path``: skip with a one-line reason when ``name`` is not
    installed, or fail when CI=true (nothing may skip in CI)."""
    return servers.require_binary


@pytest.fixture(scope="session")
def stage() -> Iterator[servers.Stage]:
    """The package and ``apps/*.py`` copied to a world-readable dir, for server-run scripts."""
    with servers.staged() as staged:
        yield staged


@pytest.fixture(scope="session")
def fcgi_stream_body() -> bytes:
    """The 16 MiB body ``apps/fcgi_apps.py`` streams at ``.../stream`` (256 pieces of
    64 KiB, piece i = sha256(b"wsgiwire-stream-<i>") repeated), built here independently
    of the app."""
    pieces = []
    for index in range(256):
        seed = hashlib.sha256(b"wsgiwire-stream-%d" % index).digest()
        pieces.append(seed * (65536 // len(seed)))
    return b"".join(pieces)


@pytest.fixture(scope="session")
def fcgi_stream(fcgi_stream_body: bytes) -> tuple[int, str]:
    """``(length, sha256 hex)`` of :func:`fcgi_stream_body`."""
    return len(fcgi_stream_body), hashlib.sha256(fcgi_stream_body).hexdigest()
