"""The hostile-input catalogue, run against in-process servers over real sockets.

Every case runs (1) whole, (2) one byte per ``send`` (bounded: the first
``BYTEWISE_LIMIT`` bytes), and (3) under ``python -O``, both ways (all cases at
once in a subprocess: ``python -O -m tests.hostile.run_all --mode both``). A case marked ``xfail``
shows a bug in wsgiwire (its reason names the file); ``strict`` makes it fail
the suite once the bug is fixed, so the mark gets removed.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from wsgiwire.adapters._runtime import ServerConfig, Worker
from wsgiwire.adapters.scgi import SCGIDriver

from .apps import APPS
from .catalogue import CASES, CLASSES, Case
from .harness import PROFILES, ServerPool, run_case
from .table import TABLE_END, TABLE_START, render

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
README = HERE / "README.md"


def _param(case: Case) -> object:
    marks = [pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail else []
    return pytest.param(case, id=case.name, marks=marks)


@pytest.fixture(scope="module")
def pool() -> Iterator[ServerPool]:
    with ServerPool() as servers:
        servers.start_all(sorted({(c.protocol, c.profile) for c in CASES}))
        yield servers


def _run(case: Case, pool: ServerPool, caplog: pytest.LogCaptureFixture, bytewise: bool) -> None:
    caplog.set_level(logging.WARNING, logger="wsgiwire")
    run_case(case, pool, lambda: caplog.records, bytewise=bytewise)


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_whole(case: Case, pool: ServerPool, caplog: pytest.LogCaptureFixture) -> None:
    _run(case, pool, caplog, bytewise=False)


@pytest.mark.parametrize("case", [_param(c) for c in CASES if c.bytewise])
def test_byte_by_byte(case: Case, pool: ServerPool, caplog: pytest.LogCaptureFixture) -> None:
    _run(case, pool, caplog, bytewise=True)


def test_optimized_run_of_every_case() -> None:
    """``python -O``: no check of the harness (nor of wsgiwire) may rest on ``assert``."""
    proc = subprocess.run(
        [sys.executable, "-O", "-m", "tests.hostile.run_all", "--mode", "both"],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    try:
        summary = json.loads(proc.stdout)
    except ValueError:
        pytest.fail(f"run_all printed no JSON (exit {proc.returncode}): "
                    f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    assert summary["optimize"] == 1
    assert summary["failed"] == {}
    assert summary["xpassed"] == []
    assert summary["crashes"] == []
    names = {c.name: c for c in CASES}
    names.update({f"{c.name} [bytewise]": c for c in CASES if c.bytewise})
    assert set(summary["xfailed"]) == {n for n, c in names.items() if c.xfail}
    assert set(summary["passed"]) == {n for n, c in names.items() if not c.xfail}
    assert proc.returncode == 0


def test_readme_table_is_current() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tests.hostile.table"],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=True,
    )
    assert proc.stdout.strip() == render()
    text = README.read_text(encoding="utf-8")
    assert TABLE_START in text and TABLE_END in text
    table = text.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0].strip()
    assert table == proc.stdout.strip(), "run: python -m tests.hostile.table --update"


# --- The catalogue's own shape --------------------------------------------------------


def test_catalogue_shape() -> None:
    names = [c.name for c in CASES]
    assert len(CASES) >= 90
    assert len(set(names)) == len(names), "case names must be unique"
    for case in CASES:
        assert case.protocol in ("fastcgi", "scgi", "uwsgi"), case.name
        assert case.cls in CLASSES, case.name
        assert case.profile in PROFILES, case.name
        assert case.app in APPS, case.name
        assert case.steps, case.name
        prefix = {"fastcgi": "fcgi-", "scgi": "scgi-", "uwsgi": "uwsgi-"}[case.protocol]
        assert case.name.startswith(prefix), case.name
        if case.app != "echo":
            assert case.app.encode() in case.data, f"{case.name}: its bytes must name {case.app}"
        if case.xfail:
            assert case.xfail.startswith("wsgiwire/"), f"{case.name}: name the file at fault"
    for protocol in ("fastcgi", "scgi", "uwsgi"):
        for cls in ("framing", "limits", "params", "body", "smuggling", "response", "app",
                    "disconnect", "security"):
            assert any(c.protocol == protocol and c.cls == cls for c in CASES), (protocol, cls)


REQUIRED = [
    # FastCGI header fields out of range, truncation, lengths, stream rules, ABORT everywhere
    "fcgi-version-0", "fcgi-version-2", "fcgi-version-255",
    "fcgi-unknown-type-0-null-id", "fcgi-unknown-type-12-null-id", "fcgi-unknown-type-255-null-id",
    "fcgi-null-request-id-params", "fcgi-begin-body-7-bytes", "fcgi-padding-255",
    "fcgi-truncated-header-at-eof", "fcgi-truncated-content-at-eof",
    "fcgi-name-length-2-31", "fcgi-value-length-2-31", "fcgi-pair-split-in-4-byte-length",
    "fcgi-duplicate-begin-during-params", "fcgi-params-for-unknown-id",
    "fcgi-params-after-stdin", "fcgi-stdin-after-its-end-ignored",
    "fcgi-abort-before-params", "fcgi-abort-mid-params", "fcgi-abort-after-params",
    "fcgi-abort-mid-stdin", "fcgi-abort-after-stdin-end", "fcgi-100k-params",
    "fcgi-body-shorter-than-declared-kept", "fcgi-body-longer-than-declared-kept",
    # SCGI netstring and CONTENT_LENGTH abuse
    "scgi-length-30-digits", "scgi-length-missing-colon", "scgi-missing-comma",
    "scgi-length-beyond-data-then-eof", "scgi-content-length-missing",
    "scgi-content-length-duplicated", "scgi-content-length-not-first",
    "scgi-content-length-negative", "scgi-content-length-plus-underscore",
    "scgi-content-length-non-ascii-digits",
    # uwsgi
    "uwsgi-datasize-beyond-data-then-eof", "uwsgi-datasize-cuts-the-vars", "uwsgi-modifier1-5",
    "uwsgi-modifier2-nonzero", "uwsgi-var-without-value-length", "uwsgi-magic-vars-dropped",
    # everything else
    "fcgi-nul-bytes-in-names-and-values", "fcgi-non-latin1-bytes",
    "fcgi-response-inject-value-crlf", "fcgi-app-raise-before", "fcgi-app-raise-after",
    "fcgi-app-start-twice", "fcgi-app-returns-str", "fcgi-app-yield-after-close",
    "fcgi-app-never-starts", "fcgi-app-returns-none", "fcgi-disconnect-mid-params",
    "fcgi-disconnect-mid-body", "fcgi-disconnect-mid-response",
    "fcgi-slow-trickle-does-not-delay-others", "fcgi-slow-trickle-cut-by-header-timeout",
    "fcgi-httpoxy", "fcgi-forwarded-headers-never-override",
    "fcgi-cve-2019-11043-newline-escaped-empty-path-info",
    "fcgi-cve-2019-11043-very-long-path-info",
]


def test_required_cases_are_there() -> None:
    names = {c.name for c in CASES}
    assert [n for n in REQUIRED if n not in names] == []


# --- Server lifecycle: not an input, so not a catalogue case ---------------------------


def test_a_stopped_worker_releases_its_descriptors() -> None:
    """The wake-up socketpair is closed with the worker (it once leaked two fds a stop);
    stopped for good, it also closes its copy of the listener (new connections refused)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    try:
        before = len(os.listdir("/proc/self/fd"))
        worker = Worker(ServerConfig(app=APPS["echo"], driver=SCGIDriver(),
                                     listeners=[listener]))
        thread = threading.Thread(target=worker.serve)
        thread.start()
        worker.request_stop()
        thread.join(10)
        assert not thread.is_alive()
        assert listener.fileno() == -1
        assert len(os.listdir("/proc/self/fd")) == before - 1
    finally:
        listener.close()
