"""The official MCP Python SDK's own OAuth client against the example MCP server behind a
native athkit service (examples/mcp_notes.py), on real servers on 127.0.0.1.

Discovery runs 401 → protected resource metadata → authorization server metadata; the client
identifies itself with a client ID metadata document served over https on loopback (or with
dynamic registration); Bob answers the consent page over HTTP; the client lists and calls
tools, is refused a tool outside the consented scopes, steps up, refreshes, and is refused
after Bob revokes it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import ClientSession
from mcp.client.auth import OAuthClientProvider, TokenStorage
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from pydantic import AnyUrl

from athkit.web.serving import free_port
from tests.oauth.conftest import NotesService
from tests.oauth.support import ConsentingUser, MetadataHost, query_of


class MemoryStorage(TokenStorage):
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


def sdk_client(
    svc: NotesService, bob: ConsentingUser, redirect: str, cimd: str | None
) -> tuple[OAuthClientProvider, MemoryStorage]:
    storage = MemoryStorage()
    last: dict[str, str] = {}

    async def redirect_handler(url: str) -> None:
        location = await anyio.to_thread.run_sync(bob.answer, url)
        last.update(query_of(location))

    async def callback_handler() -> tuple[str, str | None]:
        return last.get("code", ""), last.get("state")

    provider = OAuthClientProvider(
        server_url=f"{svc.base}/mcp",
        client_metadata=OAuthClientMetadata(
            client_name="SDK test client",
            redirect_uris=[AnyUrl(redirect)],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
        client_metadata_url=cimd,
    )
    return provider, storage


async def call(provider: OAuthClientProvider, url: str, tool: str, args: dict[str, Any]) -> Any:
    async with (
        httpx.AsyncClient(auth=provider, timeout=30) as http,
        streamable_http_client(url, http_client=http) as (read, write, _),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        names = [t.name for t in (await session.list_tools()).tools]
        assert names == ["list_notes", "add_note"]
        return await session.call_tool(tool, args)


def run_flow(svc: NotesService, bob: ConsentingUser, cimd: str | None, redirect: str) -> None:
    provider, storage = sdk_client(svc, bob, redirect, cimd)
    mcp_url = f"{svc.base}/mcp"

    # 1. Unauthenticated: 401 pointing at the resource metadata, with the scopes.
    first = httpx.post(mcp_url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert first.status_code == 401
    challenge = first.headers["www-authenticate"]
    assert f'resource_metadata="{svc.base}/.well-known/oauth-protected-resource/mcp"' in challenge
    assert 'scope="notes:read notes:write"' in challenge

    # 2. Bob consents to reading only: list_notes works, the handler saw Bob's TokenInfo.
    bob.answers.append((True, ["notes:read"]))
    result = anyio.run(call, provider, mcp_url, "list_notes", {})
    assert not result.isError and "buy milk" in str(result.content)
    assert bob.pages[0].offered == ["notes:read", "notes:write"]
    assert query_of(bob.redirects[0])["iss"] == svc.base  # RFC 9207
    assert storage.tokens is not None and storage.tokens.scope == "notes:read"
    read_token = storage.tokens.access_token

    # 3. A tool outside the consented scopes is refused with the scopes to ask for.
    refused = httpx.post(
        mcp_url,
        headers={
            "Authorization": f"Bearer {read_token}",
            "Accept": "application/json, text/event-stream",
        },
        json={"jsonrpc": "2.0", "id": 2, "method": "tools/call",
              "params": {"name": "add_note", "arguments": {"text": "x"}}},
    )
    assert refused.status_code == 403
    assert 'error="insufficient_scope"' in refused.headers["www-authenticate"]
    assert 'scope="notes:read notes:write"' in refused.headers["www-authenticate"]
    # The token is bound to the MCP endpoint: the native API refuses it (no passthrough).
    api = httpx.get(f"{svc.base}/api/whatever", headers={"Authorization": f"Bearer {read_token}"})
    assert api.status_code in (401, 404)

    # 4. Step-up: the SDK re-authorizes on the 403, Bob grants writing too.
    bob.answers.append((True, ["notes:read", "notes:write"]))
    result = anyio.run(call, provider, mcp_url, "add_note", {"text": "call mum"})
    assert not result.isError, result.content
    assert len(bob.pages) == 2 and storage.tokens.scope == "notes:read notes:write"
    assert svc.module.NOTES["bob"] == ["buy milk", "call mum"]

    # 5. Refresh: once the client considers the access token expired it uses the refresh
    #    token (rotated: the old one is dead afterwards), with no consent page.
    old_refresh = storage.tokens.refresh_token
    old_access = storage.tokens.access_token
    provider.context.token_expiry_time = time.time() - 1
    result = anyio.run(call, provider, mcp_url, "list_notes", {})
    assert not result.isError and len(bob.pages) == 2
    assert storage.tokens.refresh_token != old_refresh
    assert storage.tokens.access_token != old_access

    # 6. Bob revokes the client on his "my agents" page: the whole family dies at once.
    page = bob.browser.http.get(f"{svc.base}/ath/my/agents")
    assert "SDK test client" in page.text
    import re

    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    client_id = re.search(r'name="client_id" value="([^"]+)"', page.text)
    assert csrf and client_id
    bob.browser.http.post(
        f"{svc.base}/ath/my/agents/revoke",
        data={"csrf": csrf.group(1), "client_id": client_id.group(1)},
    )
    dead = httpx.post(
        mcp_url,
        headers={"Authorization": f"Bearer {storage.tokens.access_token}"},
        json={"jsonrpc": "2.0", "id": 3, "method": "ping"},
    )
    assert dead.status_code == 401 and 'error="invalid_token"' in dead.headers["www-authenticate"]
    refresh = httpx.post(
        f"{svc.base}/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": storage.tokens.refresh_token or "",
              "client_id": storage.client.client_id if storage.client else ""},
    )
    assert refresh.status_code == 400 and refresh.json()["error"] == "invalid_grant"
    # ... and the SDK's attempt to sign in again ends at Bob's "no".
    bob.answers.append((False, None))
    with pytest.raises(BaseException):  # noqa: B017 - the SDK raises inside a task group
        anyio.run(call, provider, mcp_url, "list_notes", {})


def test_mcp_sdk_client_with_client_id_metadata_document(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tls: tuple[Path, MetadataHost],
    bob: ConsentingUser,
) -> None:
    ca, host = tls
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    cimd = host.publish(
        "/sdk-client.json",
        client_name="SDK test client",
        redirect_uris=[redirect],
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
        token_endpoint_auth_method="none",
    )
    svc = NotesService(tmp_path, monkeypatch, ca)
    try:
        meta = httpx.get(f"{svc.base}/.well-known/oauth-authorization-server").json()
        assert meta["client_id_metadata_document_supported"] is True
        run_flow(svc, bob, cimd, redirect)
        agents = svc.module.ath.service.store.list_agents()
        assert [(a.agent_id, a.client_kind) for a in agents] == [(cimd, "cimd")]
    finally:
        svc.close()


def test_mcp_sdk_client_with_dynamic_registration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bob: ConsentingUser
) -> None:
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    svc = NotesService(tmp_path, monkeypatch, None)
    try:
        run_flow(svc, bob, None, redirect)
        agents = svc.module.ath.service.store.list_agents()
        assert [a.client_kind for a in agents] == ["dcr"]
    finally:
        svc.close()
