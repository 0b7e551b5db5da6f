"""README section 3 as written: ``app.cgi`` and its ``.htaccess`` under real Apache mod_cgi.

The ``.htaccess`` is taken from README.md itself (the block after ``# .htaccess`` in
section 3), so the documented file is the tested one. Apache's rewrite makes
SCRIPT_NAME ``/app.cgi``; ``ScriptNameStripper`` must give the app SCRIPT_NAME ``""``
and the public path, so URLs the app builds carry no ``app.cgi``.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from .servers import CONFIG_ROOT, REPO_ROOT, ApacheServer, Stage, world_readable_tempdir

pytestmark = pytest.mark.integration

SCRIPT = """#!{python}
import json, sys
sys.path.insert(0, {stage!r})
from wsgiwire.adapters.cgi import run
from wsgiwire.middleware import ScriptNameStripper

def app(environ, start_response):
    body = json.dumps({{
        "script_name": environ["SCRIPT_NAME"],
        "path_info": environ["PATH_INFO"],
        "query": environ["QUERY_STRING"],
        "link": environ["SCRIPT_NAME"] + "/login",  # what url_for would build
    }}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]

run(ScriptNameStripper(app))
"""


def readme_htaccess() -> str:
    text = (REPO_ROOT / "README.md").read_text()
    section = text[text.index("### 3. A `.cgi` on shared hosting"):]
    match = re.search(r"```apache\n# \.htaccess\n(.*?)```", section, re.DOTALL)
    assert match is not None, "README section 3 has no .htaccess block"
    return match.group(1)


def config(doc_root: Path) -> Path:
    """Apache with mod_cgi and mod_rewrite, the document root open to .htaccess
    (the tested cgi-root.conf with its ScriptAlias replaced by that)."""
    lines = (CONFIG_ROOT / "apache" / "cgi-root.conf").read_text().splitlines(keepends=True)
    text = "".join(line for line in lines if not line.startswith("#"))
    text = text.replace(
        "LoadModule cgi_module {{MODULES_DIR}}/mod_cgi.so",
        "LoadModule cgi_module {{MODULES_DIR}}/mod_cgi.so\n"
        "LoadModule rewrite_module {{MODULES_DIR}}/mod_rewrite.so",
    )
    start = text.index('ScriptAlias / "{{SCRIPT}}/"')
    text = text[:start] + (
        '<Directory "{{DOC_ROOT}}">\n    AllowOverride All\n    Require all granted\n'
        "</Directory>\n"
    )
    path = doc_root.parent / "cgi-htaccess.conf"
    path.write_text(text)
    return path


@pytest.fixture
def site(stage: Stage) -> Iterator[Path]:
    root = world_readable_tempdir("wsgiwire-cgi-htaccess-")
    try:
        doc_root = root / "htdocs"
        doc_root.mkdir()
        doc_root.chmod(0o755)
        script = doc_root / "app.cgi"
        script.write_text(SCRIPT.format(python=stage.python, stage=str(stage.root)))
        script.chmod(0o755)
        (doc_root / ".htaccess").write_text(readme_htaccess())
        (doc_root / "style.css").write_text("body{}")
        yield doc_root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_readme_cgi_htaccess_and_script_name_stripper(site: Path) -> None:
    with ApacheServer(config(site), doc_root=site) as apache:
        status, _, body = apache.request("GET", "/blog/post%201?page=2")
        assert status == 200, (body[:500], apache.error_log_text())
        seen = json.loads(body)
        assert (seen["script_name"], seen["path_info"]) == ("", "/blog/post 1")
        assert seen["query"] == "page=2"
        assert seen["link"] == "/login"  # not /app.cgi/login
        status, _, body = apache.request("GET", "/style.css")  # a real file is served as is
        assert (status, body) == (200, b"body{}")
