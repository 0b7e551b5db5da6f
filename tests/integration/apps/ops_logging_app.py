"""An app that sets up logging its own way, as Django and Flask apps do.

At import (in the worker, after ``wsgiwire serve`` configured its logging) it
records what the root logger looked like, then configures the root logger
itself (``basicConfig`` with its own format) and gives its ``django`` logger
a handler of its own (which propagates to the root, as Django's does). Each
request logs one line through each, tagged with the request's query string,
and answers with what the root logger looked like at import.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable
from typing import Any

_root = logging.getLogger()
ROOT_AT_IMPORT = f"root handlers={len(_root.handlers)} level={logging.getLevelName(_root.level)}"

logging.basicConfig(format="ROOTFMT %(name)s %(message)s", level=logging.INFO, stream=sys.stderr)
_django = logging.getLogger("django")
_own = logging.StreamHandler(sys.stderr)
_own.setFormatter(logging.Formatter("DJANGOFMT %(message)s"))
_django.addHandler(_own)
_django.setLevel(logging.INFO)


def application(
    environ: dict[str, Any], start_response: Callable[..., Any]
) -> Iterable[bytes]:
    tag = environ.get("QUERY_STRING", "")
    logging.getLogger().info("root-line-%s", tag)
    logging.getLogger("myapp.views").warning("child-line-%s", tag)
    _django.info("django-line-%s", tag)
    body = ROOT_AT_IMPORT.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
