"""``wsgiwire.flup.server``: flup's constructor arguments, mapped without starting a server."""

from __future__ import annotations

from typing import Any

import pytest

from wsgiwire.flup.server import cgi, fcgi, fcgi_fork, fcgi_single, scgi, scgi_fork
from wsgiwire.flup.server._fork import pool_size


def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [])
    return [b""]


@pytest.mark.parametrize(
    ("kw", "size"),
    [({}, 5), ({"maxChildren": 3}, 3), ({"maxSpare": 2}, 2), ({"minSpare": 4, "maxSpare": 2}, 4),
     ({"maxChildren": 1, "maxSpare": 9}, 1), ({"maxSpare": 500}, 50)],
)
def test_pool_size(kw: dict[str, Any], size: int) -> None:
    assert pool_size(kw) == size


def test_fork_servers_take_flups_pool_arguments() -> None:
    server = fcgi_fork.WSGIServer(app, bindAddress=("127.0.0.1", 0), maxChildren=3,
                                  maxRequests=2, minSpare=1, maxSpare=5, timeout=30)
    assert (server.workers, server.max_requests, server.threads) == (3, 2, 0)
    assert server.limits.request_timeout == 30.0
    sserver = scgi_fork.WSGIServer(app, "/app", maxSpare=2)
    assert (sserver.workers, sserver.max_requests, sserver.threads) == (2, 0, 0)
    with pytest.raises(ValueError, match="maxChildren"):
        fcgi_fork.WSGIServer(app, maxChildren=0)
    with pytest.raises(TypeError, match="frobnicate"):
        scgi_fork.WSGIServer(app, frobnicate=1)


def test_single_and_threaded_servers() -> None:
    single = fcgi_single.WSGIServer(app, bindAddress=("127.0.0.1", 0))
    assert (single.workers, single.threads) == (0, 0)
    threaded = fcgi.WSGIServer(app, maxThreads=4, timeout=5)
    assert (threaded.workers, threaded.threads) == (0, 4)
    assert threaded.limits.request_timeout == 5.0
    assert scgi.WSGIServer(app, maxThreads=3).threads == 3
    assert cgi.WSGIServer(app).application is app
