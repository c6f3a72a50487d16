"""One transaction per protocol step, and the attestation replay cache still holds.

The attestation's ``jti`` is recorded by the step's own write (store/steps.py): register,
authorize and token each commit exactly once; a refused step still records the ``jti``, so the
same attestation is refused afterwards even for a request that would now succeed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from sqlalchemy import event

from athkit.client import ATHClient
from athkit.core.service import ATHService
from athkit.crypto import sign_attestation
from athkit.demo.browser import HTTPBrowser
from tests.conftest import SHOP_PASSWORD, AgentIdentity, Shop

DEVELOPER = {"name": "athkit demo team", "id": "dev-athkit-demo"}


@contextmanager
def commits(shop: Shop) -> Iterator[Counter[str]]:
    svc = shop.app.state.athkit
    assert isinstance(svc, ATHService)
    engine = svc.store.db.engine
    counts: Counter[str] = Counter()

    def on_commit(*_a: object) -> None:
        counts["commit"] += 1

    event.listen(engine, "commit", on_commit)
    try:
        yield counts
    finally:
        event.remove(engine, "commit", on_commit)


def test_register_authorize_and_token_commit_once_each(shop: Shop, agent: AgentIdentity) -> None:
    browser = HTTPBrowser("alice", SHOP_PASSWORD)
    with ATHClient(shop.url, agent.agent_id, agent.key) as client:
        with commits(shop) as c:
            client.register(
                developer=DEVELOPER,
                providers=[{"provider_id": "ath-shop", "scopes": ["products:read"]}],
            )
        assert c["commit"] == 1
        with commits(shop) as c:
            auth = client.authorize("ath-shop", ["products:read"])
        assert c["commit"] == 1
        browser.open_consent(auth.authorization_url)
        assert browser.decide(approve=True).status_code == 200
        with commits(shop) as c:
            client.exchange_token(auth.ath_session_id)
        assert c["commit"] == 1
    browser.close()


def test_refused_step_still_burns_its_attestation(shop: Shop, agent: AgentIdentity) -> None:
    with ATHClient(shop.url, agent.agent_id, agent.key) as client:
        client.register(
            developer=DEVELOPER,
            providers=[{"provider_id": "ath-shop", "scopes": ["products:read"]}],
        )
        attestation = sign_attestation(agent.key, agent.agent_id, shop.url)
        body = {
            "client_id": client.client_id,
            "agent_attestation": attestation,
            "provider_id": "ath-shop",
            "scopes": ["orders:write"],  # not approved for this agent: refused
            "state": "s" * 32,
        }
        refused = httpx.post(f"{shop.url}/ath/authorize", json=body)
        assert refused.status_code == 403 and refused.json()["code"] == "SCOPE_NOT_APPROVED"
        again = httpx.post(f"{shop.url}/ath/authorize", json={**body, "scopes": ["products:read"]})
        assert again.status_code == 401 and "replay" in again.json()["message"]
        fresh = sign_attestation(agent.key, agent.agent_id, shop.url)
        ok = httpx.post(
            f"{shop.url}/ath/authorize",
            json={**body, "scopes": ["products:read"], "agent_attestation": fresh},
        )
        assert ok.status_code == 200, ok.text
        replay = httpx.post(
            f"{shop.url}/ath/authorize",
            json={**body, "scopes": ["products:read"], "agent_attestation": fresh},
        )
        assert replay.status_code == 401 and "replay" in replay.json()["message"]
