"""Linux process attributes through ``prctl(2)``, by ctypes (no C extension needed).

* :func:`set_process_name`: the name ``ps``, ``top`` and ``pgrep`` show
  (``/proc/PID/comm``, at most 15 bytes), e.g. ``wsgiwire master``;
* :func:`die_with_parent`: ask the kernel to kill this process when its parent
  dies (``PR_SET_PDEATHSIG``), so a worker never outlives a master killed with
  ``kill -9`` or by the OOM killer.

Both do nothing (and say so by returning False) where prctl is not available.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
from typing import Any

__all__ = ["COMM_SIZE", "die_with_parent", "set_process_name"]

COMM_SIZE = 15  # TASK_COMM_LEN - 1

_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15

_libc: Any = None


def _prctl(option: int, arg: int | bytes) -> bool:
    global _libc
    if not sys.platform.startswith("linux"):
        return False
    if _libc is None:
        try:
            # The process's own symbols (dlopen(NULL)), libc's among them: no
            # ctypes.util.find_library, which imports subprocess, tempfile and
            # shutil into every worker and runs ``ldconfig -p`` at each start.
            _libc = ctypes.CDLL(None, use_errno=True)
        except OSError:
            _libc = False
    if not _libc:
        return False
    value: Any = ctypes.c_char_p(arg) if isinstance(arg, bytes) else ctypes.c_ulong(arg)
    try:
        result: int = _libc.prctl(option, value, ctypes.c_ulong(0), ctypes.c_ulong(0),
                                  ctypes.c_ulong(0))
    except (AttributeError, ctypes.ArgumentError):
        return False
    return result == 0


def set_process_name(name: str) -> bool:
    """Set this process's name (truncated to 15 bytes): prctl, else /proc/self/comm."""
    data = name.encode("ascii", "replace")[:COMM_SIZE]
    if _prctl(_PR_SET_NAME, data):
        return True
    with contextlib.suppress(OSError):
        with open("/proc/self/comm", "wb") as comm:
            comm.write(data)
        return True
    return False


def die_with_parent(parent: int, signum: int = signal.SIGKILL) -> bool:
    """Have the kernel send ``signum`` when the parent dies; False where unsupported.

    Call it after any change of user or group (the kernel clears the setting
    then). If ``parent`` is already gone (it died before the call), exit now.
    """
    armed = _prctl(_PR_SET_PDEATHSIG, signum)
    if os.getppid() != parent:
        os._exit(1)
    return armed
