"""OAuth 2.0 Dynamic Client Registration (RFC 7591 §2–§3) feeding ATH Phase A.

A client registers its metadata; the service's approval policy decides what it may ever get,
exactly as for ``/ath/agents/register``. ATH extension fields let an ATH agent register this
way and keep its attested identity:

- ``ath_agent_id``: the agent's identity document URL (PROTOCOL.md §3),
- ``ath_agent_attestation``: a fresh attestation JWT for it (``aud`` = the service base URL),
- ``ath_agent_type``: free text (e.g. ``assistant``, ``coding``), kept for the operator,
- ``ath_requested_capabilities``: scopes the agent asks Phase A for (default: ``scope``).

Without them the client is unattested: its agent_id is ``urn:athkit:client:<client_id>`` and
the policy treats it as an unknown agent (pending for an operator, unless auto-approved).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from athkit.core.oauth_grants import admit_client
from athkit.core.secrets import new_secret
from athkit.oauth.errors import OAuthError
from athkit.protocol.errors import ATHError, ErrorCode
from athkit.protocol.redirects import check_redirect_uri
from athkit.protocol.scopes import is_valid_scope

if TYPE_CHECKING:
    from athkit.core.service import ATHService

AUTH_METHODS = ("none", "client_secret_basic", "client_secret_post", "private_key_jwt")
GRANT_TYPES = ("authorization_code", "refresh_token")
#: RFC 7591 §2 fields echoed back (and kept) when the client sends them as strings.
TEXT_FIELDS = (
    "client_name",
    "client_uri",
    "logo_uri",
    "tos_uri",
    "policy_uri",
    "software_id",
    "software_version",
    "ath_agent_type",
)
UNATTESTED_PREFIX = "urn:athkit:client:"


def _metadata_error(message: str, error: str = "invalid_client_metadata") -> OAuthError:
    return OAuthError(error, message, 400)


def _str_list(body: dict[str, Any], key: str, default: list[str]) -> list[str]:
    value = body.get(key, default)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _metadata_error(f"{key} must be a list of strings")
    return list(value)


def register_client(svc: ATHService, body: dict[str, Any]) -> dict[str, Any]:
    """Validate the metadata (§2), run Phase A, answer the §3.2.1 client information."""
    redirect_uris = _str_list(body, "redirect_uris", [])
    if not redirect_uris or len(redirect_uris) > 20:
        raise _metadata_error("between 1 and 20 redirect_uris are required", "invalid_redirect_uri")
    for uri in redirect_uris:
        try:
            check_redirect_uri(uri, dev_mode=svc.settings.dev_mode)
        except ATHError as exc:
            raise _metadata_error(f"{uri[:100]}: {exc.message}", "invalid_redirect_uri") from exc
    method = body.get("token_endpoint_auth_method", "client_secret_basic")
    if method not in AUTH_METHODS:
        raise _metadata_error(f"token_endpoint_auth_method must be one of {list(AUTH_METHODS)}")
    grants = _str_list(body, "grant_types", ["authorization_code"])
    if not grants or any(g not in GRANT_TYPES for g in grants):
        raise _metadata_error("grant_types may hold authorization_code and refresh_token only")
    if _str_list(body, "response_types", ["code"]) != ["code"]:
        raise _metadata_error('response_types must be ["code"]')
    scope = body.get("scope")
    if scope is not None and not isinstance(scope, str):
        raise _metadata_error("scope must be a space-separated string")
    requested = scope.split() if scope else None
    caps = body.get("ath_requested_capabilities")
    if caps is not None:
        requested = [*(requested or []), *_str_list(body, "ath_requested_capabilities", [])]
    if requested is not None:
        bad = [s for s in requested if not is_valid_scope(s)]
        if bad or len(requested) > 100:
            raise _metadata_error("malformed scope")
    text = {k: body[k] for k in TEXT_FIELDS if isinstance(body.get(k), str)}
    for key, value in text.items():
        if len(value) > 512 or any(ord(c) < 0x20 for c in value):
            raise _metadata_error(f"{key} is too long or has control characters")
    client_id = new_secret("ath_", 18)
    agent_id = body.get("ath_agent_id")
    if agent_id is not None:
        attestation = body.get("ath_agent_attestation")
        if not isinstance(agent_id, str) or not isinstance(attestation, str):
            raise _metadata_error("ath_agent_id needs a string ath_agent_attestation")
        verified = svc.verifier.verify(attestation, endpoint="register")
        if verified.agent_id != agent_id:
            raise ATHError(
                ErrorCode.AGENT_IDENTITY_MISMATCH, "attestation sub does not match ath_agent_id"
            )
        identity = verified.identity
        name, dev_name, dev_id = identity.name, identity.developer.name, identity.developer.id
        kind = "dcr_attested"
    else:
        if method == "private_key_jwt":
            raise _metadata_error("private_key_jwt is for attested ATH agents (ath_agent_id)")
        agent_id = UNATTESTED_PREFIX + client_id
        name = text.get("client_name") or "Unnamed OAuth client"
        dev_name, dev_id = "unverified", ""
        kind = "dcr"
    metadata: dict[str, Any] = {
        **text,
        "redirect_uris": redirect_uris,
        "grant_types": grants,
        "response_types": ["code"],
        "token_endpoint_auth_method": method,
    }
    if scope:
        metadata["scope"] = scope
    if isinstance(body.get("contacts"), list):
        metadata["contacts"] = [str(c)[:200] for c in body["contacts"][:10]]
    row, secret = admit_client(
        svc,
        kind=kind,
        agent_id=agent_id,
        name=name,
        developer_name=dev_name,
        developer_id=dev_id,
        redirect_uris=redirect_uris,
        requested_scopes=requested,
        auth_method=method,
        metadata=metadata,
        client_id=client_id,
        purpose=text.get("ath_agent_type"),
    )
    answer: dict[str, Any] = {
        **metadata,
        "client_id": row.client_id,
        "client_id_issued_at": int(time.time()),
        "ath_agent_id": agent_id,
        "ath_agent_status": row.status,
        "ath_approved_scopes": sorted(
            {s for p in row.approved_providers for s in p.get("approved_scopes") or []}
            if row.status == "approved"
            else set()
        ),
    }
    if secret is not None:
        answer["client_secret"] = secret
        answer["client_secret_expires_at"] = 0
    return answer
