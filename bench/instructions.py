"""Instructions per request of a real worker, wsgiwire beside uWSGI, under callgrind.

    .venv/bin/python bench/instructions.py                          # hello
    .venv/bin/python bench/instructions.py --app flask --compiled build/compiled

Each server runs one worker on a unix socket under valgrind's callgrind: wsgiwire
(``serve --workers 1 --protocol uwsgi``, from this checkout, and from ``--compiled
DIR`` when given) and uWSGI (``--processes 1``, the pyuwsgi of this venv), each
with its uwsgi protocol. A client in this process sends the request nginx would
(``bench/codec.py``'s uwsgi params), a connection each: a warm-up, then N requests.
The run is made twice, with N and 2N requests; the difference of the worker's
instruction counts, over N, is one request's.

Deterministic where req/s and CPU time are not, and independent of what else the
machine runs: it is the figure to compare two trees by. It counts user-space
instructions only, not the kernel's work or cache misses, so it is not a ratio of
req/s. The split says where they run: the interpreter (the app's Python is there
for every server), wsgiwire's compiled module, libc, uWSGI's C.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parent.parent))  # PYTHONPATH first

from bench.apps import FLASK_BODY, HELLO_BODY
from bench.codec import UWSGI_PARAMS, uwsgi_request
from bench.connloop import _at_root
from bench.run import REPO_ROOT, VENV_BIN, interpreter

APPS = {"hello": HELLO_BODY, "flask": FLASK_BODY}
WARMUP = 300
BOOT_TIMEOUT = 120.0  # valgrind starts a Python process in seconds, not milliseconds
STOP_TIMEOUT = 60.0
REQUEST_TIMEOUT = 30.0


@dataclass(frozen=True)
class Server:
    name: str
    command: list[str]
    env: dict[str, str]
    sock: Path


def servers(app: str, sock: Path, compiled: Path | None) -> list[Server]:
    spec = f"bench.apps:{'flask_app' if app == 'flask' else app}"
    serve = ["serve", spec, "--protocol", "uwsgi", "--bind", f"unix:{sock}",
             "--workers", "1", "--log-level", "warning"]
    # As bench/run.py runs another tree: its __main__, with the working directory
    # off sys.path so that the tree's own package is the one imported.
    main = ("import sys, runpy; sys.path.pop(0); "
            "runpy.run_module('wsgiwire', run_name='__main__', alter_sys=True)")
    python = str(VENV_BIN / "python")
    found = [Server("wsgiwire (this checkout)", [python, "-c", main, *serve],
                    {"PYTHONPATH": str(REPO_ROOT)}, sock)]
    if compiled is not None:
        found.append(Server(f"wsgiwire ({compiled})", [python, "-c", main, *serve],
                            {"PYTHONPATH": str(compiled)}, sock))
    uwsgi = VENV_BIN / "uwsgi"
    if uwsgi.exists():
        found.append(Server("uWSGI", [
            str(uwsgi), "--master", "--processes", "1", "--socket", str(sock),
            "--module", spec, "--pythonpath", str(REPO_ROOT), "--chdir", str(REPO_ROOT),
            "--single-interpreter", "--need-app", "--die-on-term", "--disable-logging",
        ], {}, sock))
    return found


def ask(path: Path, request: bytes, body: bytes, count: int) -> None:
    for _ in range(count):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(REQUEST_TIMEOUT)
            client.connect(str(path))
            client.sendall(request)
            reply = b""
            while data := client.recv(65536):
                reply += data
        if body not in reply:
            raise SystemExit(f"unexpected reply: {reply[:200]!r}")


def worker_profile(server: Server, request: bytes, body: bytes, count: int,
                   work: Path) -> Path:
    """Run ``server`` under callgrind for a warm-up and ``count`` requests; the
    worker's profile (the process that is not the one started)."""
    sock = server.sock
    out = work / f"run-{count}"
    out.mkdir()
    env = {**os.environ, **server.env, "PYTHONHASHSEED": "0"}
    with open(out / "log", "wb") as log:
        process = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--trace-children=yes",
             f"--callgrind-out-file={out}/cg.%p", *server.command],
            env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=log,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + BOOT_TIMEOUT
            while not sock.exists():
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"{server.name} did not start: see {out}/log")
                time.sleep(0.1)
            ask(sock, request, body, WARMUP)
            ask(sock, request, body, count)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)  # the group we started, ours alone
                process.wait()
    with_workers = [p for p in out.glob("cg.*") if p.name != f"cg.{process.pid}"]
    if not with_workers:
        raise SystemExit(f"{server.name}: no worker profile in {out}")
    return max(with_workers, key=total)


