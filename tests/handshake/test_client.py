"""The server driven by the SDK's ``ATHClient.handshake`` (sync and async)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from athkit.client import AsyncATHClient, ATHClient
from athkit.client.errors import UserDeniedError
from athkit.crypto.credentials import confirmation_response, issue
from tests.handshake.conftest import SCOPES, HSServer
from tests.handshake.support import Party


def approver(server: HSServer, user: Party, agent: Party, scopes: list[str], approve: bool = True):  # type: ignore[no-untyped-def]
    def on_pending(pending) -> None:  # type: ignore[no-untyped-def]
        body = confirmation_response(
            user.key,
            request_id=pending.request_id,
            handshake_id=pending.handshake_id,
            client_did=agent.did,
            approved=approve,
            approved_scopes=scopes,
            expires_at=pending.expires_at,
        )
        r = httpx.post(f"{server.url}/ath/confirmations/{pending.request_id}", json=body)
        assert r.status_code == 200, r.text

    return on_pending


def test_sdk_handshake_sync(server: HSServer, agent: Party, user: Party) -> None:
    cred = issue(user.key, agent.did, SCOPES, 7200)
    with ATHClient(server.url, agent.did, agent.key) as client:
        session = client.handshake(
            SCOPES,
            cred,
            context={"client_info": {"name": "AI Shopping Assistant", "developer": "Acme"}},
            on_pending=approver(server, user, agent, SCOPES),
            wait=20,
        )
        assert sorted(session.scopes_granted) == sorted(SCOPES)
        r = session.get("/api/goods")
        assert r.status_code == 200 and r.json()["goods"]
        r = session.post(
            "/api/orders/create", json={"items": [{"product_id": "p-100", "quantity": 1}]}
        )
        assert r.status_code == 201 and r.json()["status"] == "placed"


def test_sdk_handshake_denied(server: HSServer, agent: Party, user: Party) -> None:
    cred = issue(user.key, agent.did, SCOPES, 7200)
    deny = approver(server, user, agent, [], approve=False)
    with (
        ATHClient(server.url, agent.did, agent.key) as client,
        pytest.raises(UserDeniedError),
    ):
        client.handshake(SCOPES, cred, on_pending=deny, wait=20)


def test_sdk_handshake_async(server: HSServer, agent: Party, user: Party) -> None:
    cred = issue(user.key, agent.did, ["goods:read"], 7200)

    async def main() -> None:
        async with AsyncATHClient(server.url, agent.did, agent.key) as client:
            session = await client.handshake(
                ["goods:read"],
                cred,
                on_pending=approver(server, user, agent, ["goods:read"]),
                wait=20,
            )
            r = await session.get("/api/goods")
            assert r.status_code == 200 and r.json()["goods"]

    asyncio.run(main())
