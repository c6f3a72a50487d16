"""Refresh-token families: one user consent, revoked as a whole (OAuth 2.1 §4.3.1)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from athkit.store.db import announce_revocation
from athkit.store.models import RefreshTokenRow, TokenRow
from athkit.store.revocation import Revocation


def revoke_families(session: Session, where: list[Any], now: datetime) -> int:
    """Inside a transaction: revoke the refresh tokens matching ``where`` and every refresh
    and access token of their families. User, operator and agent revocation all use it."""
    fam_ids = list(session.scalars(select(RefreshTokenRow.family_id).where(*where).distinct()))
    if not fam_ids:
        return 0
    n = session.execute(
        update(RefreshTokenRow)
        .where(RefreshTokenRow.family_id.in_(fam_ids), RefreshTokenRow.revoked_at.is_(None))
        .values(revoked_at=now)
    ).rowcount  # type: ignore[attr-defined]
    live = TokenRow.family_id.in_(fam_ids), TokenRow.revoked_at.is_(None)
    hashes = tuple(session.scalars(select(TokenRow.token_hash).where(*live)))
    session.execute(update(TokenRow).where(*live).values(revoked_at=now))
    if hashes:  # cached copies of these access tokens go, on every node
        announce_revocation(session, Revocation(token_hashes=hashes))
    return int(n)
