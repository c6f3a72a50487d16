"""Keep grants fresh: refresh (RFC 6749 §6) before expiry, once, even across processes.

:func:`ensure_fresh` returns a grant that is valid for at least ``skew`` more seconds. When it
is about to expire it takes the vault's write lock, re-reads the grant (another process may
have refreshed it meanwhile: then that token is used and no second refresh is sent, which
matters when the server rotates refresh tokens), and only then calls the token endpoint.
A grant without a refresh token cannot be renewed silently: :class:`ReauthorizationNeeded`
tells the caller to ask the user again (connect).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

import httpx

from athkit.client._core import basic_authorization
from athkit.client.vault.records import GrantRecord
from athkit.client.vault.vault import DEFAULT_USER, Vault

#: Refresh when fewer than this many seconds are left.
DEFAULT_SKEW = 60.0

Refresher = Callable[[GrantRecord], GrantRecord]


class ReauthorizationNeeded(Exception):
    """The grant expired (or is about to) and holds no refresh token: connect again."""

    def __init__(self, grant: GrantRecord) -> None:
        super().__init__(
            f"the grant for {grant.provider_id} at {grant.service} expired; "
            "the user must authorize again (athkit agent connect)"
        )
        self.grant = grant


class RefreshFailed(Exception):
    """The token endpoint refused the refresh; the message carries its OAuth error."""


def oauth_refresher(
    client_secret: str | None = None,
    *,
    http: httpx.Client | None = None,
    timeout: float = 10.0,
) -> Refresher:
    """A refresher speaking the ``refresh_token`` grant (RFC 6749 §6) to the grant's token
    endpoint, authenticated with HTTP Basic (§2.3.1) when ``client_secret`` is given."""

    def refresh(grant: GrantRecord) -> GrantRecord:
        if not grant.refresh_token or not grant.token_endpoint:
            raise ReauthorizationNeeded(grant)
        form = {"grant_type": "refresh_token", "refresh_token": grant.refresh_token}
        headers: dict[str, str] = {"Accept": "application/json"}
        if client_secret is not None and grant.client_id:
            headers["Authorization"] = basic_authorization(grant.client_id, client_secret)
        elif grant.client_id:
            form["client_id"] = grant.client_id
        client = http or httpx.Client(timeout=timeout)
        try:
            resp = client.post(grant.token_endpoint, data=form, headers=headers)
        except httpx.TransportError as exc:
            raise RefreshFailed(f"token endpoint unreachable: {type(exc).__name__}") from exc
        finally:
            if http is None:
                client.close()
        try:
            body = resp.json()
        except ValueError:
            body = {}
        if resp.status_code != 200 or not isinstance(body.get("access_token"), str):
            error = body.get("error", f"HTTP {resp.status_code}") if isinstance(body, dict) else ""
            raise RefreshFailed(f"refresh refused: {error}")
        expires_in = body.get("expires_in")
        scope = body.get("scope")
        return replace(
            grant,
            access_token=body["access_token"],
            # RFC 6749 §6: a new refresh token replaces the old; absent, the old one stays.
            refresh_token=body.get("refresh_token") or grant.refresh_token,
            expires_at=time.time() + (int(expires_in) if expires_in is not None else 3600),
            scopes=scope.split() if isinstance(scope, str) and scope else grant.scopes,
            obtained_at=time.time(),
        )

    return refresh


def ensure_fresh(
    vault: Vault,
    grant: GrantRecord,
    refresher: Refresher,
    *,
    user: str = DEFAULT_USER,
    skew: float = DEFAULT_SKEW,
) -> GrantRecord:
    """``grant`` if it has ``skew`` seconds left, else its refreshed successor (see module)."""
    if not grant.expires_within(skew):
        return grant

    def change(current: GrantRecord | None) -> GrantRecord | None:
        if current is None:
            raise ReauthorizationNeeded(grant)
        if not current.expires_within(skew):
            return current  # someone else refreshed it while we waited for the lock
        if not current.refreshable:
            raise ReauthorizationNeeded(current)
        return refresher(current)

    fresh = vault.mutate_grant(grant.key, change, user=user)
    if fresh is None:  # pragma: no cover - change never deletes
        raise ReauthorizationNeeded(grant)
    return fresh
