"""An application module that fails while being imported (``wsgiwire serve ops_broken``).

A worker that cannot load its application must make ``wsgiwire serve`` exit with
status 3 and the traceback, instead of forking replacements in a loop.
"""

from __future__ import annotations

BROKEN_MESSAGE = "ops_broken: this module refuses to import"

raise RuntimeError(BROKEN_MESSAGE)
