"""The one translator: CGI parameters as a server sent them -> a PEP 3333 environ.

Every protocol ends here, so each rule below is written once:

* names and values are native strings decoded as latin-1 (PEP 3333 "bytes as
  str"), so no byte is lost or rejected;
* the **last** value wins when a server repeats a CGI variable (nginx sends
  SCRIPT_NAME twice in common configs; PHP-FPM, flup and uWSGI do the same),
  and for ``HTTP_HOST``: a web server never forwards two Host headers (nginx,
  Apache and lighttpd refuse such requests), so a repeated HTTP_HOST means the
  configuration set it again (``fastcgi_param HTTP_HOST ...`` after Debian's
  ``fastcgi_params``, which already sets it) and the later line is the one the
  administrator meant; joining would give ``"a, a:8080"``, which frameworks
  reject as a host. Other request headers (``HTTP_*``) repeated are joined,
  with ``"; "`` for Cookie (RFC 6265) and ``", "`` for the others (RFC 9110),
  as Apache and lighttpd do themselves;
* ``HTTP_PROXY`` is dropped (httpoxy): a client's ``Proxy:`` header must never
  look like an outbound proxy setting; ``HTTP_CONTENT_LENGTH`` and
  ``HTTP_CONTENT_TYPE`` (nginx and lighttpd send them beside CONTENT_LENGTH and
  CONTENT_TYPE) are dropped too: PEP 3333 servers expose only the CGI names,
  ``wsgiref.validate`` rejects the HTTP_ ones, and a second, possibly different
  length (nginx ``scgi_request_buffering off``) must not reach the app;
* parameters never replace the server's own ``wsgi.*`` keys (a server's
  ``SetEnv wsgi.errors x`` or ``cgi-fcgi`` forwarding its environment must not
  turn ``wsgi.errors`` into a string);
* ``wsgi.url_scheme`` comes from ``HTTPS`` (on/1/yes, any case) or
  ``REQUEST_SCHEME``, which only the server sets, never from a client header;
* SCRIPT_NAME is never ``/`` and never ends in ``/`` (the slash moves to the
  front of PATH_INFO, so SCRIPT_NAME + PATH_INFO still names the same path); a
  missing PATH_INFO is derived from REQUEST_URI, percent-decoded to bytes (then
  latin-1), minus a SCRIPT_NAME prefix compared in decoded form;
* CONTENT_LENGTH must be plain digits (else :class:`~wsgiwire._errors.BadRequest`);
  an empty one is removed ("no declared length"), and so is a negative one
  (``-1``, which Caddy 2.6 sends over FastCGI with a chunked body: Go's "length
  unknown"), with a debug-level note. It is parsed once per request: here for
  a protocol whose body is framed by something else, FastCGI (FCGI_STDIN
  records, read to the empty one) and CGI (stdin to EOF for a chunked request,
  else no body); the SCGI and uwsgi codecs frame the body by CONTENT_LENGTH,
  so they parse it (refusing a negative one with a 400) and hand the result
  over in ``RequestStarted.content_length`` (:meth:`EnvironBuilder.build_request`),
  which is used as it is.
"""

from __future__ import annotations

import sys

from .._params import UNPARSED, length_value, parse_content_length
from ._lazylog import lazy_logger

# typing and collections.abc cost a CGI start-up about 9 ms: annotations only
# (and events imports dataclasses).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any, Final

    from .._events import RequestStarted, Vars

    Environ = dict[str, Any]

__all__ = [
    "EnvironBuilder",
    "decode_request_path",
    "host_name",
    "request_label",
    "request_uri",
    "split_host",
    "split_script_name",
]

log = lazy_logger("wsgiwire")

_TRUE_FLAGS: Final = frozenset({"on", "1", "yes", "true"})
_JOINED_WITH_SEMICOLON: Final = frozenset({"HTTP_COOKIE"})
# Request-header names whose last value wins like a CGI variable's (see above).
_LAST_WINS_HEADERS: Final = frozenset({"HTTP_HOST"})
_DROPPED: Final = frozenset({"HTTP_PROXY", "HTTP_CONTENT_LENGTH", "HTTP_CONTENT_TYPE"})
# Keys only the server sets. Those in the builder's template are written back
# after the params; these are set per request (or not at all) by the front-end.
_SERVER_ONLY: Final = frozenset({"wsgi.input", "wsgi.input_terminated", "wsgi.file_wrapper"})
_REMOVED: Final = frozenset(_DROPPED | _SERVER_ONLY)


