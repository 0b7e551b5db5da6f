"""``ops_app`` behind a slow import, once a flag file exists (worker boot-time tests).

While the file named by ``OPS_SLOW_BOOT_FLAG`` exists, importing this module takes
``OPS_SLOW_BOOT_SECONDS`` (default 2) seconds, as a large framework's import would: the
first workers start fast, replacements started after the test creates the flag start
slowly.
"""

from __future__ import annotations

import os
import time

from ops_app import application

__all__ = ["application"]

if os.path.exists(os.environ.get("OPS_SLOW_BOOT_FLAG", "") or "/nonexistent"):
    time.sleep(float(os.environ.get("OPS_SLOW_BOOT_SECONDS", "2")))
