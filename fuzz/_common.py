"""What every fuzz harness checks, with one invariant (h11's ``fuzz/afl-server.py`` shape).

Any bytes fed to a codec give events or ``RemoteProtocolError``, never another
exception and never a hang:

* ``next_event()`` returns ``NEED_DATA`` (or ``ConnectionClosed``) within a
  bounded number of calls after each piece of input;
* every ``RequestStarted`` goes through the core translator
  (``EnvironBuilder.build``), which may refuse with ``BadRequest`` (a
  ``RemoteProtocolError``) and nothing else, and gives latin-1 ``str`` keys
  and values only;
* each request the codec completes is answered (``ResponseData`` +
  ``ResponseEnd``), which must not raise;
* feeding the input in one piece or one byte at a time gives the same events
  (body chunks merged) and the same verdict (error or not).

Both the atheris harnesses (``fuzz_<codec>.py``) and the fallback loop of
``smoke.py`` call :func:`check`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from wsgiwire._errors import RemoteProtocolError
from wsgiwire._events import (
    NEED_DATA,
    BodyData,
    BodyEnd,
    ConnectionClosed,
    FilterData,
    RequestAborted,
    RequestStarted,
    ResponseData,
    ResponseEnd,
)
from wsgiwire._limits import Limits
from wsgiwire.core._environ import EnvironBuilder
from wsgiwire.protocols._fastcgi import FastCGIConnection
from wsgiwire.protocols._scgi import SCGIConnection
from wsgiwire.protocols._uwsgi import UWSGIConnection

__all__ = ["CODECS", "Finding", "check", "seeds"]

FUZZ_DIR = Path(__file__).resolve().parent
REPO = FUZZ_DIR.parent

# Small limits, so random input reaches every limit check, not just the framing.
LIMITS = Limits(
    max_params_bytes=4096,
    max_param_count=32,
    max_name_length=256,
    max_value_length=1024,
    max_body_size=8192,
    spool_threshold=1024,
    max_requests_per_connection=4,
)

CODECS: dict[str, Callable[[], Any]] = {
    "fastcgi": lambda: FastCGIConnection(LIMITS),
    "scgi": lambda: SCGIConnection(LIMITS),
    "uwsgi": lambda: UWSGIConnection(LIMITS, trust_uwsgi_scheme=True),
}

# Bound on next_event() calls after one piece of input: more means a loop.
MAX_CALLS = 10_000

_BUILDER = EnvironBuilder()


class Finding(Exception):
    """The invariant broke (other exceptions escaping the codec are findings too)."""


def _translate(event: RequestStarted) -> None:
    try:
        environ, _ = _BUILDER.build_from_strings(
            event.params, script_name_in_path_info=event.script_name_in_path_info
        )
    except RemoteProtocolError:
        return
    for key, value in environ.items():
        if type(key) is not str:
            raise Finding(f"environ key {key!r} is not a str")
        if not key.startswith("wsgi.") and type(value) is not str:
            raise Finding(f"environ[{key!r}] = {value!r} is not a str")
        if type(value) is str and not key.startswith("wsgi."):
            value.encode("latin-1")  # UnicodeEncodeError would be a finding


def run(protocol: str, chunks: Iterable[bytes]) -> tuple[list[tuple[Any, ...]], bool]:
    """Feed ``chunks`` then EOF; the normalized events and whether it ended in an error."""
    codec = CODECS[protocol]()
    events: list[tuple[Any, ...]] = []

    def add(kind: str, rid: int, data: bytes = b"") -> None:
        if events and kind in ("body", "data") and events[-1][:2] == (kind, rid):
            events[-1] = (kind, rid, events[-1][2] + data)
        else:
            events.append((kind, rid, data))

    try:
        for chunk in [*chunks, b""]:
            codec.receive_data(chunk)
            for _ in range(MAX_CALLS):
                event = codec.next_event()
                if event is NEED_DATA or type(event) is ConnectionClosed:
                    break
                kind = type(event)
                if kind is RequestStarted:
                    _translate(event)
                    events.append(("start", event.request_id, tuple(event.params),
                                   event.keep_conn, int(event.role),
                                   event.script_name_in_path_info))
                elif kind is BodyData:
                    add("body", event.request_id, event.data)
                elif kind is FilterData:
                    add("data", event.request_id, event.data)
                elif kind is BodyEnd or kind is RequestAborted:
                    events.append((kind.__name__, event.request_id))
                    codec.send(ResponseData(event.request_id, b"Status: 200 OK\r\n\r\nok"))
                    codec.send(ResponseEnd(event.request_id))
                else:
                    events.append((kind.__name__, event.request_id))
            else:
                raise Finding(f"next_event() did not return NEED_DATA in {MAX_CALLS} calls")
            if type(event) is ConnectionClosed:
                events.append(("closed",))
                break
            codec.data_to_send()
    except RemoteProtocolError:
        return events, True
    return events, False


def check(protocol: str, data: bytes) -> None:
    """The invariant for one input: raises :class:`Finding` (or whatever escaped)."""
    whole = run(protocol, [data] if data else [])
    bytewise = run(protocol, [data[i : i + 1] for i in range(len(data))])
    if whole != bytewise:
        raise Finding(
            f"{protocol}: one piece and one byte at a time disagree:\n"
            f"  whole:    {whole!r:.600}\n  bytewise: {bytewise!r:.600}"
        )


def seeds(protocol: str) -> list[bytes]:
    """Valid requests and the hostile catalogue's inputs for ``protocol``."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from tests.hostile.catalogue import CASES  # the catalogue doubles as a corpus

    out = [case.data for case in CASES if case.protocol == protocol and case.data]
    # Keep the seeds short: libFuzzer's default -max_len is 4096.
    return sorted({data[:4096] for data in out}, key=len)