def decode_request_path(request_uri: str) -> str:
    """The path of a REQUEST_URI (no query), percent-decoded to latin-1 text.

    An absolute-form URI (``http://host/path``) is reduced to its path first.
    """
    path = request_uri.split("?", 1)[0].split("#", 1)[0]
    if not path.startswith("/"):
        scheme_end = path.find("://")
        if scheme_end > 0:
            slash = path.find("/", scheme_end + 3)
            path = path[slash:] if slash >= 0 else "/"
    if "%" not in path:
        return path
    # The path is latin-1 text standing for raw bytes: turn it back into those
    # bytes before decoding. (Given a str, unquote_to_bytes would encode it as
    # UTF-8 and mangle any raw byte >= 0x80 the client sent unescaped.)
    try:
        raw = path.encode("latin-1")
    except UnicodeEncodeError:  # not latin-1 text after all (build_from_strings misuse)
        raw = path.encode("utf-8", "surrogateescape")
    from urllib.parse import unquote_to_bytes  # only for a percent-encoded REQUEST_URI

    return unquote_to_bytes(raw).decode("latin-1")


# What stays as it is when a path is quoted for a request line (the access log's
# choice, as nginx logs a path it rebuilt).
_URI_SAFE: Final = "/;=,@:!$&'()*+~-._"


def request_uri(environ: Environ) -> str:
    """The request target as the client sent it: ``REQUEST_URI``, which web
    servers send; without one, SCRIPT_NAME + PATH_INFO percent-quoted (``/``
    if empty) and ``?QUERY_STRING``. Not escaped for a log: the caller does that."""
    uri = environ.get("REQUEST_URI")
    if uri:
        return str(uri)
    from urllib.parse import quote  # only without REQUEST_URI (CGI start-up)

    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    uri = quote(path.encode("latin-1", "replace"), safe=_URI_SAFE) or "/"
    query = environ.get("QUERY_STRING")
    return f"{uri}?{query}" if query else uri


def request_label(environ: Environ) -> str:
    """``METHOD target`` (``GET /x?a=1``): the one rendering of a request for log
    lines, the status page, the watchdog and the access log's request line
    (``-`` for a missing method)."""
    return f"{environ.get('REQUEST_METHOD') or '-'} {request_uri(environ)}"


def split_script_name(script_name: str, path: str) -> str | None:
    """PATH_INFO for ``path`` under ``script_name``, or ``None`` if it is not under it.

    The prefix must end at a segment boundary: ``/app`` is a prefix of
    ``/app/x`` and ``/app`` but not of ``/apple``.
    """
    if not script_name:
        return path
    if path.startswith(script_name):
        rest = path[len(script_name) :]
        if not rest or rest.startswith("/"):
            return rest
    return None


