"""Reading the audit log: filters (agent, user, provider, event, time range) and keyset pages.

Pages go newest first and continue ``before`` the smallest id already shown, so a page never
skips or repeats a row while new rows are being written.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select

from athkit.store.db import Database
from athkit.store.models import AuditRow

MAX_PAGE = 500
EXPORT_CHUNK = 1000


@dataclass(frozen=True)
class AuditFilter:
    agent_id: str | None = None
    user_id: str | None = None
    provider_id: str | None = None
    event: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def apply(self, q: Select[Any]) -> Select[Any]:
        if self.agent_id:
            q = q.where(AuditRow.agent_id == self.agent_id)
        if self.user_id:
            q = q.where(AuditRow.user_id == self.user_id)
        if self.provider_id:
            q = q.where(AuditRow.provider_id == self.provider_id)
        if self.event:
            q = q.where(AuditRow.event == self.event)
        if self.since is not None:
            q = q.where(AuditRow.timestamp >= self.since)
        if self.until is not None:
            q = q.where(AuditRow.timestamp < self.until)
        return q


def audit_page(
    db: Database, flt: AuditFilter, *, before: int | None = None, limit: int = 100
) -> Sequence[AuditRow]:
    """Up to ``limit`` rows matching ``flt``, newest first, older than id ``before``."""
    q = flt.apply(select(AuditRow))
    if before is not None:
        q = q.where(AuditRow.id < before)
    q = q.order_by(AuditRow.id.desc()).limit(max(1, min(limit, MAX_PAGE)))
    with db.read() as s:
        return s.scalars(q).all()


def audit_all(db: Database, flt: AuditFilter, *, max_rows: int) -> Iterator[AuditRow]:
    """Every matching row (at most ``max_rows``), newest first, read in bounded chunks."""
    before: int | None = None
    left = max_rows
    while left > 0:
        rows = audit_page(db, flt, before=before, limit=min(EXPORT_CHUNK, left, MAX_PAGE))
        if not rows:
            return
        yield from rows
        left -= len(rows)
        before = rows[-1].id
