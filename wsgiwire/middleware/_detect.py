"""Recognise, from what the server sends, a deployment whose paths need a fix.

:func:`diagnose` looks at one request; :class:`SetupDetector` is the
middleware that runs it on every request until it has something to say,
logs that one line once, and never changes the environ. It speaks only when
the environ leaves no doubt; a setup whose split is already right (every
such setup in ``tests/corpus``) never makes it speak.

What it recognises:

* **Apache mod_proxy_fcgi / mod_proxy_scgi without** ``proxy-fcgi-pathinfo``
  (one request): SCRIPT_FILENAME is ``proxy:fcgi://host:port/REST`` (or
  ``proxy:scgi://``, or ``proxy:unix:...|fcgi://...``), PATH_INFO is empty,
  and SCRIPT_NAME ends with REST decoded: the path below the ProxyPass
  prefix went into SCRIPT_NAME. What comes before REST is the mount, so the
  line names it: ``consider --mount /app``.
* **A rewrite to a script** (one request): SCRIPT_NAME ends in a script
  (``*.fcgi``, ``*.cgi``, ``*.py``, ``*.wsgi``) that REQUEST_URI's path does
  not start with: the server rewrote the URL to the script (``.htaccess``
  ``RewriteRule ^(.*)$ app.fcgi/$1``, lighttpd ``"/app.fcgi$1"``), so the app
  would put ``app.fcgi`` into every URL: ``consider --strip-script-name``.
* **lighttpd mounted at** ``/`` (several requests): SERVER_SOFTWARE is
  lighttpd, SCRIPT_NAME is a single path segment that is not a script,
  SCRIPT_NAME + PATH_INFO is REQUEST_URI's decoded path, and SCRIPT_NAME
  changes from request to request. One such request is not enough: it is
  byte for byte what lighttpd sends for an app mounted at that segment
  (``lighttpd-fastcgi-prefix`` and ``lighttpd-fastcgi-root`` in the corpus
  differ only in port numbers). A mounted app always gets the same
  SCRIPT_NAME, so :data:`DISTINCT_SCRIPT_NAMES` different ones settle it.
* **SCRIPT_NAME holding the whole path** on another server (several
  requests): PATH_INFO empty, SCRIPT_NAME equal to REQUEST_URI's decoded path,
  and changing from request to request (nginx with only ``fastcgi_params``,
  whose SCRIPT_NAME is ``$fastcgi_script_name``).

The two several-request rules would also be met by one backend mounted at
:data:`DISTINCT_SCRIPT_NAMES` or more different prefixes of the same server,
with requests for exactly those prefixes; that is why the threshold is three
and not two.

Put the detector innermost, after the path fixes, so it sees what the app
sees: once the right fix is in place it stays silent.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from ..core._environ import decode_request_path, split_script_name
from ..core._gateway import StartResponse, WSGIApp
from ._mount import Environ, explains

__all__ = ["DISTINCT_SCRIPT_NAMES", "SetupDetector", "diagnose"]

#: Different SCRIPT_NAMEs (of the shape a rule looks for) that make a
#: several-request rule certain; see the module docstring.
DISTINCT_SCRIPT_NAMES = 3

_SCRIPT_SUFFIXES = (".fcgi", ".cgi", ".py", ".wsgi")
_PROXY_SCHEMES = {"fcgi": "mod_proxy_fcgi", "scgi": "mod_proxy_scgi"}
_LIGHTTPD_ROOT = "lighttpd-root"
_WHOLE_PATH = "whole-path"


def _text(environ: Mapping[str, Any], name: str) -> str:
    value = environ.get(name)
    return value if isinstance(value, str) else ""


def _shown(path: str) -> str:
    """A decoded path as a person reads it: UTF-8 where it is, escapes for the rest."""
    try:
        return path.encode("latin-1").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return path


def _quoted(path: str) -> str:
    """``path`` as it would be typed on a command line; controls escaped (no log injection)."""
    import shlex  # only for a hint's text: not in every worker

    shown = _shown(path)
    return shlex.quote(shown) if shown.isprintable() else repr(shown)


def _names(names: list[str]) -> str:
    return ", ".join(repr(_shown(name)) for name in names)


def _is_script(script_name: str) -> bool:
    return script_name.rpartition("/")[2].endswith(_SCRIPT_SUFFIXES)


def _proxy_target(script_filename: str) -> tuple[str, str] | None:
    """(module, decoded backend path) of Apache's ``proxy:fcgi://host:port/path``."""
    if not script_filename.startswith("proxy:"):
        return None
    target = script_filename[len("proxy:") :]
    if target.startswith("unix:"):  # proxy:unix:/run/app.sock|fcgi://localhost/path
        target = target.partition("|")[2]
    scheme, sep, rest = target.partition("://")
    module = _PROXY_SCHEMES.get(scheme)
    if not sep or module is None:
        return None
    slash = rest.find("/")
    return module, decode_request_path(rest[slash:]) if slash >= 0 else ""


