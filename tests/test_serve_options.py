"""`wsgiwire serve` options turn into the middleware stack the README documents."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from wsgiwire import middleware
from wsgiwire._cli import build_parser
from wsgiwire._serve import _wrap


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [])
    return [f"{environ['SCRIPT_NAME']}|{environ['PATH_INFO']}".encode("latin-1")]


def run(argv: list[str], environ: dict[str, Any]) -> str:
    args = build_parser().parse_args(["serve", *argv])
    wrapped = _wrap(app, args)
    return b"".join(wrapped(environ, lambda *a: None)).decode("latin-1")


def test_default_stack_is_only_the_detector() -> None:
    args = build_parser().parse_args(["serve"])
    wrapped = _wrap(app, args)
    assert isinstance(wrapped, middleware.SetupDetector)
    assert wrapped.app is app


def test_no_detect_leaves_the_app_alone() -> None:
    assert _wrap(app, build_parser().parse_args(["serve", "--no-detect"])) is app


@pytest.mark.parametrize(
    ("argv", "environ", "expected"),
    [
        (["--mount", "/app"], {"SCRIPT_NAME": "/app/x/y", "PATH_INFO": ""}, "/app|/x/y"),
        (["--strip-script-name"],
         {"SCRIPT_NAME": "/app.fcgi", "PATH_INFO": "/x", "REQUEST_URI": "/x"}, "|/x"),
        (["--lighttpd-root-fix"], {"SCRIPT_NAME": "/x", "PATH_INFO": "/y"}, "|/x/y"),
        (["--lighttpd-root-fix", "/app"],
         {"SCRIPT_NAME": "/app", "PATH_INFO": "/y"}, "/app|/y"),
    ],
    ids=["mount", "strip-script-name", "lighttpd-root", "lighttpd-app-root"],
)
def test_path_fix_options(argv: list[str], environ: dict[str, Any], expected: str) -> None:
    assert run(argv, environ) == expected


def test_trusted_proxy_off_by_default_and_counted_when_on() -> None:
    environ = {"SCRIPT_NAME": "", "PATH_INFO": "/", "REMOTE_ADDR": "10.0.0.1",
               "HTTP_X_FORWARDED_FOR": "203.0.113.7", "wsgi.url_scheme": "http"}
    seen: dict[str, Any] = {}

    def probe(env: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        seen.update(env)
        return []

    _wrap(probe, build_parser().parse_args(["serve"]))(dict(environ), lambda *a: None)
    assert seen["REMOTE_ADDR"] == "10.0.0.1"
    args = build_parser().parse_args(["serve", "--trusted-proxy", "1"])
    _wrap(probe, args)(dict(environ), lambda *a: None)
    assert seen["REMOTE_ADDR"] == "203.0.113.7"


def test_detector_steps_aside_after_its_checks(caplog: pytest.LogCaptureFixture) -> None:
    detector = middleware.SetupDetector(app, checks=3)
    good = {"SCRIPT_NAME": "", "PATH_INFO": "/a", "REQUEST_URI": "/a"}
    for _ in range(3):
        detector(dict(good), lambda *a: None)
    # After its checks it no longer looks, even at a request it would flag.
    rewritten = {"SCRIPT_NAME": "/app.fcgi", "PATH_INFO": "/x", "REQUEST_URI": "/x"}
    with caplog.at_level(logging.WARNING, logger="wsgiwire"):
        detector(dict(rewritten), lambda *a: None)
    assert detector.reported is None
    assert not caplog.records
    fresh = middleware.SetupDetector(app, checks=3)
    with caplog.at_level(logging.WARNING, logger="wsgiwire"):
        fresh(dict(rewritten), lambda *a: None)
    assert fresh.reported is not None and "--strip-script-name" in fresh.reported
