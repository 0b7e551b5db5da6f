"""flup's module layout on wsgiwire: ``from flup.server.X import WSGIServer`` becomes
``from wsgiwire.flup.server.X import WSGIServer`` and keeps its meaning.

See :mod:`wsgiwire.flup.server` for the modules and what each maps to.
"""

__all__: list[str] = []
