"""A worker's resident memory, read cheaply after each request (``--reload-on-rss``)."""

from __future__ import annotations

import os
import resource

__all__ = ["RSSProbe"]

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class RSSProbe:
    """Reads the current RSS of the process that built it.

    On Linux ``/proc/self/statm`` is opened once, in the worker, and read
    with ``pread`` (one system call, about a microsecond); elsewhere the peak
    RSS from ``getrusage`` stands in for it.
    """

    def __init__(self) -> None:
        try:
            self._fd = os.open("/proc/self/statm", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            self._fd = -1

    def rss(self) -> int:
        """Resident set size in bytes."""
        if self._fd >= 0:
            try:
                return int(os.pread(self._fd, 128, 0).split()[1]) * _PAGE
            except (OSError, IndexError, ValueError):
                pass
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak * 1024 if os.uname().sysname == "Linux" else peak

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
