"""The native-mode flow end to end with our own SDK, against ATH Shop on real HTTP (§2–§8)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from athkit.client import AsyncATHClient, ATHClient, errors
from athkit.core.policy import ApprovalPolicy
from athkit.core.service import ATHService
from athkit.demo.agent import DEVELOPER
from athkit.demo.browser import HTTPBrowser
from tests.conftest import AgentIdentity, Shop, start_shop
from tests.integration.support import (
    PROVIDER,
    UNTRUSTED_SCOPES,
    api_get,
    authorize_body,
    consent,
    error_of,
    registered_client,
    token_body,
)


def service_of(shop: Shop) -> ATHService:
    svc = shop.app.state.athkit
    assert isinstance(svc, ATHService)
    return svc


def test_sync_client_full_flow(shop: Shop, agent: AgentIdentity) -> None:
    with ATHClient(shop.url, agent.agent_id, agent.key) as client:
        doc = client.discover()
        assert doc.app_id == "com.ath-shop.ecommerce"
        assert doc.auth.token_endpoint == f"{shop.url}/ath/token"
        assert set(doc.auth.scopes_supported) == {*UNTRUSTED_SCOPES, "orders:write"}

        reg = client.register(
            developer=DEVELOPER,
            providers=[
                {
                    "provider_id": PROVIDER,
                    "scopes": ["products:read", "cart:read", "cart:write", "orders:write"],
                }
            ],
            purpose="sync flow",
        )
        assert reg.agent_status.value == "approved"
        assert reg.client_id and reg.client_secret
        (approval,) = reg.approved_providers
        assert approval.approved_scopes == ["products:read", "cart:read", "cart:write"]
        assert approval.denied_scopes == ["orders:write"]
        assert client.agent_status().agent_status.value == "approved"

        auth = client.authorize(PROVIDER, ["products:read", "cart:read", "cart:write"])
        query = parse_qs(urlsplit(auth.authorization_url).query)
        assert query["code_challenge_method"] == ["S256"] and query["code_challenge"][0]
        assert "code_verifier" not in query

        browser = HTTPBrowser("alice", shop.password)
        page = browser.open_consent(auth.authorization_url)
        assert page.preselected == ["products:read", "cart:read", "cart:write"]
        assert "ATH Shop Demo Agent" in page.text and "athkit demo team" in page.text
        done = browser.decide(approve=True, scopes=["products:read", "cart:write"])
        browser.close()
        assert done.status_code == 200 and "Authorization complete" in done.text

        token = client.exchange_token(auth.ath_session_id)
        assert token.token_type == "Bearer"
        assert token.effective_scopes == ["products:read", "cart:write"]
        assert token.agent_id == agent.agent_id and token.provider_id == PROVIDER
        assert token.scope_intersection.agent_approved == [
            "products:read",
            "cart:read",
            "cart:write",
        ]
        assert token.scope_intersection.user_consented == ["products:read", "cart:write"]
        assert 0 < token.expires_in <= 3600

        # Within scope: works.
        assert client.request("GET", "/products").json()["products"]
        added = client.request("POST", "/cart/items", json={"product_id": "p-101"})
        assert added.status_code == 201 and added.json()["items"][0]["product_id"] == "p-101"
        # Outside scope: cart:read was approved for the agent but not consented by the user.
        with pytest.raises(errors.ScopeInsufficientError) as refused:
            client.request("GET", "/cart")
        assert refused.value.status == 403
        raw = api_get(shop, "/api/orders", token.access_token, agent.agent_id)
        body = error_of(raw, 403, "SCOPE_INSUFFICIENT")
        assert body["details"]["required"] == ["orders:read"]

        client.revoke()
        assert client.access_token is None
        error_of(
            api_get(shop, "/api/products", token.access_token, agent.agent_id), 401, "TOKEN_REVOKED"
        )
        client.set_token(token.access_token)
        with pytest.raises(errors.TokenRevokedError):
            client.request("GET", "/products")


def test_async_client_full_flow(shop: Shop, agent: AgentIdentity) -> None:
    async def flow() -> str:
        async with AsyncATHClient(shop.url, agent.agent_id, agent.key) as client:
            doc = await client.discover()
            assert doc.api_base == f"{shop.url}/api"
            reg = await client.register(
                developer=DEVELOPER,
                providers=[{"provider_id": PROVIDER, "scopes": ["products:read", "orders:read"]}],
            )
            assert reg.agent_status.value == "approved"
            auth = await client.authorize(PROVIDER, ["products:read", "orders:read"])
            # The user's browser is a separate party; run it off the event loop.
            done = await asyncio.to_thread(consent, shop, auth.authorization_url)
            assert done.status_code == 200
            token = await client.exchange_token(auth.ath_session_id)
            assert token.effective_scopes == ["products:read", "orders:read"]
            assert (await client.request("GET", "/orders")).json() == {"orders": []}
            assert (await client.proxy_request("GET", PROVIDER, "/api/products")).status_code == 200
            with pytest.raises(errors.ScopeInsufficientError):
                await client.request("POST", "/orders")
            await client.revoke()
            return token.access_token

    token = asyncio.run(flow())
    error_of(api_get(shop, "/api/products", token, agent.agent_id), 401, "TOKEN_REVOKED")


def test_proxy_shape(shop: Shop, agent: AgentIdentity) -> None:
    client = registered_client(shop, agent)
    auth = client.authorize(PROVIDER, ["products:read"])
    consent(shop, auth.authorization_url)
    token = client.exchange_token(auth.ath_session_id).access_token

    ok = api_get(shop, f"/ath/proxy/{PROVIDER}/api/products", token, agent.agent_id)
    assert ok.status_code == 200 and ok.json()["products"]
    assert client.proxy_request("GET", PROVIDER, "api/products").status_code == 200

    other = api_get(shop, "/ath/proxy/other-provider/api/products", token, agent.agent_id)
    body = error_of(other, 403, "PROVIDER_MISMATCH")
    assert body["details"] == {"token_provider": PROVIDER, "requested_provider": "other-provider"}
    # Our client never even sends a token to a provider it was not issued for.
    with pytest.raises(errors.ClientStateError):
        client.proxy_request("GET", "other-provider", "api/products")

    # Only the service's API is reachable through the proxy shape.
    for path in (
        f"/ath/proxy/{PROVIDER}/login",
        f"/ath/proxy/{PROVIDER}/ath/token",
        f"/ath/proxy/{PROVIDER}/apix/products",
        "/ath/proxy/",
        f"/ath/proxy/{PROVIDER}",
        f"/ath/proxy/{PROVIDER}/api/%2e%2e/login",  # no escaping the API by dot segments
        f"/ath/proxy/{PROVIDER}/api/..%2flogin",
    ):
        error_of(api_get(shop, path, token, agent.agent_id), 404, "NOT_FOUND")
    # Scope checks apply through the proxy as well.
    error_of(
        api_get(shop, f"/ath/proxy/{PROVIDER}/api/cart", token, agent.agent_id),
        403,
        "SCOPE_INSUFFICIENT",
    )
    error_of(
        api_get(shop, f"/ath/proxy/{PROVIDER}/api/products", token, None),
        403,
        "AGENT_IDENTITY_MISMATCH",
    )


def test_user_redirect_uri_flow(shop: Shop, agent: AgentIdentity) -> None:
    redirect = "https://agent.example/ath/return"
    client = registered_client(shop, agent, redirect_uris=[redirect])
    auth = client.authorize(PROVIDER, ["products:read"], user_redirect_uri=redirect)

    browser = HTTPBrowser("alice", shop.password)
    browser.open_consent(auth.authorization_url)
    resp = browser.decide(approve=True)
    browser.close()
    assert resp.status_code == 303
    location = resp.headers["location"]
    assert location.startswith(redirect + "?")
    params = client.parse_redirect(location)
    assert params.state == auth.state and params.code and params.error is None

    # A wrong code is refused and does not burn the session.
    wrong = httpx.post(
        f"{shop.url}/ath/token",
        json=token_body(
            agent,
            shop.url,
            client.client_id or "",
            client.client_secret or "",
            auth.ath_session_id,
            code="not-the-code",
        ),
    )
    error_of(wrong, 400, "INVALID_CODE")
    # The placeholder the SDKs send for the server's own callback is no grant here either.
    with pytest.raises(errors.InvalidCodeError):
        client.exchange_token(auth.ath_session_id)
    # The client checks the returned state itself before sending anything.
    with pytest.raises(errors.StateMismatchError):
        client.exchange_token(auth.ath_session_id, params.code, returned_state="forged")

    token = client.exchange_token(auth.ath_session_id, params.code, returned_state=params.state)
    assert token.effective_scopes == ["products:read"]
    assert client.request("GET", "/products").status_code == 200


def test_user_redirect_uri_denied(shop: Shop, agent: AgentIdentity) -> None:
    redirect = "https://agent.example/cb"
    client = registered_client(shop, agent, redirect_uris=[redirect])
    auth = client.authorize(PROVIDER, ["products:read"], user_redirect_uri=redirect)
    browser = HTTPBrowser("alice", shop.password)
    browser.open_consent(auth.authorization_url)
    resp = browser.decide(approve=False)
    browser.close()
    assert resp.status_code == 303
    params = client.parse_redirect(resp.headers["location"])
    assert params.error == "access_denied" and params.state == auth.state and params.code is None
    with pytest.raises(errors.UserDeniedError) as denied:
        client.exchange_token(auth.ath_session_id, "anything")
    assert denied.value.status == 403


def test_audit_trail_of_a_flow(shop: Shop, agent: AgentIdentity) -> None:
    client = registered_client(shop, agent, ["products:read", "cart:read", "orders:write"])
    auth = client.authorize(PROVIDER, ["products:read", "cart:read"])
    consent(shop, auth.authorization_url, scopes=["products:read"])
    token = client.exchange_token(auth.ath_session_id)
    client.revoke()

    rows = list(reversed(service_of(shop).store.list_audit(agent_id=agent.agent_id)))
    by_event = {r.event: r for r in rows}
    assert [r.event for r in rows] == [
        "agent_registered",
        "authorization_started",
        "consent_granted",
        "access_granted",
        "token_revoked",
    ]

    reg = by_event["agent_registered"]
    assert reg.outcome == "approved"
    assert reg.requested_scopes == ["products:read", "cart:read", "orders:write"]
    assert reg.effective_scopes == ["products:read", "cart:read"]
    assert reg.denied_scopes == ["orders:write"]
    assert reg.details["client_id"] == client.client_id

    grant = by_event["consent_granted"]
    assert (grant.outcome, grant.user_id, grant.provider_id) == ("granted", "alice", PROVIDER)
    assert grant.requested_scopes == ["products:read", "cart:read"]
    assert grant.effective_scopes == ["products:read"]
    assert grant.denied_scopes == ["cart:read"]

    issue = by_event["access_granted"]
    assert (issue.user_id, issue.provider_id) == ("alice", PROVIDER)
    assert issue.effective_scopes == token.effective_scopes == ["products:read"]

    revoke = by_event["token_revoked"]
    assert (revoke.user_id, revoke.provider_id) == ("alice", PROVIDER)
    assert revoke.effective_scopes == ["products:read"]

    for row in rows:
        assert row.agent_id == agent.agent_id and row.timestamp is not None
    # No secret or token ever lands in the audit log.
    dump = repr([(r.details, r.denial_reason) for r in rows])
    assert token.access_token not in dump and (client.client_secret or "") not in dump


def test_audit_of_refusals_and_denial(shop: Shop, agent: AgentIdentity) -> None:
    client = registered_client(shop, agent)
    with pytest.raises(errors.ScopeNotApprovedError):
        client.authorize(PROVIDER, ["orders:write"])
    auth = client.authorize(PROVIDER, ["products:read"])
    consent(shop, auth.authorization_url, approve=False)

    rows = service_of(shop).store.list_audit(agent_id=agent.agent_id)
    refused = [r for r in rows if r.event == "access_denied" and r.outcome == "refused"]
    assert len(refused) == 1 and refused[0].denial_reason == "SCOPE_NOT_APPROVED"
    assert refused[0].requested_scopes == ["orders:write"]
    denied = [r for r in rows if r.event == "access_denied" and r.outcome == "denied"]
    assert len(denied) == 1 and denied[0].outcome == "denied" and denied[0].user_id == "alice"
    assert denied[0].denied_scopes == ["products:read"] and denied[0].effective_scopes == []


@pytest.fixture
def pending_shop(tmp_path: Path) -> Iterator[Shop]:
    """ATH Shop whose policy leaves every unknown agent pending for an operator."""
    shop = start_shop(tmp_path, policy=ApprovalPolicy(unknown_agents="pending"))
    try:
        yield shop
    finally:
        shop.server.stop()


def test_pending_policy_and_operator_decisions(
    pending_shop: Shop, new_agent: Callable[..., AgentIdentity]
) -> None:
    shop = pending_shop
    agent = new_agent("pending")
    svc = service_of(shop)
    client = ATHClient(shop.url, agent.agent_id, agent.key)
    client.discover()
    reg = client.register(
        developer=DEVELOPER,
        providers=[{"provider_id": PROVIDER, "scopes": ["products:read", "cart:read"]}],
    )
    assert reg.agent_status.value == "pending"
    (approval,) = reg.approved_providers
    assert approval.approved_scopes == []
    assert approval.denied_scopes == ["products:read", "cart:read"]
    assert client.agent_status().agent_status.value == "pending"
    assert [a.client_id for a in svc.store.list_agents("pending")] == [reg.client_id]

    raw = httpx.post(
        f"{shop.url}/ath/authorize", json=authorize_body(agent, shop.url, reg.client_id)
    )
    body = error_of(raw, 403, "AGENT_UNAPPROVED")
    assert body["details"] == {"agent_status": "pending"}

    assert svc.decide_agent(reg.client_id, "approved", reason="looks fine")
    status = client.agent_status()
    assert status.agent_status.value == "approved"
    assert status.approved_providers[0].approved_scopes == ["products:read", "cart:read"]

    auth = client.authorize(PROVIDER, ["products:read"])
    consent(shop, auth.authorization_url)
    token = client.exchange_token(auth.ath_session_id).access_token
    assert client.request("GET", "/products").status_code == 200

    assert svc.decide_agent(reg.client_id, "suspended", reason="abuse report")
    error_of(api_get(shop, "/api/products", token, agent.agent_id), 401, "TOKEN_REVOKED")
    with pytest.raises(errors.AgentUnapprovedError):
        client.authorize(PROVIDER, ["products:read"])
    decisions = [
        r for r in svc.store.list_audit(agent_id=agent.agent_id) if r.event in ("agent_suspended", "agent_approved")
    ]
    assert [d.outcome for d in decisions] == ["suspended", "approved"]
    client.close()


def test_denied_operator_decision_blocks_token_exchange(
    pending_shop: Shop, new_agent: Callable[..., AgentIdentity]
) -> None:
    """An agent denied between authorize and token cannot turn a consent into a token."""
    shop = pending_shop
    agent = new_agent("flip")
    svc = service_of(shop)
    client = ATHClient(shop.url, agent.agent_id, agent.key)
    reg = client.register(
        developer=DEVELOPER, providers=[{"provider_id": PROVIDER, "scopes": ["products:read"]}]
    )
    svc.decide_agent(reg.client_id, "approved")
    auth = client.authorize(PROVIDER, ["products:read"])
    consent(shop, auth.authorization_url)
    svc.decide_agent(reg.client_id, "denied")
    with pytest.raises(errors.AgentUnapprovedError) as refused:
        client.exchange_token(auth.ath_session_id)
    assert refused.value.status == 403
    client.close()


def test_full_flow_on_postgresql(
    tmp_path: Path, pg_url: str, new_agent: Callable[..., AgentIdentity]
) -> None:
    """The same flow with the PostgreSQL store: binding, single use, revocation all hold."""
    shop = start_shop(tmp_path, database_url=pg_url)
    try:
        agent = new_agent("pg")
        client = registered_client(shop, agent)
        auth = client.authorize(PROVIDER, ["products:read", "cart:write"])
        consent(shop, auth.authorization_url)
        token = client.exchange_token(auth.ath_session_id)
        assert token.effective_scopes == ["products:read", "cart:write"]
        assert (
            client.request("POST", "/cart/items", json={"product_id": "p-100"}).status_code == 201
        )
        with pytest.raises(errors.SessionAlreadyUsedError):
            client.exchange_token(auth.ath_session_id)
        error_of(
            api_get(shop, "/api/cart", token.access_token, agent.agent_id),
            403,
            "SCOPE_INSUFFICIENT",
        )
        client.revoke()
        error_of(
            api_get(shop, "/api/products", token.access_token, agent.agent_id), 401, "TOKEN_REVOKED"
        )
        events = [r.event for r in service_of(shop).store.list_audit(agent_id=agent.agent_id)]
        assert events[:3] == ["token_revoked", "access_granted", "consent_granted"]
        client.close()
    finally:
        shop.server.stop()
