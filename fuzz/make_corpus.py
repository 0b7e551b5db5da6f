"""Write the seed corpus: one file per input, ``DIR/<codec>/<sha1>``.

    python fuzz/make_corpus.py            # into fuzz/corpus/
    python fuzz/make_corpus.py /tmp/corp  # elsewhere

The seeds are every input of the hostile catalogue (``tests/hostile``) for
that codec: valid requests, requests split in odd places, and every malformed
shape the catalogue knows, so the fuzzer starts past the framing.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common


def write_corpus(root: Path) -> dict[str, int]:
    counts = {}
    for protocol in _common.CODECS:
        folder = root / protocol
        folder.mkdir(parents=True, exist_ok=True)
        inputs = _common.seeds(protocol)
        for data in inputs:
            (folder / hashlib.sha1(data).hexdigest()).write_bytes(data)
        counts[protocol] = len(inputs)
    return counts


def main(argv: list[str]) -> int:
    root = Path(argv[0]) if argv else _common.FUZZ_DIR / "corpus"
    for protocol, count in write_corpus(root).items():
        print(f"{root / protocol}: {count} seeds")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
