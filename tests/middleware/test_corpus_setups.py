"""Every captured setup, with the middleware the table in ``__init__`` gives it.

For every request a real server sent (``tests/corpus``): after the setup's
fix, SCRIPT_NAME is the intended mount and SCRIPT_NAME + PATH_INFO the
decoded request path; the environ the app sees passes ``wsgiref.validate``;
a Flask app's ``url_for`` gives the public URL. Where the split is right
already, every path fix (configured with that mount) and TrustedProxy leave
the environ exactly as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from wsgiref.validate import validator

import pytest
from flask import Flask, request, url_for

from tests.middleware import (
    CASES,
    FIXED_CASES,
    FIXES,
    REWRITE_SETUPS,
    RIGHT_CASES,
    SETUPS,
    Case,
    Recorder,
    build,
    call,
    expected_path,
    ids,
    plain,
    wrap,
)
from wsgiwire.core._gateway import WSGIApp
from wsgiwire.middleware import (
    ApacheProxyPathFix,
    LighttpdCGIRootFix,
    MountPrefix,
    ScriptNameStripper,
    TrustedProxy,
)


def test_the_table_names_every_setup() -> None:
    assert {s.setup for s in SETUPS} == set(FIXES)
    for setup in SETUPS:
        fix = FIXES[setup.setup]
        if fix is not None:  # the fix is configured with the setup's own mount
            (configured,) = fix.kwargs.values()
            assert configured.rstrip("/") == setup.mount_path, setup.setup
    assert len(FIXED_CASES) > 100 and len(CASES) > 350


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_split_is_the_mount_and_the_decoded_path(case: Case) -> None:
    _, setup, _, exchange = case
    recorder = Recorder()
    app = validator(wrap(setup.setup, validator(recorder)))
    assert call(app, build(exchange)) == ("200 OK", b"ok")
    seen = recorder.environ
    assert seen is not None
    assert seen["SCRIPT_NAME"] == setup.mount_path
    assert seen["SCRIPT_NAME"] + seen["PATH_INFO"] == expected_path(case)


@pytest.mark.parametrize("case", FIXED_CASES, ids=ids(FIXED_CASES))
def test_originals_are_kept(case: Case) -> None:
    _, setup, _, exchange = case
    environ = build(exchange)
    before = (environ["SCRIPT_NAME"], environ["PATH_INFO"])
    recorder = Recorder()
    call(wrap(setup.setup, recorder), environ)
    seen = recorder.environ
    assert seen is not None
    if (seen["SCRIPT_NAME"], seen["PATH_INFO"]) == before:
        assert "wsgiwire.orig" not in seen  # e.g. "/" under a root mount: nothing to fix
    else:
        orig = seen["wsgiwire.orig"]
        assert (orig["SCRIPT_NAME"], orig["PATH_INFO"]) == before


NOOP_FIXES: list[tuple[str, Callable[[WSGIApp, str], WSGIApp]]] = [
    ("MountPrefix", MountPrefix),
    ("ScriptNameStripper", ScriptNameStripper),
    ("LighttpdCGIRootFix", lambda app, mount: LighttpdCGIRootFix(app, mount or "/")),
    ("ApacheProxyPathFix", ApacheProxyPathFix),
    ("TrustedProxy", lambda app, mount: TrustedProxy(app, x_for=1, x_proto=1, x_host=1,
                                                     x_port=1, x_prefix=1)),
]


@pytest.mark.parametrize(("name", "make"), NOOP_FIXES, ids=[n for n, _ in NOOP_FIXES])
@pytest.mark.parametrize("case", RIGHT_CASES, ids=ids(RIGHT_CASES))
def test_every_fix_is_a_noop_where_the_split_is_right(
    case: Case, name: str, make: Callable[[WSGIApp, str], WSGIApp]
) -> None:
    _, setup, _, exchange = case
    environ = build(exchange)
    before = dict(environ)
    recorder = Recorder()
    call(validator(make(validator(recorder), setup.mount_path)), environ)
    assert plain(recorder.environ) == plain(before)


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_the_fix_is_idempotent(case: Case) -> None:
    """A fix applied twice (a CLI flag plus the app's own wrapper) changes nothing more."""
    _, setup, _, exchange = case
    once, twice = Recorder(), Recorder()
    call(wrap(setup.setup, once), build(exchange))
    call(wrap(setup.setup, wrap(setup.setup, twice)), build(exchange))
    assert plain(once.environ) == plain(twice.environ)


# -- a real framework: the URLs it builds are the public ones ---------------------------
FLASK = Flask("wsgiwire_middleware_tests")
SEEN: dict[str, Any] = {}


@FLASK.route("/", defaults={"p": ""}, methods=["GET", "HEAD", "POST"])
@FLASK.route("/<path:p>", methods=["GET", "HEAD", "POST"])
def show(p: str) -> str:
    SEEN.update(
        p=p, url=url_for("show", p="z"), root=url_for("show"), script_root=request.script_root
    )
    return "ok"


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_flask_url_for_gives_the_public_url(case: Case) -> None:
    _, setup, _, exchange = case
    SEEN.clear()
    headers: dict[str, str] = {}
    app = validator(wrap(setup.setup, validator(FLASK.wsgi_app)))
    status, _ = call(app, build(exchange), headers)
    mount = setup.mount_path
    if status.startswith("308"):
        # "/app" with PATH_INFO "": the router redirects to the mount's root, a public URL
        assert expected_path(case) == mount
        assert headers["Location"].endswith(f"{mount}/")
        return
    assert status == "200 OK"
    assert SEEN["script_root"] == mount
    assert SEEN["url"] == f"{mount}/z"
    assert SEEN["root"] == f"{mount}/"
    # what the router matched is the path under the mount, decoded as UTF-8
    under = expected_path(case)[len(mount) :].lstrip("/")
    assert SEEN["p"] == under.encode("latin-1").decode("utf-8")


REWRITE_CASES = [c for c in CASES if c[1].setup in REWRITE_SETUPS]


@pytest.mark.parametrize("case", REWRITE_CASES, ids=ids(REWRITE_CASES))
def test_rewritten_setups_never_show_the_script(case: Case) -> None:
    _, setup, _, exchange = case
    SEEN.clear()
    call(validator(wrap(setup.setup, validator(FLASK.wsgi_app))), build(exchange))
    assert SEEN["url"] == "/z" and SEEN["script_root"] == ""
    # ... while without the fix they would
    SEEN.clear()
    call(validator(FLASK.wsgi_app), build(exchange))
    assert SEEN["url"].startswith(("/app.fcgi/", "/app.cgi/"))
