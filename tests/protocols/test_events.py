"""The shared vocabulary: every event about one request carries its id through one base class."""

from __future__ import annotations

import dataclasses
import typing

from wsgiwire import _events as events
from wsgiwire._events import ConnectionClosed, RequestEvent


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
        # Inherited, not restated (the pure build's classes have __slots__; a
        # compiled build's native classes have none, and the pure run checks it).
        assert "request_id" not in getattr(kind, "__slots__", ())
        names = {f.name for f in dataclasses.fields(kind)}
        assert "request_id" in names
        args = {"params": []} if kind is events.RequestStarted else {}
        if "data" in names:
            args["data"] = b"x"
        event = kind(7, **args)
        assert event.request_id == 7
        assert repr(event).startswith(f"{kind.__name__}(request_id=7")
