"""Repository calls used by :mod:`athkit.core`. Each method is one transaction.

State transitions of sessions are compare-and-set (``UPDATE … WHERE status = expected``), so two
racing requests can never both consume one session or one code.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from athkit.protocol.errors import ATHError, ErrorCode
from athkit.store.bulk_insert import BulkInsert
from athkit.store.db import Database, announce_revocation, update_one
from athkit.store.families import revoke_families
from athkit.store.models import (
    AgentRow,
    AuditRow,
    RefreshTokenRow,
    ReplayRow,
    SessionRow,
    TokenRow,
    UpstreamTokenRow,
)
from athkit.store.revocation import Revocation, RevocationSink
from athkit.store.statements import (
    insert_rows,
    record_replay,
    select_one,
    table_of,
    update_where,
)
from athkit.store.steps import restore_pending_replay, take_pending_replay

_Row = TypeVar("_Row", TokenRow, UpstreamTokenRow)


class DuplicateError(Exception):
    """A unique key already exists (e.g. the same agent_id registered twice)."""


class Store:
    """All persistence of the ATH implementer behind one small interface."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @property
    def revocations(self) -> RevocationSink | None:
        """Told about every revocation (the node's token cache and its broadcast channel)."""
        return self.db.revocations

    @revocations.setter
    def revocations(self, sink: RevocationSink | None) -> None:
        self.db.revocations = sink

    @contextmanager
    def _revoking(self, revocation: Revocation) -> Iterator[Session]:
        """One transaction that makes tokens invalid, announced to :attr:`revocations`."""
        with self.db.transaction() as s:
            announce_revocation(s, revocation)
            yield s

    def _read_one(self, model: type[_Row], **equals: Any) -> _Row | None:
        """A read on a hot path: one Core SELECT, no ORM session and no commit (a detached row)."""
        return select_one(self.db.engine, model, **equals)

    # -- agents ---------------------------------------------------------------------------

    @contextmanager
    def _step_transaction(self) -> Iterator[Connection]:
        """The one write of a protocol step, recording its attestation's jti too (steps.py)."""
        rows = take_pending_replay()
        try:
            with self.db.begin() as conn:
                now = datetime.now(UTC)
                for r in rows:
                    if not record_replay(conn, r, now):
                        raise ATHError(
                            ErrorCode.INVALID_ATTESTATION,
                            "attestation jti was already used (replay)",
                        )
                yield conn
        except BaseException as exc:
            restore_pending_replay(rows)
            if isinstance(exc, IntegrityError) and any(
                self.replay_seen(r.key, datetime.now(UTC)) for r in rows
            ):
                raise ATHError(
                    ErrorCode.INVALID_ATTESTATION, "attestation jti was already used (replay)"
                ) from exc
            raise

    def add_agent(self, row: AgentRow, audit: AuditRow) -> None:
        try:
            with self._step_transaction() as s:
                insert_rows(s, row, audit)
        except IntegrityError as exc:
            raise DuplicateError(row.agent_id) from exc

    def get_agent(self, client_id: str) -> AgentRow | None:
        return select_one(self.db.engine, AgentRow, client_id=client_id)

    def get_agent_by_agent_id(self, agent_id: str) -> AgentRow | None:
        return select_one(self.db.engine, AgentRow, agent_id=agent_id)

    def list_agents(self, status: str | None = None) -> Sequence[AgentRow]:
        with self.db.read() as s:
            q = select(AgentRow).order_by(AgentRow.created_at)
            if status:
                q = q.where(AgentRow.status == status)
            return s.scalars(q).all()

    def reregister_agent(
        self,
        client_id: str,
        expected: tuple[str, str],
        values: dict[str, Any],
        audit: AuditRow,
    ) -> bool:
        """Replace an agent's request and policy decision (a re-registration, §4 athkit rule)
        and revoke its live tokens; compare-and-set on the old secret hash (each
        re-registration issues a new secret) and the status, so two racing re-registrations
        cannot both win and an operator's decision in between is not overwritten.
        ``expected`` is (status, secret hash)."""
        now = values["updated_at"]
        with self._revoking(Revocation(client_id=client_id)) as s:
            if not update_one(
                s,
                update(AgentRow)
                .where(
                    AgentRow.client_id == client_id,
                    AgentRow.status == expected[0],
                    AgentRow.client_secret_hash == expected[1],
                )
                .values(**values),
            ):
                return False
            s.execute(
                update(TokenRow)
                .where(TokenRow.client_id == client_id, TokenRow.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            revoke_families(s, [RefreshTokenRow.client_id == client_id], now)
            s.add(audit)
            return True

    def set_agent_decision(
        self,
        client_id: str,
        *,
        status: str,
        approved_providers: list[Any] | None,
        now: datetime,
        audit: AuditRow,
        revoke_tokens: bool = False,
        reason: str | None = None,
    ) -> bool:
        """Record an operator decision on an agent; optionally revoke all its tokens."""
        with self._revoking(Revocation(client_id=client_id)) as s:
            values: dict[str, Any] = {
                "status": status,
                "updated_at": now,
                "decided_by": "operator",
                "decision_reason": reason,
            }
            if approved_providers is not None:
                values["approved_providers"] = approved_providers
            if not update_one(
                s,
                update(AgentRow).where(AgentRow.client_id == client_id).values(**values),
            ):
                return False
            if revoke_tokens:
                s.execute(
                    update(TokenRow)
                    .where(TokenRow.client_id == client_id, TokenRow.revoked_at.is_(None))
                    .values(revoked_at=now)
                )
                revoke_families(s, [RefreshTokenRow.client_id == client_id], now)
            s.add(audit)
            return True

    # -- sessions -------------------------------------------------------------------------

    def add_session(self, row: SessionRow, audit: AuditRow) -> None:
        with self._step_transaction() as s:
            insert_rows(s, row, audit)

    def get_session(self, session_id: str) -> SessionRow | None:
        return select_one(self.db.engine, SessionRow, session_id=session_id)

    def get_session_by_oauth_state(self, oauth_state: str) -> SessionRow | None:
        return select_one(self.db.engine, SessionRow, oauth_state=oauth_state)

    def get_session_by_oauth_code(self, code_hash: str) -> SessionRow | None:
        return select_one(self.db.engine, SessionRow, oauth_code_hash=code_hash)

    def transition_session(
        self,
        session_id: str,
        expected_status: str | Sequence[str],
        audit: AuditRow | None = None,
        **changes: Any,
    ) -> bool:
        """Compare-and-set on the session's status; True when this call won."""
        statuses = [expected_status] if isinstance(expected_status, str) else list(expected_status)
        with self.db.begin() as conn:
            where = {"session_id": session_id, "status": statuses}
            if update_where(conn, SessionRow, where, changes) != 1:
                return False
            if audit is not None:
                insert_rows(conn, audit)
            return True

    def bind_session(
        self, session_id: str, expected_binding: str | None, binding_hash: str, csrf_hash: str
    ) -> bool:
        """Compare-and-set on the browser binding of a pending session (§5): True when the
        binding was still ``expected_binding`` (None: unbound), so the first browser wins."""
        where = {"session_id": session_id, "status": "pending", "binding_hash": expected_binding}
        with self.db.begin() as conn:
            changes = {"binding_hash": binding_hash, "csrf_hash": csrf_hash}
            return update_where(conn, SessionRow, where, changes) == 1

    def complete_callback(
        self,
        session_id: str,
        expected_status: str,
        *,
        upstream: UpstreamTokenRow | None = None,
        **changes: Any,
    ) -> bool:
        """Move a session to consented and (gateway) store the upstream tokens, atomically."""
        where = {"session_id": session_id, "status": expected_status}
        if upstream is None:
            with self.db.begin() as conn:
                return update_where(conn, SessionRow, where, changes) == 1
        # A new upstream grant: cached copies of the old one go.
        grant = Revocation(
            client_id=upstream.client_id, user_id=upstream.user_id, provider_id=upstream.provider_id
        )
        with self._revoking(grant) as s:
            if update_where(s, SessionRow, where, changes) != 1:
                return False
            s.merge(upstream)
            return True

    # -- upstream tokens (gateway) --------------------------------------------------------

    def get_upstream_token(
        self, client_id: str, user_id: str, provider_id: str
    ) -> UpstreamTokenRow | None:
        """On every proxied call."""
        return self._read_one(
            UpstreamTokenRow, client_id=client_id, user_id=user_id, provider_id=provider_id
        )

    def save_upstream_token(self, row: UpstreamTokenRow) -> None:
        """Store a (refreshed) upstream grant; cached copies of the old one are dropped."""
        grant = Revocation(
            client_id=row.client_id, user_id=row.user_id, provider_id=row.provider_id
        )
        with self._revoking(grant) as s:
            s.merge(row)

    def delete_upstream_token(self, client_id: str, user_id: str, provider_id: str) -> None:
        grant = Revocation(client_id=client_id, user_id=user_id, provider_id=provider_id)
        with self._revoking(grant) as s:
            s.execute(
                delete(UpstreamTokenRow).where(
                    UpstreamTokenRow.client_id == client_id,
                    UpstreamTokenRow.user_id == user_id,
                    UpstreamTokenRow.provider_id == provider_id,
                )
            )

    def count_live_tokens(
        self, client_id: str, user_id: str, provider_id: str, now: datetime
    ) -> int:
        with self.db.read() as s:
            q = select(func.count()).where(
                TokenRow.client_id == client_id,
                TokenRow.user_id == user_id,
                TokenRow.provider_id == provider_id,
                TokenRow.revoked_at.is_(None),
                TokenRow.expires_at > now,
            )
            return int(s.scalar(q) or 0)

    # -- tokens ---------------------------------------------------------------------------

    def consume_session_issue_token(
        self, session_id: str, token: TokenRow, audit: AuditRow
    ) -> bool:
        """Consume a consented session and store its token, atomically (§6)."""
        with self._step_transaction() as s:
            where = {"session_id": session_id, "status": "consented"}
            if update_where(s, SessionRow, where, {"status": "consumed"}) != 1:
                return False
            insert_rows(s, token, audit)
            return True

    def get_token(self, token_hash: str) -> TokenRow | None:
        """Hot path of every API call."""
        return self._read_one(TokenRow, token_hash=token_hash)

    def revoke_token(self, token_hash: str, client_id: str, now: datetime, audit: AuditRow) -> bool:
        """Revoke a token owned by ``client_id``; False when no such live token."""
        with self._revoking(Revocation(token_hashes=(token_hash,))) as s:
            won = update_one(
                s,
                update(TokenRow)
                .where(
                    TokenRow.token_hash == token_hash,
                    TokenRow.client_id == client_id,
                    TokenRow.revoked_at.is_(None),
                )
                .values(revoked_at=now),
            )
            if won:
                family = s.scalar(
                    select(TokenRow.family_id).where(TokenRow.token_hash == token_hash)
                )
                if family is not None:  # an /oauth token: its whole family goes with it
                    revoke_families(s, [RefreshTokenRow.family_id == family], now)
                s.add(audit)
            return won

    def live_tokens_for_user(
        self, user_id: str, now: datetime, provider_id: str | None = None
    ) -> Sequence[TokenRow]:
        with self.db.read() as s:
            q = (
                select(TokenRow)
                .where(
                    TokenRow.user_id == user_id,
                    TokenRow.revoked_at.is_(None),
                    TokenRow.expires_at > now,
                )
                .order_by(TokenRow.created_at.desc())
            )
            if provider_id is not None:
                q = q.where(TokenRow.provider_id == provider_id)
            return s.scalars(q).all()

    def revoke_user_client_tokens(
        self,
        user_id: str,
        client_id: str,
        now: datetime,
        audit: AuditRow,
        provider_id: str | None = None,
    ) -> int:
        """The user's own channel (§8): revoke every live token of one agent for this user
        (at one provider, when given: a gateway user is an account at one provider)."""
        with self._revoking(Revocation(client_id=client_id, user_id=user_id)) as s:
            q = update(TokenRow).where(
                TokenRow.user_id == user_id,
                TokenRow.client_id == client_id,
                TokenRow.revoked_at.is_(None),
            )
            if provider_id is not None:
                q = q.where(TokenRow.provider_id == provider_id)
            res = s.execute(q.values(revoked_at=now))
            count = int(res.rowcount)  # type: ignore[attr-defined]
            family = [RefreshTokenRow.user_id == user_id, RefreshTokenRow.client_id == client_id]
            if provider_id is not None:
                family.append(RefreshTokenRow.provider_id == provider_id)
            count += revoke_families(s, family, now)
            if count:
                s.add(audit)
            return count

    # -- replay cache ---------------------------------------------------------------------

    def remember_once(self, key: str, expires_at: datetime, now: datetime) -> bool:
        """Insert ``key``; False when it was already there and unexpired (a replay)."""
        try:
            with self.db.begin() as conn:
                return record_replay(conn, ReplayRow(key=key, expires_at=expires_at), now)
        except IntegrityError:
            return False

    def replay_seen(self, key: str, now: datetime) -> bool:
        """Is ``key`` recorded and unexpired? (a read: no commit)"""
        row = select_one(self.db.engine, ReplayRow, key=key)
        when = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
        return row is not None and row.expires_at >= when  # read back in UTC (UTCDateTime)

    def purge_expired(self, now: datetime) -> int:
        with self.db.transaction() as s:
            res = s.execute(delete(ReplayRow).where(ReplayRow.expires_at < now))
            return int(res.rowcount)  # type: ignore[attr-defined]

    # -- audit ----------------------------------------------------------------------------

    def add_audit(self, row: AuditRow) -> None:
        with self.db.transaction() as s:
            s.add(row)

    def add_audit_many(self, rows: Sequence[AuditRow | dict[str, Any]]) -> None:
        """A batch of per-call audit rows in one transaction and one executemany INSERT
        (core/audit_writer.py, store/bulk_insert.py): column values as they are, ORM rows by
        their columns."""
        values = [r if isinstance(r, dict) else _audit_values(r) for r in rows]
        if not values:
            return
        with self.db.transaction() as s:
            _AUDIT_INSERT(s.connection(), values)

    def list_audit(self, *, agent_id: str | None = None, limit: int = 100) -> Sequence[AuditRow]:
        with self.db.read() as s:
            q = select(AuditRow).order_by(AuditRow.id.desc()).limit(limit)
            if agent_id:
                q = q.where(AuditRow.agent_id == agent_id)
            return s.scalars(q).all()


#: The table itself: a Core INSERT skips the ORM's per-row bookkeeping.
_AUDIT_TABLE = table_of(AuditRow)
_AUDIT_COLUMNS = tuple(c.key for c in _AUDIT_TABLE.columns if c.key != "id")
_AUDIT_INSERT = BulkInsert(_AUDIT_TABLE, _AUDIT_COLUMNS)


def _audit_values(row: AuditRow) -> dict[str, Any]:
    values = {k: getattr(row, k) for k in _AUDIT_COLUMNS}
    for k in ("requested_scopes", "effective_scopes", "denied_scopes"):
        values[k] = values[k] if values[k] is not None else []
    values["details"] = values["details"] if values["details"] is not None else {}
    return values
