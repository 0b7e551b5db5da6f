"""``flup.server.ajp_base``: AJP is not supported by wsgiwire.

Importing this module raises :class:`ImportError` saying so. Apache reaches a
Python app over FastCGI (``mod_proxy_fcgi``, ``mod_fcgid``), SCGI
(``mod_proxy_scgi``) or uwsgi (``mod_proxy_uwsgi``) instead: use
``wsgiwire.flup.server.fcgi`` (or ``fcgi_fork``) and ``ProxyPass ... fcgi://``.
"""

__all__: list[str] = []

raise ImportError(
    "AJP is not supported by wsgiwire (wsgiwire.flup.server.ajp_base): serve the app over "
    "FastCGI with wsgiwire.flup.server.fcgi or fcgi_fork and point Apache at it with "
    "mod_proxy_fcgi (ProxyPass / fcgi://127.0.0.1:PORT/) instead of mod_proxy_ajp"
)
