"""``Connection.send``, the transport's write path, on a real socket pair."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from wsgiwire.adapters._base import ServerConfig
from wsgiwire.adapters._connection import Connection
from wsgiwire.adapters.scgi import SCGIDriver


class CountingSocket(socket.socket):
    """A socket that records the size of every ``sendmsg`` it is asked to make."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sendmsg_sizes: list[int] = []

    def sendmsg(self, buffers: Any, *args: Any) -> int:
        buffers = list(buffers)
        self.sendmsg_sizes.append(sum(map(len, buffers)))
        return super().sendmsg(buffers, *args)


class StubLoop:
    """What a connection asks of its loop before anything waits to be written."""

    def __init__(self) -> None:
        self.config = ServerConfig(app=None, driver=SCGIDriver(), listeners=[])


@pytest.fixture
def pair() -> Iterator[tuple[CountingSocket, socket.socket]]:
    ours, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    counting = CountingSocket(socket.AF_UNIX, socket.SOCK_STREAM, fileno=ours.detach())
    counting.setblocking(False)
    yield counting, peer
    counting.close()
    peer.close()


def test_an_end_with_no_bytes_makes_no_system_call(
    pair: tuple[CountingSocket, socket.socket],
) -> None:
    """An SCGI or uwsgi reply ends with no bytes of its own: after a large body that
    waited for the socket, the end used to cost an empty ``sendmsg``."""
    sock, peer = pair
    conn = Connection(StubLoop(), sock, None)  # type: ignore[arg-type]
    assert conn.send([])
    assert conn.send([b"", memoryview(b"")])
    assert sock.sendmsg_sizes == []
    assert conn.send([b"Status: 200 OK\r\n\r\n", b"body"])
    assert sock.sendmsg_sizes == [22]
    assert peer.recv(100) == b"Status: 200 OK\r\n\r\nbody"
