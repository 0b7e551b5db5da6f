"""An application module that fails while being imported (``wsgiwire serve ops_broken``).

A first generation of workers that cannot load the application makes ``wsgiwire
serve`` exit with status 2 and one line (this file:line and the exception), instead of
forking replacements in a loop.
"""

from __future__ import annotations

BROKEN_MESSAGE = "ops_broken: this module refuses to import"

raise RuntimeError(BROKEN_MESSAGE)
