"""The master's pieces that need no process tree: slot allocation, log reopening,
process names, the reload watcher, and the one-line load error."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wsgiwire._apploader import AppLoadError, describe_load_error
from wsgiwire._events import Role
from wsgiwire.adapters._master import Child, Server, describe_listener
from wsgiwire.adapters._runtime import ServerConfig
from wsgiwire.adapters._watcher import Watcher
from wsgiwire.adapters.fastcgi import FastCGIDriver

REPO = Path(__file__).resolve().parents[2]


def app(environ: dict[str, object], start_response: object) -> list[bytes]:
    return []


def test_a_spawn_with_every_slot_in_use_waits_instead_of_raising(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = Server(ServerConfig(app=app, driver=FastCGIDriver([Role.RESPONDER]),
                                 listeners=[], workers=2))
    assert server.board is not None
    slots = server.board.slots
    assert slots >= 4 * 2  # room for quick reloads while old workers drain
    for slot in range(slots):  # pretend every slot holds a draining worker
        server.children[100000 + slot] = Child(100000 + slot, slot, 0, 0.0, True, "reload")
    with caplog.at_level(logging.WARNING, logger="wsgiwire"):
        assert server._spawn(1) is None  # no fork happened
        assert server._spawn(1) is None
    warnings = [r for r in caplog.records if "slots in use" in r.getMessage()]
    assert len(warnings) == 1  # said once, not once per loop turn
    del server.children[100003]
    assert server._free_slot() == 3  # freed when reaped


def test_process_names_are_set_and_cut_to_15_bytes() -> None:
    code = ("from wsgiwire.adapters._process import set_process_name as s\n"
            "assert s('wsgiwire master')\n"
            "print(open('/proc/self/comm').read().strip())\n"
            "s('wsgiwire a name far too long')\n"
            "print(open('/proc/self/comm').read().strip())\n")
    if not Path("/proc/self/comm").exists():
        pytest.skip("no /proc/self/comm on this system")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=20).stdout
    assert out.decode().splitlines() == ["wsgiwire master", "wsgiwire a name"]


def test_the_watcher_sees_a_touched_file_and_a_changed_source(tmp_path: Path) -> None:
    touched, source = tmp_path / "reload.touch", tmp_path / "app.py"
    source.write_text("x = 1\n")
    watcher = Watcher([str(tmp_path)], [str(touched)])
    assert watcher.poll() is None
    touched.write_text("")  # appeared
    assert watcher.poll() == f"{touched} was touched"
    assert watcher.poll() is None
    later = time.time() + 5
    os.utime(source, (later, later))
    watcher._next_scan = 0.0  # the directory scan runs once a second
    assert watcher.poll() == "a source file changed"
    watcher._next_scan = 0.0
    assert watcher.poll() is None


def test_a_load_error_is_one_line_naming_the_apps_frame(tmp_path: Path) -> None:
    module = tmp_path / "failing_app_for_describe.py"
    module.write_text("import json\n\ndef load():\n    raise ValueError('bad\\r\\nline')\n"
                      "\nload()\n")
    sys.path.insert(0, str(tmp_path))
    try:
        with pytest.raises(ValueError) as info:
            __import__("failing_app_for_describe")
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("failing_app_for_describe", None)
    text = describe_load_error(info.value)
    assert text.endswith("failing_app_for_describe.py:4: ValueError: bad\\r\\nline")
    assert "\n" not in text and "\r" not in text
    assert describe_load_error(AppLoadError("module 'x' has no attribute 'y'")) == (
        "module 'x' has no attribute 'y'"
    )


def test_listen_addresses_read_as_a_person_writes_them(tmp_path: Path) -> None:
    import socket

    with socket.socket() as v4, socket.socket(socket.AF_INET6) as v6, \
            socket.socket(socket.AF_UNIX) as unix:
        v4.bind(("127.0.0.1", 0))
        v6.bind(("::1", 0))
        unix.bind(str(tmp_path / "app.sock"))
        assert describe_listener(v4) == f"127.0.0.1:{v4.getsockname()[1]}"
        assert describe_listener(v6) == f"[::1]:{v6.getsockname()[1]}"
        assert describe_listener(unix) == f"unix:{tmp_path / 'app.sock'}"
