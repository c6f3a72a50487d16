"""Gateway mode for OAuth/MCP clients: the official MCP SDK's OAuth client reaches the
upstream OAuth API through the gateway's proxy with a standard OAuth token (discovered from
the proxy's 401, dynamic registration, the gateway's consent page, the provider's sign-in);
the upstream token never leaves the gateway."""

from __future__ import annotations

import anyio
import httpx
from mcp.client.auth import OAuthClientProvider
from mcp.shared.auth import OAuthClientMetadata
from pydantic import AnyUrl

from athkit.demo.browser import HTTPBrowser, complete_upstream_login
from athkit.web.serving import free_port
from tests.gateway.test_gateway import Gateway, gateway, start_gateway  # noqa: F401
from tests.oauth.support import query_of
from tests.oauth.test_mcp_sdk_client import MemoryStorage


def test_mcp_sdk_oauth_client_through_the_gateway_proxy(gateway: Gateway) -> None:  # noqa: F811
    base = gateway.url
    api = f"{base}/ath/proxy/mail"
    first = httpx.get(f"{api}/v1/me")
    assert first.status_code == 401
    assert (
        f'resource_metadata="{base}/.well-known/oauth-protected-resource/ath/proxy/mail"'
        in first.headers["www-authenticate"]
    )
    prm = httpx.get(f"{base}/.well-known/oauth-protected-resource/ath/proxy/mail").json()
    assert prm["resource"] == api and prm["scopes_supported"] == ["mail:read", "mail:send"]

    redirect = f"http://127.0.0.1:{free_port()}/callback"
    browser = HTTPBrowser("alice", "unused")
    last: dict[str, str] = {}

    def user(url: str) -> None:
        browser.open_consent(url)
        to_provider = browser.decide(approve=True, scopes=["mail:read"])
        back = complete_upstream_login(browser.http, to_provider.headers["location"], "alice")
        done = browser.http.get(back.headers["location"])
        assert done.is_redirect and done.headers["location"].startswith(redirect)
        last.update(query_of(done.headers["location"]))

    async def redirect_handler(url: str) -> None:
        await anyio.to_thread.run_sync(user, url)

    async def callback_handler() -> tuple[str, str | None]:
        return last["code"], last.get("state")

    storage = MemoryStorage()
    provider = OAuthClientProvider(
        server_url=f"{api}/v1/me",
        client_metadata=OAuthClientMetadata(
            client_name="MCP client via gateway",
            redirect_uris=[AnyUrl(redirect)],
            grant_types=["authorization_code", "refresh_token"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )

    async def get(path: str) -> httpx.Response:
        async with httpx.AsyncClient(auth=provider, timeout=30) as http:
            return await http.get(f"{api}{path}")

    me = anyio.run(get, "/v1/headers")
    browser.close()
    assert me.status_code == 200, me.text
    assert last["iss"] == base
    tokens = storage.tokens
    assert tokens is not None and tokens.scope == "mail:read"
    seen = me.json()["headers"]
    upstream = seen["authorization"].split()[1]
    assert upstream != tokens.access_token and upstream.count(".") == 2
    # only the upstream API's own echo of what it received shows it; no gateway header does
    assert upstream not in me.text.replace(seen["authorization"], "")
    assert upstream not in str(me.headers)
    assert upstream not in (tokens.model_dump_json())
    # the token is bound to the mail provider's resource and its scopes
    send = httpx.post(
        f"{api}/v1/messages", headers={"Authorization": f"Bearer {tokens.access_token}"}, json={}
    )
    assert send.status_code == 403 and 'error="insufficient_scope"' in send.headers[
        "www-authenticate"
    ]
