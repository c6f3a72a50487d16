"""Raw signatures for the handshake (docs/handshake.md, "Canonical signing input").

ES256 signatures are IEEE P1363 ``r||s`` (64 bytes), Ed25519 signatures are 64 bytes; both are
carried as base64url without padding. ``verify`` never raises: any malformed key, signature or
input yields ``False``.
"""

from __future__ import annotations

from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from athkit.crypto.canonical import b64url_decode, b64url_encode, canonical_json
from athkit.crypto.keys import AgentKey

_P256_ORDER_BYTES = 32


def _public_key_from_jwk(jwk: dict[str, Any]) -> ec.EllipticCurvePublicKey | Ed25519PublicKey:
    """Build a ``cryptography`` public key from a P-256 or Ed25519 JWK (``ValueError`` else)."""
    if not isinstance(jwk, dict):
        raise ValueError("JWK must be an object")
    kty, crv = jwk.get("kty"), jwk.get("crv")
    if kty == "EC" and crv == "P-256":
        x, y = b64url_decode(str(jwk.get("x", ""))), b64url_decode(str(jwk.get("y", "")))
        if len(x) != 32 or len(y) != 32:
            raise ValueError("P-256 coordinates must be 32 bytes")
        return ec.EllipticCurvePublicNumbers(
            int.from_bytes(x, "big"), int.from_bytes(y, "big"), ec.SECP256R1()
        ).public_key()
    if kty == "OKP" and crv == "Ed25519":
        x = b64url_decode(str(jwk.get("x", "")))
        if len(x) != 32:
            raise ValueError("Ed25519 key must be 32 bytes")
        return Ed25519PublicKey.from_public_bytes(x)
    raise ValueError(f"unsupported key {kty!r}/{crv!r}")


def public_key_from_jwk(jwk: dict[str, Any]) -> ec.EllipticCurvePublicKey | Ed25519PublicKey:
    """Public form of :func:`_public_key_from_jwk` (raises ``ValueError`` on a bad JWK)."""
    return _public_key_from_jwk(jwk)


def sign(key: AgentKey, data: bytes) -> str:
    """Sign ``data`` with ``key`` (ES256 raw r||s, or Ed25519); base64url, no padding."""
    private = key.key.private_key
    if isinstance(private, ec.EllipticCurvePrivateKey):
        der = private.sign(data, ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        raw = r.to_bytes(_P256_ORDER_BYTES, "big") + s.to_bytes(_P256_ORDER_BYTES, "big")
        return b64url_encode(raw)
    if isinstance(private, Ed25519PrivateKey):
        return b64url_encode(private.sign(data))
    raise ValueError("key has no private P-256 or Ed25519 part")


def verify(public_jwk: dict[str, Any], data: bytes, signature: str) -> bool:
    """True when ``signature`` is a valid signature of ``data`` by ``public_jwk``; never raises."""
    try:
        public = _public_key_from_jwk(public_jwk)
        raw = b64url_decode(signature)
        if len(raw) != 64 or not isinstance(data, (bytes, bytearray)):
            return False
        if isinstance(public, ec.EllipticCurvePublicKey):
            r = int.from_bytes(raw[:32], "big")
            s = int.from_bytes(raw[32:], "big")
            public.verify(encode_dss_signature(r, s), bytes(data), ec.ECDSA(hashes.SHA256()))
        else:
            public.verify(raw, bytes(data))
        return True
    except (InvalidSignature, ValueError, TypeError, OverflowError):
        return False
    except Exception:  # noqa: BLE001 - a verifier must never raise on hostile input
        return False


def sign_object(key: AgentKey, obj: dict[str, Any]) -> str:
    """Sign the canonical JSON of ``obj``."""
    return sign(key, canonical_json(obj))


def verify_object(public_jwk: dict[str, Any], obj: Any, signature: Any) -> bool:
    """Verify a signature over the canonical JSON of ``obj``; False on any bad input."""
    if not isinstance(signature, str):
        return False
    try:
        data = canonical_json(obj)
    except (ValueError, TypeError, RecursionError):
        return False
    return verify(public_jwk, data, signature)
