"""Steps 1–4: the hello (the server's signed nonce) and the agent's identity proof."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from athkit.core.clock import to_datetime
from athkit.core.handshake import states
from athkit.core.handshake.base import HandshakeBase, _new_id, _nonce, _nonce_key
from athkit.core.handshake.messages import (
    HandshakeRequestBody,
    IdentityProofBody,
    StepResult,
    parse_body,
)
from athkit.core.handshake.policy import CAPABILITIES, MAX_SKEW, MIN_NONCE_BYTES, VERSIONS
from athkit.core.handshake.states import State, Step
from athkit.crypto.canonical import b64url_decode
from athkit.crypto.channel import CIPHER_SUITE, KEY_EXCHANGE_ALG
from athkit.crypto.credentials import client_proof_object, server_proof_object
from athkit.crypto.did import same_public_key
from athkit.crypto.signing import sign_object, verify_object
from athkit.protocol.errors import ATHError, ErrorCode
from athkit.store.models import HandshakeRow
from athkit.store.repositories import DuplicateError


class Hello(HandshakeBase):
    """Steps 1→2 (:meth:`start`) and 3→4 (:meth:`identify`), and the discovery metadata."""

    # -- discovery ----------------------------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        """``GET /.well-known/ath-handshake.json`` (*athkit*): what an agent or CLI needs."""
        base = self.settings.public_url
        return {
            "server_did": self.identity.did,
            "server_pubkey": self.identity.public_jwk,
            "versions": list(VERSIONS),
            "capabilities": list(CAPABILITIES),
            "scopes_supported": sorted(self.scopes_allowed),
            "token_max_ttl": self.policy.token_max_ttl,
            "require_user_confirmation": self.policy.require_user_confirmation,
            "handshake_endpoint": f"{base}/ath/handshake",
            "confirmations_endpoint": f"{base}/ath/confirmations",
            "confirmation_page": f"{base}/ath/confirmations/page",
            "user_keys_page": f"{base}/ath/user/keys",
            "key_exchange_algs": [KEY_EXCHANGE_ALG],
            "cipher_suites": [CIPHER_SUITE],
        }

    # -- step 1 → 2 ---------------------------------------------------------------------------

    def start(self, data: Any, client_ip: str | None = None) -> StepResult:
        now = self.clock()
        req: HandshakeRequestBody = parse_body(HandshakeRequestBody, data)
        self._check_timestamp(req.timestamp, now)
        version = next((v for v in req.versions if v in VERSIONS), None)
        if version is None:
            raise ATHError(
                ErrorCode.UNSUPPORTED_VERSION,
                "no common handshake version",
                {"supported": list(VERSIONS)},
            )
        caps = [c for c in CAPABILITIES if c in req.capabilities]
        if self.identity.algorithm not in ("ES256", "Ed25519") or (
            ("ES256" if self.identity.algorithm == "ES256" else "EdDSA") not in caps
        ):
            raise ATHError(
                ErrorCode.INVALID_REQUEST,
                "the agent does not accept the server's signature algorithm",
                {"server_alg": self.identity.algorithm, "capabilities": list(CAPABILITIES)},
            )
        try:
            if len(b64url_decode(req.nonce)) < MIN_NONCE_BYTES:
                raise ValueError("short")
        except ValueError as exc:
            raise ATHError(
                ErrorCode.INVALID_REQUEST, "nonce must be base64url of at least 128 bits"
            ) from exc
        pub = req.client_pubkey
        if "d" in pub:
            raise ATHError(ErrorCode.INVALID_REQUEST, "client_pubkey must be a public key")
        if not req.client_did.startswith(("did:key:", "did:web:")):
            raise ATHError(ErrorCode.INVALID_REQUEST, "client_did must be a did:key or did:web")
        named = self._resolve(req.client_did, ErrorCode.INVALID_SIGNATURE, "client_did")
        if not same_public_key(named, pub):
            raise self._refuse(
                now,
                "handshake.request",
                None,
                ATHError(
                    ErrorCode.INVALID_SIGNATURE,
                    "client_pubkey is not the key client_did names",
                ),
            )
        kind = "EdDSA" if pub.get("kty") == "OKP" else "ES256"
        if kind not in caps:
            raise ATHError(ErrorCode.INVALID_REQUEST, f"{kind} is not among the capabilities")
        handshake_id = _new_id("hs_")
        nonce_b = _nonce()
        ts = int(now)
        when = to_datetime(now)
        row = HandshakeRow(
            handshake_id=handshake_id,
            status=State.STARTED.value,
            client_did=req.client_did,
            client_pubkey={k: pub[k] for k in ("kty", "crv", "x", "y") if k in pub},
            server_did=self.identity.did,
            version=version,
            nonce_a=req.nonce,
            nonce_b=nonce_b,
            client_ip=client_ip,
            created_at=when,
            updated_at=when,
            expires_at=when + timedelta(seconds=self.policy.handshake_ttl),
        )
        audit = self._audit(now, "handshake.request", "accepted", row)
        try:
            self.store.add_handshake(
                row,
                nonce_key=_nonce_key("a", req.nonce),
                nonce_expires=when + timedelta(seconds=2 * MAX_SKEW),
                now=when,
                audit=audit,
            )
        except DuplicateError as exc:
            raise self._refuse(
                now,
                "handshake.request",
                None,
                ATHError(ErrorCode.NONCE_REPLAYED, "this nonce was already used"),
            ) from exc
        proof = server_proof_object(
            handshake_id, req.client_did, self.identity.did, req.nonce, nonce_b, ts
        )
        response = {
            "server_did": self.identity.did,
            "server_pubkey": self.identity.public_jwk,
            "version": version,
            "capabilities": caps,
            "nonce": nonce_b,
            "signature": sign_object(self.identity.key, proof),
            "timestamp": ts,
        }
        return StepResult(201, {"handshake_id": handshake_id, "handshake_response": response})

    # -- step 3 → 4 ---------------------------------------------------------------------------

    def identify(self, handshake_id: str, data: Any) -> StepResult:
        now = self.clock()
        row = self._load(handshake_id)
        self._check_live(row, now)
        req: IdentityProofBody = parse_body(IdentityProofBody, data)
        states.require(Step.IDENTITY_PROOF, row.status)
        self._check_timestamp(req.timestamp, now)
        proof = client_proof_object(
            row.handshake_id,
            row.client_did,
            row.server_did,
            row.nonce_a,
            row.nonce_b,
            req.timestamp,
        )
        if not verify_object(row.client_pubkey, proof, req.signature):
            raise self._refuse(
                now,
                "handshake.identity",
                row,
                ATHError(
                    ErrorCode.INVALID_SIGNATURE,
                    "the agent's signature over the server's nonce is invalid",
                ),
            )
        source, target = states.move(Step.IDENTITY_PROOF, State.IDENTIFIED)
        won = self.store.transition(
            row.handshake_id,
            source,
            audit=self._audit(now, "handshake.identity", "verified", row),
            status=target,
            credentials=req.credentials,
            updated_at=to_datetime(now),
        )
        if not won:
            raise states.out_of_order(Step.IDENTITY_PROOF, row.status)
        return StepResult(
            200,
            {
                "success": True,
                "metadata": {
                    "scopes_supported": sorted(self.scopes_allowed),
                    "token_max_ttl": self.policy.token_max_ttl,
                    "require_user_confirmation": self.policy.require_user_confirmation,
                },
                "error": None,
            },
        )
