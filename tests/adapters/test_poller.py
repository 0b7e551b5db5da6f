"""The worker's poller: registration, readiness, and removal of closed descriptors."""

from __future__ import annotations

import socket

from wsgiwire.adapters._poller import READ, WRITE, Poller


def test_readable_writable_and_removed() -> None:
    a, b = socket.socketpair()
    poller = Poller()
    try:
        target = object()
        poller.add(a.fileno(), READ, target)
        assert poller.wait(0) == []  # nothing to read yet
        b.sendall(b"x")
        assert poller.wait(1.0) == [target]
        poller.change(a.fileno(), WRITE)
        assert poller.wait(1.0) == [target]  # an empty send buffer is writable
        poller.remove(a.fileno())
        assert poller.wait(0) == []
        assert a.fileno() not in poller.targets
        poller.remove(a.fileno())  # removing twice is harmless
    finally:
        poller.close()
        a.close()
        b.close()


def test_hang_up_counts_as_ready() -> None:
    """A peer that closed wakes a reader (its next recv() sees the end of stream)."""
    a, b = socket.socketpair()
    poller = Poller()
    try:
        poller.add(a.fileno(), READ, "conn")
        b.close()
        assert poller.wait(1.0) == ["conn"]
        assert a.recv(10) == b""
    finally:
        poller.close()
        a.close()


def test_remove_after_close_is_harmless() -> None:
    a, b = socket.socketpair()
    poller = Poller()
    fd = a.fileno()
    poller.add(fd, READ, "conn")
    a.close()  # the kernel drops a closed descriptor from the set by itself
    poller.remove(fd)
    assert poller.targets == {}
    poller.close()
    b.close()


def test_a_listener_wakes_every_poller_watching_it() -> None:
    """Workers share a listener: a new connection must wake all of them, so that one
    declining it (stopping, at its limit, ahead of the others) leaves it to the rest.
    (EPOLLEXCLUSIVE wakes one: a connection it declined would wait for the next one.)"""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    pollers = [Poller(), Poller()]
    client = None
    try:
        for poller in pollers:
            poller.add(listener.fileno(), READ, "listener")
        assert [poller.wait(0) for poller in pollers] == [[], []]
        client = socket.create_connection(listener.getsockname())
        assert [poller.wait(2.0) for poller in pollers] == [["listener"], ["listener"]]
    finally:
        for poller in pollers:
            poller.close()
        if client is not None:
            client.close()
        listener.close()