class EnvironBuilder:
    """Builds environ dicts for one server; the constant ``wsgi.*`` part is made once."""

    __slots__ = ("_template",)

    def __init__(
        self,
        *,
        errors: object = None,
        multithread: bool = False,
        multiprocess: bool = True,
        run_once: bool = False,
        file_wrapper: Callable[..., Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        template: Environ = {
            "wsgi.version": (1, 0),
            "wsgi.errors": errors if errors is not None else sys.stderr,
            "wsgi.multithread": multithread,
            "wsgi.multiprocess": multiprocess,
            "wsgi.run_once": run_once,
        }
        if file_wrapper is not None:
            template["wsgi.file_wrapper"] = file_wrapper
        if extra:
            template.update(extra)
        self._template = template

    def build(
        self,
        params: Iterable[tuple[bytes, bytes]],
        *,
        script_name_in_path_info: bool = False,
    ) -> tuple[Environ, int | None]:
        """The environ for one request and its declared body length (``None``: none declared).

        ``wsgi.input`` is not set here: the front-end attaches the body with
        :func:`wsgiwire.core._body.attach_input` once it is complete.
        Raises :class:`~wsgiwire._errors.BadRequest` for a malformed CONTENT_LENGTH.
        """
        return self.build_from_strings(
            [(name.decode("latin-1"), value.decode("latin-1")) for name, value in params],
            script_name_in_path_info=script_name_in_path_info,
        )

    def build_request(self, event: RequestStarted) -> tuple[Environ, int | None]:
        """As :meth:`build_from_strings`, for what a codec delivered: its params,
        its path rule and the CONTENT_LENGTH it parsed (if it did)."""
        return self.build_from_strings(
            event.params,
            script_name_in_path_info=event.script_name_in_path_info,
            content_length=event.content_length,
        )

    def build_from_strings(
        self,
        params: Iterable[tuple[str, str]] | Vars,
        *,
        script_name_in_path_info: bool = False,
        content_length: int | None = UNPARSED,
    ) -> tuple[Environ, int | None]:
        """As :meth:`build`, for parameters that are already latin-1 native strings.

        This is the form every codec delivers (``RequestStarted.params``). A
        dict (a codec's ``Vars``: no name repeated) is taken over: it becomes
        the environ, with no copy made.
        ``content_length`` is CONTENT_LENGTH already parsed from these params
        (``None``: none declared), as a codec that frames the body by it
        passes it on; it is used as it is. Left ``UNPARSED``, it is parsed here.
        """
        if isinstance(params, dict):
            return self._finish(params, script_name_in_path_info, content_length)
        if type(params) is not list:
            params = list(params)
        env: Environ = dict(params)  # in C; the last value of a repeated name wins
        if len(env) != len(params) and _repeats_header(params):
            # A request header came twice: its values are joined instead.
            env = {}
            for name, value in params:
                if (
                    name in env
                    and name.startswith("HTTP_")
                    and name not in _LAST_WINS_HEADERS
                ):
                    _merge(env, name, value)
                else:
                    env[name] = value
        return self._finish(env, script_name_in_path_info, content_length)

    def _finish(
        self, env: Environ, strip_prefix: bool, content_length: int | None
    ) -> tuple[Environ, int | None]:
        if not env.keys().isdisjoint(_REMOVED):  # one check in C for the usual case
            for name in _REMOVED:
                env.pop(name, None)
        env.update(self._template)  # after the params: they never replace wsgi.* keys

        length_text = env.get("CONTENT_LENGTH")
        if content_length == UNPARSED:
            if length_text and length_text[0] == "-" and _is_negative_number(length_text):
                log.debug("CONTENT_LENGTH %s read as no declared length (body to its end)",
                          length_text[:21])
                length_text = ""
            content_length = parse_content_length(length_text) if length_text else None
        # else: the codec parsed it (the last value, as here) and framed the body by it.
        if content_length is None:
            if length_text is not None:
                del env["CONTENT_LENGTH"]
        elif length_text != str(content_length):
            env["CONTENT_LENGTH"] = str(content_length)

        if not env.get("REQUEST_METHOD"):
            env["REQUEST_METHOD"] = "GET"
        if "QUERY_STRING" not in env:
            env["QUERY_STRING"] = ""
        if "SERVER_PROTOCOL" not in env:
            env["SERVER_PROTOCOL"] = "HTTP/1.0"
        if "SERVER_NAME" not in env:
            env["SERVER_NAME"] = host_name(env.get("HTTP_HOST") or "localhost")
        https = _is_https(env)
        if "SERVER_PORT" not in env:
            env["SERVER_PORT"] = "443" if https else "80"
        env["wsgi.url_scheme"] = "https" if https else "http"
        _fix_paths(env, strip_prefix)
        return env, content_length


def _repeats_header(params: list[tuple[str, str]]) -> bool:
    """Whether a request header (an ``HTTP_*`` name) comes more than once in ``params``.

    Asked only when some name is repeated (nginx sends SCRIPT_NAME twice in
    common configs): one pass over the names, compiled to a native loop.
    """
    headers = [name for name, _ in params if name.startswith("HTTP_")]
    return len(set(headers)) != len(headers)


def _is_negative_number(text: str) -> bool:
    """``-`` and a length: a front end's "length unknown" (Go's -1)."""
    return length_value(text[1:]) is not None


def _merge(env: Environ, name: str, value: str) -> None:
    sep = "; " if name in _JOINED_WITH_SEMICOLON else ", "
    env[name] = f"{env[name]}{sep}{value}"


def split_host(host: str) -> tuple[str, str]:
    """A Host value (``name``, ``name:port``, ``[v6]``, ``[v6]:port``) as ``(name,
    rest)``: the name (a bracketed IPv6 literal kept whole), then whatever
    follows it, ``""`` or ``":port"`` when well formed. The one place a host is
    split; nothing is validated (a caller that must, checks both parts)."""
    if host.startswith("["):
        end = host.find("]") + 1
        if not end:
            return host, ""
    else:
        end = host.find(":")
        if end < 0:
            return host, ""
    return host[:end], host[end:]


def host_name(host: str) -> str:
    """A Host value without its port (see :func:`split_host`)."""
    return split_host(host)[0]


def _is_https(env: Environ) -> bool:
    https = env.get("HTTPS")
    if https is not None and https.lower() in _TRUE_FLAGS:
        return True
    scheme = env.get("REQUEST_SCHEME")
    return scheme is not None and scheme.lower() == "https"


def _fix_paths(env: Environ, strip_prefix: bool) -> None:
    script_name: str = env.get("SCRIPT_NAME", "")
    path_info: str | None = env.get("PATH_INFO")

    trailing_slash = script_name.endswith("/")
    if trailing_slash:
        # "/app/" + "x" names "/app/x": the slash moves to PATH_INFO.
        script_name = script_name.rstrip("/")
        if path_info is not None and not path_info.startswith("/"):
            path_info = "/" + path_info

    if path_info is None:
        request_uri = env.get("REQUEST_URI")
        rest = None
        if request_uri:
            rest = split_script_name(script_name, decode_request_path(request_uri))
        if rest is None:
            # No usable REQUEST_URI: SCRIPT_NAME "/" (or "/app/") alone still
            # named a path ending in "/", so PATH_INFO keeps that slash.
            rest = "/" if trailing_slash else ""
        path_info = rest
    elif strip_prefix and script_name:
        rest = split_script_name(script_name, path_info)
        if rest is not None:
            path_info = rest

    env["SCRIPT_NAME"] = script_name
    env["PATH_INFO"] = path_info
