"""The app behind test_flup_layout.py's flup-style scripts: who served the request, and when.

``.../slow`` takes 0.3 s, so two requests sent together show whether a server runs
them at the same time. Standard library only: mod_fcgid runs the scripts as www-data.
"""

import json
import os
import time


def app(environ, start_response):
    started = time.monotonic()
    if environ.get("PATH_INFO", "").endswith("/slow"):
        time.sleep(0.3)
    payload = json.dumps({
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "multithread": environ["wsgi.multithread"],
        "multiprocess": environ["wsgi.multiprocess"],
        "run_once": environ["wsgi.run_once"],
        "script_name": environ.get("SCRIPT_NAME", ""),
        "path_info": environ.get("PATH_INFO", ""),
        "started": started,
        "ended": time.monotonic(),
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(payload)))])
    return [payload]
