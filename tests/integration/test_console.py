"""People's pages: "my agents" (user revocation, §8), the operator console (§4), metrics (§11)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from athkit.client import ATHClient
from athkit.core.policy import ApprovalPolicy
from athkit.demo.browser import HTTPBrowser
from tests.conftest import SHOP_PASSWORD, AgentIdentity, Shop, start_shop

DEVELOPER = {"name": "athkit demo team", "id": "dev-athkit-demo"}


@contextmanager
def signed_in(shop: Shop, user: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=shop.url, follow_redirects=False) as http:
        resp = http.post("/login", data={"username": user, "password": SHOP_PASSWORD, "next": "/"})
        assert resp.status_code == 303
        yield http


def csrf_of(page: httpx.Response) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match, page.text[:300]
    return match.group(1)


def connect(shop: Shop, agent: AgentIdentity) -> ATHClient:
    client = ATHClient(shop.url, agent.agent_id, agent.key)
    client.discover()
    client.register(
        developer=DEVELOPER, providers=[{"provider_id": "ath-shop", "scopes": ["products:read"]}]
    )
    auth = client.authorize("ath-shop", ["products:read"])
    browser = HTTPBrowser("alice", SHOP_PASSWORD)
    browser.open_consent(auth.authorization_url)
    assert browser.decide(approve=True).status_code == 200
    client.exchange_token(auth.ath_session_id)
    return client


def test_user_sees_and_revokes_an_agent(shop: Shop, agent: AgentIdentity) -> None:
    client = connect(shop, agent)
    assert client.request("GET", "/products").status_code == 200
    with signed_in(shop, "alice") as http:
        page = http.get("/ath/my/agents")
        assert page.status_code == 200
        assert "ATH Shop Demo Agent" in page.text and "products:read" in page.text
        client_id = client.client_id
        forged = http.post("/ath/my/agents/revoke", data={"client_id": client_id, "csrf": "forged"})
        assert forged.status_code == 400 and forged.json()["code"] == "STATE_MISMATCH"
        done = http.post(
            "/ath/my/agents/revoke", data={"client_id": client_id, "csrf": csrf_of(page)}
        )
        assert done.status_code == 303
        assert 'id="empty"' in http.get("/ath/my/agents").text
    refused = httpx.get(
        f"{shop.url}/api/products",
        headers={
            "Authorization": f"Bearer {client.access_token}",
            "X-ATH-Agent-ID": agent.agent_id,
        },
    )
    assert refused.status_code == 401 and refused.json()["code"] == "TOKEN_REVOKED"
    audit = shop.app.state.athkit.store.list_audit(agent_id=agent.agent_id)
    assert ("token_revoked", "revoked_by_user") in [(a.event, a.outcome) for a in audit]


def test_my_agents_needs_sign_in(shop: Shop) -> None:
    resp = httpx.get(f"{shop.url}/ath/my/agents")
    assert resp.status_code == 401 and resp.json()["code"] == "LOGIN_REQUIRED"


def test_operator_approves_a_pending_agent_in_the_console(
    tmp_path: Path, agent: AgentIdentity
) -> None:
    shop = start_shop(tmp_path, policy=ApprovalPolicy(unknown_agents="pending"))
    try:
        client = ATHClient(shop.url, agent.agent_id, agent.key)
        reg = client.register(
            developer=DEVELOPER,
            providers=[{"provider_id": "ath-shop", "scopes": ["products:read"]}],
        )
        assert reg.agent_status.value == "pending"
        with signed_in(shop, "alice") as user:
            denied = user.get("/ath/console/agents")
            assert denied.status_code == 403 and denied.json()["code"] == "OPERATOR_ONLY"
        with signed_in(shop, "admin") as admin:
            page = admin.get("/ath/console/agents", params={"status": "pending"})
            assert page.status_code == 200 and reg.client_id in page.text
            decided = admin.post(
                "/ath/console/agents/decision",
                data={"client_id": reg.client_id, "decision": "approve", "csrf": csrf_of(page)},
            )
            assert decided.status_code == 303
            assert client.agent_status().agent_status.value == "approved"
            audit = admin.get("/ath/console/audit")
            assert audit.status_code == 200 and "agent_approved" in audit.text
            metrics = admin.get("/ath/metrics")
            assert metrics.status_code == 200
            assert (
                'athkit_decisions_total{event="agent_approved",outcome="approved"}' in metrics.text
            )
        assert httpx.get(f"{shop.url}/ath/metrics").json()["code"] == "OPERATOR_ONLY"
    finally:
        shop.server.stop()


def test_consent_form_posted_without_sign_in_is_refused(shop: Shop) -> None:
    resp = httpx.post(
        f"{shop.url}/ath/oauth/authorize",
        data={"state": "x" * 43, "csrf": "y", "decision": "approve", "scope": "products:read"},
    )
    assert resp.status_code == 401 and resp.json()["code"] == "LOGIN_REQUIRED"
