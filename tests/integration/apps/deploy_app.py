"""The app behind every front end in the deploy tests (``test_deploy_frontends.py``,
``test_deploy_snippets.py``): a real Flask app, a real Django project and a plain
echo, dispatched on the first PATH_INFO segment (SCRIPT_NAME is left as the server
set it, so every framework sees the mount).

* ``/flask/url``: Flask's ``url_for(..., _external=True)`` and ``request.host``;
* ``/django/abs``: Django's ``build_absolute_uri()`` and ``get_host()`` (which
  checks ALLOWED_HOSTS: a joined ``"a, a:8080"`` Host is a 400 DisallowedHost);
* ``/django/form``: GET gives a CSRF token (and its cookie), POST goes through
  Django's CsrfViewMiddleware, which compares ``Origin`` with scheme and host;
* anything else: JSON of the environ's string values, the body's length and sha256
  (read to its end when no length was declared), ``wsgi.input_terminated`` and
  ``wsgi.url_scheme``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from typing import Any

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="wsgiwire-deploy-tests-only",
    ROOT_URLCONF=__name__,
    ALLOWED_HOSTS=["127.0.0.1", "localhost", "example.test"],
    MIDDLEWARE=["django.middleware.csrf.CsrfViewMiddleware"],
    INSTALLED_APPS=[],
    USE_TZ=True,
    LOGGING_CONFIG=None,
)
django.setup()

from django.core.handlers.wsgi import WSGIHandler  # noqa: E402
from django.http import HttpRequest, JsonResponse  # noqa: E402
from django.middleware.csrf import get_token  # noqa: E402
from django.urls import path  # noqa: E402
from flask import Flask, jsonify, request, url_for  # noqa: E402


def django_abs(req: HttpRequest) -> JsonResponse:
    return JsonResponse({"absolute": req.build_absolute_uri(), "host": req.get_host(),
                         "secure": req.is_secure()})


def django_form(req: HttpRequest) -> JsonResponse:
    if req.method == "POST":
        return JsonResponse({"posted": req.POST.get("field", "")})
    return JsonResponse({"token": get_token(req)})


urlpatterns = [path("django/abs", django_abs), path("django/form", django_form)]
django_app = WSGIHandler()

flask_app = Flask(__name__)


@flask_app.route("/flask/url")
def flask_url() -> Any:
    return jsonify(external=url_for("flask_url", _external=True), host=request.host,
                   scheme=request.scheme)


Environ = dict[str, Any]
StartResponse = Callable[..., Any]


def echo(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    stream = environ["wsgi.input"]
    declared = environ.get("CONTENT_LENGTH")
    digest = hashlib.sha256()
    length = 0
    remaining = int(declared) if declared else None
    while remaining is None or remaining > 0:
        if remaining is None and not environ.get("wsgi.input_terminated"):
            break  # no declared length and no terminated input: no body (PEP 3333)
        chunk = stream.read(65536 if remaining is None else min(remaining, 65536))
        if not chunk:
            break
        digest.update(chunk)
        length += len(chunk)
        if remaining is not None:
            remaining -= len(chunk)
    report = {k: v for k, v in environ.items() if isinstance(v, str)}
    report.update(
        app="deploy_app",
        body_length=length,
        body_sha256=digest.hexdigest(),
        input_terminated=bool(environ.get("wsgi.input_terminated")),
    )
    out = json.dumps(report, sort_keys=True).encode("utf-8")
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(out)))])
    return [out]


def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    path_info = environ.get("PATH_INFO", "")
    if path_info.startswith("/django/"):
        result: Iterable[bytes] = django_app(environ, start_response)
        return result
    if path_info.startswith("/flask/"):
        return flask_app(environ, start_response)  # type: ignore[no-any-return]
    return echo(environ, start_response)
