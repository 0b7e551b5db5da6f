"""The fuzz smoke run (``fuzz/smoke.py``) with a short budget, so CI exercises it.

It runs atheris when installed, else the random-mutation fallback over the
same harness functions; either way a finding exits nonzero. When atheris
is there, the fallback also gets a short run of its own.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
SMOKE = REPO / "fuzz" / "smoke.py"


def _smoke(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SMOKE), *args],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )


def test_fuzz_smoke() -> None:
    proc = _smoke("--budget", "3")
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    for codec in ("fastcgi", "scgi", "uwsgi"):
        assert f"{codec}: " in proc.stdout
    if "atheris" in proc.stdout.splitlines()[0]:
        fallback = _smoke("--budget", "1.5", "--engine", "random", "--seed", "1")
        assert fallback.returncode == 0, fallback.stdout + fallback.stderr[-4000:]
