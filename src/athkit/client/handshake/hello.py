"""Steps 1–4: the hello, the server's proof checked first, then the agent's identity proof.

Order of trust: the server's step-2 signature (and that ``server_pubkey`` is the key
``server_did`` names) is verified **before** the agent signs anything for it (step 3).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

from athkit.client.errors import InvalidSignatureError, ProtocolViolation
from athkit.client.handshake.messages import (
    CAPABILITIES,
    VERSIONS,
    AgentSide,
    HandshakeRequest,
    Observer,
    ResolveDID,
    Step,
    expect_json,
    int_field,
    str_field,
)
from athkit.crypto.credentials import (
    MAX_SKEW,
    client_proof_object,
    new_nonce,
    server_proof_object,
)
from athkit.crypto.did import DIDError, DIDResolver, same_public_key
from athkit.crypto.signing import sign_object, verify_object


@dataclass(frozen=True)
class ServerHello:
    """What steps 1–2 established: the handshake, the verified server key, both nonces."""

    handshake_id: str
    server_did: str
    server_pubkey: dict[str, Any]
    named: dict[str, Any]  # the key server_did names (equal to server_pubkey)
    nonce_a: str
    nonce_b: str
    version: str


def _check_fresh(clock: Callable[[], float], ts: int, what: str) -> None:
    if abs(clock() - ts) > MAX_SKEW:
        raise ProtocolViolation(f"{what} timestamp is more than 300 s off our clock")


def hello(agent: AgentSide, note: Observer) -> Generator[Step, Any, ServerHello]:
    """Step 1 (handshake_request) out, step 2 (handshake_response) in and verified."""
    nonce_a = new_nonce()
    request1 = {
        "client_did": agent.client_did,
        "client_pubkey": agent.client_pubkey(),
        "versions": list(VERSIONS),
        "capabilities": list(CAPABILITIES),
        "nonce": nonce_a,
        "timestamp": int(agent.clock()),
    }
    note(1, "handshake_request", request1)
    resp = yield HandshakeRequest("POST", agent.url(), request1)
    data = expect_json(resp, 201, 200)
    handshake_id = str_field(data, "handshake_id")
    hr = data.get("handshake_response")
    if not isinstance(hr, dict):
        raise ProtocolViolation("step 2 lacks handshake_response")
    note(2, "handshake_response", {"handshake_id": handshake_id, **hr})

    server_did = str_field(hr, "server_did")
    server_pubkey = hr.get("server_pubkey")
    nonce_b = str_field(hr, "nonce")
    ts2 = int_field(hr, "timestamp")
    version = str_field(hr, "version")
    if version not in VERSIONS:
        raise ProtocolViolation(f"server chose unsupported version {version!r}")
    if not isinstance(server_pubkey, dict):
        raise ProtocolViolation("step 2 lacks server_pubkey")
    if server_did.startswith("did:web:"):
        named = yield ResolveDID(server_did)
    else:
        try:
            named = DIDResolver(lambda url: None).resolve(server_did)
        except DIDError as exc:
            raise InvalidSignatureError(
                f"server_did cannot be resolved: {exc}", {"server_did": server_did}
            ) from exc
    if not same_public_key(named, server_pubkey):
        raise InvalidSignatureError(
            "server_pubkey is not the key server_did names", {"server_did": server_did}
        )
    proof2 = server_proof_object(handshake_id, agent.client_did, server_did, nonce_a, nonce_b, ts2)
    if not verify_object(named, proof2, hr.get("signature")):
        raise InvalidSignatureError(
            "the server's step-2 signature is invalid", {"server_did": server_did}
        )
    _check_fresh(agent.clock, ts2, "step 2")
    return ServerHello(handshake_id, server_did, server_pubkey, named, nonce_a, nonce_b, version)


def prove_identity(
    agent: AgentSide, server: ServerHello, note: Observer
) -> Generator[Step, Any, dict[str, Any]]:
    """Step 3 (identity_proof: our signature over nonce B) out, step 4 in; its metadata."""
    ts3 = int(agent.clock())
    proof3 = client_proof_object(
        server.handshake_id,
        agent.client_did,
        server.server_did,
        server.nonce_a,
        server.nonce_b,
        ts3,
    )
    request3 = {"signature": sign_object(agent.key, proof3), "credentials": [], "timestamp": ts3}
    note(3, "identity_proof", request3)
    resp = yield HandshakeRequest("POST", agent.url(server.handshake_id, "/identity"), request3)
    result4 = expect_json(resp, 200)
    if result4.get("success") is not True:
        raise ProtocolViolation("identity_result.success is not true")
    metadata = result4.get("metadata")
    note(4, "identity_result", result4)
    return dict(metadata) if isinstance(metadata, dict) else {}
