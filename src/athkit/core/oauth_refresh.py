"""Refresh tokens at /oauth/token (RFC 6749 §6; OAuth 2.1 §4.3.1 rotation).

Each refresh token works once and is replaced; a used one presented again revokes its whole
family (someone else holds a copy). A refresh re-applies the agent's current Phase A approval
and can only narrow the consented scopes; idle and absolute limits come from the settings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from athkit.core.audit import audit_row
from athkit.core.clock import as_utc, to_datetime
from athkit.core.oauth_grants import (
    AccessTokenMinter,
    IssuedGrant,
    mint,
    new_refresh,
    new_token_row,
    oauth_store,
    opaque_minter,
)
from athkit.core.secrets import hash_secret
from athkit.protocol.errors import ATHError, ErrorCode
from athkit.store.models import AgentRow

if TYPE_CHECKING:
    from athkit.core.service import ATHService


def refresh_grant(
    svc: ATHService,
    agent: AgentRow,
    *,
    refresh_token: str,
    scopes: Sequence[str] | None,
    resource: str | None,
    minter: AccessTokenMinter = opaque_minter,
) -> IssuedGrant:
    """RFC 6749 §6 with OAuth 2.1 §4.3.1 rotation: each refresh token works once; a used one
    presented again revokes its whole family (someone else holds a copy)."""
    now = svc.clock()
    when = to_datetime(now)
    store = oauth_store(svc)
    old_hash = hash_secret(refresh_token)
    old = store.get_refresh(old_hash)
    if old is None or old.client_id != agent.client_id:
        raise ATHError(ErrorCode.INVALID_CODE, "refresh token is not valid")

    def reuse() -> ATHError:
        store.revoke_family(
            old.family_id,
            when,
            audit_row(
                now,
                "token.revoke",
                "refresh_reused",
                agent_id=old.agent_id,
                user_id=old.user_id,
                provider_id=old.provider_id,
                reason="a rotated refresh token was presented again",
                details={"family_id": old.family_id},
            ),
        )
        return ATHError(ErrorCode.INVALID_CODE, "refresh token was already used")

    if old.revoked_at is not None:
        raise ATHError(ErrorCode.TOKEN_REVOKED, "refresh token has been revoked")
    if old.used_at is not None:
        raise reuse()
    if as_utc(old.expires_at) <= when or as_utc(old.family_expires_at) <= when:
        raise ATHError(ErrorCode.TOKEN_EXPIRED, "refresh token has expired")
    current = svc._approved_agent(agent.client_id)
    if (
        resource is not None
        and old.audience is not None
        and (resource.rstrip("/") != old.audience.rstrip("/"))
    ):
        raise ATHError(ErrorCode.INVALID_TARGET, "resource differs from the original grant")
    wanted = list(dict.fromkeys(scopes)) if scopes else list(old.scopes)
    beyond = [s for s in wanted if s not in old.scopes]
    if beyond:
        raise ATHError(
            ErrorCode.SCOPE_NOT_APPROVED,
            "a refresh cannot widen the grant; authorize again",
            {"scopes": beyond},
        )
    approved = svc._approved_scopes(current, old.provider_id) or []
    effective = [s for s in wanted if s in approved]
    if not effective:
        raise ATHError(ErrorCode.SCOPE_NOT_APPROVED, "no scope of this grant is still approved")
    row = new_token_row(
        svc,
        current,
        user_id=old.user_id,
        provider_id=old.provider_id,
        scopes=effective,
        session_id="refresh:" + old.family_id[:48],
        audience=old.audience,
        family_id=old.family_id,
        now=now,
    )
    token = mint(svc, row, minter)
    refresh, rrow = new_refresh(svc, row, family_expires=old.family_expires_at, now=now)
    rrow.scopes = list(old.scopes)  # the family keeps its consented ceiling
    audit = audit_row(
        now,
        "token.refresh",
        "granted",
        agent_id=old.agent_id,
        user_id=old.user_id,
        provider_id=old.provider_id,
        requested=wanted,
        effective=effective,
        details={"family_id": old.family_id},
    )
    if not store.rotate_refresh(old_hash, when, row, rrow, audit):
        raise reuse()
    return IssuedGrant(
        token,
        svc.settings.token_ttl,
        effective,
        refresh,
        old.audience,
        old.provider_id,
        old.agent_id,
    )
