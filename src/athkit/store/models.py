"""Tables. Secrets (client secrets, tokens, codes, binding cookies) are stored as SHA-256 hashes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware datetimes, always read back in UTC on every backend.

    SQLite keeps no offset: a value is converted to UTC before it is stored (naive values are
    taken as UTC) and marked UTC when read, so an instant survives the round trip unchanged.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return _utc(value)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return _utc(value)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class AgentRow(Base):
    """A registered agent (Phase A, PROTOCOL.md §4)."""

    __tablename__ = "ath_agents"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_secret_hash: Mapped[str] = mapped_column(String(64))
    agent_id: Mapped[str] = mapped_column(String(2048), unique=True)
    name: Mapped[str] = mapped_column(String(512))
    developer_name: Mapped[str] = mapped_column(String(512))
    developer_id: Mapped[str] = mapped_column(String(512))
    purpose: Mapped[str | None] = mapped_column(Text, nullable=True)
    redirect_uris: Mapped[list[Any]] = mapped_column(JSON, default=list)
    requested_providers: Mapped[list[Any]] = mapped_column(JSON, default=list)
    approved_providers: Mapped[list[Any]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16))
    approval_expires: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: How the client was identified: ``ath`` (/ath/agents/register), ``dcr`` (RFC 7591) or
    #: ``cimd`` (a client ID metadata document; ``agent_id`` is then its URL = the client_id).
    client_kind: Mapped[str] = mapped_column(String(16), default="ath", server_default="ath")
    #: RFC 7591 §2 ``token_endpoint_auth_method`` (OAuth clients only).
    token_endpoint_auth_method: Mapped[str | None] = mapped_column(String(32), nullable=True)
    #: The client's OAuth metadata as registered or fetched (name, uris, jwks ...).
    client_metadata: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    #: Who took the current decision: ``policy`` (at registration) or ``operator``. An
    #: operator's deny or suspension is sticky: re-registration cannot lift it.
    decided_by: Mapped[str] = mapped_column(String(16), default="policy", server_default="policy")
    #: Why the agent is not approved, in words the agent is shown (policy or operator).
    decision_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class SessionRow(Base):
    """An ATH authorization session (Phase B, §5): ≤10 minutes, single use."""

    __tablename__ = "ath_sessions"

    session_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), index=True)
    agent_id: Mapped[str] = mapped_column(String(2048))
    provider_id: Mapped[str] = mapped_column(String(512))
    requested_scopes: Mapped[list[Any]] = mapped_column(JSON)
    agent_state: Mapped[str] = mapped_column(String(512))
    user_redirect_uri: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    resource: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    oauth_state: Mapped[str] = mapped_column(String(64), unique=True)
    code_verifier: Mapped[str] = mapped_column(String(128))
    code_challenge: Mapped[str] = mapped_column(String(128))
    binding_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    csrf_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    oauth_code_hash: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    agent_code_hash: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    status: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[str | None] = mapped_column(String(512), nullable=True)
    consented_scopes: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: /oauth/authorize sessions: the client's own PKCE challenge (RFC 7636, S256 only).
    client_code_challenge: Mapped[str | None] = mapped_column(String(128), nullable=True)


class TokenRow(Base):
    """An ATH access token bound to (agent, user, provider, scopes), §6."""

    __tablename__ = "ath_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), index=True)
    agent_id: Mapped[str] = mapped_column(String(2048))
    user_id: Mapped[str] = mapped_column(String(512))
    provider_id: Mapped[str] = mapped_column(String(512))
    scopes: Mapped[list[Any]] = mapped_column(JSON)
    session_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: RFC 8707 audience: the one resource this token is good for (None: any of the provider's).
    audience: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    #: Issued through /oauth/*: the token binds its agent itself (no X-ATH-Agent-ID needed).
    agent_bound: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    #: The refresh-token family this access token came from (revoked together).
    family_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)


class RefreshTokenRow(Base):
    """An OAuth refresh token (RFC 6749 §6, OAuth 2.1 §4.3): rotated on every use; a used one
    presented again revokes its whole family."""

    __tablename__ = "ath_refresh_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    family_id: Mapped[str] = mapped_column(String(64), index=True)
    client_id: Mapped[str] = mapped_column(String(64), index=True)
    agent_id: Mapped[str] = mapped_column(String(2048))
    user_id: Mapped[str] = mapped_column(String(512))
    provider_id: Mapped[str] = mapped_column(String(512))
    scopes: Mapped[list[Any]] = mapped_column(JSON)
    audience: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: Idle limit: this token must be used before then.
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: Absolute limit of the family (the original consent), carried across rotations.
    family_expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class UpstreamTokenRow(Base):
    """Gateway mode: the provider's tokens for one (agent client, user, provider), sealed with
    AES-256-GCM (never stored or logged in clear, never sent to the agent)."""

    __tablename__ = "ath_upstream_tokens"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(512), primary_key=True)
    provider_id: Mapped[str] = mapped_column(String(512), primary_key=True)
    access_token: Mapped[str] = mapped_column(Text)
    refresh_token: Mapped[str | None] = mapped_column(Text, nullable=True)
    token_type: Mapped[str] = mapped_column(String(32), default="Bearer")
    scope: Mapped[str | None] = mapped_column(Text, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ReplayRow(Base):
    """Seen attestation ``jti`` values, kept until the attestation's ``exp`` (§3)."""

    __tablename__ = "ath_replay"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class AuditRow(Base):
    """One authorization decision, with the §11 fields."""

    __tablename__ = "ath_audit"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime())
    event: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))
    agent_id: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    user_id: Mapped[str | None] = mapped_column(String(512), nullable=True)
    provider_id: Mapped[str | None] = mapped_column(String(512), nullable=True)
    requested_scopes: Mapped[list[Any]] = mapped_column(JSON, default=list)
    effective_scopes: Mapped[list[Any]] = mapped_column(JSON, default=list)
    denied_scopes: Mapped[list[Any]] = mapped_column(JSON, default=list)
    denial_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    __table_args__ = (
        Index("ix_ath_audit_agent_time", "agent_id", "timestamp"),
        Index("ix_ath_audit_event_time", "event", "timestamp"),
        Index("ix_ath_audit_time", "timestamp"),
    )


