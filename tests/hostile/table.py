"""Print the catalogue's case counts by protocol x class, as the README's Markdown table.

    python -m tests.hostile.table            # print it
    python -m tests.hostile.table --update   # rewrite the README's copy

``test_catalogue`` checks that ``tests/hostile/README.md`` holds exactly this
output between its ``table`` markers, so the table cannot rot.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from .catalogue import CASES, CLASSES

PROTOCOLS = ("fastcgi", "scgi", "uwsgi")
README = Path(__file__).resolve().parent / "README.md"
TABLE_START = "<!-- table:start (python -m tests.hostile.table) -->"
TABLE_END = "<!-- table:end -->"


def render() -> str:
    counts = Counter((case.protocol, case.cls) for case in CASES)
    xfails = Counter(case.protocol for case in CASES if case.xfail)
    lines = [
        "| class | " + " | ".join(PROTOCOLS) + " | all |",
        "|---|" + "---:|" * (len(PROTOCOLS) + 1),
    ]
    for cls in CLASSES:
        row = [counts[protocol, cls] for protocol in PROTOCOLS]
        lines.append(f"| {cls} | " + " | ".join(map(str, row)) + f" | {sum(row)} |")
    totals = [sum(counts[protocol, cls] for cls in CLASSES) for protocol in PROTOCOLS]
    lines.append("| **all** | " + " | ".join(f"**{n}**" for n in totals)
                 + f" | **{sum(totals)}** |")
    lines.append("| of which xfail (bugs) | " + " | ".join(str(xfails[p]) for p in PROTOCOLS)
                 + f" | {sum(xfails.values())} |")
    bugs = [case for case in CASES if case.xfail]
    if bugs:
        lines += ["", "Cases marked xfail (each shows a bug; the reason in `catalogue.py` "
                  "names the file and the fix):", ""]
        for case in bugs:
            where, what = (case.xfail or "").split(" ", 2)[:2]
            lines.append(f"- `{case.name}`: `{where}` {what.rstrip(':')}")
    return "\n".join(lines)


def update_readme() -> None:
    text = README.read_text(encoding="utf-8")
    head, rest = text.split(TABLE_START, 1)
    _, tail = rest.split(TABLE_END, 1)
    README.write_text(f"{head}{TABLE_START}\n{render()}\n{TABLE_END}{tail}", encoding="utf-8")


def main() -> None:
    if "--update" in sys.argv[1:]:
        update_readme()
    else:
        print(render())


if __name__ == "__main__":
    main()
