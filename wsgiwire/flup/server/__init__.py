"""flup 1.0's ``flup.server`` servers, one import away.

===================  ==========================================================
module               what ``WSGIServer(app).run()`` does
===================  ==========================================================
``fcgi``             FastCGI, one process, app threads (``maxThreads``); the
                     socket on fd 0 (mod_fcgid), ``bindAddress``, or one CGI request
``fcgi_fork``        FastCGI, prefork: ``maxChildren`` worker processes, each
                     recycled after ``maxRequests`` requests
``fcgi_single``      FastCGI, one process, one request at a time
``scgi``             SCGI, one process, app threads
``scgi_fork``        SCGI, prefork, as ``fcgi_fork``
``cgi``              one request over CGI (environment, stdin, stdout)
``ajp``, ``ajp_fork``  not supported: importing them raises ``ImportError``
===================  ==========================================================
"""

__all__: list[str] = []
