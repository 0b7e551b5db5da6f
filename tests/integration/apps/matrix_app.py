"""The Flask app of the deployment matrix (``test_deploy_matrix.py``).

A real Flask app, so the URLs it builds are what a Flask user gets: Flask's
``url_for`` builds them from SCRIPT_NAME (werkzeug's ``request.root_path``)
and routes on PATH_INFO, which is exactly what the path fixes are about.

* ``/page/<name>`` (endpoint ``page``): ``page <name>`` as text, so a test can
  follow the link ``url_for`` gave and land on a real route;
* anything else, GET or POST: JSON describing the request: ``url_for('page',
  name='z')``, SCRIPT_NAME and PATH_INFO (as the hex of their latin-1 bytes,
  so a double decoding or a mojibake shows), the query string, the body's
  length and sha256, and ``wsgiwire.orig`` when a path fix moved something.

``app`` (what deployment scripts import, as ``from myapp import app`` in the
README) is the Flask app under ``wsgiref.validate.validator``, so a PEP 3333
violation by wsgiwire is a 500, not a pass. Under a web server that spawns its
scripts (CGI, mod_fcgid, lighttpd bin-path) the interpreter is
``/usr/bin/python3``: the matrix stages Flask and its dependencies beside this
file (``_matrix_support.stage_flask``).
"""

from __future__ import annotations

import hashlib
from typing import Any
from wsgiref.validate import validator

from flask import Flask, jsonify, request, url_for

flask_app = Flask(__name__)


def read_body(environ: dict[str, Any]) -> bytes:
    """The body, read with ``read(size)`` up to CONTENT_LENGTH (werkzeug's
    ``get_data`` calls ``read()`` without a size on a terminated input, which
    ``wsgiref.validate`` rightly rejects as outside PEP 3333)."""
    stream = environ["wsgi.input"]
    remaining = int(environ.get("CONTENT_LENGTH") or 0)
    chunks = []
    while remaining > 0:
        chunk = stream.read(min(remaining, 65536))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


@flask_app.route("/page/<name>")
def page(name: str) -> tuple[str, int, dict[str, str]]:
    return f"page {name}", 200, {"Content-Type": "text/plain; charset=utf-8"}


@flask_app.route("/", defaults={"path": ""}, methods=["GET", "POST"])
@flask_app.route("/<path:path>", methods=["GET", "POST"])
def report(path: str) -> Any:
    environ = request.environ
    body = read_body(environ)
    orig = environ.get("wsgiwire.orig")
    return jsonify(
        app="matrix_app",
        url_for=url_for("page", name="z"),
        route_path=path,
        method=environ["REQUEST_METHOD"],
        SCRIPT_NAME_hex=environ.get("SCRIPT_NAME", "").encode("latin-1").hex(),
        PATH_INFO_hex=environ.get("PATH_INFO", "").encode("latin-1").hex(),
        QUERY_STRING=environ.get("QUERY_STRING", ""),
        body_length=len(body),
        body_sha256=hashlib.sha256(body).hexdigest(),
        orig=orig if isinstance(orig, dict) else None,
    )


app = validator(flask_app)
