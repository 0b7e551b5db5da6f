"""Which build runs (compiled by mypyc, or pure), and that it is the one this run expects.

``./dev test`` runs the suite twice: the whole suite on the compiled build and the
protocol, core and hostile suites on the pure build, and tells each run which build
it expects through ``WSGIWIRE_EXPECT_BUILD`` (``compiled`` or ``pure``), so neither can
silently be the other. Outside those runs (a bare ``pytest``) the expectation is not
known and the check skips; in CI it may not skip.

* ``wsgiwire._build.name()`` in this process, ``wsgiwire --version`` and the startup
  log line of ``wsgiwire serve`` (fresh processes) all name the expected build;
* a compiled build imports nothing from mypy at run time (``mypy_extensions``,
  ``librt``): run time is the standard library only, in both builds.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.servers import ManagedProcess, wait_for_output
from wsgiwire import __version__, _build

REPO = Path(__file__).resolve().parents[1]
EXPECTED = {"compiled": _build.COMPILED_NAME, "pure": _build.PURE_NAME}


def expected_build() -> str:
    wanted = os.environ.get("WSGIWIRE_EXPECT_BUILD", "")
    if not wanted:
        if os.environ.get("CI") == "true":
            pytest.fail("WSGIWIRE_EXPECT_BUILD is not set: ./dev test sets it for each run")
        pytest.skip("WSGIWIRE_EXPECT_BUILD not set (./dev test sets it)")
    assert wanted in EXPECTED, f"WSGIWIRE_EXPECT_BUILD={wanted!r}: compiled or pure"
    return EXPECTED[wanted]


def child_env() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO),
            "PYTHONDONTWRITEBYTECODE": "1"}


def test_this_process_runs_the_expected_build() -> None:
    expected = expected_build()
    assert _build.name() == expected
    if expected == _build.COMPILED_NAME:
        assert _build.compiled_modules() == list(_build.COMPILED)
        import wsgiwire.core._response

        spec = wsgiwire.core._response.__spec__
        assert spec is not None and spec.origin is not None
        assert spec.origin.endswith(".so"), spec.origin
    else:
        assert _build.compiled_modules() == []


def test_version_names_the_build() -> None:
    expected = expected_build()
    done = subprocess.run([sys.executable, "-m", "wsgiwire", "--version"], env=child_env(),
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"wsgiwire {__version__} ({expected})"


def test_startup_log_line_names_the_build(tmp_path: Path) -> None:
    expected = expected_build()
    process = ManagedProcess(
        [sys.executable, "-m", "wsgiwire", "serve", "--protocol", "fastcgi",
         f"--bind=unix:{tmp_path / 'sock'}"],
        log_path=tmp_path / "serve.log", env=child_env(), cwd=tmp_path,
    )
    with process:
        output = wait_for_output(process, "serving fastcgi on", timeout=30)
        assert f"wsgiwire {__version__} ({expected}) serving fastcgi on" in output
        assert process.stop() == 0, process.output()


def test_run_time_needs_nothing_from_mypy() -> None:
    """Importing every compiled module (whichever build) loads nothing from mypy."""
    code = (
        "import sys, importlib\n"
        "from wsgiwire import _build\n"
        "for module in _build.COMPILED: importlib.import_module(module)\n"
        "print(_build.name())\n"
        "print(sorted(m for m in sys.modules\n"
        "      if m.split('.')[0] in ('mypy', 'mypyc', 'mypy_extensions', 'librt')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=child_env(), capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[1] == "[]", lines
    if os.environ.get("WSGIWIRE_EXPECT_BUILD"):
        assert lines[0] == expected_build()


def test_setup_compiles_exactly_the_listed_modules() -> None:
    """setup.py reads its module list from ``wsgiwire._build.COMPILED``; every entry
    is a real module file, not a package ``__init__`` (a compiled ``__init__`` is no
    package) and not one of the modules kept interpreted for a reason."""
    for module in _build.COMPILED:
        path = REPO / (module.replace(".", "/") + ".py")
        assert path.is_file(), path
        assert path.name != "__init__.py", module
    assert not {"wsgiwire._errors", "wsgiwire._limits",
                "wsgiwire.core._apptypes"} & set(_build.COMPILED)
    assert "_build.py" in (REPO / "setup.py").read_text()


def test_no_compiler_builds_the_pure_package_with_one_warning(tmp_path: Path) -> None:
    """A failed C compile (here: a compiler that always fails) is not a failed build:
    setup.py warns once and the tree holds no extension module (the pure build)."""
    pytest.importorskip("mypyc")
    import shutil

    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, tmp_path / name)
    shutil.copytree(REPO / "wsgiwire", tmp_path / "wsgiwire", symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    env = {**os.environ, "CC": "/bin/false"}
    for key in ("WSGIWIRE_PURE", "WSGIWIRE_REQUIRE_COMPILED"):
        env.pop(key, None)
    done = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    warnings = [line for line in done.stderr.splitlines() if line.startswith("wsgiwire: ")]
    assert len(warnings) == 1 and "C compile failed" in warnings[0], done.stderr[-2000:]
    assert "building the pure (interpreted) package" in warnings[0]
    assert list((tmp_path / "wsgiwire").rglob("*.so")) == []
