#!/usr/bin/env python3
"""The soak test, for longer runs: mixed good and malformed traffic through nginx and
directly to wsgiwire backends, with the workers' RSS, fds and threads sampled.

    .venv/bin/python bench/soak.py --seconds 120
    .venv/bin/python bench/soak.py --minutes 10

Run from the repository root with the venv's Python; needs nginx. Same code as
``tests/integration/test_soak.py`` (``tests/integration/_soak_support.py``). Prints a
table and the one-line summary; exits 1 if any promise was broken (listed).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.integration._soak_support import run_soak, soak_seconds  # noqa: E402
from tests.integration.servers import NginxServer, staged  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--seconds", type=float, help="length of the run (default: "
                        "$WSGIWIRE_SOAK_SECONDS or 20)")
    length.add_argument("--minutes", type=float, help="length of the run in minutes")
    args = parser.parse_args(argv)
    seconds = (args.minutes * 60 if args.minutes is not None
               else args.seconds if args.seconds is not None else soak_seconds())
    if seconds <= 0:
        parser.error("the run must last more than 0 s")
    if NginxServer.binary() is None:
        print("soak: nginx is not installed", file=sys.stderr)
        return 2
    with staged("wsgiwire-soak-") as stage, \
            tempfile.TemporaryDirectory(prefix="wsgiwire-soak-run-") as workdir:
        result = run_soak(stage, Path(workdir), seconds)
    print(result.table())
    print()
    print(result.summary())
    problems = result.problems()
    for problem in problems:
        print(f"PROBLEM: {problem}")
    print("soak: OK" if not problems else f"soak: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
