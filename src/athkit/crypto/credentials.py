"""The handshake's signed objects (docs/handshake.md): user credential (step 0), the step-2/3
proofs, the step-7 confirmation, the user-key link and the user-request proof header.

Every object carries a ``purpose`` so that a signature made for one step can never be replayed
as another; every signature is over :func:`athkit.crypto.canonical.canonical_json`.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from athkit.crypto.canonical import b64url_decode, b64url_encode, canonical_json
from athkit.crypto.did import DIDError, did_key_from_jwk
from athkit.crypto.keys import AgentKey
from athkit.crypto.signing import sign_object, verify_object

PURPOSE_CREDENTIAL = "ath-user-credential"
PURPOSE_SERVER = "ath-handshake-server"
PURPOSE_CLIENT = "ath-handshake-client"
PURPOSE_CONFIRMATION = "ath-user-confirmation"
PURPOSE_KEY_LINK = "ath-user-key-link"
PURPOSE_USER_REQUEST = "ath-user-request"

#: How far a signed timestamp may be from the verifier's clock (seconds).
MAX_SKEW = 300

CredentialReason = Literal["invalid", "expired", "agent_mismatch"]


class Resolver(Protocol):
    """Anything that maps a DID to its public JWK (see :class:`athkit.crypto.did.DIDResolver`)."""

    def resolve(self, did: str) -> dict[str, Any]: ...


def new_nonce() -> str:
    """A fresh nonce: base64url of 32 bytes from the OS CSPRNG (256 bits)."""
    return b64url_encode(secrets.token_bytes(32))


def _now(now: int | float | None) -> int:
    return int(time.time() if now is None else now)


# -- step 0: the user's credential ------------------------------------------------------------


class CredentialError(ValueError):
    """A user credential that must be refused; ``reason`` maps to a ``CREDENTIAL_*`` code."""

    def __init__(self, reason: CredentialReason, message: str) -> None:
        super().__init__(message)
        self.reason: CredentialReason = reason
        self.message = message


@dataclass(frozen=True)
class UserCredential:
    """A verified (or freshly issued) step-0 credential."""

    user_did: str
    client_did: str
    scopes: tuple[str, ...]
    expires_at: int
    issued_at: int

    def to_object(self) -> dict[str, Any]:
        """The exact signed object (purpose included)."""
        return {
            "purpose": PURPOSE_CREDENTIAL,
            "user_did": self.user_did,
            "client_did": self.client_did,
            "scopes": list(self.scopes),
            "expires_at": self.expires_at,
            "issued_at": self.issued_at,
        }


@dataclass(frozen=True)
class SignedCredential:
    """``{credential, signature}``: what goes into ``scope_request.user_authorization``."""

    credential: dict[str, Any]
    signature: str

    def to_dict(self) -> dict[str, Any]:
        return {"credential": dict(self.credential), "signature": self.signature}

    @classmethod
    def from_dict(cls, data: Any) -> SignedCredential:
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("credential"), dict)
            or not isinstance(data.get("signature"), str)
        ):
            raise CredentialError("invalid", "user_authorization needs {credential, signature}")
        return cls(dict(data["credential"]), data["signature"])

    @property
    def user_did(self) -> str:
        return str(self.credential.get("user_did", ""))

    @property
    def client_did(self) -> str:
        return str(self.credential.get("client_did", ""))

    @property
    def scopes(self) -> list[str]:
        scopes = self.credential.get("scopes")
        return [str(s) for s in scopes] if isinstance(scopes, list) else []

    @property
    def expires_at(self) -> int:
        value = self.credential.get("expires_at")
        return value if isinstance(value, int) else 0


def issue(
    user_key: AgentKey,
    client_did: str,
    scopes: list[str] | tuple[str, ...],
    ttl_seconds: int,
    now: int | float | None = None,
) -> SignedCredential:
    """Sign a credential that lets ``client_did`` ask for ``scopes`` for ``ttl_seconds``."""
    if ttl_seconds <= 0:
        raise ValueError("ttl_seconds must be positive")
    if not scopes or any(not isinstance(s, str) or not s for s in scopes):
        raise ValueError("scopes must be a non-empty list of strings")
    issued = _now(now)
    cred = UserCredential(
        user_did=did_key_from_jwk(user_key.public_jwk()),
        client_did=client_did,
        scopes=tuple(dict.fromkeys(scopes)),
        expires_at=issued + int(ttl_seconds),
        issued_at=issued,
    )
    obj = cred.to_object()
    return SignedCredential(obj, sign_object(user_key, obj))


def _parse_credential(obj: Any) -> UserCredential:
    if not isinstance(obj, dict):
        raise CredentialError("invalid", "credential must be an object")
    expected = {"purpose", "user_did", "client_did", "scopes", "expires_at", "issued_at"}
    if set(obj) != expected:
        raise CredentialError("invalid", "credential has missing or unknown fields")
    if obj["purpose"] != PURPOSE_CREDENTIAL:
        raise CredentialError("invalid", "credential purpose is wrong")
    user_did, client_did, scopes = obj["user_did"], obj["client_did"], obj["scopes"]
    exp, iat = obj["expires_at"], obj["issued_at"]
    if not isinstance(user_did, str) or not isinstance(client_did, str):
        raise CredentialError("invalid", "user_did and client_did must be strings")
    if not isinstance(scopes, list) or not all(isinstance(s, str) and s for s in scopes):
        raise CredentialError("invalid", "scopes must be a list of strings")
    for v in (exp, iat):
        if not isinstance(v, int) or isinstance(v, bool):
            raise CredentialError("invalid", "expires_at and issued_at must be integers")
    return UserCredential(user_did, client_did, tuple(scopes), exp, iat)


def verify_credential(
    credential: Any,
    signature: Any,
    resolver: Resolver,
    *,
    client_did: str,
    now: int | float | None = None,
) -> UserCredential:
    """Check a step-0 credential: shape, user signature, expiry, then the agent it names.

    Raises :class:`CredentialError` with ``reason`` ``invalid`` (→ ``CREDENTIAL_INVALID``),
    ``expired`` (→ ``CREDENTIAL_EXPIRED``) or ``agent_mismatch`` (→ ``CREDENTIAL_AGENT_MISMATCH``).
    The scope subset check is the caller's (it knows the requested scopes).
    """
    cred = _parse_credential(credential)
    try:
        jwk = resolver.resolve(cred.user_did)
    except (DIDError, ValueError) as exc:
        raise CredentialError("invalid", f"user_did cannot be resolved: {exc}") from exc
    if not verify_object(jwk, credential, signature):
        raise CredentialError("invalid", "the user's signature over the credential is invalid")
    t = _now(now)
    if cred.issued_at > t + MAX_SKEW:
        raise CredentialError("invalid", "credential is issued in the future")
    if cred.expires_at <= t:
        raise CredentialError("expired", "credential has expired")
    if cred.client_did != client_did:
        raise CredentialError("agent_mismatch", "credential was issued to another agent")
    return cred


# -- steps 2 and 3: mutual proof of possession ------------------------------------------------


def _proof_object(
    purpose: str,
    handshake_id: str,
    client_did: str,
    server_did: str,
    nonce_a: str,
    nonce_b: str,
    timestamp: int,
) -> dict[str, Any]:
    return {
        "purpose": purpose,
        "handshake_id": handshake_id,
        "client_did": client_did,
        "server_did": server_did,
        "nonce_a": nonce_a,
        "nonce_b": nonce_b,
        "timestamp": int(timestamp),
    }


def server_proof_object(
    handshake_id: str, client_did: str, server_did: str, nonce_a: str, nonce_b: str, timestamp: int
) -> dict[str, Any]:
    """The step-2 object the server signs (nonce A is the agent's challenge)."""
    return _proof_object(
        PURPOSE_SERVER, handshake_id, client_did, server_did, nonce_a, nonce_b, timestamp
    )


def client_proof_object(
    handshake_id: str, client_did: str, server_did: str, nonce_a: str, nonce_b: str, timestamp: int
) -> dict[str, Any]:
    """The step-3 object the agent signs (nonce B is the server's challenge)."""
    return _proof_object(
        PURPOSE_CLIENT, handshake_id, client_did, server_did, nonce_a, nonce_b, timestamp
    )


# -- step 9: the authenticated key exchange ---------------------------------------------------

PURPOSE_KEX_CLIENT = "ath-handshake-kex-client"
PURPOSE_KEX_SERVER = "ath-handshake-kex-server"


def client_kex_object(
    handshake_id: str, client_did: str, server_did: str, client_epk: dict[str, Any]
) -> dict[str, Any]:
    """What the agent signs in step 9: its ephemeral key, bound to this handshake."""
    return {
        "purpose": PURPOSE_KEX_CLIENT,
        "handshake_id": handshake_id,
        "client_did": client_did,
        "server_did": server_did,
        "epk": _epk(client_epk),
    }


def server_kex_object(
    handshake_id: str,
    client_did: str,
    server_did: str,
    client_epk: dict[str, Any],
    server_epk: dict[str, Any],
    session_id: str,
) -> dict[str, Any]:
    """What the server signs in step 9: both ephemeral keys and the session, so that nobody in
    between can substitute either key (the ECDH itself is unauthenticated)."""
    return {
        "purpose": PURPOSE_KEX_SERVER,
        "handshake_id": handshake_id,
        "client_did": client_did,
        "server_did": server_did,
        "client_epk": _epk(client_epk),
        "server_epk": _epk(server_epk),
        "session_id": session_id,
    }


def _epk(jwk: dict[str, Any]) -> dict[str, Any]:
    """The public members of an EC JWK, the only part that is signed."""
    return {k: jwk[k] for k in ("kty", "crv", "x", "y") if k in jwk}


# -- step 7: the user's confirmation ----------------------------------------------------------


def confirmation_object(
    request_id: str,
    handshake_id: str,
    user_did: str,
    client_did: str,
    approved: bool,
    approved_scopes: list[str] | tuple[str, ...],
    expires_at: int,
) -> dict[str, Any]:
    """The step-7 object the user signs (Approve with a subset, or Deny with ``[]``)."""
    return {
        "purpose": PURPOSE_CONFIRMATION,
        "request_id": request_id,
        "handshake_id": handshake_id,
        "user_did": user_did,
        "client_did": client_did,
        "approved": bool(approved),
        "approved_scopes": list(approved_scopes) if approved else [],
        "expires_at": int(expires_at),
    }


def confirmation_response(
    user_key: AgentKey,
    *,
    request_id: str,
    handshake_id: str,
    client_did: str,
    approved: bool,
    approved_scopes: list[str] | tuple[str, ...],
    expires_at: int,
) -> dict[str, Any]:
    """The body of ``POST /ath/confirmations/{request_id}``, signed by ``user_key``."""
    user_did = did_key_from_jwk(user_key.public_jwk())
    obj = confirmation_object(
        request_id, handshake_id, user_did, client_did, approved, approved_scopes, expires_at
    )
    return {
        "request_id": request_id,
        "approved": obj["approved"],
        "approved_scopes": obj["approved_scopes"],
        "expires_at": obj["expires_at"],
        "handshake_id": handshake_id,
        "user_did": user_did,
        "client_did": client_did,
        "signature": sign_object(user_key, obj),
    }


# -- user-key link and user-request proof -----------------------------------------------------


def user_key_link_object(
    user_did: str, account: str, server_did: str, nonce: str, timestamp: int
) -> dict[str, Any]:
    """The object a browser/CLI signs to link ``user_did`` to a signed-in account."""
    return {
        "purpose": PURPOSE_KEY_LINK,
        "user_did": user_did,
        "account": account,
        "server_did": server_did,
        "nonce": nonce,
        "timestamp": int(timestamp),
    }


class UserProofError(ValueError):
    """An ``X-ATH-User-Proof`` header that must be refused (``reason``: invalid/stale/replayed)."""

    def __init__(self, reason: Literal["invalid", "stale", "replayed"], message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def user_request_object(
    user_did: str, server_did: str, method: str, path: str, timestamp: int, nonce: str
) -> dict[str, Any]:
    return {
        "purpose": PURPOSE_USER_REQUEST,
        "user_did": user_did,
        "server_did": server_did,
        "method": method.upper(),
        "path": path,
        "timestamp": int(timestamp),
        "nonce": nonce,
    }


def user_request_proof(
    user_key: AgentKey,
    user_did: str,
    server_did: str,
    method: str,
    path: str,
    now: int | float | None = None,
) -> str:
    """``X-ATH-User-Proof`` value: ``b64url(canonical object).signature``."""
    obj = user_request_object(user_did, server_did, method, path, _now(now), new_nonce())
    return b64url_encode(canonical_json(obj)) + "." + sign_object(user_key, obj)


def parse_user_request_proof(header: str) -> tuple[dict[str, Any], str]:
    """Split and decode the header (no verification); ``UserProofError`` when malformed."""
    import json

    if not isinstance(header, str) or len(header) > 8192 or header.count(".") != 1:
        raise UserProofError("invalid", "X-ATH-User-Proof is malformed")
    payload_b64, signature = header.split(".")
    try:
        raw = b64url_decode(payload_b64)
        obj = json.loads(raw)
    except ValueError as exc:
        raise UserProofError("invalid", "X-ATH-User-Proof payload is not JSON") from exc
    if not isinstance(obj, dict):
        raise UserProofError("invalid", "X-ATH-User-Proof payload is not an object")
    try:
        if canonical_json(obj) != raw:
            raise UserProofError("invalid", "X-ATH-User-Proof payload is not canonical")
    except ValueError as exc:
        raise UserProofError("invalid", "X-ATH-User-Proof payload is not canonical") from exc
    return obj, signature


def verify_user_request_proof(
    header: str,
    resolver: Resolver,
    server_did: str,
    method: str,
    path: str,
    now: int | float | None = None,
    *,
    nonce_unused: Callable[[str, int], bool] | None = None,
) -> str:
    """Verify ``X-ATH-User-Proof`` for this request and return the user's DID.

    ``nonce_unused(nonce, expires_at)`` is called after the signature checks out; it must record
    the nonce and return False when it was already seen (→ ``UserProofError("replayed")``).
    """
    obj, signature = parse_user_request_proof(header)
    fields = {"purpose", "user_did", "server_did", "method", "path", "timestamp", "nonce"}
    if set(obj) != fields or obj["purpose"] != PURPOSE_USER_REQUEST:
        raise UserProofError("invalid", "X-ATH-User-Proof has the wrong fields or purpose")
    user_did, ts, nonce = obj["user_did"], obj["timestamp"], obj["nonce"]
    if not isinstance(user_did, str) or not isinstance(nonce, str) or len(nonce) < 22:
        raise UserProofError("invalid", "X-ATH-User-Proof user_did/nonce is malformed")
    if not isinstance(ts, int) or isinstance(ts, bool):
        raise UserProofError("invalid", "X-ATH-User-Proof timestamp must be an integer")
    if obj["server_did"] != server_did:
        raise UserProofError("invalid", "X-ATH-User-Proof is for another server")
    if obj["method"] != method.upper() or obj["path"] != path:
        raise UserProofError("invalid", "X-ATH-User-Proof is for another request")
    try:
        jwk = resolver.resolve(user_did)
    except (DIDError, ValueError) as exc:
        raise UserProofError("invalid", "user_did cannot be resolved") from exc
    if not verify_object(jwk, obj, signature):
        raise UserProofError("invalid", "X-ATH-User-Proof signature is invalid")
    t = _now(now)
    if abs(t - ts) > MAX_SKEW:
        raise UserProofError("stale", "X-ATH-User-Proof timestamp is more than 300 s off")
    if nonce_unused is not None and not nonce_unused(nonce, ts + MAX_SKEW):
        raise UserProofError("replayed", "X-ATH-User-Proof nonce was already used")
    return user_did
