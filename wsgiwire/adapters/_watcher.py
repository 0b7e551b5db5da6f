"""What starts a reload without a signal: ``--reload`` and ``--touch-reload FILE``.

* ``--reload`` (development): a ``.py`` file under the watched directories
  changed its modification time (hidden directories and ``__pycache__`` are
  skipped; at most ``SCAN_FILES`` files are looked at per scan).
* ``--touch-reload FILE`` (uWSGI's name): FILE's modification time changed,
  or it appeared or disappeared. ``touch FILE`` after a deploy reloads.

The master polls :meth:`Watcher.poll` from its loop; a scan only stats files.
The first scan (at construction) is the baseline, taken before any worker
imports the application, so an edit made while the workers boot is seen.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

__all__ = ["SCAN_FILES", "Watcher"]

SCAN_FILES = 5000
SCAN_INTERVAL = 1.0  # directories; touch files are checked on every poll


def _mtime(path: str) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


class Watcher:
    def __init__(self, directories: Sequence[str] = (), touch_files: Sequence[str] = ()) -> None:
        self.directories = list(directories)
        self.touch_files = list(touch_files)
        self._mtimes: dict[str, float] = {}
        self._touched = {path: _mtime(path) for path in self.touch_files}
        self._next_scan = time.monotonic() + SCAN_INTERVAL
        if self.directories:
            self._sources_changed()

    @property
    def active(self) -> bool:
        return bool(self.directories or self.touch_files)

    def poll(self) -> str | None:
        """Why a reload is due (a human-readable reason), or None."""
        for path in self.touch_files:
            mtime = _mtime(path)
            if mtime != self._touched[path]:
                self._touched[path] = mtime
                return f"{path} was touched"
        if self.directories and time.monotonic() >= self._next_scan:
            self._next_scan = time.monotonic() + SCAN_INTERVAL
            if self._sources_changed():
                return "a source file changed"
        return None

    def _sources_changed(self) -> bool:
        changed = False
        seen = 0
        for directory in self.directories:
            for root, dirs, files in os.walk(directory):
                dirs[:] = [d for d in dirs if not d.startswith(".") and d != "__pycache__"]
                for name in files:
                    if not name.endswith(".py"):
                        continue
                    seen += 1
                    if seen > SCAN_FILES:
                        return changed
                    path = os.path.join(root, name)
                    mtime = _mtime(path)
                    if mtime is None:
                        continue
                    if self._mtimes.setdefault(path, mtime) != mtime:
                        self._mtimes[path] = mtime
                        changed = True
        return changed
