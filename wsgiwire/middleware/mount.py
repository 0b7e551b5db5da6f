"""``MountPrefix``: split the request path at a known mount prefix, whatever the server sent."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..core.environ import split_script_name

__all__ = ["MountPrefix"]

StartResponse = Callable[..., Callable[[bytes], None]]
WSGICallable = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class MountPrefix:
    """Set SCRIPT_NAME to ``prefix`` and PATH_INFO to the rest of the request path.

    Reads ``SCRIPT_NAME`` and ``PATH_INFO`` (their concatenation is the
    decoded request path) and writes both; the originals are kept in
    ``environ["wsgiwire.orig"]`` (a dict) so nothing is lost. A path outside
    the prefix is left as it was. ``prefix`` is normalised: a leading slash,
    no trailing slash, ``""`` for the root.
    """

    def __init__(self, app: WSGICallable, prefix: str) -> None:
        self.app = app
        prefix = prefix.strip()
        if prefix and not prefix.startswith("/"):
            prefix = "/" + prefix
        self.prefix = prefix.rstrip("/")

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        script_name = environ.get("SCRIPT_NAME", "")
        path_info = environ.get("PATH_INFO", "")
        rest = split_script_name(self.prefix, script_name + path_info)
        if rest is not None:
            orig = environ.setdefault("wsgiwire.orig", {})
            orig.setdefault("SCRIPT_NAME", script_name)
            orig.setdefault("PATH_INFO", path_info)
            environ["SCRIPT_NAME"] = self.prefix
            environ["PATH_INFO"] = rest
        return self.app(environ, start_response)
