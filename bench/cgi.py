#!/usr/bin/env python3
"""CGI side by side: a hello ``.cgi`` through real Apache mod_cgi, wsgiwire against wsgiref.

    .venv/bin/python bench/cgi.py [--rounds 3] [--duration 5] [--connections 4]

Three scripts, each a complete ``.cgi`` a shared-hosting user would write, run by
Apache httpd (prefork, ``mod_cgi``, the tested ``server-configs/apache/cgi-scriptalias``
file) with the system interpreter (``/usr/bin/python3`` when it is 3.10+) and the
package byte-compiled, as it would be after its first run:

* ``wsgiwire``: ``from wsgiwire.adapters.cgi import run; run(app)``;
* ``wsgiref``: ``from wsgiref.handlers import CGIHandler; CGIHandler().run(app)``;
* ``bare``: the same interpreter printing the same response by hand, no WSGI at all:
  the ceiling for any Python CGI on this machine.

One Apache per script runs at once; each round measures every script in turn (the
order rotates from round to round) with ``wrk -t1 -cN -dS``, after one checked
request and a short warm-up (and one more check at the end); the figure
is each script's median round, the ratio the median of the per-round ratios to
wsgiref. Every process is stopped by its own PID. Only ratios mean anything on a
shared machine. First it prints what importing ``wsgiwire.adapters.cgi`` and
``wsgiref.handlers`` costs, timed inside a fresh interpreter (byte-compiled, median
of 20).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.integration.servers import (  # noqa: E402 - needs the repo root on sys.path
    ApacheServer,
    precompile,
    stage_package,
    world_readable_tempdir,
)
from tests.integration.servers import script_python as system_python  # noqa: E402

HELLO = b"Hello, World!"

APP = '''
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
    return [b"Hello, World!"]
'''

SCRIPTS = {
    "wsgiwire": "import sys\nsys.path.insert(0, {stage!r})\n"
                "from wsgiwire.adapters.cgi import run\n" + APP + "run(app)\n",
    "wsgiref": "from wsgiref.handlers import CGIHandler\n" + APP + "CGIHandler().run(app)\n",
    "bare": "import sys\nsys.stdout.buffer.write(b'Status: 200 OK\\r\\nContent-Type: text/plain"
            "\\r\\nContent-Length: 13\\r\\n\\r\\nHello, World!')\n",
}

_REQS = re.compile(r"Requests/sec:\s+([\d.]+)")
_ERRORS = re.compile(r"Non-2xx or 3xx responses|Socket errors")


def wrk(port: int, connections: int, duration: int) -> float:
    done = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "10s",
         f"http://127.0.0.1:{port}/app/hello"],
        capture_output=True, text=True, timeout=duration + 60, check=True,
    )
    if _ERRORS.search(done.stdout):
        raise SystemExit(f"wrk saw errors:\n{done.stdout}")
    match = _REQS.search(done.stdout)
    if match is None:
        raise SystemExit(f"no Requests/sec in wrk's output:\n{done.stdout}")
    return float(match.group(1))


def check(name: str, srv: ApacheServer) -> None:
    status, _, body = srv.request("GET", "/app/hello")
    if status != 200 or body != HELLO:
        raise SystemExit(f"{name}: {status} {body[:200]!r}\n{srv.error_log_text()}")


def import_cost(python: str, stage: Path, runs: int = 20) -> dict[str, float]:
    """Median ms to import each module in a fresh interpreter, timed inside it."""
    codes = {
        "wsgiwire.adapters.cgi": f"import sys; sys.path.insert(0, {str(stage)!r})\n"
                                 "import time; t = time.perf_counter()\n"
                                 "import wsgiwire.adapters.cgi\n"
                                 "print(time.perf_counter() - t)",
        "wsgiref.handlers": "import time; t = time.perf_counter()\n"
                            "import wsgiref.handlers\nprint(time.perf_counter() - t)",
    }
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}  # no PYTHONDONTWRITEBYTECODE
    found = {}
    for name, code in codes.items():
        times = [float(subprocess.run([python, "-c", code], capture_output=True, text=True,
                                      env=env, check=True).stdout) for _ in range(runs)]
        found[name] = statistics.median(times) * 1000
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=4)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("bench/cgi.py needs wrk")
    python = system_python()
    stage = world_readable_tempdir("wsgiwire-cgi-bench-")
    try:
        stage_package(stage)
        scripts = {}
        for name, text in SCRIPTS.items():
            path = stage / f"{name}.cgi"
            path.write_text(f"#!{python}\n" + text.format(stage=str(stage)))
            path.chmod(0o755)
            scripts[name] = path
        precompile(python, stage)
        version = subprocess.run([python, "-c", "import sys; print(sys.version.split()[0])"],
                                 capture_output=True, text=True, check=True).stdout.strip()
        print(f"Apache mod_cgi, {python} (Python {version}), wrk -t1 -c{args.connections} "
              f"-d{args.duration}s, {args.rounds} rounds", flush=True)
        for name, ms in import_cost(python, stage).items():
            print(f"import {name}: {ms:.2f} ms (median of 20, timed in the process)")
        rounds: dict[str, list[float]] = {name: [] for name in scripts}
        names = list(scripts)
        with contextlib.ExitStack() as stack:
            # One Apache per script, all up at once, so the rounds interleave closely.
            servers = {}
            for name in names:
                srv = stack.enter_context(ApacheServer(
                    "cgi-scriptalias", values={"MOUNT": "/app", "SCRIPT": str(scripts[name])}))
                check(name, srv)
                wrk(srv.port, args.connections, 1)  # warm-up: Apache's children, page cache
                servers[name] = srv
            for number in range(1, args.rounds + 1):
                # A different order each round: no script always runs first (or last).
                shift = (number - 1) % len(names)
                for name in names[shift:] + names[:shift]:
                    rounds[name].append(wrk(servers[name].port, args.connections,
                                            args.duration))
                print(f"round {number}: " + ", ".join(
                    f"{name} {values[-1]:.0f}" for name, values in rounds.items()), flush=True)
            for name, srv in servers.items():
                check(name, srv)
        ratios = [w / r for w, r in zip(rounds["wsgiwire"], rounds["wsgiref"], strict=True)]
        print("\n| script | req/s (median round) | rounds |\n|---|---:|---|")
        for name, values in rounds.items():
            print(f"| {name} | {statistics.median(values):,.0f} | "
                  + ", ".join(f"{v:,.0f}" for v in values) + " |")
        print(f"\nwsgiwire / wsgiref: {statistics.median(ratios):.2f}x (rounds: "
              + ", ".join(f"{r:.2f}x" for r in ratios) + ")")
    finally:
        if os.environ.get("WSGIWIRE_KEEP_RUN_DIRS") != "1":
            shutil.rmtree(stage, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