# -- the 9-step handshake (docs/handshake.md) ---------------------------------------------------


class HandshakeRow(Base):
    """One handshake, threaded by ``handshake_id`` through steps 1–9 (compare-and-set status)."""

    __tablename__ = "ath_handshakes"

    handshake_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(24))
    client_did: Mapped[str] = mapped_column(String(2048))
    client_pubkey: Mapped[dict[str, Any]] = mapped_column(JSON)
    server_did: Mapped[str] = mapped_column(String(2048))
    version: Mapped[str] = mapped_column(String(16))
    nonce_a: Mapped[str] = mapped_column(String(128))
    nonce_b: Mapped[str] = mapped_column(String(128))
    client_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    requested_scopes: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    requested_ttl: Mapped[int | None] = mapped_column(Integer, nullable=True)
    context: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    credentials: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    user_did: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    credential_scopes: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    credential_expires_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    scope_result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    session_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class ConfirmationRow(Base):
    """Step 6–7: an out-of-band confirmation request and the user's signed answer."""

    __tablename__ = "ath_confirmations"

    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    handshake_id: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16))
    user_did: Mapped[str] = mapped_column(String(2048), index=True)
    client_did: Mapped[str] = mapped_column(String(2048))
    client_info: Mapped[dict[str, Any]] = mapped_column(JSON)
    requested_scopes: Mapped[list[Any]] = mapped_column(JSON)
    approved_scopes: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    response: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class HandshakeSessionRow(Base):
    """Step 9: the session a handshake established. Keys are sealed at rest (AES-256-GCM)."""

    __tablename__ = "ath_handshake_sessions"

    session_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    handshake_id: Mapped[str] = mapped_column(String(64), unique=True)
    client_did: Mapped[str] = mapped_column(String(2048))
    user_did: Mapped[str] = mapped_column(String(2048))
    account: Mapped[str | None] = mapped_column(String(512), nullable=True)
    scopes: Mapped[list[Any]] = mapped_column(JSON)
    restrictions: Mapped[dict[str, Any]] = mapped_column(JSON)
    sealed_keys: Mapped[str] = mapped_column(Text)
    last_seq_c2s: Mapped[int] = mapped_column(BigInteger, default=0)
    rate_window: Mapped[int] = mapped_column(BigInteger, default=0)
    rate_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    token_expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class UserKeyRow(Base):
    """A user DID linked to an account of the host app (the key signs step 7 in the browser)."""

    __tablename__ = "ath_user_keys"

    user_did: Mapped[str] = mapped_column(String(2048), primary_key=True)
    account: Mapped[str] = mapped_column(String(512), index=True)
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
