"""Importing by today's module names from an older checkout (``--base DIR``).

The internal modules were renamed with a leading underscore (``wsgiwire.events`` ->
``wsgiwire._events``); a benchmark measuring an older checkout asks for the new name
and gets the old one where that checkout has it.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any


def wsgiwire_module(name: str) -> Any:
    """``wsgiwire.X._name``, or ``wsgiwire.X.name`` in a checkout from before the rename.

    Decided by the files of the ``wsgiwire`` package imported, never by trying the
    import: a name missing from the older checkout could fall through to another
    checkout's editable install and mix two versions' classes in one process.
    """
    import wsgiwire

    *parents, last = name.split(".")[1:]
    package = Path(wsgiwire.__file__).parent.joinpath(*parents)
    if not (package / f"{last}.py").exists() and not (package / last).is_dir():
        name = ".".join(["wsgiwire", *(p.lstrip("_") for p in parents), last.lstrip("_")])
    return importlib.import_module(name)
