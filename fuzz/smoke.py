"""A bounded fuzz run of every codec: atheris if installed, else plain ``random``.

    python fuzz/smoke.py                      # 60 s in all, 20 s per codec
    python fuzz/smoke.py --budget 6           # what the test suite runs
    python fuzz/smoke.py --engine random      # the fallback, even with atheris installed
    python fuzz/smoke.py --codec scgi --seed 7

Both engines call the same harness functions (``fuzz_<codec>.TestOneInput``)
on the seed corpus (``_common.seeds``) and then on new inputs: libFuzzer's
coverage-guided mutations under atheris, or random mutations of the seeds
(bit flips, interesting bytes, insertions, deletions, duplications, splices,
truncations) and random bytes with the fallback. Exits 1 on a finding,
printing the input (and, for the fallback, the seed that reproduces it).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import os
import random
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common

# atheris needs about this long to start (instrumenting the imports) before
# libFuzzer's -max_total_time clock begins.
ATHERIS_STARTUP = 1.5
INTERESTING = (0, 1, 0x7F, 0x80, 0xFF, ord(":"), ord(","), ord("0"), ord("9"))


def have_atheris() -> bool:
    try:
        import atheris  # noqa: F401
    except ImportError:
        return False
    return True


def harness(protocol: str) -> Callable[[bytes], None]:
    module = importlib.import_module(f"fuzz_{protocol}")
    return module.TestOneInput  # type: ignore[no-any-return]


# --- the fallback: random mutations ---------------------------------------------------


def mutate(rng: random.Random, corpus: list[bytes]) -> bytes:
    if not corpus or rng.random() < 0.1:
        return rng.randbytes(rng.randrange(0, 512))
    data = bytearray(rng.choice(corpus))
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(7)
        pos = rng.randrange(len(data) + 1)
        if op == 0 and data:  # flip bits
            i = min(pos, len(data) - 1)
            data[i] ^= 1 << rng.randrange(8)
        elif op == 1 and data:  # an interesting byte
            data[min(pos, len(data) - 1)] = rng.choice(INTERESTING)
        elif op == 2:  # insert random bytes
            data[pos:pos] = rng.randbytes(rng.randrange(1, 16))
        elif op == 3:  # delete a slice
            del data[pos : pos + rng.randrange(1, 32)]
        elif op == 4 and data:  # duplicate a slice
            start = rng.randrange(len(data))
            data[pos:pos] = data[start : start + rng.randrange(1, 64)]
        elif op == 5:  # splice with another input
            other = rng.choice(corpus)
            data = data[:pos] + other[rng.randrange(len(other) + 1) :]
        else:  # truncate
            del data[pos:]
    return bytes(data[:4096])


def run_random(protocol: str, seconds: float, seed: int) -> bool:
    """True if no finding within ``seconds``."""
    test = harness(protocol)
    corpus = _common.seeds(protocol)
    rng = random.Random(f"{seed}-{protocol}")
    deadline = time.monotonic() + seconds
    runs = 0
    inputs = iter(corpus)
    while time.monotonic() < deadline:
        data = next(inputs, None)
        if data is None:
            data = mutate(rng, corpus)
        runs += 1
        try:
            test(data)
        except Exception:
            print(f"FINDING in {protocol} (--engine random --seed {seed}), input "
                  f"{len(data)} bytes: {data[:2000]!r}", file=sys.stderr)
            traceback.print_exc()
            return False
    print(f"{protocol}: {runs} inputs in {seconds:.1f} s (random, seed {seed}), no finding")
    return True


# --- atheris ----------------------------------------------------------------------------


def run_atheris(protocol: str, seconds: float, workdir: Path) -> bool:
    corpus = workdir / "corpus" / protocol
    corpus.mkdir(parents=True, exist_ok=True)
    for data in _common.seeds(protocol):
        (corpus / hashlib.sha1(data).hexdigest()).write_bytes(data)
    artifacts = workdir / "findings" / protocol
    artifacts.mkdir(parents=True, exist_ok=True)
    run_time = max(1, int(seconds - ATHERIS_STARTUP))
    command = [
        sys.executable,
        str(_common.FUZZ_DIR / f"fuzz_{protocol}.py"),
        f"-max_total_time={run_time}",
        "-timeout=10",
        "-rss_limit_mb=2048",
        f"-artifact_prefix={artifacts}/",
        str(corpus),
    ]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=run_time + 120,
                          check=False)
    runs = [line for line in proc.stderr.splitlines() if line.startswith("Done ")]
    if proc.returncode != 0:
        print(f"FINDING in {protocol} (atheris, exit {proc.returncode}):", file=sys.stderr)
        print(proc.stderr[-4000:], file=sys.stderr)
        for path in sorted(artifacts.iterdir()):
            print(f"  {path}: {path.read_bytes()[:2000]!r}", file=sys.stderr)
        return False
    print(f"{protocol}: {runs[-1] if runs else 'ran'} (atheris), no finding")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python fuzz/smoke.py")
    parser.add_argument("--budget", type=float, default=60.0, help="seconds in all")
    parser.add_argument("--engine", choices=("auto", "atheris", "random"), default="auto")
    parser.add_argument("--codec", action="append", choices=sorted(_common.CODECS))
    parser.add_argument("--seed", type=int, default=None, help="random engine seed")
    args = parser.parse_args(argv)
    codecs = args.codec or list(_common.CODECS)
    engine = args.engine
    if engine == "auto":
        engine = "atheris" if have_atheris() else "random"
    elif engine == "atheris" and not have_atheris():
        print("atheris is not installed (pip install atheris)", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "big")
    per_codec = args.budget / len(codecs)
    print(f"fuzz smoke: {engine}, {per_codec:.1f} s per codec")
    ok = True
    with tempfile.TemporaryDirectory(prefix="wsgiwire-fuzz-") as tmp:
        for protocol in codecs:
            if engine == "atheris":
                ok = run_atheris(protocol, per_codec, Path(tmp)) and ok
            else:
                ok = run_random(protocol, per_codec, seed) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
