"""Once in a real browser: the MCP SDK's OAuth client (dynamic registration) sends Bob to
the consent page in headless Chromium (Debian ``chromium`` via Playwright), he unticks a scope
and authorizes; the client gets a token for the scope he left and calls a tool."""

from __future__ import annotations

import shutil
from typing import Any

import anyio
import httpx
from mcp import ClientSession
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientMetadata
from playwright.sync_api import Route, sync_playwright
from pydantic import AnyUrl

from athkit.web.serving import free_port
from tests.oauth.conftest import NotesService
from tests.oauth.support import query_of
from tests.oauth.test_mcp_sdk_client import MemoryStorage

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def consent_in_chromium(url: str, base: str, redirect: str) -> tuple[str, str]:
    """Bob (signed in by cookie) unticks notes:write and presses Authorize; returns the
    redirect the browser was sent to and the consent page's text."""
    assert CHROMIUM, "install Debian's chromium: apt-get install -y chromium"
    landed: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            ctx = browser.new_context()
            ctx.add_cookies([{"name": "notes_user", "value": "bob", "url": base}])
            page = ctx.new_page()

            def client_callback(route: Route) -> None:  # the client's loopback listener
                landed.append(route.request.url)
                route.fulfill(status=200, body="You can close this window.")

            page.route(f"{redirect}*", client_callback)
            page.goto(url)
            text = page.inner_text("body")
            page.uncheck("input[value='notes:write']")
            page.click("#approve")
            page.wait_for_url(f"{redirect}*")
        finally:
            browser.close()
    assert landed
    return landed[0], text


def test_mcp_sdk_client_consent_in_headless_chromium(notes: NotesService) -> None:
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    storage = MemoryStorage()
    last: dict[str, str] = {}
    pages: list[str] = []

    async def redirect_handler(url: str) -> None:
        landed, text = await anyio.to_thread.run_sync(
            consent_in_chromium, url, notes.base, redirect
        )
        pages.append(text)
        last.update(query_of(landed))

    async def callback_handler() -> tuple[str, str | None]:
        return last["code"], last.get("state")

    provider = OAuthClientProvider(
        server_url=f"{notes.base}/mcp",
        client_metadata=OAuthClientMetadata(
            client_name="Chromium MCP client",
            redirect_uris=[AnyUrl(redirect)],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )

    async def run() -> Any:
        async with (
            httpx.AsyncClient(auth=provider, timeout=60) as http,
            streamable_http_client(f"{notes.base}/mcp", http_client=http) as (read, write, _),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            return await session.call_tool("list_notes", {})

    result = anyio.run(run)
    assert not result.isError and "buy milk" in str(result.content)
    assert "Chromium MCP client" in pages[0] and "Read your notes" in pages[0]
    assert last["iss"] == notes.base
    assert storage.tokens is not None and storage.tokens.scope == "notes:read"
