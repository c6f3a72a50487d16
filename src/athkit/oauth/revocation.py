"""Token revocation ``/oauth/revoke`` (RFC 7009 §2).

The client authenticates and may revoke only its own tokens; either kind of token (access
or refresh) takes its whole family with it, at once. The answer is 200 whether or not the
token existed or belonged to the caller (§2.2), so nothing is revealed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from athkit.core.audit import audit_row
from athkit.core.clock import to_datetime
from athkit.core.oauth_grants import oauth_store
from athkit.core.secrets import hash_secret
from athkit.oauth.client_auth import authenticate_client
from athkit.oauth.clients import ClientDirectory
from athkit.oauth.errors import OAuthError

if TYPE_CHECKING:
    from athkit.core.service import ATHService


def revocation_request(
    svc: ATHService,
    directory: ClientDirectory,
    form: Mapping[str, str],
    authorization: str | None,
) -> None:
    token = form.get("token")
    if not token:
        raise OAuthError("invalid_request", "token is required")
    client = authenticate_client(svc, directory, form, authorization)
    now = svc.clock()
    when = to_datetime(now)
    token_hash = hash_secret(token)
    store = oauth_store(svc)

    def audit(kind: str) -> object:
        return audit_row(
            now,
            "token.revoke",
            "revoked",
            agent_id=client.agent_id,
            details={"actor": "agent", "client_id": client.client_id, "token_kind": kind},
        )

    refresh = store.get_refresh(token_hash)
    if refresh is not None:
        if refresh.client_id == client.client_id:
            store.revoke_family(refresh.family_id, when, audit("refresh_token"))  # type: ignore[arg-type]
        return
    svc.store.revoke_token(token_hash, client.client_id, when, audit("access_token"))  # type: ignore[arg-type]
