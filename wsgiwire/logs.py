"""Logging helpers shared by the master and its workers.

``reopen_log_files()`` is what SIGUSR1 does (logrotate's ``postrotate`` recipe):
every ``logging.FileHandler`` on the ``wsgiwire`` loggers closes its file and
opens the path again, so lines go to the new file after a rotation.
"""

from __future__ import annotations

import logging

__all__ = ["reopen_log_files"]


def _wsgiwire_loggers() -> list[logging.Logger]:
    found = [logging.getLogger("wsgiwire")]
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if name.startswith("wsgiwire.") and isinstance(logger, logging.Logger):
            found.append(logger)
    return found


def reopen_log_files() -> int:
    """Close and reopen every file handler of the ``wsgiwire`` loggers; returns how many.

    Each handler is switched under its own lock, so a line being written
    meanwhile goes wholly to the old file or wholly to the new one. Call it
    from a normal thread, never from inside a signal handler.
    """
    reopened = 0
    seen: set[int] = set()
    for logger in _wsgiwire_loggers():
        for handler in logger.handlers:
            if not isinstance(handler, logging.FileHandler) or id(handler) in seen:
                continue
            seen.add(id(handler))
            handler.acquire()
            try:
                old = handler.stream
                if old is None:  # delay=True and nothing written yet: opened on first use
                    continue
                handler.stream = handler._open()
                old.close()
                reopened += 1
            except OSError:
                handler.handleError(logging.LogRecord(
                    logger.name, logging.ERROR, __file__, 0,
                    "cannot reopen %s", (handler.baseFilename,), None,
                ))
            finally:
                handler.release()
    return reopened
