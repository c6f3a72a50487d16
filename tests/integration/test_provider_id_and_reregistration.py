"""Provider id in service discovery (one truth: ``provider_id``, ``app_id`` an accepted alias)
and re-registration (denied or wrong-provider agents can register again; an operator's deny
stands). Real ATH Shop over HTTP, our client and the official ath-sdk."""

from __future__ import annotations

import ath
import httpx
import pytest

from athkit.client import ATHClient, discover
from athkit.demo.agent import DEVELOPER
from athkit.demo.browser import HTTPBrowser
from athkit.protocol.errors import ATHError
from tests.conftest import AgentIdentity, Shop
from tests.integration.support import (
    PROVIDER,
    api_get,
    attest,
    consent,
    error_of,
    register_body,
)

APP_ID = "com.ath-shop.ecommerce"


def post(shop: Shop, path: str, body: dict) -> httpx.Response:  # type: ignore[type-arg]
    return httpx.post(f"{shop.url}{path}", json=body)


# -- item 16: discovery -> register --------------------------------------------------------


def test_service_discovery_publishes_the_provider_id(shop: Shop) -> None:
    doc = httpx.get(f"{shop.url}/.well-known/ath-app.json").json()
    assert doc["provider_id"] == PROVIDER and doc["app_id"] == APP_ID


def test_our_client_discovers_and_registers_with_the_provider_id(
    shop: Shop, agent: AgentIdentity
) -> None:
    found = discover(service=shop.url, dev_mode=True)
    (provider,) = found.providers
    assert provider.provider_id == PROVIDER
    client = ATHClient(shop.url, agent.agent_id, agent.key)
    client.discover()
    reg = client.register(
        developer=DEVELOPER,
        providers=[{"provider_id": provider.provider_id, "scopes": ["products:read"]}],
    )
    assert reg.agent_status.value == "approved"
    assert reg.approved_providers[0].provider_id == PROVIDER
    assert reg.approved_providers[0].approved_scopes == ["products:read"]


def test_ath_sdk_discovers_and_registers_with_the_app_id_it_is_handed(
    shop: Shop, agent: AgentIdentity
) -> None:
    """ath-sdk reads ``app_id``; athkit accepts it as an alias of ``provider_id`` end to end."""
    client = ath.ATHNativeClient(shop.url, agent.agent_id, agent.key.private_pem(), key_id="default")
    with client:
        doc = client.discover()
        reg = client.register(
            developer=dict(DEVELOPER),
            providers=[{"provider_id": doc.app_id, "scopes": ["products:read"]}],
            purpose="discover then register",
        )
        assert reg.agent_status.value == "approved", reg
        assert reg.approved_providers[0].provider_id == PROVIDER
        assert reg.approved_providers[0].approved_scopes == ["products:read"]
        auth = client.authorize(doc.app_id, ["products:read"])
        browser = HTTPBrowser("alice", shop.password)
        browser.open_consent(auth.authorization_url)
        assert browser.decide(approve=True).status_code == 200
        browser.close()
        token = client.exchange_token("placeholder", auth.ath_session_id)
        assert token.provider_id == PROVIDER
        assert client.api("GET", "/products")["products"]
        # The proxy shape accepts the alias too.
        resp = api_get(shop, f"/ath/proxy/{APP_ID}/api/products", token.access_token, agent.agent_id)
        assert resp.status_code == 200, resp.text


# -- item 17: reasons and re-registration -----------------------------------------------------


def test_denied_registration_names_the_reason_per_provider_and_scope(
    shop: Shop, agent: AgentIdentity
) -> None:
    body = register_body(agent, shop.url, ["products:read"], provider_id="com.wrong.app")
    body["requested_providers"].append(
        {"provider_id": PROVIDER, "scopes": ["orders:write"]}  # trusted agents only
    )
    resp = post(shop, "/ath/agents/register", body)
    assert resp.status_code == 201, resp.text
    reg = resp.json()
    assert reg["agent_status"] == "denied"
    wrong, shop_p = reg["approved_providers"]
    assert "unknown provider" in wrong["denial_reason"] and PROVIDER in wrong["denial_reason"]
    assert wrong["denied_scope_reasons"] == {"products:read": "unknown provider"}
    assert shop_p["denied_scope_reasons"] == {
        "orders:write": "granted only to agents this service trusts"
    }
    assert "none of the requested scopes can be granted" in shop_p["denial_reason"]


