"""``Limits``: a plain frozen class (not a dataclass, for CGI start-up) that still acts
like the frozen dataclass it was: keyword construction, validation, equality, hashing,
``replace``, ``repr``, copy and pickle."""

from __future__ import annotations

import copy
import pickle

import pytest

from wsgiwire._errors import LimitExceeded
from wsgiwire._limits import DEFAULT_LIMITS, MAX_BODY_SIZE, Limits


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


def test_the_constructor_and_replace_validate_alike() -> None:
    with pytest.raises(ValueError, match="must be positive"):
        Limits(max_body_size=0)
    with pytest.raises(ValueError, match="cannot exceed max_params_bytes"):
        Limits(max_params_bytes=100, max_name_length=101)
    with pytest.raises(ValueError, match="cannot exceed max_params_bytes"):
        DEFAULT_LIMITS.replace(max_params_bytes=100)  # below the name and value limits


@pytest.mark.parametrize(
    ("check", "field", "status"),
    [
        ("check_params_bytes", "max_params_bytes", 431),
        ("check_param_count", "max_param_count", 431),
        ("check_name_length", "max_name_length", 431),
        ("check_value_length", "max_value_length", 431),
        ("check_body_size", "max_body_size", 413),
    ],
)
def test_each_check_states_its_limit_inclusively(check: str, field: str, status: int) -> None:
    """Each peer-controlled size has one check, which every codec calls: the
    limit itself passes (returned, for chaining), one more is ``LimitExceeded``
    naming the limit, with its status and the request id given."""
    limits = Limits(max_params_bytes=1000, max_param_count=7, max_name_length=50,
                    max_value_length=60, max_body_size=70)
    limit = getattr(limits, field)
    checked = getattr(limits, check)
    assert checked(limit) == limit and checked(0, 3) == 0
    with pytest.raises(LimitExceeded) as caught:
        checked(limit + 1, 3)
    error = caught.value
    assert (error.limit, error.value, error.maximum) == (field, limit + 1, limit)
    assert (error.status_hint, error.request_id) == (status, 3)