def _apache_proxy(environ: Mapping[str, Any], script_name: str, path_info: str) -> str | None:
    target = _proxy_target(_text(environ, "SCRIPT_FILENAME"))
    if target is None or path_info or not script_name:
        return None
    module, backend_path = target
    if backend_path in ("", "/") or not script_name.endswith(backend_path):
        return None
    mount = script_name[: len(script_name) - len(backend_path)]
    if mount.endswith("/") or (mount and not mount.startswith("/")):
        return None
    if module == "mod_proxy_fcgi":
        what = "Apache mod_proxy_fcgi without proxy-fcgi-pathinfo"
        hint = " (or SetEnvIf Request_URI . proxy-fcgi-pathinfo=unescape)"
    else:
        what, hint = f"Apache {module}", ""
    return (
        f"looks like {what}: SCRIPT_NAME {_shown(script_name)!r} holds the whole path: "
        f"consider --mount {_quoted(mount or '/')}{hint}"
    )


def _rewritten_to_script(script_name: str, uri_path: str, path_info: str) -> str | None:
    if not _is_script(script_name) or split_script_name(script_name, uri_path) is not None:
        return None
    script = _quoted(script_name.rpartition("/")[2])
    line = (
        f"the script name {script} appears in SCRIPT_NAME but not in REQUEST_URI: "
        f"consider --strip-script-name"
    )
    if path_info.startswith("/") and uri_path.endswith(path_info) and uri_path != path_info:
        line += f" with the public prefix {_quoted(uri_path[: len(uri_path) - len(path_info)])}"
    return line


def diagnose(environ: Mapping[str, Any], seen: dict[str, list[str]] | None = None) -> str | None:
    """One log line naming the fix this request shows a need for, or ``None``.

    Alone, only the one-request rules apply (Apache mod_proxy_fcgi/scgi
    without path info; a rewrite to a script). Given ``seen`` (a dict the
    caller keeps between requests, empty at first), the several-request rules
    apply too, and record what they saw in it. Never changes ``environ`` and
    never raises for odd values (a key of the wrong type counts as absent).
    """
    script_name = _text(environ, "SCRIPT_NAME")
    path_info = _text(environ, "PATH_INFO")
    line = _apache_proxy(environ, script_name, path_info)
    if line is not None:
        return line
    request_uri = _text(environ, "REQUEST_URI")
    if not request_uri or not script_name:
        return None
    uri_path = decode_request_path(request_uri)
    line = _rewritten_to_script(script_name, uri_path, path_info)
    if line is not None or seen is None:
        return line
    if not explains(uri_path, script_name + path_info) or _is_script(script_name):
        return None
    if _text(environ, "SERVER_SOFTWARE").lower().startswith("lighttpd"):
        if "/" in script_name[1:]:
            return None
        names = _remember(seen, _LIGHTTPD_ROOT, script_name)
        if names is None:
            return None
        return (
            f"looks like lighttpd mounted at /: SCRIPT_NAME is the first path segment "
            f"({_names(names)}): consider --lighttpd-root-fix "
            f'(or "fix-root-scriptname" => "enable")'
        )
    if path_info:
        return None
    names = _remember(seen, _WHOLE_PATH, script_name)
    if names is None:
        return None
    return (
        f"SCRIPT_NAME holds the whole request path and PATH_INFO is empty "
        f"({_names(names)}): consider --mount PREFIX "
        f"(the path this app is served under, / for the whole site)"
    )


def _remember(seen: dict[str, list[str]], rule: str, script_name: str) -> list[str] | None:
    """Record ``script_name`` for ``rule``; the names once there are enough different ones."""
    names = seen.setdefault(rule, [])
    if script_name not in names:
        names.append(script_name)
    return names if len(names) >= DISTINCT_SCRIPT_NAMES else None


# Requests examined before the detector steps aside for good: a deployment that
# needs a fix shows it in its first requests, and the hot path owes nothing after.
CHECKS = 200


class SetupDetector:
    """Log, once per process, the first request that shows the deployment needs a fix.

    Reads ``SCRIPT_NAME``, ``PATH_INFO``, ``REQUEST_URI``, ``SCRIPT_FILENAME``
    and ``SERVER_SOFTWARE`` (see :func:`diagnose`); writes nothing: the
    environ reaches the app exactly as it came. One warning goes to
    ``logger`` (default: the ``wsgiwire`` logger); after it, ``reported``
    holds the line and requests pass straight through. A failure inside the
    diagnosis is swallowed: a diagnostic must never cost a request.
    Thread-safe; "once per process" means once per instance, one per worker.

    Place it innermost, after any path fix (``MountPrefix(SetupDetector(app),
    "/app")``), so it judges what the app sees and is silent once the fix is
    right.
    """

    def __init__(
        self, app: WSGIApp, logger: logging.Logger | None = None, *, checks: int = CHECKS
    ) -> None:
        self.app = app
        self.logger = logger if logger is not None else logging.getLogger("wsgiwire")
        self.reported: str | None = None
        self._seen: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self._left = checks
        self._done = False

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if not self._done:
            self._check(environ)
        return self.app(environ, start_response)

    def _check(self, environ: Environ) -> None:
        with self._lock:
            if self._done:
                return
            self._left -= 1
            if self._left <= 0:
                self._done = True  # a setup that needs a fix shows in its first requests
                self._seen.clear()
            try:
                line = diagnose(environ, self._seen)
            except Exception:  # a diagnostic must never fail a request
                return
            if line is None:
                return
            self.reported = line
            self._done = True
            self._seen.clear()
        self.logger.warning("%s", line)
