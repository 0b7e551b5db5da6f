"""The setup detector: the right line for each broken capture, silence for the rest.

Every captured setup is replayed, request by request, through one detector,
as a process would see it after start-up. It must speak once, with the fix
the table in ``__init__`` gives, for the setups that need one; it must stay
silent for every setup whose split is right already, and for every setup once
its fix is in place; and it must never change the environ.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

from tests.middleware import (
    CASES,
    FIXES,
    SETUPS,
    Case,
    Recorder,
    build,
    call,
    ids,
    plain,
    wrap,
)
from wsgiwire.core._gateway import WSGIApp
from wsgiwire.middleware import SetupDetector
from wsgiwire.middleware import _detect as detect_module
from wsgiwire.middleware._detect import DISTINCT_SCRIPT_NAMES, diagnose

# setup -> what the detector must say (every fragment in the one line), or () for silence
LIGHTTPD_ROOT = ("looks like lighttpd mounted at /", "consider --lighttpd-root-fix")
EXPECTED: dict[str, tuple[str, ...]] = {
    "apache-fastcgi-prefix": ("looks like Apache mod_proxy_fcgi without proxy-fcgi-pathinfo",
                              "consider --mount /app", "proxy-fcgi-pathinfo=unescape"),
    "apache-fastcgi-root": ("Apache mod_proxy_fcgi", "consider --mount /"),
    "apache-scgi-prefix": ("looks like Apache mod_proxy_scgi", "consider --mount /app"),
    "apache-scgi-root": ("Apache mod_proxy_scgi", "consider --mount /"),
    "apache-authnzfcgi-authorizer": ("Apache mod_proxy_fcgi", "consider --mount /protected"),
    "apache-fcgid-htaccess": ("the script name app.fcgi appears in SCRIPT_NAME but not in "
                              "REQUEST_URI: consider --strip-script-name",),
    "lighttpd-cgi-rewrite": ("the script name app.cgi appears in SCRIPT_NAME but not in "
                             "REQUEST_URI: consider --strip-script-name",),
    "lighttpd-fastcgi-spawnrewrite": ("the script name app.fcgi appears",
                                      "consider --strip-script-name"),
    "lighttpd-fastcgi-root": LIGHTTPD_ROOT,
    "lighttpd-scgi-root": LIGHTTPD_ROOT,
    "lighttpd-uwsgi-root": LIGHTTPD_ROOT,
    "nginx-fastcgi-plain": ("SCRIPT_NAME holds the whole request path", "consider --mount"),
    "nginx-fastcgi-spawnfcgi": ("SCRIPT_NAME holds the whole request path",),
}


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def logger() -> tuple[logging.Logger, Lines]:
    log = logging.Logger("tests.middleware.detect")  # not registered: no global state
    lines = Lines()
    log.addHandler(lines)
    return log, lines


def setup_cases(setup: str) -> list[Case]:
    return [c for c in CASES if c[1].setup == setup]


def replay(setup: str, make: Any) -> list[str]:
    """Every request of ``setup`` through one stack; the lines logged."""
    log, lines = logger()
    app = make(SetupDetector(Recorder(), log))
    for case in setup_cases(setup):
        assert call(app, build(case[3]))[0] == "200 OK"
    return lines.lines


def test_every_setup_that_needs_a_fix_is_named() -> None:
    assert set(EXPECTED) == {s for s, fix in FIXES.items() if fix is not None}


@pytest.mark.parametrize("setup", [s.setup for s in SETUPS])
def test_each_setup_gets_its_line_once(setup: str) -> None:
    lines = replay(setup, lambda app: app)
    if FIXES[setup] is None:
        assert lines == []
    else:
        (line,) = lines
        for fragment in EXPECTED[setup]:
            assert fragment in line


@pytest.mark.parametrize("setup", [s.setup for s in SETUPS])
def test_silent_once_the_fix_is_in_place(setup: str) -> None:
    assert replay(setup, lambda app: wrap(setup, app)) == []


@pytest.mark.parametrize("setup", [s.setup for s in SETUPS])
def test_silent_when_replayed_twice_after_the_fix(setup: str) -> None:
    log, lines = logger()
    app = wrap(setup, SetupDetector(Recorder(), log))
    for _ in range(2):
        for case in setup_cases(setup):
            call(app, build(case[3]))
    assert lines.lines == []


RIGHT = [c for c in CASES if FIXES[c[1].setup] is None]


@pytest.mark.parametrize("case", RIGHT, ids=ids(RIGHT))
def test_one_request_alone_never_misleads(case: Case) -> None:
    assert diagnose(build(case[3])) is None
    assert diagnose(build(case[3]), {}) is None


ONE_REQUEST_RULES = [c for c in CASES if c[1].setup.startswith(("apache-fastcgi-", "apache-scgi",
                                                                  "apache-fcgid-htaccess",
                                                                  "lighttpd-cgi-rewrite",
                                                                  "lighttpd-fastcgi-spawn"))
                     and FIXES[c[1].setup] is not None]


@pytest.mark.parametrize("case", ONE_REQUEST_RULES, ids=ids(ONE_REQUEST_RULES))
def test_one_request_rules(case: Case) -> None:
    """Apache proxy and rewrite setups show from a single request (but the site root)."""
    line = diagnose(build(case[3]))
    if case[2].name == "get_root":  # "/" splits the same whether the fix is needed or not
        assert line is None or "strip-script-name" in line
    else:
        assert line is not None
        assert all(fragment in line for fragment in EXPECTED[case[1].setup])


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_never_changes_the_environ(case: Case) -> None:
    environ = build(case[3])
    before = plain(environ)
    recorder = Recorder()
    SetupDetector(recorder, logger()[0])(environ, lambda *a: None)
    assert recorder.environ is not None
    assert plain(recorder.environ) == before
    assert recorder.environ["wsgi.input"] is environ["wsgi.input"]


def test_logs_at_most_once_across_setups() -> None:
    log, lines = logger()
    app = SetupDetector(Recorder(), log)
    for setup in ("apache-fastcgi-prefix", "lighttpd-fastcgi-root", "apache-fcgid-htaccess"):
        for case in setup_cases(setup):
            call(app, build(case[3]))
    assert len(lines.lines) == 1
    assert "mod_proxy_fcgi" in lines.lines[0]  # the first request that showed it
    assert app.reported == lines.lines[0]


def _lighttpd(i: int) -> dict[str, Any]:
    """What lighttpd at "/" sends for "/m<i> x/y": the first segment as SCRIPT_NAME."""
    return {"SCRIPT_NAME": f"/m{i} x", "PATH_INFO": "/y", "REQUEST_URI": f"/m{i}%20x/y?q",
            "SERVER_SOFTWARE": "lighttpd/1.4.69"}


def test_several_request_rules_need_distinct_script_names() -> None:
    """Two mounts of one backend are possible; only a third different one settles it."""
    seen: dict[str, list[str]] = {}
    for i in range(DISTINCT_SCRIPT_NAMES - 1):
        for _ in range(3):  # the same SCRIPT_NAME again proves nothing
            assert diagnose(_lighttpd(i), seen) is None
    line = diagnose(_lighttpd(DISTINCT_SCRIPT_NAMES - 1), seen)
    assert line is not None and "lighttpd mounted at /" in line
    assert all(f"'/m{i} x'" in line for i in range(DISTINCT_SCRIPT_NAMES))


LIGHTTPD_BREAKERS: list[tuple[str, Any]] = [
    ("control-all-conditions-met", lambda e: e),
    ("a-script", lambda e: {**e, "SCRIPT_NAME": e["SCRIPT_NAME"] + ".fcgi",
                            "REQUEST_URI": e["REQUEST_URI"].replace("x/", "x.fcgi/")}),
    ("not-lighttpd", lambda e: {**e, "SERVER_SOFTWARE": "nginx/1.22.1"}),
    ("no-server-software", lambda e: {k: v for k, v in e.items() if k != "SERVER_SOFTWARE"}),
    ("uri-names-another-path", lambda e: {**e, "REQUEST_URI": "/elsewhere/y"}),
    ("no-request-uri", lambda e: {k: v for k, v in e.items() if k != "REQUEST_URI"}),
    ("two-segments", lambda e: {**e, "SCRIPT_NAME": e["SCRIPT_NAME"] + "/y", "PATH_INFO": "",
                                "REQUEST_URI": e["REQUEST_URI"]}),
]


@pytest.mark.parametrize("change", [b for _, b in LIGHTTPD_BREAKERS],
                         ids=[n for n, _ in LIGHTTPD_BREAKERS])
def test_lighttpd_rule_needs_every_condition(change: Any) -> None:
    seen: dict[str, list[str]] = {}
    lines = [diagnose(change(_lighttpd(i)), seen) for i in range(DISTINCT_SCRIPT_NAMES + 2)]
    if change is LIGHTTPD_BREAKERS[0][1]:
        assert lines[DISTINCT_SCRIPT_NAMES - 1] is not None
    else:
        assert not any(line is not None and "lighttpd" in line for line in lines)


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"SCRIPT_NAME": "/~user/app.fcgi", "PATH_INFO": "/blog/x",
          "REQUEST_URI": "/~user/blog/x"}, "with the public prefix '/~user'"),
        ({"SCRIPT_NAME": "/app/x", "PATH_INFO": "",
          "SCRIPT_FILENAME": "proxy:unix:/run/app.sock|fcgi://localhost/x"},
         "consider --mount /app"),
        ({"SCRIPT_NAME": "/cgi-bin/app.py", "PATH_INFO": "/x", "REQUEST_URI": "/x"},
         "the script name app.py appears"),
    ],
    ids=["per-directory-rewrite", "apache-unix-socket", "python-cgi-script"],
)
def test_one_request_lines(environ: dict[str, Any], expected: str) -> None:
    line = diagnose(environ)
    assert line is not None and expected in line


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"SCRIPT_NAME": 5, "PATH_INFO": None, "REQUEST_URI": b"/x"},
        {"SCRIPT_NAME": "/x", "SCRIPT_FILENAME": "proxy:"},
        {"SCRIPT_NAME": "/x", "SCRIPT_FILENAME": "proxy:fcgi://"},
        {"SCRIPT_NAME": "/x", "SCRIPT_FILENAME": "proxy:unix:/run/app.sock"},
        {"SCRIPT_NAME": "/x", "SCRIPT_FILENAME": "proxy:http://h/x"},  # mod_proxy_http
        {"SCRIPT_NAME": "/x", "SCRIPT_FILENAME": "proxy:fcgi://h/var/www/x"},  # SetHandler
        {"SCRIPT_NAME": "/app.fcgi", "PATH_INFO": "/x", "REQUEST_URI": "/app.fcgi/x"},
        {"SCRIPT_NAME": "/app.fcgi", "PATH_INFO": "/x"},  # no REQUEST_URI: cannot tell
        {"SCRIPT_NAME": "/x", "REQUEST_URI": "/%zz\udcff"},
    ],
    ids=["empty", "wrong-types", "proxy-nothing", "proxy-no-path", "proxy-unix-no-target",
         "mod-proxy-http", "sethandler-filesystem-path", "script-requested-directly",
         "no-request-uri", "odd-uri"],
)
def test_silent_and_safe_on_odd_environs(environ: dict[str, Any]) -> None:
    assert diagnose(environ) is None
    assert diagnose(environ, {}) is None


def test_a_failing_diagnosis_never_fails_the_request(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(environ: Any, seen: Any = None) -> str | None:
        raise RuntimeError("bug")

    monkeypatch.setattr(detect_module, "diagnose", broken)
    log, lines = logger()
    recorder = Recorder()
    assert call(SetupDetector(recorder, log), {"SCRIPT_NAME": ""}) == ("200 OK", b"ok")
    assert recorder.environ is not None and lines.lines == []


def test_threads_log_once() -> None:
    log, lines = logger()
    app: WSGIApp = SetupDetector(Recorder(), log)
    environs = [build(c[3]) for c in setup_cases("lighttpd-fastcgi-root")]
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        for environ in environs:
            app(dict(environ), lambda *a: None)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(lines.lines) == 1


def test_default_logger_is_wsgiwire(caplog: pytest.LogCaptureFixture) -> None:
    (case,) = [c for c in CASES if c[0] == "apache-fastcgi-prefix/get_path_query"]
    with caplog.at_level(logging.WARNING, logger="wsgiwire"):
        call(SetupDetector(Recorder()), build(case[3]))
    assert [r.name for r in caplog.records] == ["wsgiwire"]
    assert "consider --mount /app" in caplog.records[0].getMessage()
