"""Real web-server parameters, captured once and kept here so the tests stand alone.

Each ``<server>-<protocol>-<mount>.json`` is one deployment setup recorded on
Debian 12 (nginx 1.22.1, Apache httpd 2.4 with mod_proxy_fcgi/scgi/uwsgi,
mod_fcgid, mod_cgi/mod_cgid, mod_authnz_fcgi; lighttpd 1.4.69), reduced to what
the tests need:

* per setup: ``server``, ``protocol``, ``mount`` and ``mount_path``;
* per request: the HTTP request that was sent (``method``, ``url``, ``headers``,
  ``body_len``), the ``status`` the client got, and ``exchanges``: what reached
  the backend, in order. ``params`` is the ordered list of (name, value) pairs
  exactly as the server sent them, duplicates kept, each a latin-1 string of the
  raw bytes; ``role`` (FastCGI) and ``modifier1`` (uwsgi) when the wire had them.
  A FastCGI AUTHORIZER request has two exchanges (the authorizer, then the
  responder). ``source`` is ``"wire"`` for protocol captures, ``"cgi-environ"``
  for CGI (only the environment the script saw, no order or duplicates), and
  ``null`` when the server answered by itself and nothing reached the backend.

``{http_port}``, ``{run}`` and similar placeholders stand for values of the
recording machine; they are opaque strings to the translator.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CORPUS_DIR", "Exchange", "Request", "Setup", "load_setups", "exchanges"]

CORPUS_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Exchange:
    params: list[tuple[str, str]]
    role: str | None = None
    modifier1: int | None = None

    def params_bytes(self) -> list[tuple[bytes, bytes]]:
        """The pairs as the bytes a codec would hand to the translator."""
        return [(n.encode("latin-1"), v.encode("latin-1")) for n, v in self.params]

    def values(self, name: str) -> list[str]:
        """Every value the server sent for ``name``, in order."""
        return [v for n, v in self.params if n == name]

    def last(self, name: str) -> str | None:
        found = self.values(name)
        return found[-1] if found else None


@dataclass(frozen=True)
class Request:
    name: str
    method: str
    url: str | None
    headers: list[str] | None
    body_len: int | None
    status: int
    source: str | None
    exchanges: list[Exchange]


@dataclass(frozen=True)
class Setup:
    setup: str
    server: str
    protocol: str
    mount: str
    mount_path: str
    description: str
    requests: dict[str, Request]


def _request(name: str, raw: dict[str, Any]) -> Request:
    return Request(
        name=name,
        method=raw["method"],
        url=raw["url"],
        headers=raw["headers"],
        body_len=raw["body_len"],
        status=raw["status"],
        source=raw["source"],
        exchanges=[
            Exchange(
                params=[(n, v) for n, v in ex["params"]],
                role=ex.get("role"),
                modifier1=ex.get("modifier1"),
            )
            for ex in raw["exchanges"]
        ],
    )


def load_setups() -> list[Setup]:
    """Every setup in this folder, sorted by name."""
    setups = []
    for path in sorted(CORPUS_DIR.glob("*.json")):
        raw = json.loads(path.read_text(encoding="ascii"))
        setups.append(
            Setup(
                setup=raw["setup"],
                server=raw["server"],
                protocol=raw["protocol"],
                mount=raw["mount"],
                mount_path=raw["mount_path"],
                description=raw["description"],
                requests={n: _request(n, r) for n, r in raw["requests"].items()},
            )
        )
    return setups


def exchanges() -> list[tuple[str, Setup, Request, Exchange]]:
    """(id, setup, request, exchange) for everything that reached a backend.

    The id is ``setup/request`` (``setup/request#2`` for a second exchange).
    """
    cases = []
    for setup in load_setups():
        for request in setup.requests.values():
            for index, exchange in enumerate(request.exchanges):
                suffix = f"#{index + 1}" if index else ""
                cases.append((f"{setup.setup}/{request.name}{suffix}", setup, request, exchange))
    return cases
