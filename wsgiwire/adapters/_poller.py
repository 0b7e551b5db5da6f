"""The readiness poller of a worker's loop: ``epoll`` where there is one, else ``poll``.

A thin layer with no per-call objects: a worker asks for every connection's
readiness once per request, so ``selectors`` (a key tuple per registration,
a list of pairs per wake-up, file-object lookups) is work it does not need.
Each watched file descriptor maps to its target; ``wait`` gives the targets
that are ready (for what they were registered for: reading or writing, or an
error or hang-up, which the next read or write reports).
"""

from __future__ import annotations

import select
from typing import Any, Final

__all__ = ["HANGUP", "READ", "WRITE", "Poller"]

_EPOLL: Final = hasattr(select, "epoll")
# Final: the compiled build reads them as constants, not by name from the module.
READ: Final = select.EPOLLIN if _EPOLL else select.POLLIN
WRITE: Final = select.EPOLLOUT if _EPOLL else select.POLLOUT
# The peer shut down its side (no EPOLLIN: bytes that arrive wake nobody).
HANGUP: Final = select.EPOLLRDHUP if _EPOLL else getattr(select, "POLLRDHUP", 0)


class Poller:
    """Watch file descriptors for reading or writing; one target object per descriptor."""

    __slots__ = ("_poll", "_scale", "targets")

    def __init__(self) -> None:
        self._poll: Any
        if _EPOLL:
            self._poll = select.epoll()
            self._scale = 1.0  # epoll takes seconds
        else:  # pragma: no cover - not Linux
            self._poll = select.poll()
            self._scale = 1000.0  # poll takes milliseconds
        self.targets: dict[int, Any] = {}

    def add(self, fd: int, mask: int, target: Any) -> None:
        """Watch ``fd`` for ``mask`` (READ or WRITE).

        A listening socket that several workers poll wakes all of them, on
        purpose: one that then declines the connection (stopping, at its
        connection limit, or ahead of the others) leaves it to the rest.
        EPOLLEXCLUSIVE would wake just one, and a connection it declined would
        wait in the backlog until the next one arrived.
        """
        self._poll.register(fd, mask)
        self.targets[fd] = target

    def change(self, fd: int, mask: int) -> None:
        self._poll.modify(fd, mask)

    def remove(self, fd: int) -> None:
        if self.targets.pop(fd, _MISSING) is not _MISSING:
            try:
                self._poll.unregister(fd)
            except (OSError, ValueError, KeyError):
                pass  # closed already: the kernel dropped it from the set

    def wait(self, timeout: float) -> list[Any]:
        """The targets ready within ``timeout`` seconds (hang-ups and errors count as ready)."""
        ready = self._poll.poll(timeout * self._scale)
        targets = self.targets
        return [targets[fd] for fd, _ in ready if fd in targets]

    def close(self) -> None:
        if hasattr(self._poll, "close"):
            self._poll.close()
        self.targets.clear()


_MISSING = object()
