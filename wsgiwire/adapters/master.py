"""The process that owns the workers: prefork, signals, graceful stop and reload, watchdog, stats.

Signals (to the master):

* SIGTERM, SIGINT: stop. Workers stop accepting at once, finish in-flight
  requests for up to ``graceful_timeout`` seconds, close kept-alive
  connections as soon as they are between requests, and exit; stragglers are
  then killed, with one log line naming what was cut. Exit status 0.
* SIGHUP: graceful reload. A new generation of workers starts (each imports
  the application afresh when the server was given an ``app_loader``); the old
  ones drain and exit.
* A dead worker is replaced within a second. A worker that cannot even load
  the application exits with status 3 and the master stops with the error
  already printed, instead of forking in a loop.
"""

from __future__ import annotations

import contextlib
import grp
import json
import logging
import os
import pwd
import selectors
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

from .base import ServerConfig
from .listeners import close_quietly, remove_socket_file
from .scoreboard import Scoreboard
from .worker import Worker

__all__ = ["BOOT_FAILED", "Server", "drop_privileges"]

log = logging.getLogger("wsgiwire")

BOOT_FAILED = 3
_TICK = 0.2
_QUICK_DEATH = 1.0
_QUICK_DEATHS_LIMIT = 5
_RELOAD_SCAN_FILES = 5000
_GRACE = 1.0  # --request-timeout: the worker's own watchdog acts first


def drop_privileges(user: str | None, group: str | None) -> None:
    """Switch to ``user``/``group`` (names or numbers) after binding, when root."""
    if user is None and group is None:
        return
    if os.geteuid() != 0:
        log.warning("--user/--group ignored: not running as root")
        return
    gid = None
    if group is not None:
        gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
    if user is not None:
        entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
        if gid is None:
            gid = entry.pw_gid
        os.setgroups([])
        with contextlib.suppress(OSError):
            os.initgroups(entry.pw_name, gid)
        os.setgid(gid)
        os.setuid(entry.pw_uid)
    elif gid is not None:
        os.setgroups([])
        os.setgid(gid)


