"""The project README's "What we defend against" table is the catalogue's own count."""

from __future__ import annotations

from pathlib import Path

from tests.hostile.table import render

README = Path(__file__).resolve().parents[2] / "README.md"


def test_project_readme_counts_the_catalogue() -> None:
    rows = [line for line in render().splitlines() if "xfail" not in line]
    text = README.read_text(encoding="utf-8")
    section = text.split("## What we defend against", 1)[1].split("\n## ", 1)[0]
    table = [line for line in section.splitlines() if line.startswith("|")]
    assert table == rows, "update README.md's table from `python -m tests.hostile.table`"
