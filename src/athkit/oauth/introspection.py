"""Token introspection ``/oauth/introspect`` (RFC 7662 §2), so other gateways and resource
servers can check athkit tokens.

Callers authenticate with ``client_secret_basic``: a resource server listed in the
``introspection_clients`` setting may ask about any token; a client registered here may ask
only about its own. Anything not live (unknown, expired, revoked, someone else's) is
``{"active": false}`` and nothing more (§2.2).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from athkit.core.clock import as_utc, to_datetime
from athkit.core.oauth_grants import oauth_store
from athkit.core.secrets import hash_secret, secret_matches
from athkit.oauth.client_auth import authenticate_client, basic_credentials
from athkit.oauth.clients import ClientDirectory, external_client_id
from athkit.oauth.errors import OAuthError
from athkit.store.models import RefreshTokenRow, TokenRow

if TYPE_CHECKING:
    from athkit.core.service import ATHService

INACTIVE: dict[str, Any] = {"active": False}


def _resource_server(svc: ATHService, authorization: str | None) -> bool:
    creds = basic_credentials(authorization)
    if creds is None:
        return False
    expected = svc.settings.introspection_clients.get(creds[0])
    # constant-time either way, even for an unknown resource server id
    return secret_matches(creds[1], hash_secret(expected) if expected else None)


def introspection_request(
    svc: ATHService,
    directory: ClientDirectory,
    form: Mapping[str, str],
    authorization: str | None,
) -> dict[str, Any]:
    token = form.get("token")
    if not token:
        raise OAuthError("invalid_request", "token is required")
    owner: str | None = None
    if not _resource_server(svc, authorization):
        owner = authenticate_client(svc, directory, form, authorization).client_id
    now = to_datetime(svc.clock())
    token_hash = hash_secret(token)
    row: TokenRow | RefreshTokenRow | None = svc.store.get_token(token_hash)
    if isinstance(row, TokenRow):
        live = row.revoked_at is None and as_utc(row.expires_at) > now
        kind, exp, iat = "access_token", row.expires_at, row.created_at
    else:
        row = oauth_store(svc).get_refresh(token_hash)
        if row is None:
            return INACTIVE
        live = row.revoked_at is None and row.used_at is None and as_utc(row.expires_at) > now
        kind, exp, iat = "refresh_token", row.expires_at, row.created_at
    if not live or (owner is not None and row.client_id != owner):
        return INACTIVE
    agent = svc.store.get_agent(row.client_id)
    if agent is None or agent.status != "approved":
        return INACTIVE
    body: dict[str, Any] = {
        "active": True,
        "scope": " ".join(row.scopes),
        "client_id": external_client_id(agent),
        "sub": row.user_id,
        "iss": svc.settings.issuer,
        "exp": int(as_utc(exp).timestamp()),
        "iat": int(as_utc(iat).timestamp()),
        "token_type": "Bearer" if kind == "access_token" else "refresh_token",
        "ath_agent_id": row.agent_id,
        "ath_provider_id": row.provider_id,
    }
    if row.audience:
        body["aud"] = row.audience
    if kind == "access_token":
        body["ath_agent_bound"] = bool(getattr(row, "agent_bound", False))
    return body
