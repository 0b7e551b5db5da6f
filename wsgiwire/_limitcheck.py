"""The per-request checks of :class:`~wsgiwire._limits.Limits`, compiled.

Every codec and the core's body buffer check sizes the peer controls against a
``Limits`` on every request. ``Limits`` itself stays interpreted (it is frozen
through ``__setattr__``, which compiled code does not support), and a method
call into it costs the compiled build an interpreted frame per check; these
functions read the one limit they need and compare natively. The ``Limits``
methods of the same names call them: this file is the one statement of the rule.

A limit is inclusive: ``size == limit`` is allowed. A refusal is
``LimitExceeded`` with the status a web server would answer: 413 for a body,
431 for the parameter block (as nginx answers a header too large).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._limits import Limits

__all__ = [
    "check_body_size",
    "check_name_length",
    "check_param_count",
    "check_params_bytes",
    "check_value_length",
]


def check_body_size(limits: Limits, size: int, request_id: int | None = None) -> int:
    """``size`` if a request body (declared, or received so far) of that many
    bytes is allowed; else ``LimitExceeded`` (413)."""
    return _within(size, limits.max_body_size, "max_body_size", 413, request_id)


def check_params_bytes(limits: Limits, size: int, request_id: int | None = None) -> int:
    """``size`` if a parameter block of that many bytes (so far) is allowed."""
    return _within(size, limits.max_params_bytes, "max_params_bytes", 431, request_id)


def check_param_count(limits: Limits, count: int, request_id: int | None = None) -> int:
    """``count`` if that many name-value pairs are allowed."""
    return _within(count, limits.max_param_count, "max_param_count", 431, request_id)


def check_name_length(limits: Limits, length: int, request_id: int | None = None) -> int:
    """``length`` if a parameter name that long is allowed."""
    return _within(length, limits.max_name_length, "max_name_length", 431, request_id)


def check_value_length(limits: Limits, length: int, request_id: int | None = None) -> int:
    """``length`` if a parameter value that long is allowed."""
    return _within(length, limits.max_value_length, "max_value_length", 431, request_id)


def _within(size: int, limit: int, name: str, status: int, request_id: int | None) -> int:
    """``size`` if it is at most ``limit`` (inclusive); else the refusal, ``status``."""
    if size <= limit:
        return size
    raise _exceeded(name, size, limit, status, request_id)


def _exceeded(
    name: str, size: int, limit: int, status: int, request_id: int | None
) -> Exception:
    """The ``LimitExceeded`` for ``size`` over ``limit`` (the limit ``name``)."""
    from ._errors import LimitExceeded  # only on refusal: CGI imports this module

    return LimitExceeded(name, size, limit, status_hint=status, request_id=request_id)
