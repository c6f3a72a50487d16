"""``athkit mcp serve``: an MCP server that gives a model the ATH agent tools.

Built on the official ``mcp`` SDK's low-level server (``pip install 'athkit[mcp]'``), over
stdio (Claude Desktop style clients) or streamable HTTP. The tools are exactly
:data:`athkit.integrations.tools.TOOLS`: their JSON Schemas are the input schemas, their
results the structured content. When a tool needs the user's confirmation to fetch a URL the
model gave, the server asks the *user* through MCP elicitation (when the client supports it);
the model never confirms anything itself. A consent link goes to the user by URL-mode
elicitation when the client supports it (then ``connect_provider`` returns once they decided),
else back to the model to show. Blocking ATH calls run in worker threads.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread
import mcp.types as types
from mcp.server.lowlevel import Server

from athkit.client.vault import DEFAULT_USER
from athkit.integrations.tools import MAX_TOOL_WAIT, TOOLS, ATHTools

SERVER_NAME = "athkit"
INSTRUCTIONS = (
    "Tools to act for the user at services that speak ATH (Agent Trust Handshake). Typical "
    "order: search_providers or discover_provider, then connect_provider (the USER opens the "
    "returned link and approves), then call_api. list_grants shows what is connected. Never "
    "open consent links yourself and never retry a refused call with different URLs."
)


def _confirmer(ctx: Any) -> Any:
    """A sync ``confirm(url)`` for a worker thread: asks the user via form elicitation in
    the request ``ctx`` (refuses when the client cannot ask its user)."""

    def confirm(url: str) -> bool:
        async def ask() -> bool:
            params = ctx.session.client_params
            caps = params.capabilities if params is not None else None
            if caps is None or caps.elicitation is None:
                return False
            result = await ctx.session.elicit(
                message=f"The assistant wants to contact {url}. Allow this site?",
                requestedSchema={
                    "type": "object",
                    "properties": {"allow": {"type": "boolean", "title": "Allow this site"}},
                    "required": ["allow"],
                },
                related_request_id=ctx.request_id,
            )
            return result.action == "accept" and bool((result.content or {}).get("allow"))

        try:
            return bool(anyio.from_thread.run(ask))
        except Exception:
            return False

    return confirm


async def _consent_by_url(ctx: Any, pending: dict[str, Any], wait: Any) -> dict[str, Any]:
    """Hand the consent link to the *user* with URL-mode elicitation when the client can
    (MCP 2025-11-25), then wait for their decision; else return ``pending`` for the model."""
    params = ctx.session.client_params
    caps = params.capabilities if params is not None else None
    if caps is None or caps.elicitation is None or caps.elicitation.url is None:
        return pending
    elicitation_id = secrets.token_urlsafe(16)
    answer = await ctx.session.elicit_url(
        message=f"Open this page to let the assistant use {pending['provider_id']} for you "
        f"({' '.join(pending['scopes'])}).",
        url=pending["authorization_url"],
        elicitation_id=elicitation_id,
        related_request_id=ctx.request_id,
    )
    if answer.action != "accept":
        return {**pending, "message": "The user did not open the consent page. Ask them "
                "whether they want to connect; do not retry on your own."}
    result: dict[str, Any] = await anyio.to_thread.run_sync(wait)
    if result.get("status") == "ok":
        await ctx.session.send_elicit_complete(elicitation_id, related_request_id=ctx.request_id)
    return result


def create_server(tools: ATHTools, *, user: str = DEFAULT_USER) -> Server[Any, Any]:
    """An MCP server exposing :data:`TOOLS` for ``tools.agent`` acting for ``user``."""
    server: Server[Any, Any] = Server(SERVER_NAME, instructions=INSTRUCTIONS)

    @server.list_tools()  # type: ignore[no-untyped-call,untyped-decorator]
    async def list_tools() -> list[types.Tool]:
        return [
            types.Tool(
                name=spec.name,
                description=spec.description,
                inputSchema=spec.json_schema(),
                annotations=types.ToolAnnotations(
                    readOnlyHint=spec.name in ("search_providers", "discover_provider",
                                               "list_grants"),
                    destructiveHint=spec.name == "revoke",
                    openWorldHint=spec.name != "list_grants",
                ),
            )
            for spec in TOOLS
        ]

    @server.call_tool(validate_input=False)  # type: ignore[untyped-decorator]
    async def call_tool(name: str, arguments: dict[str, Any]) -> Any:
        ctx = server.request_context
        confirm = _confirmer(ctx)
        args = dict(arguments or {})
        result = await anyio.to_thread.run_sync(
            lambda: tools.run(name, args, user, confirm=confirm)
        )
        if name == "connect_provider" and result.get("status") == "authorization_required":
            result = await _consent_by_url(ctx, result, lambda: tools.run(
                name, {**args, "wait_seconds": MAX_TOOL_WAIT}, user, confirm=confirm))
        text = [types.TextContent(type="text", text=json.dumps(result, indent=2))]
        if result.get("status") == "error":
            return types.CallToolResult(content=list(text), structuredContent=result,
                                        isError=True)
        return text, result

    return server


async def serve_stdio(tools: ATHTools, *, user: str = DEFAULT_USER) -> None:
    from mcp.server.stdio import stdio_server

    server = create_server(tools, user=user)
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


def streamable_http_app(
    tools: ATHTools, *, user: str = DEFAULT_USER, allowed_hosts: list[str] | None = None
) -> Any:
    """An ASGI app serving the MCP endpoint at ``/mcp`` (streamable HTTP transport).

    It acts with the user's grants and has no authentication of its own: serve it on
    loopback only. ``allowed_hosts`` (``host:port`` values) turns on the SDK's DNS-rebinding
    protection, so a web page cannot reach it through a rebinding hostname.
    """
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
    from mcp.server.transport_security import TransportSecuritySettings
    from starlette.applications import Starlette
    from starlette.routing import Mount

    security = (
        TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=allowed_hosts,
            allowed_origins=[f"http://{h}" for h in allowed_hosts],
        )
        if allowed_hosts
        else None
    )
    manager = StreamableHTTPSessionManager(
        app=create_server(tools, user=user), security_settings=security
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        async with manager.run():
            yield

    return Starlette(routes=[Mount("/mcp", app=manager.handle_request)], lifespan=lifespan)


def run_stdio(tools: ATHTools, *, user: str = DEFAULT_USER) -> None:
    anyio.run(lambda: serve_stdio(tools, user=user))
