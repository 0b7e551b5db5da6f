"""A bounded HTTP load, run as its own process by ``test_chaos.py`` (stdlib only).

    python _chaos_load.py PORT PATHS THREADS SECONDS MAX_REQUESTS READY

``THREADS`` clients, each on its own kept-alive HTTP/1.1 connection to 127.0.0.1:PORT,
loop over ``PATHS`` (comma-separated) until ``SECONDS`` pass, each sent
``MAX_REQUESTS``, or stdin closes (the test's "stop now"). Prints ``ready`` once
``READY`` requests have been answered (the test starts its chaos only then, however
slow the machine), and at the end one JSON object:
``total``, ``ok`` (2xx), ``failures`` (every non-2xx or error as ``[start, end,
status, error]``, start and end on the system-wide monotonic clock), ``pids``
(requests per ``X-Worker-Pid``).
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time

TIMEOUT = 20.0


def main(argv: list[str]) -> int:
    port, paths = int(argv[0]), argv[1].split(",")
    threads, seconds, max_requests = int(argv[2]), float(argv[3]), int(argv[4])
    ready_after = int(argv[5])
    deadline = time.monotonic() + seconds
    stop = threading.Event()
    lock = threading.Lock()
    result: dict[str, object] = {"total": 0, "ok": 0}
    failures: list[list[object]] = []
    pids: dict[str, int] = {}
    answered = [0]

    def count_answer() -> None:
        with lock:
            answered[0] += 1
            if answered[0] == ready_after:
                print("ready", flush=True)

    def client(n: int) -> None:
        conn: http.client.HTTPConnection | None = None
        total = ok = 0
        mine: list[list[object]] = []
        seen: dict[str, int] = {}
        for i in range(max_requests):
            if stop.is_set() or time.monotonic() >= deadline:
                break
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
            started = time.monotonic()
            total += 1
            try:
                conn.request("GET", paths[(n + i) % len(paths)])
                resp = conn.getresponse()
                resp.read()
                count_answer()
                pid = resp.getheader("X-Worker-Pid") or "0"
                seen[pid] = seen.get(pid, 0) + 1
                if 200 <= resp.status < 300:
                    ok += 1
                else:
                    mine.append([started, time.monotonic(), resp.status, ""])
                if resp.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as exc:
                mine.append([started, time.monotonic(), 0, repr(exc)])
                conn.close()
                conn = None
        if conn is not None:
            conn.close()
        with lock:
            result["total"] = int(str(result["total"])) + total
            result["ok"] = int(str(result["ok"])) + ok
            failures.extend(mine)
            for pid, count in seen.items():
                pids[pid] = pids.get(pid, 0) + count

    def watch_stdin() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    workers = [threading.Thread(target=client, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(seconds + 2 * TIMEOUT)
    result["failures"] = sorted(failures, key=lambda f: float(str(f[0])))
    result["pids"] = pids
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
