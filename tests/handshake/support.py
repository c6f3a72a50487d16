"""Raw-HTTP helpers for the handshake tests: an agent, a user, and each step by hand.

Only httpx and the crypto helpers are used here, so the server is tested independently of the
client SDK (one test in test_client.py drives it with ``ATHClient.handshake``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from athkit.crypto.canonical import b64url_encode
from athkit.crypto.channel import (
    CIPHER_SUITE,
    CONTENT_TYPE,
    KEY_EXCHANGE_ALG,
    EphemeralKey,
    SessionChannel,
    client_channel,
    derive_session_keys,
)
from athkit.crypto.credentials import (
    SignedCredential,
    client_kex_object,
    client_proof_object,
    confirmation_response,
    issue,
    new_nonce,
    server_kex_object,
    server_proof_object,
)
from athkit.crypto.did import did_key_from_jwk
from athkit.crypto.keys import AgentKey
from athkit.crypto.signing import sign_object, verify_object


class FakeClock:
    """Real time plus an offset the test moves forward."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.frozen: float | None = None

    def __call__(self) -> float:
        return (time.time() if self.frozen is None else self.frozen) + self.offset

    def freeze(self) -> None:
        self.frozen = time.time()

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass
class Party:
    """An agent or a user: a key and its did:key."""

    key: AgentKey
    did: str

    @classmethod
    def new(cls, kind: str = "P-256") -> Party:
        key = AgentKey.generate(kind)  # type: ignore[arg-type]
        return cls(key, did_key_from_jwk(key.public_jwk()))

    @property
    def pub(self) -> dict[str, Any]:
        jwk = self.key.public_jwk()
        return {k: jwk[k] for k in ("kty", "crv", "x", "y") if k in jwk}


@dataclass
class Flow:
    """One handshake driven step by step."""

    url: str
    agent: Party
    clock: Any = time.time
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))
    handshake_id: str = ""
    nonce_a: str = ""
    nonce_b: str = ""
    server_did: str = ""
    request_id: str = ""
    expires_at: int = 0
    last: httpx.Response | None = None

    def now(self) -> int:
        return int(self.clock())

    def step1(self, **override: Any) -> httpx.Response:
        self.nonce_a = override.pop("nonce", None) or new_nonce()
        body = {
            "client_did": self.agent.did,
            "client_pubkey": self.agent.pub,
            "versions": ["0.1"],
            "capabilities": ["ES256", "EdDSA"],
            "nonce": self.nonce_a,
            "timestamp": self.now(),
            **override,
        }
        r = self.http.post(f"{self.url}/ath/handshake", json=body)
        self.last = r
        if r.status_code == 201:
            data = r.json()
            self.handshake_id = data["handshake_id"]
            hr = data["handshake_response"]
            self.nonce_b = hr["nonce"]
            self.server_did = hr["server_did"]
            proof = server_proof_object(
                self.handshake_id,
                self.agent.did,
                self.server_did,
                self.nonce_a,
                self.nonce_b,
                hr["timestamp"],
            )
            assert verify_object(hr["server_pubkey"], proof, hr["signature"])
            self.server_pubkey = hr["server_pubkey"]
        return r

    def step3(self, *, key: AgentKey | None = None, timestamp: int | None = None) -> httpx.Response:
        ts = self.now() if timestamp is None else timestamp
        proof = client_proof_object(
            self.handshake_id, self.agent.did, self.server_did, self.nonce_a, self.nonce_b, ts
        )
        body = {"signature": sign_object(key or self.agent.key, proof), "timestamp": ts}
        r = self.http.post(f"{self.url}/ath/handshake/{self.handshake_id}/identity", json=body)
        self.last = r
        return r

    def step5(
        self,
        scopes: list[str],
        credential: SignedCredential | dict[str, Any] | None,
        ttl: int = 3600,
        context: dict[str, Any] | None = None,
    ) -> httpx.Response:
        auth = credential.to_dict() if isinstance(credential, SignedCredential) else credential
        body = {
            "scopes": scopes,
            "ttl": ttl,
            "user_authorization": auth,
            "context": context
            or {"client_info": {"name": "AI Shopping Assistant", "developer": "Acme AI"}},
        }
        r = self.http.post(f"{self.url}/ath/handshake/{self.handshake_id}/scope", json=body)
        self.last = r
        if r.status_code == 202:
            self.request_id = r.json()["request_id"]
            self.expires_at = r.json()["expires_at"]
        return r

    def result(self, wait: int = 0) -> httpx.Response:
        r = self.http.get(f"{self.url}/ath/handshake/{self.handshake_id}/result?wait={wait}")
        self.last = r
        return r

    def kex_signature(self, epk: dict[str, Any], key: AgentKey | None = None) -> str:
        """The agent's step-9 signature over its ephemeral key."""
        obj = client_kex_object(self.handshake_id, self.agent.did, self.server_did, epk)
        return sign_object(key or self.agent.key, obj)

    def step9(self) -> tuple[httpx.Response, SessionChannel | None]:
        eph = EphemeralKey()
        body = {
            "key_exchange_alg": KEY_EXCHANGE_ALG,
            "key_exchange_params": {
                "epk": eph.public_jwk(),
                "signature": self.kex_signature(eph.public_jwk()),
            },
            "cipher_suite": CIPHER_SUITE,
        }
        r = self.http.post(f"{self.url}/ath/handshake/{self.handshake_id}/complete", json=body)
        self.last = r
        if r.status_code != 200:
            return r, None
        done = r.json()
        signed = server_kex_object(
            self.handshake_id,
            self.agent.did,
            self.server_did,
            eph.public_jwk(),
            done["key_exchange_params"]["epk"],
            done["session_id"],
        )
        assert verify_object(self.server_pubkey, signed, done["key_exchange_params"]["signature"])
        keys = derive_session_keys(
            eph.agree(done["key_exchange_params"]["epk"]),
            self.nonce_a,
            self.nonce_b,
            self.agent.did,
            self.server_did,
            self.handshake_id,
        )
        return r, client_channel(done["session_id"], keys, done["session_expires_at"], self.clock)

    def to_pending(self, user: Party, scopes: list[str], **kw: Any) -> httpx.Response:
        assert self.step1().status_code == 201, self.last.text if self.last else ""
        assert self.step3().status_code == 200, self.last.text if self.last else ""
        cred = issue(user.key, self.agent.did, kw.pop("cred_scopes", scopes), 7200, self.now())
        return self.step5(scopes, cred, **kw)

    def confirm(self, user: Party, approved: bool, scopes: list[str]) -> httpx.Response:
        body = confirmation_response(
            user.key,
            request_id=self.request_id,
            handshake_id=self.handshake_id,
            client_did=self.agent.did,
            approved=approved,
            approved_scopes=scopes,
            expires_at=self.expires_at,
        )
        return self.http.post(f"{self.url}/ath/confirmations/{self.request_id}", json=body)


