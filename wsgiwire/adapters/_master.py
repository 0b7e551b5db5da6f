"""The process that owns the workers: prefork, signals, generations, reloads, stats.

Signals (to the master):

* SIGTERM, SIGINT: graceful stop. Workers stop accepting at once, finish
  in-flight requests for up to ``graceful_timeout`` seconds, close kept-alive
  connections as soon as they are between requests, and exit; stragglers are
  then killed, with one log line naming what was cut. Exit status 0.
* SIGQUIT: fast stop. Workers exit at once, cutting what is in flight.
* SIGHUP: reload (also ``--reload`` and ``--touch-reload``). A new generation
  of workers starts and imports the application afresh; only when every one
  of them has loaded it and accepts are the old workers told to drain. A
  generation that cannot load the application is logged (one line) and
  discarded; the old one goes on serving. A reload while another is still
  loading replaces it.
* SIGUSR1: reopen log files (the master's, then every worker's).
* SIGTTIN, SIGTTOU: one worker more, one worker fewer.
* SIGUSR2, SIGALRM, SIGPIPE, SIGXFSZ, ...: logged and ignored, never fatal.

The state machine, in one place:

* every worker is a :class:`Child` in ``children`` (keyed by pid), with its
  scoreboard slot and generation; a slot is freed only when the process is
  reaped, and a spawn that finds every slot in use waits for one to free;
* ``generation`` is the one serving; ``pending`` (or None) the one loading.
  A pending generation becomes the serving one when all its workers are
  ready, and fails when one of them cannot load the application: before the
  first generation ever served, that stops the server (exit status 2, one
  line); afterwards it is a failed reload (``reload_failures``,
  ``last_reload_error``) and nothing else changes;
* each loop turn reconciles: the serving generation always has ``desired``
  workers (a dead one is replaced, after a back-off when they die as fast as
  they start, and counted in ``respawns``); extra ones (SIGTTOU) retire.

Workers die with the master (``PR_SET_PDEATHSIG``), however it dies: they stop
as on SIGTERM, finishing the requests already on their way, within the
graceful timeout.
"""

from __future__ import annotations

import contextlib
import grp
import logging
import os
import pwd
import selectors
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .._apploader import describe_load_error
from .._logs import reopen_log_files
from ._base import ServerConfig
from ._listeners import close_quietly, remove_socket_file
from ._process import die_with_parent, set_process_name
from ._scoreboard import ACCEPTING, DRAINING, Scoreboard
from ._stats import Totals, reach, serve_stats, status
from ._watcher import Watcher
from ._worker import Worker

__all__ = ["BOOT_FAILED", "STARTUP_FAILED", "Child", "Server", "describe_listener",
           "drop_privileges"]

log = logging.getLogger("wsgiwire")

BOOT_FAILED = 3  # a worker's exit status when it cannot load the application
STARTUP_FAILED = 2  # the master's, when the first generation cannot
_TICK = 0.2
_BOOT_TICK = 0.05  # while a generation loads: promote it soon after it is ready
_QUICK_DEATH = 1.0
_BACKOFF_FIRST = 0.1
_BACKOFF_MAX = 10.0
_FAST_STOP_WAIT = 1.0
_STRAGGLER_GRACE = 5.0
_REPORT_SIZE = 2048  # one boot report (pid, message) fits in an atomic pipe write

# Signals that must never end the master silently: logged and otherwise ignored.
_IGNORED = tuple(
    getattr(signal, name) for name in ("SIGUSR2", "SIGALRM", "SIGVTALRM", "SIGPROF",
                                       "SIGXFSZ", "SIGXCPU")
    if hasattr(signal, name)
)
_HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGUSR1,
            signal.SIGTTIN, signal.SIGTTOU, *_IGNORED)
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


