"""wsgiwire: run WSGI applications behind web servers over CGI, FastCGI, SCGI and uwsgi."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
