"""``ops_app`` plus a log file of its own (the SIGUSR1 test in ``test_chaos.py``).

When ``CHAOS_LOG`` names a file, importing this module (in each worker) attaches a
``logging.FileHandler`` for it to the ``wsgiwire.chaos`` logger, and every request
writes one line ``<pid> served <PATH_INFO>`` there: SIGUSR1 must make each worker
close that file and open the path again, as after a logrotate.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

from ops_app import application as ops_application

__all__ = ["application"]

log = logging.getLogger("wsgiwire.chaos")
log.propagate = False
log.setLevel(logging.INFO)
if os.environ.get("CHAOS_LOG"):
    _handler = logging.FileHandler(os.environ["CHAOS_LOG"])
    _handler.setFormatter(logging.Formatter("%(process)d %(message)s"))
    log.addHandler(_handler)


def application(
    environ: dict[str, Any], start_response: Callable[..., Callable[[bytes], object]]
) -> Iterable[bytes]:
    log.info("served %s", environ.get("PATH_INFO", ""))
    return ops_application(environ, start_response)
