"""The agent's handshake client against an in-process fake server (no database needed)."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest

from athkit.client import AsyncATHClient, ATHClient
from athkit.client.credentials import UserCredentialStore
from athkit.client.errors import (
    ConfirmationTimeoutError,
    InvalidSignatureError,
    NotFoundError,
    ProtocolViolation,
    UserDeniedError,
)
from athkit.client.handshake import PendingConfirmation
from athkit.crypto.credentials import issue
from athkit.crypto.did import did_key_from_jwk
from athkit.crypto.keys import AgentKey

from .fake_server import FakeServer

BASE = "http://shop.test"
SCOPES = ["goods:read", "order:create"]


def _setup(mode: str = "ok") -> tuple[FakeServer, ATHClient, Any]:
    server = FakeServer(mode=mode)
    agent = AgentKey.generate()
    agent_did = did_key_from_jwk(agent.public_jwk())
    user = AgentKey.generate("Ed25519")
    cred = issue(user, agent_did, SCOPES, 7200)
    http = httpx.Client(transport=server.transport())
    client = ATHClient(BASE, agent_did, agent, http_client=http, api_base=BASE + "/api")
    return server, client, cred


def test_full_handshake_and_encrypted_calls() -> None:
    server, client, cred = _setup()
    steps: list[int] = []
    pendings: list[PendingConfirmation] = []

    def on_pending(p: PendingConfirmation) -> None:
        pendings.append(p)
        server.approve(["goods:read"])

    session = client.handshake(
        SCOPES, cred, on_pending=on_pending, observer=lambda n, t, p: steps.append(n)
    )
    assert steps == [1, 2, 3, 4, 5, 6, 8, 9, 9]
    assert pendings[0].request_id == "cr_test" and pendings[0].server_did == server.did
    assert session.scopes_granted == ["goods:read"]
    assert session.result.scopes_denied == [{"scope": "order:create", "reason": "user"}]
    assert session.restrictions == {"rate_limit": "100/second"}
    r = session.get("/goods")
    assert r.status_code == 200 and r.json() == {"echo": None, "seq": 1}
    r = session.post("/orders", json={"sku": "A1"})
    assert r.json() == {"echo": '{"sku": "A1"}', "seq": 2}
    assert r.headers["content-type"] == "application/json"
    assert server.api_log[1] == ("POST", "/api/orders", b'{"sku": "A1"}')
    with pytest.raises(NotFoundError):
        session.get("/missing")  # encrypted error bodies raise typed errors


def test_auto_approved_policy_skips_polling() -> None:
    server, client, cred = _setup("auto")
    session = client.handshake(SCOPES, cred)
    assert server.polls == 0 and session.scopes_granted == SCOPES


def test_bad_server_signature_refused_before_identity_proof() -> None:
    for mode in ("bad_sig", "wrong_pubkey"):
        server, client, cred = _setup(mode)
        with pytest.raises(InvalidSignatureError):
            client.handshake(SCOPES, cred)
        assert server.seen_identity is False


def test_substituted_server_key_exchange_is_refused() -> None:
    # The step-9 ephemeral key signed by anyone but the server (a key swapped in transit).
    server, client, cred = _setup("auto")
    server.swap_kex = True
    with pytest.raises(InvalidSignatureError, match="step-9"):
        client.handshake(SCOPES, cred)


def test_user_denies_and_timeout() -> None:
    server, client, cred = _setup("deny")
    with pytest.raises(UserDeniedError):
        client.handshake(SCOPES, cred)
    server, client, cred = _setup("timeout")
    with pytest.raises(ConfirmationTimeoutError):
        client.handshake(SCOPES, cred)


def test_client_side_wait_is_bounded() -> None:
    server, client, cred = _setup()
    with pytest.raises(ConfirmationTimeoutError):
        client.handshake(SCOPES, cred, wait=1.5)
    assert server.polls >= 1


def test_plain_answer_to_encrypted_call_is_refused() -> None:
    server, client, cred = _setup("plain_api")
    session = client.handshake(SCOPES, cred, on_pending=lambda p: server.approve(SCOPES))
    with pytest.raises(ProtocolViolation):
        session.get("/goods")


def test_async_handshake() -> None:
    server = FakeServer()
    agent = AgentKey.generate("Ed25519")
    agent_did = did_key_from_jwk(agent.public_jwk())
    cred = issue(AgentKey.generate(), agent_did, SCOPES, 7200)

    async def main() -> None:
        http = httpx.AsyncClient(transport=server.transport())
        async with AsyncATHClient(
            BASE, agent_did, agent, http_client=http, api_base=BASE + "/api"
        ) as client:
            session = await client.handshake(
                SCOPES, cred.to_dict(), on_pending=lambda p: server.approve(SCOPES)
            )
            r = await session.post("/orders", json={"n": 1})
            assert r.json()["seq"] == 1
        await http.aclose()

    anyio.run(main)


def test_user_credential_store(tmp_path: Any) -> None:
    store = UserCredentialStore(tmp_path / "uc.json")
    user = AgentKey.generate()
    a = issue(user, "did:key:agent", SCOPES, 100, now=1000)
    b = issue(user, "did:key:agent", ["goods:read"], 500, now=1000)
    store.add("http://shop.test/", a, now=1001)
    store.add("http://shop.test", b, now=1001)
    assert store.find("http://shop.test", scopes=SCOPES, now=1050) == a.to_dict()
    assert store.find("http://shop.test", scopes=["goods:read"], now=1050) == b.to_dict()
    assert store.find("http://shop.test", scopes=SCOPES, now=1200) is None
    assert store.find("http://shop.test", client_did="did:key:other", now=1050) is None
    assert (tmp_path / "uc.json").stat().st_mode & 0o777 == 0o600
