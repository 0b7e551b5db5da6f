"""A bounded soak of mixed good and malformed traffic, through nginx and directly.

A ``wsgiwire serve --workers 2 --stats`` FastCGI backend behind real nginx
(``fastcgi-keepconn.conf``) and a uwsgi backend take, for ``$WSGIWIRE_SOAK_SECONDS``
(default 20 s): good HTTP requests through nginx (GET, and POST checked by sha256)
from a few clients, good FastCGI and uwsgi requests straight to the backends, and the
hostile catalogue's refused/dropped inputs at a steady rate. The workers' RSS, fd
count and thread count are sampled every second. Promises (see ``_soak_support``):
zero lost good requests; after the warm-up RSS grows < 8 MiB, threads never change,
fds come back to the baseline; the backend logs at most one WARNING+ line per
malformed input, and at least one. ``bench/soak.py`` runs the same code for longer.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ._soak_support import (
    RSS_GROWTH_LIMIT_KIB,
    malformed_cases,
    rss_under_malformed,
    run_soak,
    soak_seconds,
)
from .servers import Stage

pytestmark = pytest.mark.integration


def test_catalogue_offers_malformed_inputs_for_both_backends() -> None:
    fastcgi = malformed_cases("fastcgi")
    uwsgi = malformed_cases("uwsgi")
    assert len(fastcgi) >= 10 and len(uwsgi) >= 10
    for case in (*fastcgi, *uwsgi):
        assert case.expect.closed and case.expect.warnings == 1 and case.xfail is None


def test_soak_mixed_good_and_malformed_traffic(stage: Stage, tmp_path: Path) -> None:
    result = run_soak(stage, tmp_path, soak_seconds())
    print()
    print(result.summary())
    problems = result.problems()
    assert not problems, "\n".join([result.summary(), *problems])
    # Belt and braces on the headline figures.
    assert result.good_total > 0 and result.good_ok == result.good_total


def test_fastcgi_worker_rss_flat_under_refused_large_params(stage: Stage,
                                                            tmp_path: Path) -> None:
    """A codec kept the raised error that stopped it, and with it a traceback whose
    frames referred back to the connection: a cycle holding each refused
    connection's buffers until a full collection (+48 MiB in a 2-minute soak)."""
    warm, top = rss_under_malformed(
        stage, tmp_path, ["fcgi-params-bytes-over-limit", "fcgi-100k-params"], 10.0)
    print(f"\nfcgi worker RSS under refused large PARAMS: {warm} -> {top} KiB")
    assert top - warm < RSS_GROWTH_LIMIT_KIB, f"RSS grew {warm} -> {top} KiB"
