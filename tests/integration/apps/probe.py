"""A WSGI app that reports, as JSON, what it was given.

Staged next to the ``wsgiwire`` copy and run by real web servers (through any
wsgiwire front-end), so it uses the stdlib only. ``application`` is wrapped in
``wsgiref.validate.validator``: a PEP 3333 violation by the front-end is a 500.

It calls ``print()`` before and after ``start_response`` (the second line ends with
the query string, so a test can find its own request's line in the server's log): a
front-end that lets stdout reach the response shows up as a broken head or a corrupt
body.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.validate import validator

READ_SIZE = 65536


def _read_body(environ: dict[str, Any]) -> tuple[int, str]:
    """Read the body by the PEP 3333 rules; returns (length, sha256 hex)."""
    stream = environ["wsgi.input"]
    digest = hashlib.sha256()
    total = 0
    declared = environ.get("CONTENT_LENGTH", "")
    if declared:
        remaining = int(declared)
        while remaining > 0:
            data = stream.read(min(remaining, READ_SIZE))
            if not data:
                break
            digest.update(data)
            total += len(data)
            remaining -= len(data)
    elif environ.get("wsgi.input_terminated"):
        while True:
            data = stream.read(READ_SIZE)
            if not data:
                break
            digest.update(data)
            total += len(data)
    return total, digest.hexdigest()


def probe(
    environ: dict[str, Any], start_response: Callable[..., Callable[[bytes], object]]
) -> Iterable[bytes]:
    print("noise", flush=True)
    length, sha256 = _read_body(environ)
    path_info: str = environ.get("PATH_INFO", "")
    script_name: str = environ.get("SCRIPT_NAME", "")
    report = {
        "REQUEST_METHOD": environ["REQUEST_METHOD"],
        "SCRIPT_NAME": script_name,
        "SCRIPT_NAME_hex": script_name.encode("latin-1").hex(),
        "PATH_INFO": path_info,
        "PATH_INFO_hex": path_info.encode("latin-1").hex(),
        "QUERY_STRING": environ.get("QUERY_STRING"),
        "CONTENT_LENGTH": environ.get("CONTENT_LENGTH"),
        "CONTENT_TYPE": environ.get("CONTENT_TYPE"),
        "SERVER_PROTOCOL": environ.get("SERVER_PROTOCOL"),
        "wsgi.url_scheme": environ["wsgi.url_scheme"],
        "wsgi.input_terminated": environ.get("wsgi.input_terminated"),
        "wsgi.multithread": environ["wsgi.multithread"],
        "wsgi.multiprocess": environ["wsgi.multiprocess"],
        "wsgi.run_once": environ["wsgi.run_once"],
        "HTTP_PROXY_in_environ": "HTTP_PROXY" in environ,
        "HTTP_PROXY_in_os_environ": "HTTP_PROXY" in os.environ,
        "http_headers": {k: v for k, v in environ.items() if k.startswith("HTTP_")},
        "body_length": length,
        "body_sha256": sha256,
    }
    body = json.dumps(report, sort_keys=True).encode("ascii")
    start_response(
        "200 OK",
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("X-Probe-Method", environ["REQUEST_METHOD"]),
        ],
    )
    print(f"noise after start_response: {environ.get('QUERY_STRING', '')}")
    return [body]


application = validator(probe)
