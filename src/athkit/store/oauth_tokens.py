"""Persistence of the OAuth grants: code redemption, refresh rotation, family revocation.

Every method is one transaction; every transition is compare-and-set, so two racing requests
can never both redeem one code or rotate one refresh token.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update

from athkit.store.db import update_one
from athkit.store.families import revoke_families
from athkit.store.models import AgentRow, AuditRow, RefreshTokenRow, SessionRow, TokenRow
from athkit.store.repositories import DuplicateError, Store

__all__ = ["OAuthTokenStore", "DuplicateError"]


class OAuthTokenStore:
    """The OAuth side of :class:`Store` (same database, same transaction rules)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.db = store.db

    def get_agent_by_agent_id(self, agent_id: str) -> AgentRow | None:
        return self.store.get_agent_by_agent_id(agent_id)

    def update_client_metadata(
        self,
        client_id: str,
        *,
        metadata: dict[str, object],
        redirect_uris: list[str],
        now: datetime,
    ) -> None:
        with self.db.transaction() as s:
            s.execute(
                update(AgentRow)
                .where(AgentRow.client_id == client_id)
                .values(client_metadata=metadata, redirect_uris=redirect_uris, updated_at=now)
            )

    def session_by_agent_code(self, code_hash: str) -> SessionRow | None:
        with self.db.transaction() as s:
            q = select(SessionRow).where(SessionRow.agent_code_hash == code_hash)
            return s.scalars(q).first()

    def redeem_code(
        self,
        session_id: str,
        token: TokenRow,
        refresh: RefreshTokenRow | None,
        audit: AuditRow,
    ) -> bool:
        """Consume a consented /oauth session and store its tokens, atomically."""
        with self.db.transaction() as s:
            if not update_one(
                s,
                update(SessionRow)
                .where(SessionRow.session_id == session_id, SessionRow.status == "consented")
                .values(status="consumed"),
            ):
                return False
            s.add(token)
            if refresh is not None:
                s.add(refresh)
            s.add(audit)
            return True

    def get_refresh(self, token_hash: str) -> RefreshTokenRow | None:
        with self.db.transaction() as s:
            return s.get(RefreshTokenRow, token_hash)

    def rotate_refresh(
        self,
        old_hash: str,
        now: datetime,
        token: TokenRow,
        refresh: RefreshTokenRow,
        audit: AuditRow,
    ) -> bool:
        """Mark the presented refresh token used and store its successor plus a new access
        token; False when it was used or revoked meanwhile (the caller treats that as reuse)."""
        with self.db.transaction() as s:
            if not update_one(
                s,
                update(RefreshTokenRow)
                .where(
                    RefreshTokenRow.token_hash == old_hash,
                    RefreshTokenRow.used_at.is_(None),
                    RefreshTokenRow.revoked_at.is_(None),
                )
                .values(used_at=now),
            ):
                return False
            s.add(token)
            s.add(refresh)
            s.add(audit)
            return True

    def revoke_family(self, family_id: str, now: datetime, audit: AuditRow | None) -> int:
        """Revoke every refresh and access token of one family (one consent)."""
        with self.db.transaction() as s:
            n = revoke_families(s, [RefreshTokenRow.family_id == family_id], now)
            if audit is not None:
                s.add(audit)
            return n

    def family_of_session(self, session_id: str) -> str | None:
        with self.db.transaction() as s:
            q = select(TokenRow.family_id).where(TokenRow.session_id == session_id)
            return s.scalars(q).first()

    def live_refresh_for_user(self, user_id: str, now: datetime) -> Sequence[RefreshTokenRow]:
        with self.db.transaction() as s:
            q = select(RefreshTokenRow).where(
                RefreshTokenRow.user_id == user_id,
                RefreshTokenRow.revoked_at.is_(None),
                RefreshTokenRow.used_at.is_(None),
                RefreshTokenRow.expires_at > now,
            )
            return s.scalars(q).all()
