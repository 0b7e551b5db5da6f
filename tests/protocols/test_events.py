"""The shared vocabulary: every event about one request carries its id through one base class."""

from __future__ import annotations

import dataclasses
import enum
import importlib.machinery
import importlib.util
import inspect
import sys
import types
import typing
from pathlib import Path

import wsgiwire
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


# Two values for each field of the events, by name (a compiled build checks the types).
_SAMPLES: dict[str, list[object]] = {
    "request_id": [7, 8],
    "params": [[("A", "b")], [("C", "d")]],
    "keep_conn": [False, True],
    "role": [events.Role.RESPONDER, events.Role.FILTER],
    "script_name_in_path_info": [False, True],
    "content_length": [7, 8],
    "data": [b"x", b"y"],
    "app_status": [0, 1],
    "reply": [b"", b"z"],
    "fcgi_protocol_status": [None, 1],
}


def _other(field: dataclasses.Field[object], value: object) -> object:
    """A value for ``field`` that is not ``value``."""
    return next(sample for sample in _SAMPLES[field.name] if sample != value)


def _init_parameters(kind: type) -> list[inspect.Parameter]:
    """``kind.__init__``'s parameters after ``self``, as its source declares them (a
    compiled build's native ``__init__`` shows only ``*args, **kwargs``: the source's
    signature is read from the same ``.py`` file, run interpreted)."""
    parameters = list(inspect.signature(kind.__init__).parameters.values())[1:]
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters):
        source = getattr(_interpreted_events(), kind.__name__)
        parameters = [
            # An enum default is the interpreted module's member: take the loaded one.
            p.replace(default=getattr(events, type(p.default).__name__)[p.default.name])
            if isinstance(p.default, enum.Enum) else p
            for p in list(inspect.signature(source.__init__).parameters.values())[1:]
        ]
    return parameters


# Beside the package's (interpreted) __init__: a compiled module's own __file__ may
# name another directory.
_EVENTS_SOURCE = Path(wsgiwire.__file__).parent / "_events.py"


def _interpreted_events() -> types.ModuleType:
    """``wsgiwire/_events.py`` run interpreted, whichever build is loaded."""
    name = "wsgiwire._events_source"
    spec = importlib.util.spec_from_loader(
        name, importlib.machinery.SourceFileLoader(name, str(_EVENTS_SOURCE)))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses looks the module up while decorating
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    return module


def test_written_out_inits_take_the_fields_in_order_and_set_each() -> None:
    """Events spell out ``__init__`` (``init=False``, for the compiled build's
    sake): each takes exactly its dataclass fields, in order (positionally too),
    and sets every one, as the generated ``__init__`` would; the signature's
    defaults are the events' only defaults."""
    members = [*typing.get_args(events.Event), *typing.get_args(events.OutEvent)]
    written = [kind for kind in members
               if kind is not ConnectionClosed and not kind.__dataclass_params__.init]
    assert {kind.__name__ for kind in written} >= {
        "RequestStarted", "BodyData", "BodyEnd", "ResponseData", "ResponseEnd"
    }
    for kind in written:
        fields = dataclasses.fields(kind)
        parameters = _init_parameters(kind)
        assert [p.name for p in parameters] == [f.name for f in fields], kind
        required = {p.name: _SAMPLES[p.name][0] for p in parameters
                    if p.default is inspect.Parameter.empty}
        base = {p.name: required.get(p.name, p.default) for p in parameters}
        event = kind(**required)
        for field in fields:
            assert getattr(event, field.name) == base[field.name], (kind, field.name)
        for changed in fields:
            values = {**base, changed.name: _other(changed, base[changed.name])}
            event = kind(*values.values())
            assert event == kind(**values), (kind, changed.name)
            for field in fields:
                assert getattr(event, field.name) == values[field.name], (kind, field.name)
