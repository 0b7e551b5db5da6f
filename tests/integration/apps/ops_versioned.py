"""An application whose answer names its code version (the ``--reload`` tests).

A test copies this file to a scratch working directory and rewrites ``VERSION``
to show that new workers run the new code.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

VERSION = "v1"


def application(
    environ: dict[str, Any], start_response: Callable[..., Callable[[bytes], object]]
) -> Iterable[bytes]:
    body = f"version {VERSION}\n".encode("ascii")
    start_response(
        "200 OK",
        [
            ("Content-Type", "text/plain"),
            ("Content-Length", str(len(body))),
            ("X-Worker-Pid", str(os.getpid())),
        ],
    )
    return [body]
