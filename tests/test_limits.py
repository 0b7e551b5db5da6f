"""``Limits``: a plain frozen class (not a dataclass, for CGI start-up) that still acts
like the frozen dataclass it was: keyword construction, validation, equality, hashing,
``replace``, ``repr``, copy and pickle."""

from __future__ import annotations

import copy
import pickle

import pytest

from wsgiwire.limits import DEFAULT_LIMITS, MAX_BODY_SIZE, Limits


def test_defaults_equality_and_hash() -> None:
    assert Limits() == DEFAULT_LIMITS and hash(Limits()) == hash(DEFAULT_LIMITS)
    assert DEFAULT_LIMITS.max_body_size == MAX_BODY_SIZE
    assert DEFAULT_LIMITS.request_timeout is None
    assert Limits(max_body_size=10) != DEFAULT_LIMITS
    assert len({Limits(), Limits(), Limits(max_body_size=10)}) == 2
    assert repr(Limits(max_body_size=10)).startswith("Limits(max_params_bytes=65536, ")
    assert "max_body_size=10," in repr(Limits(max_body_size=10))


def test_frozen() -> None:
    limits = Limits()
    with pytest.raises(AttributeError, match="frozen"):
        limits.max_body_size = 1  # type: ignore[misc]
    with pytest.raises(AttributeError, match="frozen"):
        del limits.max_body_size  # type: ignore[misc]
    with pytest.raises(AttributeError):
        limits.other = 1  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"max_body_size": 0}, ValueError, "must be positive"),
        ({"header_timeout": -1.0}, ValueError, "must be positive"),
        ({"max_body_size": 1.5}, TypeError, "must be an integer"),
        ({"max_body_size": True}, TypeError, "must be a number"),
        ({"write_timeout": "1"}, TypeError, "must be a number"),
        ({"max_name_length": 70000}, ValueError, "cannot exceed max_params_bytes"),
        ({"max_value_length": 70000}, ValueError, "cannot exceed max_params_bytes"),
        ({"nonsense": 1}, TypeError, "nonsense"),
    ],
)
def test_validation(changes: dict[str, object], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        DEFAULT_LIMITS.replace(**changes)  # type: ignore[arg-type]


def test_replace_copy_and_pickle() -> None:
    changed = DEFAULT_LIMITS.replace(request_timeout=5, header_timeout=2.5)
    assert (changed.request_timeout, changed.header_timeout) == (5, 2.5)
    assert DEFAULT_LIMITS.request_timeout is None  # the original is untouched
    assert changed.replace(request_timeout=None).request_timeout is None
    assert copy.copy(changed) == changed and copy.deepcopy(changed) == changed
    assert pickle.loads(pickle.dumps(changed)) == changed
    with pytest.raises(TypeError):
        Limits(65536)  # type: ignore[misc]  # keyword arguments only
