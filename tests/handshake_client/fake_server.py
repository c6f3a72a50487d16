"""A minimal in-process handshake server (httpx.MockTransport) built from athkit.crypto only.

It follows docs/handshake.md closely enough to drive the client end to end without a database,
and can be told to misbehave (bad signature, wrong pubkey, denial, timeout) for refusal tests.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from athkit.crypto.channel import EphemeralKey, SessionChannel, derive_session_keys, server_channel
from athkit.crypto.credentials import (
    client_proof_object,
    new_nonce,
    server_kex_object,
    server_proof_object,
    verify_credential,
)
from athkit.crypto.did import DIDResolver, did_key_from_jwk
from athkit.crypto.keys import AgentKey
from athkit.crypto.signing import sign_object, verify_object


def _err(status: int, code: str, message: str = "refused") -> httpx.Response:
    return httpx.Response(status, json={"code": code, "message": message})


@dataclass
class FakeServer:
    mode: str = "ok"  # ok | bad_sig | wrong_pubkey | deny | timeout | auto | plain_api
    #: Sign the step-9 key exchange with another key (an ephemeral key swapped in transit).
    swap_kex: bool = False
    key: AgentKey = field(default_factory=AgentKey.generate)
    user_answer: dict[str, Any] | None = None
    polls: int = 0
    hs: dict[str, Any] = field(default_factory=dict)
    channel: SessionChannel | None = None
    seen_identity: bool = False
    api_log: list[tuple[str, str, bytes]] = field(default_factory=list)

    @property
    def did(self) -> str:
        return did_key_from_jwk(self.key.public_jwk())

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def approve(self, scopes: list[str]) -> None:
        self.user_answer = {"approved": True, "approved_scopes": scopes}

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/ath/handshake":
            return self.step1(json.loads(request.content))
        if path.endswith("/identity"):
            return self.step3(json.loads(request.content))
        if path.endswith("/scope"):
            return self.step5(json.loads(request.content))
        if path.endswith("/result"):
            return self.step8()
        if path.endswith("/complete"):
            return self.step9(json.loads(request.content))
        if path.startswith("/api/"):
            return self.api(request)
        return _err(404, "NOT_FOUND")

    def step1(self, body: dict[str, Any]) -> httpx.Response:
        nonce_b = new_nonce()
        ts = int(time.time())
        self.hs = {
            "id": "hs_test",
            "client_did": body["client_did"],
            "nonce_a": body["nonce"],
            "nonce_b": nonce_b,
            "client_pubkey": body["client_pubkey"],
        }
        obj = server_proof_object(
            "hs_test", body["client_did"], self.did, body["nonce"], nonce_b, ts
        )
        sig = sign_object(self.key, obj)
        pub = self.key.public_jwk()
        if self.mode == "bad_sig":
            sig = sign_object(AgentKey.generate(), obj)
        if self.mode == "wrong_pubkey":
            pub = AgentKey.generate().public_jwk()
            sig = sign_object(AgentKey.generate(), obj)
        resp = {
            "server_did": self.did,
            "server_pubkey": pub,
            "version": "0.1",
            "capabilities": ["ES256", "EdDSA"],
            "nonce": nonce_b,
            "signature": sig,
            "timestamp": ts,
        }
        return httpx.Response(201, json={"handshake_id": "hs_test", "handshake_response": resp})

    def step3(self, body: dict[str, Any]) -> httpx.Response:
        self.seen_identity = True
        h = self.hs
        obj = client_proof_object(
            h["id"], h["client_did"], self.did, h["nonce_a"], h["nonce_b"], body["timestamp"]
        )
        if not verify_object(h["client_pubkey"], obj, body["signature"]):
            return _err(401, "INVALID_SIGNATURE")
        return httpx.Response(
            200,
            json={
                "success": True,
                "metadata": {
                    "scopes_supported": ["goods:read", "order:create"],
                    "token_max_ttl": 3600,
                    "require_user_confirmation": self.mode != "auto",
                },
                "error": None,
            },
        )

    def step5(self, body: dict[str, Any]) -> httpx.Response:
        ua = body["user_authorization"]
        cred = verify_credential(
            ua["credential"], ua["signature"], DIDResolver(), client_did=self.hs["client_did"]
        )
        if not set(body["scopes"]) <= set(cred.scopes):
            return _err(403, "CREDENTIAL_SCOPE_EXCEEDED")
        self.hs["scopes"] = body["scopes"]
        self.hs["user_did"] = cred.user_did
        if self.mode == "auto":
            return httpx.Response(200, json=self.scope_result(body["scopes"]))
        return httpx.Response(
            202,
            json={
                "status": "pending_user_confirmation",
                "request_id": "cr_test",
                "expires_at": int(time.time()) + 300,
            },
        )

    def scope_result(self, granted: list[str]) -> dict[str, Any]:
        denied = [{"scope": s, "reason": "user"} for s in self.hs["scopes"] if s not in granted]
        return {
            "scopes_granted": granted,
            "scopes_denied": denied,
            "ttl_granted": 3600,
            "restrictions": {"rate_limit": "100/second"},
        }

    def step8(self) -> httpx.Response:
        self.polls += 1
        if self.mode == "deny":
            return _err(403, "USER_DENIED")
        if self.mode == "timeout":
            return _err(408, "CONFIRMATION_TIMEOUT")
        if self.user_answer is None:
            return httpx.Response(202, json={"status": "pending_user_confirmation"})
        return httpx.Response(200, json=self.scope_result(self.user_answer["approved_scopes"]))

    def step9(self, body: dict[str, Any]) -> httpx.Response:
        eph = EphemeralKey()
        shared = eph.agree(body["key_exchange_params"]["epk"])
        h = self.hs
        keys = derive_session_keys(
            shared, h["nonce_a"], h["nonce_b"], h["client_did"], self.did, h["id"]
        )
        exp = int(time.time()) + 3600
        self.channel = server_channel("ses_test", keys, exp)
        return httpx.Response(
            200,
            json={
                "key_exchange_alg": "ECDH-P256",
                "key_exchange_params": {
                    "epk": eph.public_jwk(),
                    "signature": sign_object(
                        AgentKey.generate() if self.swap_kex else self.key,
                        server_kex_object(
                            h["id"],
                            h["client_did"],
                            self.did,
                            body["key_exchange_params"]["epk"],
                            eph.public_jwk(),
                            "ses_test",
                        ),
                    ),
                },
                "cipher_suite": "AES-256-GCM",
                "access_token": "eyJ.test.token",
                "token_type": "Bearer",
                "expires_in": 3600,
                "session_id": "ses_test",
                "session_expires_at": exp,
            },
        )

    def api(self, request: httpx.Request) -> httpx.Response:
        assert self.channel is not None
        assert request.headers["authorization"] == "Bearer eyJ.test.token"
        assert request.headers["x-ath-session"] == "ses_test"
        assert request.headers["x-ath-agent-id"] == self.hs["client_did"]
        seq, plaintext = self.channel.open_unordered(
            json.loads(request.content), request.method, request.url.path
        )
        self.api_log.append((request.method, request.url.path, plaintext))
        if self.mode == "plain_api":
            return httpx.Response(200, json={"plain": True})
        status = 404 if request.url.path == "/api/missing" else 200
        payload = (
            json.dumps({"code": "NOT_FOUND", "message": "nope"})
            if status == 404
            else json.dumps({"echo": plaintext.decode() or None, "seq": seq})
        )
        env = self.channel.seal_response(seq, payload.encode())
        return httpx.Response(
            status,
            json=env,
            headers={
                "content-type": "application/ath+encrypted",
                "x-ath-content-type": "application/json",
            },
        )
