"""The token endpoint ``/oauth/token`` (RFC 6749 §3.2, §4.1.3, §5; OAuth 2.1 §3.2).

Form-encoded requests only. ``authorization_code`` (with the PKCE ``code_verifier``) and
``refresh_token`` (rotation: :func:`athkit.core.oauth_refresh.refresh_grant`). The answer is
the RFC 6749 §5.1 JSON; the access token is bound to its agent and its audience.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from athkit.core.oauth_grants import AccessTokenMinter, IssuedGrant, redeem_code
from athkit.core.oauth_refresh import refresh_grant
from athkit.oauth.client_auth import authenticate_client
from athkit.oauth.clients import ClientDirectory
from athkit.oauth.errors import OAuthError

if TYPE_CHECKING:
    from athkit.core.service import ATHService

#: RFC 7636 §4.1: 43–128 characters of the unreserved set.
CODE_VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")


def grant_response(grant: IssuedGrant) -> dict[str, Any]:
    body: dict[str, Any] = {
        "access_token": grant.access_token,
        "token_type": "Bearer",
        "expires_in": grant.expires_in,
        "scope": " ".join(grant.scopes),
        "ath_agent_id": grant.agent_id,
        "ath_provider_id": grant.provider_id,
    }
    if grant.refresh_token:
        body["refresh_token"] = grant.refresh_token
    if grant.audience:
        body["ath_audience"] = grant.audience
    return body


def token_request(
    svc: ATHService,
    directory: ClientDirectory,
    form: Mapping[str, str],
    authorization: str | None,
    minter: AccessTokenMinter,
) -> dict[str, Any]:
    grant_type = form.get("grant_type")
    if grant_type not in ("authorization_code", "refresh_token"):
        raise OAuthError(
            "unsupported_grant_type", "grant_type must be authorization_code or refresh_token"
        )
    client = authenticate_client(svc, directory, form, authorization)
    if grant_type == "authorization_code":
        verifier = form.get("code_verifier", "")
        if not CODE_VERIFIER.match(verifier):
            raise OAuthError("invalid_request", "a PKCE code_verifier (RFC 7636) is required")
        code = form.get("code")
        if not code:
            raise OAuthError("invalid_request", "code is required")
        grant = redeem_code(
            svc,
            client,
            code=code,
            code_verifier=verifier,
            redirect_uri=form.get("redirect_uri"),
            resource=form.get("resource"),
            minter=minter,
        )
    else:
        refresh = form.get("refresh_token")
        if not refresh:
            raise OAuthError("invalid_request", "refresh_token is required")
        scope = form.get("scope")
        grant = refresh_grant(
            svc,
            client,
            refresh_token=refresh,
            scopes=scope.split() if scope else None,
            resource=form.get("resource"),
            minter=minter,
        )
    return grant_response(grant)
