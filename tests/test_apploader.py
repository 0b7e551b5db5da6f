"""load_app: "module:callable", "module:factory()", "module" alone, and its errors."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from wsgiwire import _demo as demo
from wsgiwire._apploader import AppLoadError, load_app


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory for app modules; sys.path and sys.modules are restored afterwards."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        del sys.modules[name]


def write(folder: Path, name: str, source: str) -> None:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source), encoding="utf-8")


APP = """
    def application(environ, start_response):
        return [b"application"]

    def app(environ, start_response):
        return [b"app"]

    class Holder:
        def wsgi(self, environ, start_response):
            return [b"method"]

    holder = Holder()

    def create_app():
        def made(environ, start_response):
            return [b"factory"]
        return made

    not_callable = 42
"""


def _call(app: object) -> object:
    return app({}, lambda *a: None)  # type: ignore[operator]


@pytest.mark.parametrize(
    ("spec", "answer"),
    [
        ("ldr_app1:app", [b"app"]),
        ("ldr_app1:application", [b"application"]),
        ("ldr_app1", [b"application"]),  # module alone: "application" first (Django, mod_wsgi)
        ("ldr_app1:", [b"application"]),
        ("ldr_app1:create_app()", [b"factory"]),
        ("ldr_app1:holder.wsgi", [b"method"]),
    ],
)
def test_specs(project: Path, spec: str, answer: list[bytes]) -> None:
    write(project, "ldr_app1.py", APP)
    assert _call(load_app(spec, cwd=str(project))) == answer


def test_module_alone_falls_back_to_app(project: Path) -> None:
    write(project, "ldr_flask_like.py", "def app(environ, start_response):\n    return [b'app']\n")
    assert _call(load_app("ldr_flask_like", cwd=str(project))) == [b"app"]


def test_package_module(project: Path) -> None:
    write(project, "ldr_pkg/__init__.py", "")
    write(project, "ldr_pkg/web.py", "def app(environ, start_response):\n    return [b'pkg']\n")
    assert _call(load_app("ldr_pkg.web:app", cwd=str(project))) == [b"pkg"]


def test_the_directory_goes_on_sys_path(project: Path) -> None:
    write(project, "ldr_app2.py", APP)
    load_app("ldr_app2:app", cwd=str(project))
    assert str(project.resolve()) in sys.path


def test_default_is_the_demo() -> None:
    assert load_app(None) is demo.app
    assert load_app("") is demo.app


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("ldr_missing_module:app", "cannot import module 'ldr_missing_module'"),
        ("ldr_missing_pkg.web:app", "cannot import module 'ldr_missing_pkg.web'"),
        ("ldr_app3.missing_sub:app", "cannot import module 'ldr_app3.missing_sub'"),
        ("ldr_app3:nothing", "has no attribute 'nothing'"),
        ("ldr_app3:holder.nothing", "has no attribute 'holder.nothing'"),
        ("ldr_app3:not_callable", "is not callable (it is int)"),
        (":app", "no module"),
    ],
)
def test_load_errors(project: Path, spec: str, message: str) -> None:
    write(project, "ldr_app3.py", APP)
    with pytest.raises(AppLoadError) as caught:
        load_app(spec, cwd=str(project))
    assert message in str(caught.value)


def test_missing_dependency_inside_the_app_is_not_masked(project: Path) -> None:
    """"app_settings" failing to import "app" is the user's own ImportError, shown as such."""
    write(project, "ldrx_settings.py", "import ldrx\napp = None\n")
    with pytest.raises(ModuleNotFoundError) as caught:
        load_app("ldrx_settings:app", cwd=str(project))
    assert not isinstance(caught.value, AppLoadError)
    assert caught.value.name == "ldrx"


def test_other_import_errors_propagate(project: Path) -> None:
    write(project, "ldr_uses_missing.py", "import ldr_not_installed_anywhere\n")
    with pytest.raises(ModuleNotFoundError) as caught:
        load_app("ldr_uses_missing:app", cwd=str(project))
    assert caught.value.name == "ldr_not_installed_anywhere"


def test_errors_raised_by_the_module_propagate(project: Path) -> None:
    write(project, "ldr_broken.py", "raise ValueError('bad config')\n")
    with pytest.raises(ValueError, match="bad config"):
        load_app("ldr_broken:app", cwd=str(project))