def total(profile: Path) -> int:
    for line in profile.read_text(errors="replace").splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise SystemExit(f"no total in {profile}")


_SELF = re.compile(r"^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+.*\[(.+)\]\s*$")


def by_object(profile: Path) -> dict[str, int]:
    """Instructions by the object file they ran in (callgrind_annotate's self costs)."""
    text = subprocess.run(["callgrind_annotate", "--inclusive=no", "--threshold=100",
                           str(profile)], capture_output=True, text=True, check=True).stdout
    split: dict[str, int] = {}
    for line in text.splitlines():
        match = _SELF.match(line)
        if match:
            name = _object_name(match.group(2))
            split[name] = split.get(name, 0) + int(match.group(1).replace(",", ""))
    return split


def _object_name(path: str) -> str:
    base = os.path.basename(path)
    if base.startswith("_compiled__mypyc"):
        return "wsgiwire compiled"
    if base.startswith("pyuwsgi"):
        return "uWSGI's C"
    if base.startswith("libc.") or base.startswith("ld-linux"):
        return "libc"
    if base.startswith(("python", "libpython")):
        return "interpreter"
    return "other"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--app", choices=sorted(APPS), default="hello")
    parser.add_argument("--requests", type=int, default=1000, help="N (the runs: N, 2N)")
    parser.add_argument("--compiled", type=Path, help="also the wsgiwire tree in DIR "
                        "(./dev test makes build/compiled)")
    args = parser.parse_args()
    if shutil.which("valgrind") is None or shutil.which("callgrind_annotate") is None:
        raise SystemExit("valgrind is needed (apt-get install valgrind)")
    body = APPS[args.app]
    params = _at_root(UWSGI_PARAMS) if args.app == "flask" else UWSGI_PARAMS
    request = uwsgi_request(params)
    n = args.requests
    print(f"instructions per request, {args.app}, uwsgi protocol, one connection each; "
          f"callgrind, runs of {n} and {2 * n} requests after {WARMUP}; "
          f"Python {interpreter()}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="wsgiwire-instructions-") as tmp:
        for index, server in enumerate(servers(args.app, Path(tmp) / "s.sock",
                                               args.compiled)):
            work = Path(tmp) / str(index)
            work.mkdir()
            runs = []
            for count in (n, 2 * n):
                (Path(tmp) / "s.sock").unlink(missing_ok=True)
                runs.append(worker_profile(server, request, body, count, work))
            per_request = (total(runs[1]) - total(runs[0])) / n
            first, second = by_object(runs[0]), by_object(runs[1])
            split = {name: (second.get(name, 0) - first.get(name, 0)) / n
                     for name in second}
            rows.append((server.name, per_request, split))
    reference = rows[-1][1] if rows[-1][0] == "uWSGI" else None
    for name, per_request, split in rows:
        ratio = f" ({per_request / reference:.2f}x uWSGI)" if reference else ""
        parts = ", ".join(f"{part} {count / 1000:.1f}k"
                          for part, count in sorted(split.items(), key=lambda kv: -kv[1])
                          if abs(count) >= 100)
        print(f"  {name}: {per_request / 1000:.1f}k{ratio}: {parts}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
