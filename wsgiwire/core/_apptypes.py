"""The WSGI application's type, for annotations (re-exported by ``core._gateway``).

A module of its own, kept out of the compiled build's module list (setup.py):
mypyc compiles only the ``if TYPE_CHECKING`` branch of a module (it type-checks
as mypy does), so in a compiled ``gateway`` the run-time ``else`` below would
not exist and every ``from .core.gateway import WSGIApp`` would fail.
"""

from __future__ import annotations

# typing and collections.abc cost a CGI start-up about 9 ms: annotations only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any, Protocol

    StartResponse = Callable[..., Callable[[bytes], None]]

    class WSGIApp(Protocol):
        def __call__(
            self, environ: dict[str, Any], start_response: StartResponse, /
        ) -> Iterable[bytes]: ...

else:
    # Names other modules import: at run time they only ever annotate.
    StartResponse = WSGIApp = object