class Server:
    """Runs workers for one configuration: in this process, or under a prefork master."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.board = Scoreboard(2 * config.workers) if config.workers >= 1 else None
        # pid -> slot, started, generation
        self.children: dict[int, tuple[int, float, int]] = {}
        self.generation = 0
        self.started = time.time()
        self._stop = False
        self._reload = False
        self._exit_code = 0
        self._quick_deaths = 0
        self._mtimes: dict[str, float] = {}

    # -- entry point --------------------------------------------------------
    def serve(self) -> int:
        config = self.config
        try:
            with self._pid_file():
                if config.workers < 1:
                    drop_privileges(config.user, config.group)
                    return self._serve_single()
                # The master keeps its rights to remove the pid file and socket
                # at exit; the workers, which run the app, drop them.
                return self._serve_prefork()
        finally:
            for path in config.owned_paths:
                remove_socket_file(path)

    @contextlib.contextmanager
    def _pid_file(self) -> Iterator[None]:
        path = self.config.pid_file
        if path is None:
            yield
            return
        with open(path, "w") as f:
            f.write(f"{os.getpid()}\n")
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path)

    def _serve_single(self) -> int:
        worker = Worker(self.config)
        _install_stop_handlers(worker.request_stop)
        worker.serve()
        return 0

    # -- prefork ------------------------------------------------------------
    def _serve_prefork(self) -> int:
        config = self.config
        selector = selectors.DefaultSelector()
        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        selector.register(wake_r, selectors.EVENT_READ, None)
        if config.stats_listener is not None:
            selector.register(config.stats_listener, selectors.EVENT_READ, "stats")
        old_wakeup = signal.set_wakeup_fd(wake_w.fileno())

        def on_stop(signum: int, frame: object) -> None:
            self._stop = True

        def on_reload(signum: int, frame: object) -> None:
            self._reload = True

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_reload)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # wakes the loop
        try:
            if config.reload_dirs:
                self._sources_changed()  # the baseline, before any worker imports the app
            for _ in range(config.workers):
                self._spawn()
            next_scan = time.monotonic() + 1.0
            while not self._stop:
                for key, _ in selector.select(_TICK):
                    if key.data is None:
                        with contextlib.suppress(OSError):
                            while wake_r.recv(4096):
                                pass
                    else:
                        self._serve_stats(config.stats_listener)
                self._reap()
                if self._reload:
                    self._reload = False
                    self._start_generation("SIGHUP")
                self._watchdog()
                if config.reload_dirs and time.monotonic() >= next_scan:
                    next_scan = time.monotonic() + 1.0
                    if self._sources_changed():
                        self._start_generation("a source file changed")
            # New connections are refused from now on (each worker closes its
            # own copy as it stops), so the web server fails over at once.
            for listener in config.listeners:
                close_quietly(listener)
            return self._stop_children() or self._exit_code
        finally:
            signal.set_wakeup_fd(old_wakeup)
            selector.close()
            wake_r.close()
            wake_w.close()

    def _board(self) -> Scoreboard:
        if self.board is None:
            raise RuntimeError("the scoreboard exists in prefork mode only")
        return self.board

    def _spawn(self) -> int:
        board = self._board()
        slot = board.free_slot()
        board.assign(slot, 0)
        pid = os.fork()
        if pid == 0:  # the worker
            code = 0
            try:
                code = self._worker_main(slot)
            except BaseException:
                traceback.print_exc()
                code = 1
            finally:
                with contextlib.suppress(Exception):
                    sys.stdout.flush()
                    sys.stderr.flush()
                os._exit(code)
        board.assign(slot, pid)
        self.children[pid] = (slot, time.monotonic(), self.generation)
        return pid

    def _worker_main(self, slot: int) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(signum, signal.SIG_DFL)
        signal.set_wakeup_fd(-1)
        if self.config.stats_listener is not None:
            close_quietly(self.config.stats_listener)
        drop_privileges(self.config.user, self.config.group)
        try:
            worker = Worker(self.config, self.board, slot)
        except Exception:
            log.critical("worker %d cannot load the application:\n%s",
                         os.getpid(), traceback.format_exc().rstrip())
            return BOOT_FAILED
        _install_stop_handlers(worker.request_stop)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        worker.serve()
        return 0

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot, started, generation = self.children.pop(pid, (-1, 0.0, -1))
            if slot < 0:
                continue
            self._board().free(slot)
            code = os.waitstatus_to_exitcode(status)
            if code == BOOT_FAILED:
                log.critical("a worker could not load the application; stopping the server")
                self._exit_code = BOOT_FAILED
                self._stop = True
                continue
            if self._stop or generation != self.generation:
                continue  # stopping, or an old generation finishing after a reload
            lived = time.monotonic() - started
            if code != 0:
                log.warning("worker %d died (%s) after %.1f s; starting another",
                            pid, _describe_status(code), lived)
            # A clean exit (--max-requests) is a recycle, never a crash loop.
            failed_fast = code != 0 and lived < _QUICK_DEATH
            self._quick_deaths = self._quick_deaths + 1 if failed_fast else 0
            if self._quick_deaths >= _QUICK_DEATHS_LIMIT:
                log.critical("workers keep dying as they start; stopping the server")
                self._exit_code = 1
                self._stop = True
                continue
            self._spawn()

    def _start_generation(self, why: str) -> None:
        old = [pid for pid, (_, _, gen) in self.children.items() if gen == self.generation]
        self.generation += 1
        log.info("reloading (%s): starting %d new worker(s), old ones drain",
                 why, self.config.workers)
        for _ in range(self.config.workers):
            self._spawn()
        for pid in old:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def _watchdog(self) -> None:
        limit = self.config.limits.request_timeout
        if not limit or self.board is None:
            return
        now = time.monotonic()
        for info in self.board.all():
            # The worker's own watchdog logs where the request hangs and exits
            # first; this is the backstop when it cannot (its GIL held in C code).
            if info.pid > 0 and info.busy_since and now - info.busy_since > limit + _GRACE:
                log.error("worker %d killed: %s ran %.1f s, over the request timeout of %g s",
                          info.pid, info.label or "a request", now - info.busy_since, limit)
                self.board.request_finished(info.slot, info.requests, info.errors + 1)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(info.pid, signal.SIGKILL)

    def _sources_changed(self) -> bool:
        changed = False
        seen = 0
        for directory in self.config.reload_dirs:
            for root, dirs, files in os.walk(directory):
                dirs[:] = [d for d in dirs if not d.startswith(".") and d != "__pycache__"]
                for name in files:
                    if not name.endswith(".py"):
                        continue
                    seen += 1
                    if seen > _RELOAD_SCAN_FILES:
                        return changed
                    path = os.path.join(root, name)
                    try:
                        mtime = os.stat(path).st_mtime
                    except OSError:
                        continue
                    if self._mtimes.setdefault(path, mtime) != mtime:
                        self._mtimes[path] = mtime
                        changed = True
        return changed

    # -- status page ------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        workers = []
        if self.board is not None:
            now = time.monotonic()
            for info in self.board.all():
                workers.append({
                    "pid": info.pid,
                    "state": ("free", "accepting", "draining", "booting")[info.state],
                    "connections": info.connections,
                    "requests": info.requests,
                    "errors": info.errors,
                    "busy_threads": info.busy_threads,
                    "queued": info.queued,
                    "busy_for": round(now - info.busy_since, 3) if info.busy_since else 0,
                    "request": info.label if info.busy_since else "",
                })
        return {
            "version": _version(),
            "protocol": self.config.driver.name,
            "pid": os.getpid(),
            "uptime": round(time.time() - self.started, 3),
            "generation": self.generation,
            "workers": workers,
            "requests": sum(w["requests"] for w in workers),
            "errors": sum(w["errors"] for w in workers),
            "busy_threads": sum(w["busy_threads"] for w in workers),
            "queued": sum(w["queued"] for w in workers),
        }

    def _serve_stats(self, listener: socket.socket | None) -> None:
        if listener is None:
            return
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(0.2)
            payload = json.dumps(self.stats(), indent=1).encode() + b"\n"
            try:
                first = conn.recv(1024)
            except OSError:
                first = b""
            if first.startswith((b"GET ", b"HEAD ")):
                head = (
                    "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
                ).encode()
                payload = head + (b"" if first.startswith(b"HEAD ") else payload)
            with contextlib.suppress(OSError):
                conn.sendall(payload)

    # -- stopping ---------------------------------------------------------------
    def _stop_children(self) -> int:
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + self.config.graceful_timeout + 1.0
        while self.children and time.monotonic() < deadline:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid:
                self.children.pop(pid, None)
            else:
                time.sleep(0.02)
        for pid, (slot, _, _) in list(self.children.items()):
            label = ""
            if self.board is not None:
                info = self.board.read(slot)
                label = f" in {info.label}" if info.busy_since and info.label else ""
            log.warning("worker %d did not stop within %g s%s; killed",
                        pid, self.config.graceful_timeout, label)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        self.children.clear()
        return 0


def _install_stop_handlers(stop: Callable[[], None]) -> None:
    def handler(signum: int, frame: object) -> None:
        stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    with contextlib.suppress(AttributeError, ValueError):
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)


def _describe_status(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit status {code}"


def _version() -> str:
    from .. import __version__

    return __version__
