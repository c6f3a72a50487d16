"""Keys, JWKs and attestation JWTs (PROTOCOL.md §3)."""

from athkit.crypto.attestation import (
    ALLOWED_ALGORITHMS,
    AttestationClaims,
    decode_unverified,
    sign_attestation,
    verify_attestation_signature,
)
from athkit.crypto.keys import AgentKey, load_public_jwk

__all__ = [
    "ALLOWED_ALGORITHMS",
    "AgentKey",
    "AttestationClaims",
    "decode_unverified",
    "load_public_jwk",
    "sign_attestation",
    "verify_attestation_signature",
]
