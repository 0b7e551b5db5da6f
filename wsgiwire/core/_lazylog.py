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

__all__ = ["LazyLogger", "lazy_logger"]


class LazyLogger:
    """The levels of ``logging.getLogger(name)`` that the request path uses, each
    looked up when called. A record names the caller's line, not this module's
    (``stacklevel=2``)."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def _logger(self) -> Logger:
        import logging

        return logging.getLogger(self._name)

    def debug(self, msg: str, *args: object) -> None:
        self._logger().debug(msg, *args, stacklevel=2)

    def info(self, msg: str, *args: object) -> None:
        self._logger().info(msg, *args, stacklevel=2)

    def warning(self, msg: str, *args: object) -> None:
        self._logger().warning(msg, *args, stacklevel=2)

    def error(self, msg: str, *args: object, exc_info: BaseException | bool = False) -> None:
        self._logger().error(msg, *args, exc_info=exc_info, stacklevel=2)

    def exception(self, msg: str, *args: object) -> None:
        """An error with the traceback of the exception being handled."""
        self._logger().error(msg, *args, exc_info=True, stacklevel=2)


def lazy_logger(name: str) -> LazyLogger:
    """What ``logging.getLogger(name)`` logs to, looked up when first used."""
    return LazyLogger(name)
