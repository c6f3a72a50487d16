"""Scope→route maps: which ATH scope a method + path needs (PROTOCOL.md §7, gateway mode).

Patterns are paths with ``{name}`` for one segment and a trailing ``/**`` for any rest, e.g.
``GET /v1/messages/{id}`` or ``* /v1/files/**``. The first matching rule wins; a request that no
rule maps is refused by the proxy.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_PARAM = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "*"})


def compile_path(pattern: str) -> re.Pattern[str]:
    if not pattern.startswith("/"):
        raise ValueError(f"path pattern must start with '/': {pattern!r}")
    tail = ""
    body = pattern
    if body.endswith("/**"):
        body, tail = body[:-3], "(?:/.*)?"
    if "*" in body:
        raise ValueError(f"'*' is only allowed as a trailing '/**': {pattern!r}")
    out = []
    pos = 0
    for m in _PARAM.finditer(body):
        out.append(re.escape(body[pos : m.start()]))
        out.append("[^/]+")
        pos = m.end()
    out.append(re.escape(body[pos:]))
    return re.compile("^" + "".join(out) + tail + "$")


@dataclass(frozen=True)
class RouteRule:
    method: str
    path: str
    scope: str
    regex: re.Pattern[str]

    @classmethod
    def parse(cls, method: str, path: str, scope: str) -> RouteRule:
        m = method.upper()
        if m not in METHODS:
            raise ValueError(f"unknown HTTP method {method!r}")
        return cls(m, path, scope, compile_path(path))

    def matches(self, method: str, path: str) -> bool:
        return (self.method == "*" or self.method == method.upper()) and bool(
            self.regex.match(path)
        )


class ScopeRouteMap:
    """Ordered rules; :meth:`required_scope` answers the scope for a request, or None."""

    def __init__(self, rules: Iterable[RouteRule]) -> None:
        self.rules = tuple(rules)

    def required_scope(self, method: str, path: str) -> str | None:
        if "/../" in path + "/" or "/./" in path + "/" or "//" in path:
            return None  # refuse ambiguous paths rather than guess how upstream normalises
        for rule in self.rules:
            if rule.matches(method, path):
                return rule.scope
        return None
