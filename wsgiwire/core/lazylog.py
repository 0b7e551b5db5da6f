"""A logger that imports :mod:`logging` on first use.

A CGI process serves one request and exits: importing ``logging`` (with the
``threading``, ``traceback`` and ``string`` it pulls in) costs it more than
the rest of wsgiwire. Code on the request path logs only when something goes
wrong, so it holds one of these instead of a ``logging.Logger``.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from logging import Logger
    from typing import Any

__all__ = ["lazy_logger"]


class _LazyLogger:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        import logging

        return getattr(logging.getLogger(self._name), attr)


def lazy_logger(name: str) -> Logger:
    """What ``logging.getLogger(name)`` returns, looked up when first used."""
    return _LazyLogger(name)  # type: ignore[return-value]
