"""The authorization endpoint ``/oauth/authorize`` (RFC 6749 §4.1.1, OAuth 2.1 §4.1.1).

Checks the request, then opens an ATH session and sends the browser to the very consent
page ATH clients use (PROTOCOL.md §5). Rules:

- ``response_type=code`` only; PKCE with ``code_challenge_method=S256`` is required;
- ``redirect_uri`` must match a registered one exactly (RFC 8252 §7.3: any port for a
  loopback IP redirect); a wrong client or redirect URI is shown to the user, never redirected
  to (RFC 6749 §4.1.2.1); every later error goes back to the client with ``state`` and ``iss``;
- ``resource`` (RFC 8707) must name a resource this server protects: it becomes the token's
  audience; without it the provider's main resource is used.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlencode, urlsplit

from athkit.core.oauth_grants import open_session
from athkit.oauth.clients import ClientDirectory
from athkit.oauth.errors import from_ath
from athkit.protocol.errors import ATHError, ErrorCode
from athkit.protocol.redirects import redirect_uri_matches

if TYPE_CHECKING:
    from athkit.core.service import ATHService

#: RFC 7636 §4.2: an S256 challenge is the unpadded base64url of a SHA-256 digest.
S256_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")
MAX_STATE = 512


def _with_query(url: str, params: Mapping[str, str]) -> str:
    sep = "&" if urlsplit(url).query else "?"
    return f"{url}{sep}{urlencode(params)}"


def error_redirect(
    svc: ATHService, redirect_uri: str, state: str | None, error: str, description: str
) -> str:
    params = {"error": error, "error_description": description[:200]}
    if state:
        params["state"] = state
    params["iss"] = svc.settings.issuer
    return _with_query(redirect_uri, params)


def authorization_request(
    svc: ATHService, directory: ClientDirectory, params: Mapping[str, str]
) -> str:
    """Where the browser goes next: the consent page, or the client with an error.

    Raises :class:`ATHError` for the errors that must not be redirected (unknown client,
    redirect URI mismatch)."""
    row = directory.find(params.get("client_id", ""))
    presented = params.get("redirect_uri")
    registered = list(row.redirect_uris or [])
    if presented is None:
        if len(registered) != 1:
            raise ATHError(ErrorCode.INVALID_REQUEST, "redirect_uri is required")
        presented = registered[0]
    if not any(redirect_uri_matches(r, presented) for r in registered):
        raise ATHError(
            ErrorCode.REDIRECT_URI_MISMATCH,
            "redirect_uri does not match a registered redirect URI",
        )
    state = params.get("state")

    def fail(error: str, description: str) -> str:
        return error_redirect(svc, presented, state, error, description)

    if state is not None and (len(state) > MAX_STATE or not state.isprintable()):
        return fail("invalid_request", "state is too long or not printable")
    if params.get("response_type") != "code":
        return fail("unsupported_response_type", "response_type must be code")
    challenge = params.get("code_challenge", "")
    if params.get("code_challenge_method") != "S256" or not S256_CHALLENGE.match(challenge):
        return fail("invalid_request", "PKCE with code_challenge_method=S256 is required")
    scope = params.get("scope")
    scopes = scope.split() if scope else None
    try:
        resource_param = params.get("resource")
        if resource_param is None:
            default = svc.resources.default_for(svc.settings.provider_id)
            if default is None:
                raise ATHError(ErrorCode.INVALID_TARGET, "resource is required here")
            resource = default
        else:
            resource = svc.resources.resolve(resource_param)
        url = open_session(
            svc,
            row,
            resource=resource,
            scopes=scopes,
            state=state,
            redirect_uri=presented,
            code_challenge=challenge,
        )
    except ATHError as exc:
        err = from_ath(exc)
        error = err.error
        if error in ("invalid_client", "unauthorized_client"):
            error = "unauthorized_client"
        elif error not in ("invalid_scope", "invalid_target", "temporarily_unavailable"):
            error = "access_denied" if exc.status == 403 else "server_error"
            if exc.status < 500 and exc.status != 403:
                error = "invalid_request"
        return fail(error, exc.message)
    return url