def test_wrong_provider_then_right_provider_registers_again(
    shop: Shop, agent: AgentIdentity
) -> None:
    first = post(
        shop,
        "/ath/agents/register",
        register_body(agent, shop.url, ["products:read"], provider_id="com.wrong.app"),
    ).json()
    assert first["agent_status"] == "denied"
    again = post(shop, "/ath/agents/register", register_body(agent, shop.url, ["products:read"]))
    assert again.status_code == 201, again.text
    reg = again.json()
    assert reg["agent_status"] == "approved"
    assert reg["client_id"] == first["client_id"]
    assert reg["client_secret"] != first["client_secret"]
    assert reg["approved_providers"][0]["approved_scopes"] == ["products:read"]
    # The old secret no longer authenticates; the new one does.
    client = ATHClient(shop.url, agent.agent_id, agent.key)
    client.set_credentials(first["client_id"], first["client_secret"])
    with pytest.raises(ATHError) as old:
        client.agent_status()
    assert old.value.code_str == "INVALID_CLIENT"
    client.set_credentials(reg["client_id"], reg["client_secret"])
    assert client.agent_status().agent_status.value == "approved"


def test_reregistration_proves_identity_and_revokes_old_tokens(
    shop: Shop, agent: AgentIdentity, new_agent
) -> None:  # type: ignore[no-untyped-def]
    client = ATHClient(shop.url, agent.agent_id, agent.key)
    client.discover()
    client.register(developer=DEVELOPER, providers=[{"provider_id": PROVIDER, "scopes": ["products:read"]}])
    auth = client.authorize(PROVIDER, ["products:read"])
    assert consent(shop, auth.authorization_url).status_code == 200
    token = client.exchange_token(auth.ath_session_id)
    assert api_get(shop, "/api/products", token.access_token, agent.agent_id).status_code == 200
    # Someone else's key cannot re-register this agent_id.
    mallory = new_agent("mallory")
    impostor = AgentIdentity(mallory.key, agent.agent_id, agent.app, agent.server, agent.path)
    forged = register_body(
        agent, shop.url, ["products:read", "cart:read"], attestation=attest(impostor, shop.url)
    )
    error_of(post(shop, "/ath/agents/register", forged), 401, "INVALID_ATTESTATION")
    # The agent itself updates its request: decided anew, old token revoked.
    update = register_body(agent, shop.url, ["products:read", "cart:read"])
    resp = post(shop, "/ath/agents/register", update)
    assert resp.status_code == 201 and resp.json()["agent_status"] == "approved", resp.text
    assert resp.json()["approved_providers"][0]["approved_scopes"] == ["products:read", "cart:read"]
    revoked = api_get(shop, "/api/products", token.access_token, agent.agent_id)
    error_of(revoked, 401, "TOKEN_REVOKED")
    # The same request again is the §4 duplicate.
    dup = post(shop, "/ath/agents/register", register_body(agent, shop.url, ["cart:read", "products:read"]))
    error_of(dup, 409, "AGENT_ALREADY_REGISTERED")


def test_operator_deny_is_sticky_until_the_operator_lifts_it(
    shop: Shop, agent: AgentIdentity
) -> None:
    first = post(shop, "/ath/agents/register", register_body(agent, shop.url)).json()
    svc = shop.app.state.athkit
    svc.decide_agent(first["client_id"], "denied", reason="abuse report")
    for scopes in (["products:read"], ["cart:read"]):
        refused = post(shop, "/ath/agents/register", register_body(agent, shop.url, scopes))
        body = error_of(refused, 403, "AGENT_UNAPPROVED")
        assert body["details"] == {"agent_status": "denied", "decided_by": "operator"}
    status = httpx.get(
        f"{shop.url}/ath/agents/{first['client_id']}",
        headers={"X-ATH-Attestation": attest(agent, shop.url)},
    ).json()
    assert status["agent_status"] == "denied"
    assert "abuse report" in status["approved_providers"][0]["denial_reason"]
    svc.decide_agent(first["client_id"], "approved")
    lifted = post(shop, "/ath/agents/register", register_body(agent, shop.url, ["cart:read"]))
    assert lifted.status_code == 201 and lifted.json()["agent_status"] == "approved", lifted.text
