"""atheris harness for the uwsgi codec (and the core translator behind it).

    pip install atheris
    python fuzz/make_corpus.py                 # seeds: valid requests + the hostile catalogue
    python fuzz/fuzz_uwsgi.py -max_total_time=3600 -artifact_prefix=findings/ fuzz/corpus/uwsgi/

The invariant (fuzz/_common.py): events or RemoteProtocolError, never another
exception, never a hang, the same outcome whole and byte by byte.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

if __name__ == "__main__":  # under libFuzzer: instrument wsgiwire (only) for coverage
    try:
        import atheris
    except ImportError:
        sys.exit("atheris is not installed: pip install atheris (see fuzz/README.md)")
    with atheris.instrument_imports(include=["wsgiwire", "_common"]):
        import _common
else:
    import _common

PROTOCOL = "uwsgi"


def TestOneInput(data: bytes) -> None:
    _common.check(PROTOCOL, data)


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
