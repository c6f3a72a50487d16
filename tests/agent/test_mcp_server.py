"""``athkit mcp serve`` driven by the official MCP SDK client over stdio, against a real ATH
Shop, a real athkit registry and the agent's published identity. The user's consent is given
in a real (HTTP) browser; the user's confirmation of a URL through MCP elicitation."""

from __future__ import annotations

import json
import os
import sys
import threading
from typing import Any

import anyio
import httpx
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.shared.context import RequestContext
from mcp.types import ElicitRequestParams, ElicitResult, ErrorData

from athkit.registry.app import create_registry_app
from athkit.registry.service import RegistrySettings
from athkit.web.serving import BackgroundServer
from tests.agent.conftest import AgentHome, Published, approve
from tests.conftest import Shop
from tests.registry.conftest import FakeService, fake_app

EXPECTED_TOOLS = {
    "search_providers", "discover_provider", "connect_provider", "list_grants", "call_api",
    "revoke",
}


@pytest.fixture
def registry_url(shop: Shop, tmp_path) -> Any:  # type: ignore[no-untyped-def]
    """A real athkit registry listing (with ownership proof) a service shaped like the shop."""
    doc = httpx.get(f"{shop.url}/.well-known/ath-app.json").json()
    svc = FakeService("/.well-known/ath-app.json", doc)
    svc.server = BackgroundServer(fake_app(svc)).start()
    cfg = RegistrySettings(data_dir=tmp_path / "registry", dev_mode=True, admin_token="t" * 20,
                           revalidate_interval=0, semantic="off", fetch_timeout=2.0)
    reg = BackgroundServer(create_registry_app(cfg)).start()
    try:
        listing = httpx.post(f"{reg.url}/api/listings", json={"url": svc.url}).json()
        svc.publish(listing["challenge"]["token"])
        done = httpx.post(f"{reg.url}/api/listings/{listing['listing_id']}/verify")
        assert done.status_code == 200, done.text
        yield reg.url
    finally:
        reg.stop()
        svc.server.stop()


def _params(home: AgentHome, *extra: str) -> StdioServerParameters:
    env = {**os.environ, **home.env, "PYTHONPATH": os.pathsep.join(sys.path)}
    return StdioServerParameters(
        command=sys.executable, args=["-m", "athkit.cli", "mcp", "serve", "--dev", *extra],
        env=env,
    )


async def _call(session: ClientSession, name: str, **args: Any) -> dict[str, Any]:
    result = await session.call_tool(name, args)
    assert result.structuredContent is not None, result
    text = json.loads(result.content[0].text)  # type: ignore[union-attr]
    assert text == result.structuredContent
    return dict(result.structuredContent)


