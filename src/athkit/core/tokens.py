"""ATH access tokens: the bound grant and its validation (PROTOCOL.md §6–§7)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from athkit.core.clock import as_utc
from athkit.core.resources import audience_covers
from athkit.protocol.errors import ATHError, ErrorCode
from athkit.store.models import TokenRow

TOKEN_PREFIX = "ath_tk_"


@dataclass(frozen=True)
class TokenInfo:
    """What a valid token allows: handed to the service's route after the checks."""

    client_id: str
    agent_id: str
    user_id: str
    provider_id: str
    scopes: frozenset[str]
    expires_at: datetime
    #: RFC 8707 audience the token is bound to (None: any resource of its provider).
    audience: str | None = None
    #: True for tokens issued through /oauth/*: they bind their agent, no header needed.
    agent_bound: bool = False


def check_token(
    row: TokenRow | None,
    *,
    now: datetime,
    agent_header: str | None,
    provider_id: str | None,
    required: Iterable[str],
    resource: str | None = None,
) -> TokenInfo:
    """Apply every §7 check in a fixed order; raise the first failure's ATH error.

    Token kinds: an ATH token (``/ath/token``) needs ``X-ATH-Agent-ID`` naming its agent; a
    token from ``/oauth/*`` (``agent_bound``) carries its agent itself, so the header may be
    absent but, when sent, must still name that agent. A token with an audience (RFC 8707) is
    refused at any ``resource`` it does not cover: no token passthrough.
    """
    if row is None:
        raise ATHError(ErrorCode.TOKEN_INVALID, "access token is not valid")
    if row.revoked_at is not None:
        raise ATHError(ErrorCode.TOKEN_REVOKED, "access token has been revoked")
    expires_at = as_utc(row.expires_at)
    if expires_at <= now:
        raise ATHError(ErrorCode.TOKEN_EXPIRED, "access token has expired")
    return check_grant(
        token_info(row),
        agent_header=agent_header,
        provider_id=provider_id,
        required=required,
        resource=resource,
    )


def token_info(row: TokenRow) -> TokenInfo:
    """The grant a token row carries (what the token cache keeps)."""
    return TokenInfo(
        row.client_id,
        row.agent_id,
        row.user_id,
        row.provider_id,
        frozenset(row.scopes),
        as_utc(row.expires_at),
        row.audience,
        bool(row.agent_bound),
    )


def check_grant(
    info: TokenInfo,
    *,
    agent_header: str | None,
    provider_id: str | None,
    required: Iterable[str],
    resource: str | None = None,
) -> TokenInfo:
    """The checks after the token itself (live, unexpired): agent header, provider, audience,
    scopes. Shared by the database path and the token cache."""
    header_ok = agent_header == info.agent_id or (info.agent_bound and not agent_header)
    if not header_ok:
        raise ATHError(
            ErrorCode.AGENT_IDENTITY_MISMATCH,
            "X-ATH-Agent-ID is missing or names another agent than the token's",
        )
    if provider_id is not None and provider_id != info.provider_id:
        raise ATHError(
            ErrorCode.PROVIDER_MISMATCH,
            "token was issued for another provider",
            {"token_provider": info.provider_id, "requested_provider": provider_id},
        )
    if info.audience is not None and resource is not None and not audience_covers(
        info.audience, resource
    ):
        raise ATHError(
            ErrorCode.TOKEN_INVALID,
            "access token was issued for another resource",
            {"audience": info.audience, "resource": resource},
        )
    require_scopes_of(info, required)
    return info


def require_scopes_of(info: TokenInfo, required: Iterable[str]) -> None:
    """Refuse with ``SCOPE_INSUFFICIENT`` unless the token grants every required scope."""
    scopes = info.scopes
    missing = [s for s in required if s not in scopes]
    if missing:
        raise ATHError(
            ErrorCode.SCOPE_INSUFFICIENT,
            "token does not grant the scope this request needs",
            {"required": missing, "granted": sorted(info.scopes)},
        )
