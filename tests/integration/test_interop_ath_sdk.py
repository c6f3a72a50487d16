"""The official Python SDK (``ath-sdk``, import ``ath``) completes the whole flow against us."""

from __future__ import annotations

import ath
import pytest

from athkit.demo.browser import HTTPBrowser
from tests.conftest import AgentIdentity, Shop


def test_official_sdk_full_native_flow(shop: Shop, agent: AgentIdentity) -> None:
    client = ath.ATHNativeClient(shop.url, agent.agent_id, agent.key.private_pem(), key_id="default")
    with client:
        doc = client.discover()
        assert doc.app_id == "com.ath-shop.ecommerce"
        assert doc.api_base == f"{shop.url}/api"

        reg = client.register(
            developer={"name": "athkit demo team", "id": "dev-athkit-demo"},
            providers=[{"provider_id": "ath-shop", "scopes": ["products:read", "cart:write", "orders:write"]}],
            purpose="interop test",
        )
        assert reg.agent_status.value == "approved"
        approval = reg.approved_providers[0]
        assert approval.approved_scopes == ["products:read", "cart:write"]
        assert approval.denied_scopes == ["orders:write"]

        auth = client.authorize("ath-shop", ["products:read", "cart:write"])
        browser = HTTPBrowser("alice", shop.password)
        page = browser.open_consent(auth.authorization_url)
        assert page.preselected == ["products:read", "cart:write"]
        assert page.blocked == ["orders:write"]  # refused by the shop in Phase A, shown greyed out
        done = browser.decide(approve=True, scopes=["products:read"])
        assert done.status_code == 200 and "Authorization complete" in done.text

        token = client.exchange_token("placeholder", auth.ath_session_id)
        assert token.effective_scopes == ["products:read"]
        assert token.scope_intersection.agent_approved == ["products:read", "cart:write"]
        assert token.scope_intersection.user_consented == ["products:read"]

        assert client.api("GET", "/products")["products"]
        with pytest.raises(ath.ATHError) as refused:
            client.api("POST", "/cart/items", {"product_id": "p-100"})
        assert refused.value.status == 403

        client.revoke()
        client.set_token(token.access_token)
        with pytest.raises(ath.ATHError) as revoked:
            client.api("GET", "/products")
        assert revoked.value.code == "TOKEN_REVOKED" and revoked.value.status == 401