@dataclass
class Session:
    """An established session: the access token and the agent's channel end."""

    url: str
    agent: Party
    token: str
    session_id: str
    channel: SessionChannel
    http: httpx.Client

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "X-ATH-Agent-ID": self.agent.did}

    def plain(self, method: str, path: str, json: Any = None) -> httpx.Response:
        return self.http.request(method, self.url + path, json=json, headers=self.headers())

    def envelope(self, method: str, path: str, body: bytes = b"") -> dict[str, Any]:
        return self.channel.seal(method, path, body)

    def send(self, method: str, path: str, envelope: dict[str, Any]) -> httpx.Response:
        import json as _json

        headers = {
            **self.headers(),
            "X-ATH-Session": self.session_id,
            "Content-Type": CONTENT_TYPE,
        }
        return self.http.request(
            method, self.url + path, content=_json.dumps(envelope), headers=headers
        )

    def call(self, method: str, path: str, body: bytes = b"") -> tuple[httpx.Response, Any]:
        """An encrypted call; returns the raw response and the decrypted JSON (if any)."""
        import json as _json

        env = self.envelope(method, path, body)
        r = self.send(method, path, env)
        if r.headers.get("content-type", "").startswith(CONTENT_TYPE):
            plain = self.channel.open_response(r.json(), env["seq"])
            return r, _json.loads(plain) if plain else None
        return r, None


def full_handshake(
    url: str,
    agent: Party,
    user: Party,
    scopes: list[str],
    clock: Any = time.time,
    approve: list[str] | None = None,
) -> Session:
    """Steps 1–9 with the user approving by signed JSON; asserts every step's status."""
    f = Flow(url, agent, clock)
    r = f.to_pending(user, scopes)
    assert r.status_code == 202, r.text
    r = f.confirm(user, True, approve if approve is not None else scopes)
    assert r.status_code == 200, r.text
    r = f.result()
    assert r.status_code == 200, r.text
    r, channel = f.step9()
    assert r.status_code == 200 and channel is not None, r.text
    done = r.json()
    return Session(url, agent, done["access_token"], done["session_id"], channel, f.http)


def b64(data: bytes) -> str:
    return b64url_encode(data)
