"""``athkit gateway reseal``: after a sealing-key rotation, re-seal every value under the new
primary key so the old key can be dropped (docs/deploy.md, "Rotating the token-sealing key").

Covers the sealed upstream access and refresh tokens and the providers' sealed client secrets.
Each row is rewritten with a compare-and-set on the value read (a token refreshed meanwhile by
a node is left alone: it was sealed with the primary key already). Rows that do not open with
the keyring are counted and reported, never deleted.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update

from athkit.crypto.sealing import SealError, TokenSealer
from athkit.gateway.live_providers import secret_purpose
from athkit.gateway.service import owner_aad
from athkit.store.db import Database
from athkit.store.models import UpstreamTokenRow
from athkit.store.provider_versions import ProviderVersionRow


@dataclass
class ResealReport:
    checked: int = 0
    resealed: int = 0
    unreadable: int = 0


def _kid(sealed: str) -> str:
    parts = sealed.split(".", 2)
    return parts[1] if len(parts) == 3 else ""


def _again(sealer: TokenSealer, value: str | None, aad: str, report: ResealReport) -> str | None:
    """The value under the primary key, or None when it needs no change (or cannot open)."""
    if not value or _kid(value) == sealer.primary:
        return None
    try:
        return sealer.seal(sealer.open(value, aad), aad)
    except SealError:
        report.unreadable += 1
        return None


def reseal_all(db: Database, sealer: TokenSealer, *, batch: int = 500) -> ResealReport:
    report = ResealReport()
    t = UpstreamTokenRow
    with db.engine.connect() as conn:
        rows = conn.execute(
            select(t.client_id, t.user_id, t.provider_id, t.access_token, t.refresh_token)
        ).all()
    for i in range(0, len(rows), batch):
        with db.transaction() as s:
            for client_id, user_id, provider_id, access, refresh in rows[i : i + batch]:
                report.checked += 1
                aad = owner_aad(client_id, user_id, provider_id)
                new_access = _again(sealer, access, aad, report)
                new_refresh = _again(sealer, refresh, aad, report)
                if new_access is None and new_refresh is None:
                    continue
                values = {}
                if new_access is not None:
                    values["access_token"] = new_access
                if new_refresh is not None:
                    values["refresh_token"] = new_refresh
                res = s.execute(
                    update(t)
                    .where(
                        t.client_id == client_id,
                        t.user_id == user_id,
                        t.provider_id == provider_id,
                        t.access_token == access,
                    )
                    .values(**values)
                )
                report.resealed += int(res.rowcount)  # type: ignore[attr-defined]
    p = ProviderVersionRow
    with db.transaction() as s:
        for row in s.scalars(select(p).where(p.sealed_secret.is_not(None))).all():
            report.checked += 1
            again = _again(sealer, row.sealed_secret, secret_purpose(row.provider_id), report)
            if again is not None:
                row.sealed_secret = again
                report.resealed += 1
    return report
