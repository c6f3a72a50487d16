"""Agent attestation JWTs: signing and signature verification (PROTOCOL.md §3).

Only :data:`ALLOWED_ALGORITHMS` are ever accepted: never ``none`` and never HMAC, whatever the
token's header says. Claim checks (aud, iat window, jti replay) live in
:mod:`athkit.core.attestation`, which knows the endpoint and the clock.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import warnings
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError

from athkit.crypto.keys import AgentKey, AnyKey

ALLOWED_ALGORITHMS: tuple[str, ...] = ("ES256", "Ed25519", "EdDSA")
DEFAULT_LIFETIME = 3600


@dataclass(frozen=True)
class AttestationClaims:
    iss: str
    sub: str
    aud: str
    iat: int
    exp: int
    jti: str
    raw: dict[str, Any]


def sign_attestation(
    key: AgentKey,
    agent_id: str,
    audience: str,
    *,
    lifetime: int = DEFAULT_LIFETIME,
    now: float | None = None,
    extra: dict[str, Any] | None = None,
) -> str:
    """Sign a fresh attestation (new ``jti`` every call) for ``audience``."""
    iat = int(now if now is not None else time.time())
    claims: dict[str, Any] = {
        "iss": agent_id,
        "sub": agent_id,
        "aud": audience,
        "iat": iat,
        "exp": iat + lifetime,
        "jti": secrets.token_urlsafe(24),
    }
    if extra:
        claims.update(extra)
    header = {"alg": key.algorithm, "typ": "JWT", "kid": key.kid}
    return jwt.encode(header, claims, key.key, algorithms=[key.algorithm])


def _b64json(segment: str) -> dict[str, Any]:
    pad = "=" * (-len(segment) % 4)
    value = json.loads(base64.urlsafe_b64decode(segment + pad))
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def decode_unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of a compact JWS *without* checking the signature.

    Used only to learn which identity document to fetch; every decision is taken on the
    verified claims.
    """
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("not a compact JWS")
    return _b64json(parts[0]), _b64json(parts[1])


def verify_attestation_signature(token: str, key: AnyKey) -> dict[str, Any]:
    """Verify the JWS signature with ``key``; return the claims. Raises ``ValueError``."""
    header, _ = decode_unverified(token)
    alg = header.get("alg")
    if alg not in ALLOWED_ALGORITHMS:
        raise ValueError(f"algorithm {alg!r} is not allowed")
    try:
        if alg == "EdDSA":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # joserfc flags "EdDSA" deprecated (RFC 9864)
                token_obj = jwt.decode(token, key, algorithms=[str(alg)])
        else:  # no warning to hide: the process-wide filters stay untouched
            token_obj = jwt.decode(token, key, algorithms=[str(alg)])
    except JoseError as exc:
        raise ValueError(f"bad signature: {exc.error}") from exc
    return dict(token_obj.claims)
