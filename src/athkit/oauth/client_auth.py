"""Client authentication at the token, revocation and introspection endpoints
(RFC 6749 §2.3, OAuth 2.1 §2.4; RFC 7523 §2.2 / OIDC Core §9 ``private_key_jwt``).

A client authenticates with the method it registered: ``none`` (public clients, PKCE
protects the code), ``client_secret_basic`` / ``client_secret_post`` (constant-time check of
the hashed secret), or ``private_key_jwt`` for attested ATH agents (an assertion signed with
the key of the agent's identity document, ``aud`` = the token endpoint or the issuer, each
``jti`` accepted once). ATH-registered clients may use either secret method.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import unquote

from athkit.core.attestation import key_for
from athkit.core.clock import to_datetime
from athkit.core.secrets import hash_secret, secret_matches
from athkit.crypto.attestation import decode_unverified, verify_attestation_signature
from athkit.oauth.clients import ClientDirectory, external_client_id
from athkit.oauth.metadata import TOKEN_PATH, endpoint
from athkit.protocol.errors import ATHError, ErrorCode
from athkit.store.models import AgentRow

if TYPE_CHECKING:
    from athkit.core.service import ATHService

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_ASSERTION_LIFETIME = 300


def _fail(message: str = "client authentication failed") -> ATHError:
    return ATHError(ErrorCode.INVALID_CLIENT, message)


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """RFC 6749 §2.3.1: ``Basic base64(urlencode(id):urlencode(secret))``."""
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        raw = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    cid, sep, secret = raw.partition(":")
    return (unquote(cid), unquote(secret)) if sep else None


def authenticate_client(
    svc: ATHService,
    directory: ClientDirectory,
    form: Mapping[str, str],
    authorization: str | None,
) -> AgentRow:
    """The authenticated client of a token-endpoint-style request, or ``INVALID_CLIENT``."""
    basic = basic_credentials(authorization)
    assertion = form.get("client_assertion")
    if basic is not None:
        method, client_id, secret = "client_secret_basic", basic[0], basic[1]
        if form.get("client_id") not in (None, client_id):
            raise _fail("client_id in the body differs from the Authorization header")
    elif assertion is not None:
        if form.get("client_assertion_type") != JWT_BEARER:
            raise _fail("unsupported client_assertion_type")
        method, secret = "private_key_jwt", ""
        client_id = form.get("client_id") or _assertion_subject(assertion)
    elif form.get("client_secret") is not None:
        method, client_id, secret = (
            "client_secret_post",
            form.get("client_id", ""),
            form["client_secret"],
        )
    else:
        method, client_id, secret = "none", form.get("client_id", ""), ""
    row = directory.find(client_id, fetch=False)
    registered = row.token_endpoint_auth_method
    if registered is None:  # an /ath/agents/register client: it holds a client_secret
        allowed = {"client_secret_basic", "client_secret_post"}
    else:
        allowed = {registered}
        if registered.startswith("client_secret"):
            allowed = {"client_secret_basic", "client_secret_post"}
    if method not in allowed:
        raise _fail(f"this client authenticates with {sorted(allowed)[0]}")
    if method.startswith("client_secret"):
        if not secret_matches(secret, row.client_secret_hash):
            raise _fail()
    elif method == "private_key_jwt":
        _verify_assertion(svc, row, assertion or "")
    return row


def _assertion_subject(assertion: str) -> str:
    try:
        _, claims = decode_unverified(assertion)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _fail("client_assertion is not a JWT") from exc
    sub = claims.get("sub")
    return sub if isinstance(sub, str) else ""


def _verify_assertion(svc: ATHService, row: AgentRow, assertion: str) -> None:
    """RFC 7523 §3 checks with the agent's own key (identity document, PROTOCOL.md §3)."""
    if row.agent_id.startswith("urn:"):
        raise _fail("private_key_jwt needs an attested agent")
    now = svc.clock()
    try:
        header, _ = decode_unverified(assertion)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _fail("client_assertion is not a JWT") from exc
    kid = header.get("kid") if isinstance(header.get("kid"), str) else None
    doc = svc.fetcher.get(row.agent_id)
    try:  # the key the assertion's kid names (an identity document lists two while rotating)
        claims = verify_attestation_signature(assertion, key_for(doc, kid))
    except (ValueError, TypeError) as exc:
        refreshed = svc.fetcher.refetch_after_mismatch(row.agent_id)
        if refreshed is None:
            raise _fail("client_assertion signature is not valid") from exc
        try:
            claims = verify_attestation_signature(assertion, key_for(refreshed, kid))
        except (ValueError, TypeError) as exc2:
            raise _fail("client_assertion signature is not valid") from exc2
    cid = external_client_id(row)
    if claims.get("iss") != cid or claims.get("sub") != cid:
        raise _fail("client_assertion iss and sub must be the client_id")
    aud = claims.get("aud")
    auds = aud if isinstance(aud, list) else [aud]
    accepted = {endpoint(svc.settings, TOKEN_PATH), svc.settings.issuer}
    if not accepted.intersection(a for a in auds if isinstance(a, str)):
        raise _fail("client_assertion aud must be the token endpoint")
    exp, jti = claims.get("exp"), claims.get("jti")
    if not isinstance(exp, int | float) or not isinstance(jti, str) or not jti:
        raise _fail("client_assertion needs exp and jti")
    if exp <= now - svc.settings.clock_skew or exp > now + MAX_ASSERTION_LIFETIME + 60:
        raise _fail("client_assertion is expired or lives too long")
    until = to_datetime(max(exp, now) + svc.settings.clock_skew)
    if not svc.shared.replay.remember_once(
        hash_secret(f"oauth-assertion:{cid}:{jti}"), until, to_datetime(now)
    ):
        raise _fail("client_assertion was already used")
