"""What flup's prefork servers (``fcgi_fork``, ``scgi_fork``) share: their pool arguments.

flup grows and shrinks its pool between ``minSpare`` and ``maxSpare`` idle children,
up to ``maxChildren``. wsgiwire runs a fixed pool under a master instead (a worker
that dies or is recycled is replaced within a second): ``maxChildren`` workers when
the script names it, else ``maxSpare`` (flup's default 5); never fewer than
``minSpare`` unless ``maxChildren`` says so. ``maxRequests`` recycles a worker after
that many requests (0: never), as flup does with its children. ``timeout`` (flup's
per-request alarm) becomes the request timeout: the worker running a longer request
is killed and replaced.
"""

from __future__ import annotations

from typing import Any

from ..._limits import Limits

__all__ = ["pool_size", "take_pool_arguments"]

FLUP_MIN_SPARE = 1
FLUP_MAX_SPARE = 5
FLUP_MAX_CHILDREN = 50


def pool_size(kw: dict[str, Any]) -> int:
    """The fixed number of workers for flup's pool arguments in ``kw``."""
    min_spare = int(kw.get("minSpare", FLUP_MIN_SPARE))
    max_spare = int(kw.get("maxSpare", FLUP_MAX_SPARE))
    for name, value in (("minSpare", min_spare), ("maxSpare", max_spare)):
        if value < 0:
            raise ValueError(f"{name} must be >= 0, not {value}")
    if "maxChildren" in kw:
        size = int(kw["maxChildren"])
        if size < 1:
            raise ValueError(f"maxChildren must be >= 1, not {size}")
        return size
    return max(1, min(max(min_spare, max_spare), FLUP_MAX_CHILDREN))


def take_pool_arguments(
    kw: dict[str, Any], timeout: float | None, limits: Limits
) -> tuple[int, int, Limits]:
    """(workers, max_requests, limits) from flup's prefork arguments, removed from ``kw``."""
    workers = pool_size(kw)
    max_requests = int(kw.pop("maxRequests", 0) or 0)
    if max_requests < 0:
        raise ValueError(f"maxRequests must be >= 0, not {max_requests}")
    for name in ("minSpare", "maxSpare", "maxChildren"):
        kw.pop(name, None)
    if timeout:
        limits = limits.replace(request_timeout=float(timeout))
    return workers, max_requests, limits
