"""Run the whole catalogue at once and print a JSON summary.

``python -O -m tests.hostile.run_all`` is how ``test_catalogue`` checks that
nothing depends on ``assert`` (the harness raises explicitly, so its checks
hold under ``-O`` too). Options::

    --mode MODE       whole (default), bytewise (one byte per send, bounded, as in
                      the pytest run), or both; bytewise results are named
                      "NAME [bytewise]"
    --only NAME ...   run only these cases
    --verbose         one line per case on stderr

The summary: ``{"optimize": N, "passed": [...], "failed": {name: why},
"xfailed": {name: why}, "xpassed": [...], "crashes": [...], "seconds": S}``. An
``xfail`` case that fails is ``xfailed``; one that passes is ``xpassed``
(strict: the bug is fixed, so the mark must go).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from .catalogue import CASES
from .harness import CaseFailure, ServerPool, run_case, tapped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.hostile.run_all")
    parser.add_argument("--mode", choices=("whole", "bytewise", "both"), default="whole")
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    selected = [c for c in CASES if args.only is None or c.name in args.only]
    runs = []
    if args.mode in ("whole", "both"):
        runs += [(c, False, c.name) for c in selected]
    if args.mode in ("bytewise", "both"):
        runs += [(c, True, f"{c.name} [bytewise]") for c in selected if c.bytewise]
    summary: dict[str, object] = {"optimize": sys.flags.optimize}
    passed: list[str] = []
    failed: dict[str, str] = {}
    xfailed: dict[str, str] = {}
    xpassed: list[str] = []
    started = time.monotonic()
    with ServerPool() as pool, tapped() as tap:
        pool.start_all(sorted({(c.protocol, c.profile) for c in selected}))
        for case, bytewise, name in runs:
            t0 = time.monotonic()
            try:
                run_case(case, pool, tap.snapshot, bytewise=bytewise)
            except CaseFailure as exc:
                outcome = "xfailed" if case.xfail else "FAILED"
                (xfailed if case.xfail else failed)[name] = str(exc)[:500]
            except Exception as exc:  # the harness itself broke: report, go on
                outcome = "ERROR"
                failed[name] = f"{type(exc).__name__}: {exc}"
            else:
                outcome = "XPASSED" if case.xfail else "passed"
                (xpassed if case.xfail else passed).append(name)
            if args.verbose:
                detail = failed.get(name, xfailed.get(name, ""))[:300]
                print(f"{outcome:8} {time.monotonic() - t0:5.2f}s {name} {detail}",
                      file=sys.stderr)
        summary["crashes"] = pool.crashes
    summary.update(passed=passed, failed=failed, xfailed=xfailed, xpassed=xpassed,
                   seconds=round(time.monotonic() - started, 2))
    print(json.dumps(summary, indent=1))
    return 1 if failed or xpassed or pool.crashes else 0


if __name__ == "__main__":
    sys.exit(main())
