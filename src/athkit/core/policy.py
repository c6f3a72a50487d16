"""The service's approval policy for agents (Phase A, PROTOCOL.md §4).

The policy sees the verified identity of an agent and the scopes it asks for, and answers
``approved`` (with per-scope decisions), ``pending`` (an operator decides later) or ``denied``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

ScopeRule = Literal["allow", "deny", "trusted"]


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def origin_matches(origin: str, patterns: Iterable[str]) -> bool:
    """Exact origins (``https://agent.example``) or host patterns (``*.example.com``)."""
    host = urlsplit(origin).hostname or ""
    for p in patterns:
        p = p.lower().rstrip("/")
        if p.startswith("*."):
            if host.endswith(p[1:]) and host != p[2:]:
                return True
        elif p in (origin, host):
            return True
    return False


@dataclass(frozen=True)
class ProviderDecision:
    provider_id: str
    approved_scopes: list[str]
    denied_scopes: list[str]
    denial_reason: str | None = None
    #: Why each denied scope was denied (shown to the agent, PROTOCOL-NOTES.md §4).
    scope_reasons: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        d: dict[str, object] = {
            "provider_id": self.provider_id,
            "approved_scopes": self.approved_scopes,
            "denied_scopes": self.denied_scopes,
        }
        if self.denial_reason:
            d["denial_reason"] = self.denial_reason
        if self.scope_reasons:
            d["denied_scope_reasons"] = dict(self.scope_reasons)
        return d


@dataclass(frozen=True)
class RegistrationDecision:
    status: Literal["approved", "pending", "denied"]
    providers: list[ProviderDecision]
    #: Why the agent as a whole is not approved (None when it is).
    reason: str | None = None


@dataclass
class ApprovalPolicy:
    """Which agents a service admits, and with which scopes.

    - ``auto_approve``: every agent with a valid attestation is approved (scope rules still apply).
    - ``trusted_origins`` / ``trusted_developers``: agents approved without an operator.
    - ``unknown_agents``: what happens to everyone else: ``pending`` for an operator, or ``denied``.
    - ``scope_rules``: per scope ``allow`` (default), ``deny``, or ``trusted`` (trusted only).
    """

    auto_approve: bool = False
    trusted_origins: list[str] = field(default_factory=list)
    trusted_developers: list[str] = field(default_factory=list)
    unknown_agents: Literal["pending", "denied"] = "pending"
    scope_rules: dict[str, ScopeRule] = field(default_factory=dict)

    def is_trusted(self, agent_id: str, developer_id: str) -> bool:
        return origin_matches(origin_of(agent_id), self.trusted_origins) or (
            developer_id in self.trusted_developers
        )

    def decide_scopes(
        self, provider_id: str, requested: Sequence[str], supported: Sequence[str], trusted: bool
    ) -> ProviderDecision:
        approved: list[str] = []
        why: dict[str, str] = {}
        for scope in dict.fromkeys(requested):
            rule = self.scope_rules.get(scope, "allow")
            if scope not in supported:
                why[scope] = "not offered by this service"
            elif rule == "deny":
                why[scope] = "not granted to any agent by this service's policy"
            elif rule == "trusted" and not trusted:
                why[scope] = "granted only to agents this service trusts"
            else:
                approved.append(scope)
        reason = "; ".join(f"{s}: {r}" for s, r in why.items()) or None
        return ProviderDecision(provider_id, approved, list(why), reason, why)

    def decide(
        self,
        agent_id: str,
        developer_id: str,
        requested: Sequence[tuple[str, Sequence[str]]],
        supported: Mapping[str, Sequence[str]],
    ) -> RegistrationDecision:
        trusted = self.is_trusted(agent_id, developer_id)
        providers: list[ProviderDecision] = []
        for provider_id, scopes in requested:
            if provider_id not in supported:
                known = ", ".join(sorted(supported)) or "none"
                providers.append(
                    ProviderDecision(
                        provider_id,
                        [],
                        list(scopes),
                        f"unknown provider (this service offers: {known})",
                        {s: "unknown provider" for s in scopes},
                    )
                )
            else:
                providers.append(
                    self.decide_scopes(provider_id, scopes, supported[provider_id], trusted)
                )
        if self.auto_approve or trusted:
            if any(p.approved_scopes for p in providers):
                return RegistrationDecision("approved", providers)
            return RegistrationDecision(
                "denied", providers, "none of the requested scopes can be granted"
            )
        reason = (
            "an operator of this service has to approve this agent"
            if self.unknown_agents == "pending"
            else "this service admits only agents it trusts"
        )
        return RegistrationDecision(self.unknown_agents, providers, reason)