def describe_listener(sock: socket.socket) -> str:
    """A listening socket's address as a person writes it: ``127.0.0.1:9000``,
    ``[::1]:9000``, ``unix:/run/app.sock``."""
    try:
        name = sock.getsockname()
    except OSError:
        return f"fd:{sock.fileno()}"
    if sock.family == socket.AF_UNIX:
        path = name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
        return f"unix:{path}" if path else f"fd:{sock.fileno()} (unix)"
    if sock.family == socket.AF_INET6:
        return f"[{name[0]}]:{name[1]}"
    if isinstance(name, tuple):
        return f"{name[0]}:{name[1]}"
    return str(name)


@dataclass
class Child:
    """One worker process, as the master knows it."""

    pid: int
    slot: int
    generation: int
    started: float
    ready: bool = False
    retiring: str = ""  # why it was told to stop ("" while it is wanted)
    retired_at: float = 0.0


class Server:
    """Runs workers for one configuration: in this process, or under a prefork master.

    ``listen_names`` are the listening addresses as the user wrote them (the
    log line says ``serving fastcgi on <each>`` once the workers serve); by
    default they are read from the sockets.
    """

    def __init__(self, config: ServerConfig, listen_names: Sequence[str] | None = None) -> None:
        self.config = config
        self.listen_names = list(listen_names) if listen_names is not None else [
            describe_listener(sock) for sock in config.listeners
        ]
        # Room for the serving generation, one loading, and workers still draining
        # after quick reloads; a spawn that finds every slot in use waits for one
        # to free. Not more: workers scan every slot to balance their accepts.
        slots = 3 * config.workers + 4
        self.max_workers = 2 * config.workers + 2 if config.workers else 0  # SIGTTIN's cap
        self.board = Scoreboard(slots, config.threads) if config.workers >= 1 else None
        # What reaped workers counted (the status page adds the live ones).
        self.totals = Totals()
        self.children: dict[int, Child] = {}
        self.desired = config.workers
        self.generation = 0  # the serving generation
        self.pending: int | None = None  # the generation loading, if any
        self._newest = 0
        self.started = time.time()
        self.respawns = 0
        self.reload_failures = 0
        self.last_reload_error: str | None = None
        self._served = False  # has any generation been ready yet?
        self._stop = False
        self._fast = False
        self._exit_code = 0
        self._startup_error = ""
        self._signals: list[int] = []
        self._quick_deaths = 0
        self._respawn_at = 0.0
        self._slots_short = False
        self._fork_failing = False
        self._boot_errors: dict[int, str] = {}
        self._report_r: socket.socket | None = None
        self._report_w: socket.socket | None = None
        self._master_pid = os.getpid()

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
        self._announce()
        worker.serve()
        return 0

    def _announce(self) -> None:
        from .. import __version__
        from .._build import name as build_name

        build = build_name()
        for name in self.listen_names:
            log.info("wsgiwire %s (%s) serving %s on %s", __version__, build,
                     self.config.driver.name, name)
        if self.config.stats_listener is not None:
            stats = self.config.stats_listener
            log.info("status page on %s (JSON at /, Prometheus at /metrics; %s)",
                     describe_listener(stats), reach(stats.getsockname()))

    # -- prefork: the loop ----------------------------------------------------
    def _serve_prefork(self) -> int:
        config = self.config
        selector = selectors.DefaultSelector()
        wake_r, wake_w = socket.socketpair()
        self._report_r, self._report_w = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        for sock in (wake_r, wake_w, self._report_r, self._report_w):
            sock.setblocking(False)
        selector.register(wake_r, selectors.EVENT_READ, None)
        if config.stats_listener is not None:
            selector.register(config.stats_listener, selectors.EVENT_READ, "stats")
        old_wakeup = signal.set_wakeup_fd(wake_w.fileno())
        set_process_name("wsgiwire master")

        def on_signal(signum: int, frame: object) -> None:
            self._signals.append(signum)

        for signum in _HANDLED:
            signal.signal(signum, on_signal)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # wakes the loop
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        watcher = Watcher(config.reload_dirs, config.touch_reload)
        try:
            self._start_generation("")
            while not self._stop:
                tick = _BOOT_TICK if self.pending is not None else _TICK
                for key, _ in selector.select(tick):
                    if key.data is None:
                        with contextlib.suppress(OSError):
                            while wake_r.recv(4096):
                                pass
                    else:
                        self._serve_stats(config.stats_listener)
                self._handle_signals()
                self._reap()
                if self._stop:
                    break
                self._check_ready()
                self._check_boot_timeout()
                self._reconcile()
                self._kill_stragglers()
                self._watchdog()
                if watcher.active and self._served:
                    why = watcher.poll()
                    if why:
                        self._start_generation(why)
        except BaseException:
            # Never leave workers behind: they go before the socket files do.
            log.exception("the master failed; stopping its workers")
            self._fast = True
            self._stop_children()
            raise
        else:
            # New connections are refused from now on (each worker closes its
            # own copy as it stops), so the web server fails over at once.
            for listener in config.listeners:
                close_quietly(listener)
            code = self._stop_children() or self._exit_code
            if self._startup_error:
                print(f"wsgiwire: cannot load the application: {self._startup_error}",
                      file=sys.stderr, flush=True)
            return code
        finally:
            signal.set_wakeup_fd(old_wakeup)
            selector.close()
            for sock in (wake_r, wake_w, self._report_r, self._report_w):
                sock.close()

    def _handle_signals(self) -> None:
        signals, self._signals = self._signals, []
        reload = False
        for signum in signals:
            name = _signal_name(signum)
            if signum in (signal.SIGTERM, signal.SIGINT):
                log.info("%s: stopping gracefully (up to %g s)", name,
                         self.config.graceful_timeout)
                self._stop = True
            elif signum == signal.SIGQUIT:
                log.info("SIGQUIT: stopping now")
                self._stop = self._fast = True
            elif signum == signal.SIGHUP:
                reload = True  # several in one turn are one reload
            elif signum == signal.SIGUSR1:
                count = reopen_log_files()
                log.info("SIGUSR1: %d log file(s) reopened; telling the workers", count)
                self._signal_children(signal.SIGUSR1)
            elif signum == signal.SIGTTIN:
                if self.desired >= self.max_workers:
                    log.warning("SIGTTIN: already at the most workers (%d)", self.max_workers)
                else:
                    self.desired += 1
                    log.info("SIGTTIN: %d workers", self.desired)
            elif signum == signal.SIGTTOU:
                if self.desired <= 1:
                    log.warning("SIGTTOU: keeping the last worker")
                else:
                    self.desired -= 1
                    log.info("SIGTTOU: %d workers", self.desired)
            else:
                log.warning("%s ignored", name)
        if reload and not self._stop:
            self._start_generation("SIGHUP")

    # -- generations ------------------------------------------------------------
    def _start_generation(self, why: str) -> None:
        """Start loading a new generation (the first one when ``why`` is empty)."""
        if why:
            self._newest += 1
            replaced = self.pending
            if replaced is not None:
                self._retire(lambda c: c.generation == replaced, "replaced by a newer reload")
                log.info("reloading (%s): generation %d replaces generation %d, which was "
                         "still loading", why, self._newest, replaced)
            else:
                log.info("reloading (%s): generation %d starting; generation %d serves "
                         "until it is ready", why, self._newest, self.generation)
        self.pending = self._newest
        self._reconcile()

    def _check_ready(self) -> None:
        board = self._board()
        for child in self.children.values():
            if child.ready or child.retiring:
                continue
            info = board.read(child.slot)
            if info.pid == child.pid and info.state in (ACCEPTING, DRAINING):
                child.ready = True
                log.info("worker %d ready (generation %d)", child.pid, child.generation)
        pending = self.pending
        if pending is None:
            return
        members = self._members(pending)
        if len(members) < self.desired or not all(c.ready for c in members):
            return
        self.pending = None
        previous = self.generation
        self.generation = pending
        if not self._served:
            self._served = True
            self._announce()
            return
        old = self._retire(lambda c: c.generation != pending, "reload")
        log.info("reload finished: generation %d serves (%d workers); %d worker(s) of "
                 "generation %d drain", pending, len(members), old, previous)

    def _check_boot_timeout(self) -> None:
        """A worker still loading the app after ``boot_timeout`` (an import that hangs
        on a lock, a database, the network) fails its start like an exception would."""
        limit = self.config.boot_timeout
        if not limit:
            return
        now = time.monotonic()
        late = [c for c in self.children.values()
                if not c.ready and not c.retiring and now - c.started > limit]
        if not late:
            return
        error = (f"the application did not load within --boot-timeout {limit:g} s "
                 "(an import that hangs?)")
        pending = self.pending
        if pending is not None and any(c.generation == pending for c in late):
            for child in late:
                if child.generation == pending:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(child.pid, signal.SIGKILL)  # stuck: SIGTERM may never land
            self._generation_failed(pending, error)
        for child in late:
            if child.generation != pending:  # a replacement in the serving generation
                log.error("worker %d (generation %d): %s; killed", child.pid,
                          child.generation, error)
                child.retiring, child.retired_at = "boot timeout", now
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signal.SIGKILL)

    def _generation_failed(self, generation: int, error: str) -> None:
        self.pending = None
        self._retire(lambda c: c.generation == generation, "its generation failed")
        if not self._served:
            self._startup_error = error
            self._exit_code = STARTUP_FAILED
            self._stop = True
            return
        self.reload_failures += 1
        self.last_reload_error = error
        log.error("reload failed: %s; generation %d keeps serving", error, self.generation)

    def _members(self, generation: int) -> list[Child]:
        return [c for c in self.children.values()
                if c.generation == generation and not c.retiring]

    def _retire(self, which: Callable[[Child], bool], why: str) -> int:
        count = 0
        for child in self.children.values():
            if not child.retiring and which(child):
                child.retiring = why
                child.retired_at = time.monotonic()
                count += 1
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signal.SIGTERM)
        return count

    def _reconcile(self) -> None:
        """Start or retire workers until each generation has what it should."""
        now = time.monotonic()
        serving = self._members(self.generation) if self._served else []
        if self._served and len(serving) > self.desired:
            oldest = sorted(serving, key=lambda c: c.started)[: len(serving) - self.desired]
            extra = {c.pid for c in oldest}
            self._retire(lambda c: c.pid in extra, "one worker fewer (SIGTTOU)")
        elif self._served and len(serving) < self.desired and now >= self._respawn_at:
            for _ in range(self.desired - len(serving)):
                if self._spawn(self.generation) is None:
                    break
        pending = self.pending
        if pending is not None and (not self._fork_failing or now >= self._respawn_at):
            for _ in range(self.desired - len(self._members(pending))):
                if self._spawn(pending) is None:
                    break

    # -- workers ------------------------------------------------------------------
    def _board(self) -> Scoreboard:
        if self.board is None:
            raise RuntimeError("the scoreboard exists in prefork mode only")
        return self.board

    def _free_slot(self) -> int | None:
        used = {child.slot for child in self.children.values()}
        for slot in range(self._board().slots):
            if slot not in used:
                return slot
        return None

    def _spawn(self, generation: int) -> int | None:
        """Fork a worker of ``generation``; None (and try again later) when no slot is free."""
        board = self._board()
        slot = self._free_slot()
        if slot is None:
            if not self._slots_short:
                self._slots_short = True
                log.warning("all %d worker slots in use (workers still draining); the next "
                            "worker starts when one exits", board.slots)
            return None
        self._slots_short = False
        board.assign(slot, 0)
        # Signals stay blocked across fork() until the child has reset the master's
        # handlers: a SIGTERM that reaches it sooner kills it, instead of being
        # swallowed by a copy of the master's handler.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, (*_HANDLED, signal.SIGCHLD))
        try:
            pid = os.fork()
        except OSError as exc:  # EAGAIN (RLIMIT_NPROC), ENOMEM: try again later
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            board.free(slot)
            if not self._fork_failing:
                log.error("cannot start a worker: %s; trying again", exc.strerror)
            self._fork_failing = True
            self._respawn_at = time.monotonic() + 1.0
            return None
        except BaseException:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            raise
        if pid == 0:  # the worker
            code = 0
            try:
                code = self._worker_main(slot, generation, blocked)
            except BaseException:
                traceback.print_exc()
                code = 1
            finally:
                with contextlib.suppress(Exception):
                    sys.stdout.flush()
                    sys.stderr.flush()
                os._exit(code)
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        self._fork_failing = False
        board.assign(slot, pid)
        self.children[pid] = Child(pid, slot, generation, time.monotonic())
        return pid

    def _worker_main(self, slot: int, generation: int, mask: set[int | signal.Signals]) -> int:
        signal.set_wakeup_fd(-1)
        for signum in (*_HANDLED, signal.SIGCHLD):
            signal.signal(signum, signal.SIG_DFL)
        # SIGUSR1 while the app loads: nothing to reopen yet (its files are new).
        for signum in (signal.SIGHUP, signal.SIGUSR1, signal.SIGTTIN, signal.SIGTTOU,
                       *_IGNORED):
            signal.signal(signum, signal.SIG_IGN)
        # SIGQUIT (fast stop) ends a worker at once, even while it loads the app,
        # and never with a core dump.
        signal.signal(signal.SIGQUIT, _exit_now)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a pending SIGTERM ends it here
        set_process_name(f"wsgiwire w{slot + 1}")
        if self.config.stats_listener is not None:
            close_quietly(self.config.stats_listener)
        if self._report_r is not None:
            self._report_r.close()
        try:
            drop_privileges(self.config.user, self.config.group)
            # After the user change, which clears it. SIGTERM: an orphan drains
            # what is on its way (its requests in flight, over kept connections)
            # instead of cutting it, then exits (see Worker._check_master).
            die_with_parent(self._master_pid, signal.SIGTERM)
            worker = Worker(self.config, self.board, slot)
        except BaseException as exc:  # the app's import may raise anything
            log.debug("worker %d cannot load the application", os.getpid(), exc_info=True)
            self._report_boot_failure(describe_load_error(exc))
            return BOOT_FAILED
        _install_stop_handlers(worker.request_stop)
        signal.signal(signal.SIGUSR1, _reopen_in_thread)
        worker.serve()
        return 0

    def _report_boot_failure(self, message: str) -> None:
        data = f"{os.getpid()} {message}".encode("utf-8", "replace")[:_REPORT_SIZE]
        if self._report_w is not None:
            with contextlib.suppress(OSError):
                self._report_w.send(data)

    def _read_boot_reports(self) -> None:
        if self._report_r is None:
            return
        while True:
            try:
                data = self._report_r.recv(_REPORT_SIZE)
            except OSError:
                return
            pid, _, message = data.decode("utf-8", "replace").partition(" ")
            with contextlib.suppress(ValueError):
                self._boot_errors[int(pid)] = message

    def _reap(self) -> None:
        self._read_boot_reports()  # before the exits: a report is sent before its exit
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            child = self.children.pop(pid, None)
            if child is None:
                continue
            board = self._board()
            info = board.read(child.slot)
            served = info.requests
            if not child.ready and info.pid == child.pid and (
                    served or info.state in (ACCEPTING, DRAINING)):
                # It served before this loop turn saw it ready (a fast --max-requests
                # recycle): a worker that loaded the app, not a failed start.
                child.ready = True
            self.totals.absorb(board, child.slot)
            board.free(child.slot)
            self._exited(child, os.waitstatus_to_exitcode(status), served)

    def _exited(self, child: Child, code: int, served: int) -> None:
        pid, generation = child.pid, child.generation
        error = self._boot_errors.pop(pid, "")
        if code == BOOT_FAILED and not error:
            error = "the worker could not load the application"
        lived = time.monotonic() - child.started
        if child.retiring or self._stop:
            expected = (0, BOOT_FAILED, -signal.SIGTERM, -signal.SIGQUIT, -signal.SIGKILL)
            if code not in expected and not self._stop:
                log.warning("worker %d (generation %d) exited with %s while stopping (%s)",
                            pid, generation, _describe_status(code), child.retiring)
            else:
                # Quiet before the first generation served: a failed start is one line.
                log.log(logging.INFO if self._served else logging.DEBUG,
                        "worker %d (generation %d) exited (%s)", pid, generation,
                        child.retiring or "stopping")
            return
        if generation == self.pending and not child.ready:
            if not error:
                error = f"a worker died while loading the application ({_describe_status(code)})"
            self._generation_failed(generation, error)
            return
        # A worker of the serving generation: always replaced.
        if error:
            log.error("worker %d (generation %d) could not load the application: %s",
                      pid, generation, error)
        elif code == 0:
            log.info("worker %d (generation %d) exited after %d requests (max-requests); "
                     "replacing it", pid, generation, served)
        else:
            log.warning("worker %d died (%s) after %.1f s (generation %d); replacing it",
                        pid, _describe_status(code), lived, generation)
        self.respawns += 1
        # A clean exit (--max-requests) is a recycle, never a crash loop.
        if code != 0 and lived < _QUICK_DEATH:
            self._quick_deaths += 1
            delay = min(_BACKOFF_FIRST * 2 ** (self._quick_deaths - 1), _BACKOFF_MAX)
            self._respawn_at = time.monotonic() + delay
            if self._quick_deaths > 1:
                log.warning("workers die as fast as they start; waiting %.1f s before the "
                            "next one", delay)
        else:
            self._quick_deaths = 0
            self._respawn_at = 0.0

    def _kill_stragglers(self) -> None:
        """A worker told to stop that is still there well after the graceful timeout
        (an app that caught SIGTERM, a stuck C call) is killed, with a log line."""
        limit = self.config.graceful_timeout + _STRAGGLER_GRACE
        now = time.monotonic()
        for child in self.children.values():
            if child.retiring and child.retired_at and now - child.retired_at > limit:
                log.warning("worker %d (generation %d) still running %.0f s after it was "
                            "told to stop (%s); killed", child.pid, child.generation,
                            now - child.retired_at, child.retiring)
                child.retired_at = 0.0  # once
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signal.SIGKILL)

    def _signal_children(self, signum: int) -> None:
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

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

    # -- status page (adapters/_stats.py) ----------------------------------------
    def stats(self) -> dict[str, Any]:
        return status(self)

    def _serve_stats(self, listener: socket.socket | None) -> None:
        if listener is not None:
            serve_stats(self, listener)

    # -- stopping ---------------------------------------------------------------
    def _stop_children(self) -> int:
        fast = self._fast
        self._signal_children(signal.SIGQUIT if fast else signal.SIGTERM)
        wait = _FAST_STOP_WAIT if fast else self.config.graceful_timeout + 1.0
        deadline = time.monotonic() + wait
        while self.children and time.monotonic() < deadline:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid:
                self.children.pop(pid, None)
            else:
                if self._signals and signal.SIGQUIT in self._signals and not fast:
                    log.info("SIGQUIT: stopping now")
                    fast = True
                    self._signal_children(signal.SIGQUIT)
                    deadline = min(deadline, time.monotonic() + _FAST_STOP_WAIT)
                self._signals.clear()
                time.sleep(0.02)
        for pid, child in list(self.children.items()):
            label = ""
            if self.board is not None:
                info = self.board.read(child.slot)
                label = f" in {info.label}" if info.busy_since and info.label else ""
            log.warning("worker %d did not stop within %g s%s; killed",
                        pid, wait, label)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        self.children.clear()
        return 0


def _exit_now(signum: int, frame: object) -> None:
    os._exit(0)


def _reopen_in_thread(signum: int, frame: object) -> None:
    # Not in the handler itself: it may have interrupted a logging call that
    # holds a handler's lock. A thread waits for the lock like any writer.
    threading.Thread(target=reopen_log_files, name="wsgiwire-reopen", daemon=True).start()


def _install_stop_handlers(stop: Callable[[], None]) -> None:
    def handler(signum: int, frame: object) -> None:
        stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    with contextlib.suppress(AttributeError, ValueError):
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _describe_status(code: int) -> str:
    if code < 0:
        return f"signal {_signal_name(-code)}"
    return f"exit status {code}"
