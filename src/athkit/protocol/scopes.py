"""Scope sets and the three-way intersection (PROTOCOL.md §1, §6).

``effective = agent_approved ∩ user_consented ∩ requested``; an empty result means no token.
Order is kept stable (the order of ``requested``) so responses are deterministic.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

#: RFC 6749 §3.3 scope-token: printable ASCII except space, double quote and backslash.
SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5B\x5D-\x7E]{1,128}")


def is_valid_scope(scope: str) -> bool:
    return bool(SCOPE_TOKEN.fullmatch(scope))  # fullmatch: no trailing-newline slip


def ordered_unique(scopes: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for s in scopes:
        if s not in seen:
            seen.add(s)
            out.append(s)
    return out


@dataclass(frozen=True)
class ScopeIntersection:
    """The breakdown returned by ``/ath/token`` as ``scope_intersection``."""

    agent_approved: tuple[str, ...]
    user_consented: tuple[str, ...]
    requested: tuple[str, ...]
    effective: tuple[str, ...]

    def as_response(self) -> dict[str, list[str]]:
        return {
            "agent_approved": list(self.agent_approved),
            "user_consented": list(self.user_consented),
            "effective": list(self.effective),
        }


def intersect_scopes(
    agent_approved: Iterable[str], user_consented: Iterable[str], requested: Iterable[str]
) -> ScopeIntersection:
    """Compute ``agent_approved ∩ user_consented ∩ requested`` (order of ``requested``)."""
    approved = ordered_unique(agent_approved)
    consented = ordered_unique(user_consented)
    req = ordered_unique(requested)
    a, c = set(approved), set(consented)
    effective = tuple(s for s in req if s in a and s in c)
    return ScopeIntersection(tuple(approved), tuple(consented), tuple(req), effective)
