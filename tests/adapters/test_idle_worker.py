"""What an idle worker of ``wsgiwire serve`` has imported: nothing it needs only on a
rare path.

Every module the master imports is in every worker it forks (bench/run.py measures
the idle worker's RSS), so modules that only a rare path uses are imported there,
not at the top: tempfile (a reply spilled to disk), subprocess (ctypes.util),
sysconfig (a failed app load), json (--log-format json, the status page),
datetime (log timestamps come from time.localtime), ipaddress (an allow-list,
TrustedProxy; urllib.parse imports it too), shlex (a setup hint's text). What the
interpreter itself loads at start-up (an editable install's finder imports pathlib,
and so urllib.parse) is not wsgiwire's doing, and is left out.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.integration.servers import ManagedProcess, wait_for_output
from wsgiwire._client import build_params, parse_target, send_request

REPO = Path(__file__).resolve().parents[2]

RARE = ("tempfile", "subprocess", "ctypes.util", "sysconfig", "json", "datetime", "ipaddress",
        "urllib.parse", "shlex", "wsgiwire.middleware._proxy")

MODULES_APP = '''
import sys


def app(environ, start_response):
    body = "\\n".join(sorted(sys.modules)).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
'''


def test_an_idle_worker_has_not_imported_the_rare_paths_modules(tmp_path: Path) -> None:
    (tmp_path / "modules_app.py").write_text(MODULES_APP)
    sock = tmp_path / "sock"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO),
           "PYTHONDONTWRITEBYTECODE": "1"}
    bare = subprocess.run([sys.executable, "-c", "import sys; print(*sys.modules)"],
                          env=env, capture_output=True, text=True, timeout=60, check=True)
    rare = set(RARE) - set(bare.stdout.split())
    process = ManagedProcess(
        [sys.executable, "-m", "wsgiwire", "serve", "modules_app:app", "--workers", "1",
         f"--bind=unix:{sock}", f"--pid-file={tmp_path / 'pid'}"],
        log_path=tmp_path / "serve.log", env=env, cwd=tmp_path,
    )
    with process:
        wait_for_output(process, "serving fastcgi on", timeout=30)
        target = parse_target(f"fastcgi+unix://{sock}/")
        reply = send_request(target, build_params(target), timeout=30)
        assert reply.status == 200, reply.raw
        loaded = set(reply.raw.split(b"\r\n\r\n", 1)[1].decode().split("\n"))
        assert process.stop() == 0, process.output()
    assert "wsgiwire.adapters._worker" in loaded  # the list came from a worker
    assert sorted(rare & loaded) == []
