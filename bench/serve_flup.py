"""Start one of flup 1.0.3's servers on a unix socket for the benchmark.

    python -m bench.serve_flup KIND MODULE:APP SOCKET_PATH

KIND is ``fcgi`` (flup.server.fcgi: one process, a thread per connection),
``fcgi_fork`` or ``scgi_fork`` (flup's prefork servers, held at exactly two
child processes). flup has no command line of its own; this is the few lines
a flup user writes in an ``app.fcgi`` script.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

# Exactly two children, as every other backend has two workers: flup's prefork server
# keeps between minSpare and maxSpare idle children, up to maxChildren.
PREFORK = {"minSpare": 2, "maxSpare": 2, "maxChildren": 2}


def _load(spec: str) -> Any:
    module_name, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module_name), attr or "application")


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    kind, spec, path = argv
    sys.path.insert(0, os.getcwd())
    app = _load(spec)
    server: Any
    if kind == "fcgi":
        from flup.server.fcgi import WSGIServer as ThreadedFCGI  # type: ignore[import-untyped]

        server = ThreadedFCGI(app, bindAddress=path, umask=0)
    elif kind == "fcgi_fork":
        from flup.server.fcgi_fork import WSGIServer as ForkFCGI  # type: ignore[import-untyped]

        server = ForkFCGI(app, bindAddress=path, umask=0, **PREFORK)
    elif kind == "scgi_fork":
        from flup.server.scgi_fork import WSGIServer as ForkSCGI  # type: ignore[import-untyped]

        server = ForkSCGI(app, bindAddress=path, umask=0, **PREFORK)
    else:
        print(f"unknown flup server kind {kind!r}", file=sys.stderr)
        return 2
    server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
