"""Step 9: the signed key agreement (ECDH P-256 → HKDF-SHA256 → AES-256-GCM) and the token.

The server signs both ephemeral keys: without that, whoever sits in between could substitute
its own key and read the channel.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from athkit.client.errors import InvalidSignatureError, ProtocolViolation
from athkit.client.handshake.hello import ServerHello
from athkit.client.handshake.messages import (
    AgentSide,
    HandshakeRequest,
    Observer,
    Step,
    expect_json,
)
from athkit.crypto.channel import (
    CIPHER_SUITE,
    KEY_EXCHANGE_ALG,
    ChannelError,
    EphemeralKey,
    derive_session_keys,
)
from athkit.crypto.credentials import client_kex_object, server_kex_object
from athkit.crypto.signing import sign_object, verify_object


def complete(
    agent: AgentSide, server: ServerHello, note: Observer, timings: dict[str, float]
) -> Generator[Step, Any, tuple[dict[str, Any], tuple[bytes, bytes]]]:
    """Step 9 out and back; ``(the server's answer, the session keys)``."""
    handshake_id, server_did = server.handshake_id, server.server_did
    t9 = agent.timer()
    eph = EphemeralKey()
    kex = client_kex_object(handshake_id, agent.client_did, server_did, eph.public_jwk())
    request9 = {
        "key_exchange_alg": KEY_EXCHANGE_ALG,
        "key_exchange_params": {
            "epk": eph.public_jwk(),
            "signature": sign_object(agent.key, kex),
        },
        "cipher_suite": CIPHER_SUITE,
    }
    note(9, "complete (agent epk)", request9)
    resp = yield HandshakeRequest("POST", agent.url(handshake_id, "/complete"), request9)
    done = expect_json(resp, 200)
    timings["step_9"] = agent.timer() - t9
    if done.get("key_exchange_alg") != KEY_EXCHANGE_ALG or done.get("cipher_suite") != (
        CIPHER_SUITE
    ):
        raise ProtocolViolation("server chose another key exchange or cipher suite")
    params = done.get("key_exchange_params")
    epk = params.get("epk") if isinstance(params, dict) else None
    signed = server_kex_object(
        handshake_id,
        agent.client_did,
        server_did,
        eph.public_jwk(),
        epk if isinstance(epk, dict) else {},
        str(done.get("session_id", "")),
    )
    if not isinstance(params, dict) or not verify_object(
        server.named, signed, params.get("signature")
    ):
        raise InvalidSignatureError(
            "the server's step-9 key exchange signature does not verify",
            {"step": 9},
        )
    try:
        shared = eph.agree(epk)
    except ChannelError as exc:
        raise ProtocolViolation(f"server epk is unusable: {exc.message}") from exc
    keys = derive_session_keys(
        shared, server.nonce_a, server.nonce_b, agent.client_did, server_did, handshake_id
    )
    return done, keys