def test_mcp_stdio_session(
    agent_home: AgentHome, published: Published, shop: Shop, registry_url: str
) -> None:
    answers: list[bool] = []
    asked: list[str] = []
    links: list[str] = []
    opens: list[bool] = []
    users: list[threading.Thread] = []

    async def elicit(
        ctx: RequestContext[ClientSession, Any], params: ElicitRequestParams
    ) -> ElicitResult | ErrorData:
        if getattr(params, "mode", "form") == "url":  # the consent link, shown to the user
            links.append(params.url)  # type: ignore[union-attr]
            if not opens.pop(0):
                return ElicitResult(action="decline")
            users.append(threading.Thread(target=approve, args=(params.url,)))  # type: ignore[union-attr]
            users[-1].start()  # the user opens it in a browser and approves
            return ElicitResult(action="accept")
        asked.append(params.message)
        allow = answers.pop(0)
        return ElicitResult(action="accept", content={"allow": allow})

    async def session_run() -> None:
        params = _params(agent_home, "--registry", registry_url)
        async with stdio_client(params) as (read, write), ClientSession(
            read, write, elicitation_callback=elicit
        ) as session:
            init = await session.initialize()
            assert init.serverInfo.name == "athkit" and init.instructions
            tools = {t.name: t for t in (await session.list_tools()).tools}
            assert set(tools) == EXPECTED_TOOLS
            assert all(len(t.description or "") > 60 for t in tools.values())
            assert tools["call_api"].inputSchema["properties"]["method"]["enum"] == [
                "GET", "POST", "PUT", "PATCH", "DELETE"]
            assert tools["revoke"].annotations.destructiveHint is True  # type: ignore[union-attr]

            found = await _call(session, "search_providers", intent="ATH shop")
            assert found["status"] == "ok" and found["providers"][0]["name"].startswith("ATH Shop")

            # the model names a URL the user never confirmed: the user says no -> not fetched
            answers.append(False)
            refused = await _call(session, "discover_provider", url=shop.url)
            assert refused["status"] == "needs_confirmation" and asked
            assert "do not retry" in refused["message"]
            answers.append(True)
            seen = await _call(session, "discover_provider", url=shop.url)
            assert seen["status"] == "ok" and "products:read" in seen["providers"][0]["scopes"]

            # the consent link goes to the user (URL-mode elicitation); first they decline
            opens.append(False)
            start = await _call(session, "connect_provider", service_url=shop.url,
                                provider_id="ath-shop", scopes=["products:read", "cart:read"])
            assert start["status"] == "authorization_required", start
            assert start["authorization_url"].startswith(shop.url) and links
            assert "did not open" in start["message"]
            assert len(asked) == 2  # the confirmed origin is remembered
            early = await _call(session, "call_api", provider_id="ath-shop", method="GET",
                                path="/products")
            assert early["status"] == "not_connected"
            opens.append(True)  # then they open it and approve: the call completes
            done = await _call(session, "connect_provider", service_url=shop.url,
                               provider_id="ath-shop", scopes=["products:read", "cart:read"])
            assert done["status"] == "ok" and done["scopes"] == ["products:read", "cart:read"]
            assert links == [start["authorization_url"]] * 2
            users[-1].join(10)

            grants = await _call(session, "list_grants")
            assert [g["provider_id"] for g in grants["grants"]] == ["ath-shop"]
            assert "access_token" not in json.dumps(grants)

            ok = await _call(session, "call_api", provider_id="ath-shop", method="GET",
                             path="/products")
            assert ok["status"] == "ok" and ok["http_status"] == 200
            assert ok["body"]["products"][0]["id"] == "p-100"
            no = await _call(session, "call_api", provider_id="ath-shop", method="POST",
                             path="/cart/items", body={"product_id": "p-100"})
            assert no["status"] == "refused" and no["code"] == "SCOPE_INSUFFICIENT"
            assert "outside what the user granted" in no["message"] and no["hint"]
            bad = await _call(session, "call_api", provider_id="ath-shop", method="GET",
                              path="http://169.254.169.254/latest")
            assert bad["status"] == "error"

            gone = await _call(session, "revoke", provider_id="ath-shop")
            assert gone["status"] == "ok"
            assert (await _call(session, "list_grants"))["grants"] == []

    anyio.run(session_run)


def test_mcp_streamable_http(published: Published, shop: Shop) -> None:
    from mcp.client.streamable_http import streamable_http_client

    from athkit.integrations.mcp_server import streamable_http_app
    from athkit.integrations.tools import ATHTools
    from athkit.web.serving import free_port

    tools = ATHTools(published.agent, allow=[shop.url])
    port = free_port()
    app = streamable_http_app(tools, user="erin", allowed_hosts=[f"127.0.0.1:{port}"])
    with BackgroundServer(app, port=port) as server:
        # DNS-rebinding protection: a foreign Host header is refused
        rebound = httpx.post(f"{server.url}/mcp/", headers={"Host": "evil.example"}, json={})
        assert rebound.status_code in (403, 421), rebound.status_code

        async def run() -> None:
            async with streamable_http_client(f"{server.url}/mcp/") as (read, write, _), \
                    ClientSession(read, write) as session:
                await session.initialize()
                names = {t.name for t in (await session.list_tools()).tools}
                assert names == EXPECTED_TOOLS
                # allowlisted: fetched without asking (this client cannot be asked anyway)
                seen = await _call(session, "discover_provider", url=shop.url)
                assert seen["status"] == "ok"
                other = await _call(session, "discover_provider", url="http://127.0.0.1:9")
                assert other["status"] == "needs_confirmation"
                start = await _call(session, "connect_provider", service_url=shop.url,
                                    provider_id="ath-shop", scopes=["products:read"])
                assert start["status"] == "authorization_required"
                assert await anyio.to_thread.run_sync(approve, start["authorization_url"]) == 200
                done = await _call(session, "connect_provider", service_url=shop.url,
                                   provider_id="ath-shop", scopes=["products:read"],
                                   wait_seconds=5)
                assert done["status"] == "ok"

        anyio.run(run)
    assert [g.provider_id for g in published.vault.grants("erin")] == ["ath-shop"]
    assert published.vault.grants("local") == []
