"""The server runtime shared by every socket protocol: one import for front-ends.

One connection loop serves FastCGI, SCGI and uwsgi alike:
``recv -> codec -> core -> app -> core -> codec -> send``. A protocol only
supplies a :class:`ProtocolDriver` (its name and its codec; the codec owns the
protocol's facts: head style, one request per connection, raw body).

* ``base``: the contract: :class:`Codec`, :class:`ProtocolDriver`,
  :class:`ServerConfig`;
* ``connection``: one accepted socket, its requests and replies;
* ``worker``: one process's event loop over a ``poller`` (epoll on Linux,
  ``poll()`` elsewhere; never ``select()``, so descriptors above 1024 work),
  with the app called inline (the fast path) or on a bounded thread pool;
* ``poller``: readiness without per-call objects; a listening socket wakes
  every worker polling it, and each asks whether a connection still waits
  before it accepts;
* ``master``: prefork workers, signals, graceful stop and reload, the request
  watchdog and the status page;
* ``scoreboard``: what the workers are doing, in shared memory.

An idle kept-alive connection costs a socket and a codec, never a thread.
"""

from __future__ import annotations

from ._base import Buffer, Codec, ProtocolDriver, ServerConfig, refusal, status_reply
from ._master import BOOT_FAILED, Server, drop_privileges
from ._scoreboard import Scoreboard
from ._worker import Worker

__all__ = [
    "BOOT_FAILED",
    "Buffer",
    "Codec",
    "ProtocolDriver",
    "Scoreboard",
    "Server",
    "ServerConfig",
    "Worker",
    "drop_privileges",
    "refusal",
    "status_reply",
]
