"""Path fixes for the web-server setups whose SCRIPT_NAME/PATH_INFO split is wrong.

Each class repairs one setup recorded in ``tests/corpus`` and is a no-op (the
environ untouched, not even ``wsgiwire.orig`` added) on an environ already
split right at the configured prefix:

=============================  =========================================================
setup                          fix
=============================  =========================================================
Apache mod_fcgid + .htaccess   :class:`ScriptNameStripper`: ``RewriteRule ^(.*)$
``RewriteRule`` to             app.fcgi/$1`` leaves ``/app.fcgi`` in SCRIPT_NAME and
``app.fcgi/$1``; lighttpd      the public path, decoded twice by Apache, in PATH_INFO.
``"/app.fcgi$1"`` rewrite
lighttpd ``fastcgi.server``/   :class:`LighttpdCGIRootFix`: the first path segment
``scgi.server "/"``            arrives as SCRIPT_NAME, the rest as PATH_INFO.
Apache mod_proxy_fcgi /        :class:`ApacheProxyPathFix`: SCRIPT_NAME holds the whole
mod_proxy_scgi (no             path and PATH_INFO is absent.
``proxy-fcgi-pathinfo``)
=============================  =========================================================

All three keep SCRIPT_NAME + PATH_INFO naming the request path and keep the
values they replace in ``environ["wsgiwire.orig"]`` (a dict, ``setdefault``:
the first original wins when stacked).
"""

from __future__ import annotations

from collections.abc import Iterable

from ..core._environ import decode_request_path, split_script_name
from ..core._gateway import StartResponse, WSGIApp
from ._mount import Environ, explains, normalise_prefix, remount, set_split

__all__ = ["ApacheProxyPathFix", "LighttpdCGIRootFix", "ScriptNameStripper"]


class ScriptNameStripper:
    """Take the script a server rewrote every URL to out of SCRIPT_NAME.

    For Apache mod_fcgid (or mod_cgi) behind an ``.htaccess``
    ``RewriteRule ^(.*)$ app.fcgi/$1`` and lighttpd's
    ``url.rewrite-once = ("^(/.*)$" => "/app.fcgi$1")``: the server says
    SCRIPT_NAME ``/app.fcgi`` although the client asked for ``/x``, so every
    URL the app builds would contain ``app.fcgi``. Afterwards SCRIPT_NAME is
    ``script_name`` (the public prefix the rewrite lives under, normalised:
    ``""`` for the site root, ``"/~user"`` for an ``.htaccess`` in that
    directory) and PATH_INFO the public path under it. ``ScriptAlias /
    /path/app.fcgi/`` already splits right and is left alone.

    Reads ``REQUEST_URI``, ``SCRIPT_NAME`` and ``PATH_INFO``; writes
    ``SCRIPT_NAME`` and ``PATH_INFO``; originals in ``environ["wsgiwire.orig"]``.

    PATH_INFO comes from REQUEST_URI (its path, percent-decoded once, minus
    ``script_name``) when the server's PATH_INFO is that path as the server
    decoded it: equal, or decoded a second time, as Apache's mod_rewrite does
    (``/p%2541`` arrives as PATH_INFO ``/pA``; REQUEST_URI gives ``/p%41``).
    Any other difference is the server's doing on purpose (``/a/../b``
    normalised to ``/b``, a rewrite that drops a directory) and the server's
    PATH_INFO is kept. Without REQUEST_URI, PATH_INFO is kept as sent. A
    REQUEST_URI outside ``script_name`` leaves the environ untouched.
    """

    def __init__(self, app: WSGIApp, script_name: str = "") -> None:
        self.app = app
        self.script_name = normalise_prefix(script_name)

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path_info: str = environ.get("PATH_INFO", "")
        request_uri = environ.get("REQUEST_URI")
        if request_uri:
            rest = split_script_name(self.script_name, decode_request_path(request_uri))
            if rest is None:
                return self.app(environ, start_response)
            if explains(rest, path_info):
                path_info = rest
        set_split(environ, self.script_name, path_info)
        return self.app(environ, start_response)


