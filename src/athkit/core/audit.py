"""Audit records of every authorization decision, with the §11 fields.

Event names are those of :mod:`athkit.core.audit_events` (old names are mapped there).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from athkit.core.audit_events import canonical
from athkit.core.clock import to_datetime
from athkit.core.metrics import DECISIONS
from athkit.store.models import AuditRow

log = logging.getLogger("athkit.audit")


def audit_row(
    now: float,
    event: str,
    outcome: str,
    *,
    agent_id: str | None = None,
    user_id: str | None = None,
    provider_id: str | None = None,
    requested: Sequence[str] = (),
    effective: Sequence[str] = (),
    denied: Sequence[str] = (),
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditRow:
    """Build an audit row, count it and log it (never with secrets or tokens)."""
    event = canonical(event, outcome)
    DECISIONS.labels(event, outcome).inc()
    log.info(
        "%s %s agent=%s user=%s provider=%s effective=%s reason=%s",
        event,
        outcome,
        agent_id,
        user_id,
        provider_id,
        list(effective),
        reason,
    )
    return AuditRow(
        timestamp=to_datetime(now),
        event=event,
        outcome=outcome,
        agent_id=agent_id,
        user_id=user_id,
        provider_id=provider_id,
        requested_scopes=list(requested),
        effective_scopes=list(effective),
        denied_scopes=list(denied),
        denial_reason=reason,
        details=details or {},
    )
