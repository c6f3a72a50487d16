"""Persistence of the 9-step handshake (docs/handshake.md). Each method is one transaction.

Every step is a compare-and-set on ``ath_handshakes.status`` (``UPDATE … WHERE status =
expected``) written together with whatever else that step creates, so two racing requests can
never both advance one handshake, answer one confirmation or open two sessions for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from athkit.store.db import update_one
from athkit.store.models import (
    AuditRow,
    ConfirmationRow,
    HandshakeRow,
    HandshakeSessionRow,
    ReplayRow,
    UserKeyRow,
)
from athkit.store.repositories import DuplicateError, Store


class _Lost(Exception):
    """A compare-and-set lost half-way: raised to roll the transaction back."""


class HandshakeStore:
    """Handshake tables behind one small interface, sharing the service's :class:`Store`."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.db = store.db

    # -- handshakes -----------------------------------------------------------------------

    def add_handshake(
        self,
        row: HandshakeRow,
        *,
        nonce_key: str,
        nonce_expires: datetime,
        now: datetime,
        audit: AuditRow | None = None,
    ) -> None:
        """Store a new handshake and consume its nonce together; ``DuplicateError`` when the
        nonce was already used (a replay)."""
        try:
            with self.db.transaction() as s:
                s.execute(
                    delete(ReplayRow).where(ReplayRow.key == nonce_key, ReplayRow.expires_at < now)
                )
                s.add(ReplayRow(key=nonce_key, expires_at=nonce_expires))
                s.flush()
                s.add(row)
                if audit is not None:
                    s.add(audit)
        except IntegrityError as exc:
            raise DuplicateError(nonce_key) from exc

    def get_handshake(self, handshake_id: str) -> HandshakeRow | None:
        with self.db.transaction() as s:
            return s.get(HandshakeRow, handshake_id)

    def transition(
        self,
        handshake_id: str,
        expected: str | Sequence[str],
        *,
        audit: AuditRow | None = None,
        confirmation: ConfirmationRow | None = None,
        session: HandshakeSessionRow | None = None,
        **changes: Any,
    ) -> bool:
        """Compare-and-set the handshake's status, adding the step's rows in the same
        transaction; True when this call won."""
        statuses = [expected] if isinstance(expected, str) else list(expected)
        with self.db.transaction() as s:
            if not update_one(
                s,
                update(HandshakeRow)
                .where(HandshakeRow.handshake_id == handshake_id, HandshakeRow.status.in_(statuses))
                .values(**changes),
            ):
                return False
            if confirmation is not None:
                s.add(confirmation)
            if session is not None:
                s.add(session)
            if audit is not None:
                s.add(audit)
            return True

    # -- confirmations --------------------------------------------------------------------

    def get_confirmation(self, request_id: str) -> ConfirmationRow | None:
        with self.db.transaction() as s:
            return s.get(ConfirmationRow, request_id)

    def pending_confirmations(
        self, user_dids: Sequence[str], now: datetime
    ) -> Sequence[ConfirmationRow]:
        if not user_dids:
            return []
        with self.db.transaction() as s:
            q = (
                select(ConfirmationRow)
                .where(
                    ConfirmationRow.user_did.in_(list(user_dids)),
                    ConfirmationRow.status == "pending",
                    ConfirmationRow.expires_at > now,
                )
                .order_by(ConfirmationRow.created_at)
            )
            return s.scalars(q).all()

    def decide(
        self,
        request_id: str,
        handshake_id: str,
        *,
        confirmation_status: str,
        handshake_status: str,
        now: datetime,
        audit: AuditRow,
        **handshake_changes: Any,
    ) -> bool:
        """Close a pending confirmation and move its handshake on, atomically."""
        try:
            return self._decide(
                request_id,
                handshake_id,
                confirmation_status=confirmation_status,
                handshake_status=handshake_status,
                now=now,
                audit=audit,
                **handshake_changes,
            )
        except _Lost:
            return False

    def _decide(
        self,
        request_id: str,
        handshake_id: str,
        *,
        confirmation_status: str,
        handshake_status: str,
        now: datetime,
        audit: AuditRow,
        **handshake_changes: Any,
    ) -> bool:
        with self.db.transaction() as s:
            if not update_one(
                s,
                update(ConfirmationRow)
                .where(
                    ConfirmationRow.request_id == request_id,
                    ConfirmationRow.status == "pending",
                )
                .values(
                    status=confirmation_status,
                    decided_at=now,
                    approved_scopes=handshake_changes.pop("approved_scopes", None),
                    response=handshake_changes.pop("response", None),
                ),
            ):
                return False
            if not update_one(
                s,
                update(HandshakeRow)
                .where(
                    HandshakeRow.handshake_id == handshake_id,
                    HandshakeRow.status == "pending_user",
                )
                .values(status=handshake_status, updated_at=now, **handshake_changes),
            ):
                raise _Lost  # rolls the confirmation update back
            s.add(audit)
            return True

    def expire_confirmation(
        self, handshake_id: str, request_id: str, now: datetime, audit: AuditRow
    ) -> bool:
        """The user never answered: close the request and time the handshake out."""
        with self.db.transaction() as s:
            if not update_one(
                s,
                update(HandshakeRow)
                .where(
                    HandshakeRow.handshake_id == handshake_id,
                    HandshakeRow.status == "pending_user",
                )
                .values(status="timeout", updated_at=now),
            ):
                return False
            s.execute(
                update(ConfirmationRow)
                .where(
                    ConfirmationRow.request_id == request_id,
                    ConfirmationRow.status == "pending",
                )
                .values(status="expired", decided_at=now)
            )
            s.add(audit)
            return True

    # -- sessions -------------------------------------------------------------------------

    def get_session(self, session_id: str) -> HandshakeSessionRow | None:
        """Hot path of every API call: a plain Core SELECT, no ORM session."""
        table = HandshakeSessionRow.__table__
        with self.db.engine.connect() as conn:
            found = conn.execute(select(table).where(table.c.session_id == session_id))
            row = found.mappings().first()
        return HandshakeSessionRow(**row) if row is not None else None

    def advance_seq(self, session_id: str, seq: int) -> bool:
        """Record ``seq`` as the last client→server message; False unless it is higher."""
        with self.db.transaction() as s:
            return update_one(
                s,
                update(HandshakeSessionRow)
                .where(
                    HandshakeSessionRow.session_id == session_id,
                    HandshakeSessionRow.last_seq_c2s < seq,
                )
                .values(last_seq_c2s=seq),
            )

    def take_rate(self, session_id: str, window: int, limit: int) -> bool:
        """Count one call in the fixed window ``window``; False when the window is full."""
        t = HandshakeSessionRow
        with self.db.transaction() as s:
            new_window = update_one(
                s,
                update(t)
                .where(t.session_id == session_id, t.rate_window != window)
                .values(rate_window=window, rate_count=1),
            )
            if new_window:
                return limit >= 1
            return update_one(
                s,
                update(t)
                .where(t.session_id == session_id, t.rate_window == window, t.rate_count < limit)
                .values(rate_count=t.rate_count + 1),
            )

    def revoke_session(self, session_id: str, now: datetime) -> bool:
        with self.db.transaction() as s:
            return update_one(
                s,
                update(HandshakeSessionRow)
                .where(
                    HandshakeSessionRow.session_id == session_id,
                    HandshakeSessionRow.revoked_at.is_(None),
                )
                .values(revoked_at=now),
            )

    # -- user keys ------------------------------------------------------------------------

    def link_user_key(self, row: UserKeyRow, audit: AuditRow) -> None:
        try:
            with self.db.transaction() as s:
                s.add(row)
                s.add(audit)
        except IntegrityError as exc:
            raise DuplicateError(row.user_did) from exc

    def get_user_key(self, user_did: str) -> UserKeyRow | None:
        with self.db.transaction() as s:
            return s.get(UserKeyRow, user_did)

    def user_keys_of(self, account: str) -> Sequence[UserKeyRow]:
        with self.db.transaction() as s:
            q = select(UserKeyRow).where(UserKeyRow.account == account)
            return s.scalars(q.order_by(UserKeyRow.created_at)).all()
