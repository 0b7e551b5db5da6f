"""``MountPrefix``, and the path rules every path-fixing middleware shares.

A request path, in an environ, is ``SCRIPT_NAME + PATH_INFO``: both
percent-decoded, latin-1 native strings (PEP 3333). Every middleware in this
package keeps that sum equal to the path the client asked for (or, where the
server rewrote it on purpose, the path the server chose) and only moves the
boundary between the two, so a framework's ``url_for`` (built from
SCRIPT_NAME) gives public URLs and its router (fed PATH_INFO) sees the path
under the mount.

The helpers below are shared by :mod:`.paths`; they are not public API.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..core._environ import split_script_name
from ..core._gateway import StartResponse, WSGIApp

__all__ = ["MountPrefix"]

Environ = dict[str, Any]

#: The environ key under which every middleware here keeps the values it replaced.
ORIG_KEY = "wsgiwire.orig"


def normalise_prefix(prefix: str) -> str:
    """A mount prefix as SCRIPT_NAME holds it: ``""`` for the root, else ``/a/b``.

    Surrounding ASCII whitespace (a configuration typo) goes, a leading slash is added, repeated and
    trailing slashes are dropped: ``"app"``, ``"/app/"`` and ``"//app"`` all
    give ``"/app"``; ``"/"`` and ``""`` give ``""``. The prefix is the decoded
    path (``"/a b"``, not ``"/a%20b"``), as SCRIPT_NAME is.
    """
    segments = [segment for segment in prefix.strip(" \t\r\n").split("/") if segment]
    return "".join("/" + segment for segment in segments)


def keep_originals(environ: Environ, *names: str) -> None:
    """Remember ``names``' current values in ``environ["wsgiwire.orig"]``.

    The first original wins: when middleware is stacked, the value the server
    sent is the one kept. A key that was absent is recorded as ``None``.
    """
    orig = environ.setdefault(ORIG_KEY, {})
    for name in names:
        orig.setdefault(name, environ.get(name))


def set_split(environ: Environ, script_name: str, path_info: str) -> bool:
    """Set SCRIPT_NAME and PATH_INFO, keeping the originals; ``True`` if anything changed.

    An environ that already holds this split is left exactly as it was (no
    ``wsgiwire.orig`` is added), so a fix is a true no-op where none is needed.
    """
    if environ.get("SCRIPT_NAME") == script_name and environ.get("PATH_INFO") == path_info:
        return False
    keep_originals(environ, "SCRIPT_NAME", "PATH_INFO")
    environ["SCRIPT_NAME"] = script_name
    environ["PATH_INFO"] = path_info
    return True


def remount(environ: Environ, prefix: str, path: str) -> bool:
    """Split ``path`` at ``prefix`` into SCRIPT_NAME/PATH_INFO; ``False`` if outside it.

    ``prefix`` must already be normalised (:func:`normalise_prefix`). A path
    outside the prefix leaves the environ as it was.
    """
    rest = split_script_name(prefix, path)
    if rest is None:
        return False
    set_split(environ, prefix, rest)
    return True


def decoded_once_more(path: str) -> str:
    """``path`` percent-decoded one more time (bytes as latin-1 text, as in the environ)."""
    if "%" not in path:
        return path
    try:
        raw = path.encode("latin-1")
    except UnicodeEncodeError:  # not an environ string; nothing sensible to decode
        return path
    from urllib.parse import unquote_to_bytes  # only here: it loads ipaddress too

    return unquote_to_bytes(raw).decode("latin-1")


def explains(uri_path: str, server_path: str) -> bool:
    """Is ``server_path`` what the server made of ``uri_path`` by decoding alone?

    ``uri_path`` is the path of REQUEST_URI decoded once (the truth);
    ``server_path`` is what the server put into SCRIPT_NAME/PATH_INFO. They
    agree when equal, or when the server decoded a second time (Apache
    mod_rewrite: ``/p%2541`` -> ``/p%41`` -> ``/pA``). Any other difference
    is the server's own doing (dot-segment and slash normalisation, a rewrite
    to another path) and must not be undone: the caller keeps the server's path.
    """
    return server_path == uri_path or server_path == decoded_once_more(uri_path)


class MountPrefix:
    """Set SCRIPT_NAME to ``prefix`` and PATH_INFO to the rest of the request path.

    Reads ``SCRIPT_NAME`` and ``PATH_INFO`` (their concatenation is the
    decoded request path) and writes both. The values replaced are kept in
    ``environ["wsgiwire.orig"]`` (a dict; ``setdefault``, so the first
    original wins when middleware is stacked); an environ already split at
    ``prefix`` is not touched at all. A path outside the prefix is left as it
    was. ``prefix`` is normalised: a leading slash, no trailing slash, ``""``
    for the root (``"app"`` and ``"/app/"`` both mean ``/app``).
    """

    def __init__(self, app: WSGIApp, prefix: str) -> None:
        self.app = app
        self.prefix = normalise_prefix(prefix)

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        remount(environ, self.prefix, path)
        return self.app(environ, start_response)
