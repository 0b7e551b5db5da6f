"""The shared vocabulary: every event about one request carries its id through one base class."""

from __future__ import annotations

import typing

from wsgiwire import events
from wsgiwire.events import ConnectionClosed, RequestEvent


def test_every_request_event_shares_the_base_with_request_id() -> None:
    """A caller reads ``request_id`` from any event but ``ConnectionClosed``
    through ``RequestEvent``, without knowing which event it holds."""
    members = [*typing.get_args(events.Event), *typing.get_args(events.OutEvent)]
    assert len(members) == 11
    for kind in members:
        if kind is ConnectionClosed:
            assert not issubclass(kind, RequestEvent)
            continue
        assert issubclass(kind, RequestEvent), kind
        assert "request_id" not in kind.__slots__  # inherited, not restated
        args = {"params": []} if kind is events.RequestStarted else {}
        if "data" in kind.__slots__:
            args["data"] = b"x"
        event = kind(7, **args)
        assert event.request_id == 7
        assert repr(event).startswith(f"{kind.__name__}(request_id=7")
