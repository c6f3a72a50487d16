"""Operator decisions on a registered agent (PROTOCOL.md §4), as the console makes them.

``approve`` may narrow the agent's scopes to the ones the operator ticked (never wider than the
agent asked for and the service supports); ``deny`` needs a reason; ``suspend`` and ``deny``
revoke the agent's live tokens in the same transaction; ``reactivate`` restores a suspended
agent with the approvals it had. Each decision is one audit row naming the operator.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from athkit.core import audit_events as ev
from athkit.core.audit import audit_row
from athkit.core.clock import Clock, to_datetime
from athkit.protocol.errors import ATHError, ErrorCode
from athkit.store.models import AgentRow
from athkit.store.repositories import Store

DECISIONS = ("approve", "deny", "suspend", "reactivate")
_STATUS = {
    "approve": "approved",
    "deny": "denied",
    "suspend": "suspended",
    "reactivate": "approved",
}
_EVENT = {
    "approve": ev.AGENT_APPROVED,
    "deny": ev.AGENT_REGISTRATION_DENIED,
    "suspend": ev.AGENT_SUSPENDED,
    "reactivate": ev.AGENT_REACTIVATED,
}


class DecidingService(Protocol):
    store: Store
    clock: Clock

    @property
    def supported(self) -> dict[str, list[str]]: ...


def chosen_approvals(
    row: AgentRow, chosen: Iterable[tuple[str, str]], supported: Mapping[str, Sequence[str]]
) -> list[dict[str, Any]]:
    """Per requested provider: the ticked scopes it asked for and the service offers."""
    picked = set(chosen)
    out: list[dict[str, Any]] = []
    for p in row.requested_providers:
        pid = str(p.get("provider_id", ""))
        asked = [str(s) for s in p.get("scopes", [])]
        offered = set(supported.get(pid, ()))
        approved = [s for s in asked if (pid, s) in picked and s in offered]
        denied = [s for s in asked if s not in approved]
        item: dict[str, Any] = {
            "provider_id": pid,
            "approved_scopes": approved,
            "denied_scopes": denied,
        }
        if denied:
            item["denial_reason"] = "not approved by the operator"
        out.append(item)
    return out


def decide(
    svc: DecidingService,
    client_id: str,
    decision: str,
    *,
    operator: str,
    reason: str | None = None,
    scopes: Iterable[tuple[str, str]] | None = None,
) -> bool:
    """Apply one operator decision; ``scopes`` (provider, scope) pairs narrow an approval."""
    if decision not in DECISIONS:
        raise ATHError(
            ErrorCode.INVALID_REQUEST, "decision must be approve, deny, suspend or reactivate"
        )
    reason = (reason or "").strip() or None
    if decision == "deny" and not reason:
        raise ATHError(ErrorCode.INVALID_REQUEST, "say why the agent is denied")
    row = svc.store.get_agent(client_id)
    if row is None:
        raise ATHError(ErrorCode.AGENT_NOT_REGISTERED, "unknown client_id")
    if decision == "reactivate" and row.status != "suspended":
        raise ATHError(ErrorCode.INVALID_REQUEST, "only a suspended agent can be reactivated")
    approvals = None
    if decision == "approve" and scopes is not None:
        approvals = chosen_approvals(row, scopes, svc.supported)
    shown = approvals if approvals is not None else row.approved_providers
    approved = [s for p in shown for s in p.get("approved_scopes", [])]
    if decision == "approve" and not approved:
        raise ATHError(ErrorCode.INVALID_REQUEST, "tick at least one scope to approve")
    now = svc.clock()
    status = _STATUS[decision]
    return svc.store.set_agent_decision(
        client_id,
        status=status,
        approved_providers=approvals,
        now=to_datetime(now),
        revoke_tokens=status != "approved",
        reason=reason,
        audit=audit_row(
            now,
            _EVENT[decision],
            status,
            agent_id=row.agent_id,
            effective=approved if status == "approved" else (),
            denied=[s for p in shown for s in p.get("denied_scopes", [])],
            reason=reason,
            details={"operator": operator, "client_id": client_id, "decision": decision},
        ),
    )
