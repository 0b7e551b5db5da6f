"""Function calls per request in a wsgiwire worker, under a bounded load through nginx.

::

    .venv/bin/python -m bench.callcount                      # this checkout, all 4 backends
    .venv/bin/python -m bench.callcount --base /work/wt/base # and the same for another checkout
    .venv/bin/python -m bench.callcount --only wsgiwire-fastcgi --top 40

For each backend of ``bench/run.py`` (hello app), it starts ``wsgiwire serve``
with one worker whose ``Worker.serve`` runs under ``cProfile``, puts nginx in
front (the same site templates), loads it with wrk for ``--duration`` seconds,
stops it and reads the profile back: every call the worker's loop made
(Python functions and C builtins alike, as cProfile counts them) divided by the
requests that worker served. The whole loop is counted, idle turns included;
at wrk's 16 connections they are a small share. cProfile slows the worker down
(more so for Python calls than for builtins), so the figure to compare is the
count, never the time.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import json
import os
import pstats
import resource
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import run
from bench.trees import wsgiwire_module

_SERVE = "serve-profiled"


def serve_profiled(out: str, argv: list[str]) -> int:
    """``wsgiwire serve ARGV`` with the worker loop under cProfile; dumps to ``out``."""
    cli = wsgiwire_module("wsgiwire._cli")
    worker_module = wsgiwire_module("wsgiwire.adapters._worker")

    plain = worker_module.Worker.serve

    profiled = os.environ.get("CALLCOUNT_CPU_ONLY") != "1"

    def serve(self: Any) -> None:
        profile = cProfile.Profile()
        if profiled:
            profile.enable()
        before = resource.getrusage(resource.RUSAGE_SELF)
        gc_before = [generation["collections"] for generation in gc.get_stats()]
        try:
            plain(self)
        finally:
            after = resource.getrusage(resource.RUSAGE_SELF)
            profile.disable()
            if profiled:
                profile.dump_stats(f"{out}/worker-{os.getpid()}.prof")
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            collections = [generation["collections"] - old
                           for generation, old in zip(gc.get_stats(), gc_before, strict=True)]
            Path(f"{out}/worker-{os.getpid()}.json").write_text(
                json.dumps({"requests": self.requests_served, "cpu_s": cpu, "gc": collections,
                            "wsgiwire": str(Path(worker_module.__file__).parents[1])})
            )

    worker_module.Worker.serve = serve  # type: ignore[method-assign]
    return cli.main(["serve", *argv])


def _row(key: tuple[str, int, str]) -> str:
    filename, line, name = key
    if filename == "~":
        return name
    parts = Path(filename).parts
    short = "/".join(parts[parts.index("wsgiwire"):]) if "wsgiwire" in parts else parts[-1]
    return f"{short}:{line}({name})"


def measure(backend: str, protocol: str, site: str, checkout: Path | None, *,
            duration: int, top: int, keep: Path | None = None,
            cpu_only: bool = False, workers: int = 1) -> dict[str, Any]:
    scenario = run.SCENARIOS["hello"]
    with tempfile.TemporaryDirectory(prefix="wsgiwire-callcount-") as tmp:
        rdir = Path(tmp)
        rdir.chmod(0o755)
        sock = rdir / "backend.sock"
        # The script by its path (not -m): sys.path[0] is then bench/, not the
        # working directory, so PYTHONPATH decides which wsgiwire is imported.
        path = f"{checkout}{os.pathsep}{run.REPO_ROOT}" if checkout else str(run.REPO_ROOT)
        argv = [
            "env", f"PYTHONPATH={path}", f"PYTHONPYCACHEPREFIX={run.BASE_PYCACHE}",
            f"CALLCOUNT_CPU_ONLY={int(cpu_only)}",
            sys.executable, __file__, _SERVE, str(rdir), scenario.app,
            "--protocol", protocol, "--bind", f"unix:{sock}", "--workers", str(workers),
            "--log-level", "warning",
        ]
        log = rdir / "backend.log"
        server = run.start_process(argv, log, backend)
        try:
            run.wait_for(lambda: run.can_connect_unix(sock), run.STARTUP_TIMEOUT_S,
                         f"{backend} socket", server, log)
            sock.chmod(0o666)
            port = run.free_port()
            conf = run.write_nginx_config(rdir, site, port, sock)
            nginx = run.start_process(
                [run.nginx_binary(), "-p", str(rdir), "-c", str(conf), "-g", "daemon off;"],
                rdir / "nginx.out", "nginx",
            )
            try:
                run.wait_for(lambda: run.can_connect_tcp(port), run.STARTUP_TIMEOUT_S, "nginx",
                             nginx, rdir / "nginx.out")
                run.check_answer(port, scenario, retry_for=run.READY_TIMEOUT_S)
                result = run.run_wrk(port, scenario, duration, rdir / "wrk.out")
                if result.error_total:
                    raise run.BenchError(f"{backend}: wrk saw errors {result.errors}")
            finally:
                run.stop_process(nginx, signal.SIGQUIT)
        finally:
            run.stop_process(server)
        written = sorted(rdir.glob("worker-*.json"))
        if not written:
            raise run.BenchError(f"{backend}: no worker figures written{run._tail(log)}")
        facts = [json.loads(p.read_text()) for p in written]
        requests = sum(fact["requests"] for fact in facts)
        cpu_us = sum(fact["cpu_s"] for fact in facts) * 1e6 / max(1, requests)
        loaded = {fact["wsgiwire"] for fact in facts}
        wanted = str(Path(checkout or run.REPO_ROOT, "wsgiwire").resolve())
        if loaded != {wanted}:
            raise run.BenchError(f"{backend}: the worker ran {loaded}, not {wanted}")
        collections = [sum(fact["gc"][index] for fact in facts) for index in range(3)]
        if cpu_only:
            return {"backend": backend, "requests": requests, "wsgiwire": wanted,
                    "worker_cpu_us": cpu_us, "gc_collections": collections}
        profiles = [p.with_suffix(".prof") for p in written]
        stats = pstats.Stats(*map(str, profiles))
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            stats.dump_stats(keep / f"{backend}.prof")
            (keep / f"{backend}.requests").write_text(str(requests))
        table: dict[tuple[str, int, str], Any] = stats.stats  # type: ignore[attr-defined]
        calls = sum(row[1] for row in table.values())
        busiest = sorted(table.items(), key=lambda item: -item[1][1])[:top]
        # Every call, counted against the file of the code that made it.
        by_caller: dict[str, float] = {}
        for row in table.values():
            for caller, counts in row[4].items():
                where = _row(caller).split(":")[0] if caller[0] != "~" else "(builtins)"
                by_caller[where] = by_caller.get(where, 0) + counts[0]
    return {
        "backend": backend,
        "requests": requests,
        "wsgiwire": wanted,
        "calls_per_request": calls / max(1, requests),
        "profiled_worker_cpu_us": cpu_us,
        "by_caller": {where: count / max(1, requests) for where, count in
                      sorted(by_caller.items(), key=lambda item: -item[1])},
        "top": [(_row(key), row[1] / max(1, requests)) for key, row in busiest],
    }


BACKENDS = {
    "wsgiwire-fastcgi": ("fastcgi", "fastcgi-keepalive"),
    "wsgiwire-fastcgi-nokeep": ("fastcgi", "fastcgi"),
    "wsgiwire-scgi": ("scgi", "scgi"),
    "wsgiwire-uwsgi": ("uwsgi", "uwsgi"),
}


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    if args_in[:1] == [_SERVE]:
        return serve_profiled(args_in[1], args_in[2:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default=",".join(BACKENDS))
    parser.add_argument("--base", type=Path, help="also count another checkout's wsgiwire")
    parser.add_argument("--duration", type=int, default=3)
    parser.add_argument("--top", type=int, default=0, help="list the N most called functions")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    parser.add_argument("--keep", type=Path, help="save each backend's merged profile here")
    parser.add_argument("--cpu", action="store_true",
                        help="no profile: the worker's CPU µs per request only (--rounds times, "
                        "this checkout and --base in turn)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(args_in)
    results = []
    with contextlib.ExitStack() as stack:
        stack.callback(run.stop_everything)
        for name in args.only.split(","):
            protocol, site = BACKENDS[name]
            for _ in range(args.rounds if args.cpu else 1):
                for checkout in ([None, args.base] if args.base else [None]):
                    label = name if checkout is None else f"base-{name}"
                    found = measure(label, protocol, site, checkout, duration=args.duration,
                                    top=args.top, keep=args.keep, cpu_only=args.cpu,
                                    workers=args.workers)
                    results.append(found)
                    if args.cpu:
                        print(f"{label:32} {found['worker_cpu_us']:6.1f} µs CPU/request in "
                              f"the worker ({found['requests']} requests; garbage "
                              f"collections by generation {found['gc_collections']})",
                              flush=True)
                        continue
                    print(f"{label:32} {found['calls_per_request']:7.1f} calls/request "
                          f"({found['requests']} requests)", flush=True)
                    for where, count in found["by_caller"].items():
                        if count >= 0.5:
                            print(f"    {count:6.1f}  made in {where}")
                    for row, count in found["top"]:
                        print(f"    {count:6.2f}  {row}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