class LighttpdCGIRootFix:
    """Undo lighttpd's split of an app mounted at ``/``, then mount it at ``app_root``.

    lighttpd's ``fastcgi.server = ("/" => ...)`` (and ``scgi.server``, also
    with ``scgi.protocol = "uwsgi"``) sends the first path segment as
    SCRIPT_NAME and the rest as PATH_INFO: ``/app/x/y`` arrives as ``/app`` +
    ``/x/y``. lighttpd 1.4.69 still does this unless ``"fix-root-scriptname"
    => "enable"``, so unlike werkzeug's removed fixer (which compared
    SERVER_SOFTWARE versions as strings, ``"lighttpd/1.4.100" <
    "lighttpd/1.4.28"``) no version is consulted: the whole path is rebuilt
    from SCRIPT_NAME + PATH_INFO, whatever the version, and split again at
    ``app_root``. ``app_root`` is normalised (werkzeug's dropped the leading
    slash): ``"app"`` and ``"/app/"`` mean ``/app``, ``"/"`` means ``""``.
    A path outside ``app_root`` gets SCRIPT_NAME ``""`` and the whole path.

    With the Flask docs' ``url.rewrite-once "^(/.*)$" => "/app.fcgi$1"``,
    SCRIPT_NAME is the script, not part of the URL: when REQUEST_URI names
    PATH_INFO alone, PATH_INFO alone is the path (the case
    :class:`ScriptNameStripper` handles; this class accepts it too).

    Reads ``SCRIPT_NAME``, ``PATH_INFO`` and ``REQUEST_URI``; writes
    ``SCRIPT_NAME`` and ``PATH_INFO``; originals in ``environ["wsgiwire.orig"]``.
    The path comes from SCRIPT_NAME + PATH_INFO (lighttpd's decoded,
    normalised view), replaced by REQUEST_URI's path decoded once only where
    that explains it (see :func:`~wsgiwire.middleware._mount.explains`).
    """

    def __init__(self, app: WSGIApp, app_root: str = "/") -> None:
        self.app = app
        self.app_root = normalise_prefix(app_root)

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        script_name: str = environ.get("SCRIPT_NAME", "")
        path_info: str = environ.get("PATH_INFO", "")
        path = script_name + path_info
        request_uri = environ.get("REQUEST_URI")
        if request_uri:
            uri_path = decode_request_path(request_uri)
            if explains(uri_path, path) or (script_name and explains(uri_path, path_info)):
                path = uri_path
        if not remount(environ, self.app_root, path):
            set_split(environ, "", path)
        return self.app(environ, start_response)


class ApacheProxyPathFix:
    """Split the path at ``mount`` for Apache mod_proxy_fcgi / mod_proxy_scgi.

    Without ``SetEnvIf Request_URI . proxy-fcgi-pathinfo=unescape``, Apache's
    ``ProxyPass "/app/" "fcgi://host:port/"`` sends SCRIPT_NAME ``/app/x/y``
    and no PATH_INFO (the translator then sets PATH_INFO ``""``);
    mod_proxy_scgi does the same. Afterwards SCRIPT_NAME is ``mount``
    (normalised; ``""`` for ``ProxyPass "/"``) and PATH_INFO the rest.

    Acts only when ``SCRIPT_FILENAME`` starts with ``proxy:`` (Apache's
    ``proxy:fcgi://...`` / ``proxy:scgi://...`` / ``proxy:unix:...|fcgi://...``),
    so the same app reached another way (another server, a health check over
    the socket) is left alone; with ``proxy-fcgi-pathinfo`` set, or behind
    mod_proxy_uwsgi, the split is already right and nothing changes. A path
    outside ``mount`` is left as it was. The split is :class:`MountPrefix`'s.

    Reads ``SCRIPT_FILENAME``, ``SCRIPT_NAME`` and ``PATH_INFO``; writes
    ``SCRIPT_NAME`` and ``PATH_INFO``; originals in ``environ["wsgiwire.orig"]``.
    """

    def __init__(self, app: WSGIApp, mount: str = "") -> None:
        self.app = app
        self.mount = normalise_prefix(mount)

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        script_filename = environ.get("SCRIPT_FILENAME")
        if isinstance(script_filename, str) and script_filename.startswith("proxy:"):
            path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
            remount(environ, self.mount, path)
        return self.app(environ, start_response)
