"""ATHAgent through a real athkit gateway in front of a real OpenID provider and resource API:
connect (the gateway's consent page, then the provider's sign-in), call via /ath/proxy, the
scope→route map refusing an ungranted call, revoke."""

from __future__ import annotations

import pytest

from athkit.client.errors import ScopeInsufficientError, TokenRevokedError
from athkit.demo.browser import HTTPBrowser, complete_upstream_login
from tests.agent.conftest import Published
from tests.gateway.conftest import resource_api_factory  # noqa: F401 - fixture
from tests.gateway.test_gateway import Gateway, gateway, start_gateway  # noqa: F401 - fixtures


def test_agent_through_the_gateway(gateway: Gateway, published: Published) -> None:  # noqa: F811
    agent = published.agent
    assert [p.provider_id for p in agent.discover(gateway.url)] == ["mail"]
    pending = agent.connect(gateway.url, provider="mail", scopes=["mail:read"], user="alice")

    browser = HTTPBrowser("alice", "unused")
    try:
        browser.open_consent(pending.authorization_url)
        to_provider = browser.decide(approve=True, scopes=["mail:read"])
        back = complete_upstream_login(browser.http, to_provider.headers["location"], "alice")
        assert browser.http.get(back.headers["location"]).status_code == 200
    finally:
        browser.close()

    grant = agent.wait_for_authorization(pending, user="alice", timeout=15)
    assert grant.scopes == ["mail:read"] and grant.api_base == f"{gateway.url}/ath/proxy/mail"
    me = agent.call("mail", "GET", "/v1/me", user="alice")
    assert me.status_code == 200 and me.json()["sub"] == "alice"
    with pytest.raises(ScopeInsufficientError):
        agent.call("mail", "POST", "/v1/messages", json={"to": "bob"}, user="alice")
    agent.revoke("mail", user="alice")
    assert agent.grants("alice") == []
    agent.vault.save_grant(grant, user="alice")  # a stale copy: the gateway refuses it ...
    with pytest.raises(TokenRevokedError):
        agent.call("mail", "GET", "/v1/me", user="alice")
    assert agent.grants("alice") == []  # ... and the vault drops it
