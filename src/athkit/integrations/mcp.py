"""Protect an MCP server (the official ``mcp`` SDK, FastMCP) with athkit.

The MCP server becomes an OAuth 2.1 protected resource (MCP authorization spec, RFC 9728)
whose authorization server is the athkit service it is mounted on; Phase A (the service
approves the client) and Phase B (the user consents) apply as for every ATH client::

    mcp = FastMCP("Notes")

    @mcp.tool()
    def list_notes(ctx: Context) -> list[str]:
        return notes_of(token_info(ctx).user_id)

    mount_mcp(app, ath, mcp, path="/mcp", tool_scopes={"list_notes": ["notes:read"]})

- ``GET /.well-known/oauth-protected-resource/mcp`` describes the endpoint;
- a request without a valid token gets ``401`` with ``WWW-Authenticate: Bearer
  resource_metadata="…", scope="…"``; a ``tools/call`` of a tool whose scopes the token lacks
  gets ``403 insufficient_scope`` naming the scopes to ask for (MCP step-up);
- only tokens whose audience (RFC 8707) is this endpoint pass: no token passthrough.

For an MCP server running elsewhere, :class:`AthkitTokenVerifier` is an ``mcp`` SDK
``TokenVerifier`` that asks athkit's RFC 7662 introspection endpoint.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
from mcp.server.auth.middleware.auth_context import auth_context_var
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from starlette.authentication import AuthCredentials
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from athkit.core.resources import ProtectedResource
from athkit.core.service import ATHService
from athkit.core.tokens import TokenInfo
from athkit.core.workers import run_in_worker
from athkit.oauth.resource_metadata import bearer_challenge
from athkit.protocol.errors import ATHError, ErrorCode

if TYPE_CHECKING:
    from fastapi import FastAPI
    from mcp.server.fastmcp import Context, FastMCP

    from athkit.native import ATH

__all__ = ["AthkitTokenVerifier", "MCPAuthGate", "mount_mcp", "token_info"]

MAX_MCP_BODY = 1024 * 1024
INFO_CLAIM = "athkit"


def _access_token(token: str, info: TokenInfo) -> AccessToken:
    return AccessToken(
        token=token,
        client_id=info.client_id,
        scopes=sorted(info.scopes),
        expires_at=int(info.expires_at.timestamp()),
        resource=info.audience,
        subject=info.user_id,
        claims={
            INFO_CLAIM: {
                "client_id": info.client_id,
                "agent_id": info.agent_id,
                "user_id": info.user_id,
                "provider_id": info.provider_id,
                "scopes": sorted(info.scopes),
                "expires_at": info.expires_at.timestamp(),
                "audience": info.audience,
                "agent_bound": info.agent_bound,
            }
        },
    )


def _info_from_claims(claims: Mapping[str, Any]) -> TokenInfo:
    c = claims[INFO_CLAIM]
    return TokenInfo(
        client_id=c["client_id"],
        agent_id=c["agent_id"],
        user_id=c["user_id"],
        provider_id=c["provider_id"],
        scopes=frozenset(c["scopes"]),
        expires_at=datetime.fromtimestamp(c["expires_at"], UTC),
        audience=c.get("audience"),
        agent_bound=bool(c.get("agent_bound")),
    )


def token_info(ctx: Context[Any, Any, Any] | None = None) -> TokenInfo:
    """The caller's :class:`TokenInfo` (agent, user, scopes) inside an MCP tool handler."""
    user: object = None
    if ctx is not None:
        request = ctx.request_context.request
        user = getattr(request, "scope", {}).get("user") if request is not None else None
    if not isinstance(user, AuthenticatedUser):
        user = auth_context_var.get()
    if not isinstance(user, AuthenticatedUser) or not user.access_token.claims:
        raise ATHError(ErrorCode.TOKEN_INVALID, "no athkit token on this MCP request")
    return _info_from_claims(user.access_token.claims)


def _needed_for(body: bytes, tool_scopes: Mapping[str, Iterable[str]]) -> list[str]:
    """Scopes a JSON-RPC message (or batch) needs: those of each ``tools/call``'s tool."""
    try:
        msg = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return []  # the MCP server answers the parse error itself
    needed: list[str] = []
    for m in msg if isinstance(msg, list) else [msg]:
        if isinstance(m, dict) and m.get("method") == "tools/call":
            params = m.get("params")
            name = params.get("name") if isinstance(params, dict) else None
            if isinstance(name, str):
                needed.extend(tool_scopes.get(name, ()))
    return list(dict.fromkeys(needed))


async def _send_json(
    send: Send, status: int, body: dict[str, Any], headers: dict[str, str]
) -> None:
    raw = json.dumps(body).encode()
    hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    hdrs += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    await send({"type": "http.response.body", "body": raw})


class MCPAuthGate:
    """ASGI wrapper of an MCP endpoint: athkit token checks, per-tool scopes, challenges."""

    def __init__(
        self,
        app: ASGIApp,
        svc: ATHService,
        resource: ProtectedResource,
        *,
        required_scopes: Iterable[str] = (),
        tool_scopes: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        self.app = app
        self.svc = svc
        self.resource = resource
        self.required = tuple(required_scopes)
        self.tool_scopes = {k: tuple(v) for k, v in (tool_scopes or {}).items()}

    async def _refuse(
        self, send: Send, status: int, error: str | None, message: str, scopes: Iterable[str]
    ) -> None:
        challenge = bearer_challenge(
            self.resource, error=error, description=message if error else None, scopes=scopes
        )
        body = {"error": error or "invalid_token", "error_description": message}
        await _send_json(send, status, body, {"WWW-Authenticate": challenge})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        auth = headers.get("authorization", "")
        kind, _, token = auth.partition(" ")
        token = token.strip()
        if kind.lower() != "bearer" or not token:
            await self._refuse(send, 401, None, "authorization required", self._all_scopes())
            return
        try:
            info: TokenInfo = await run_in_worker(
                lambda: self.svc.validate(
                    token,
                    agent_header=headers.get("x-ath-agent-id"),
                    provider_id=self.resource.provider_id,
                    required=self.required,
                    resource=self.resource.resource,
                )
            )
        except ATHError as exc:
            if exc.code_str == ErrorCode.SCOPE_INSUFFICIENT.value:
                granted = list(exc.details.get("granted") or [])
                await self._refuse(
                    send, 403, "insufficient_scope", exc.message, [*granted, *self.required]
                )
            elif exc.status in (401, 403):
                await self._refuse(send, 401, "invalid_token", exc.message, self._all_scopes())
            else:
                await _send_json(send, exc.status, exc.to_dict(), {"Cache-Control": "no-store"})
            return
        replayed = await self._check_tools(scope, receive, send, info)
        if replayed is None:
            return
        user = AuthenticatedUser(_access_token(token, info))
        scope["user"] = user
        scope["auth"] = AuthCredentials(sorted(info.scopes))
        reset = auth_context_var.set(user)
        try:
            await self.app(scope, replayed, send)
        finally:
            auth_context_var.reset(reset)

    def _all_scopes(self) -> list[str]:
        return list(self.required) or list(self.resource.scopes)

    async def _check_tools(
        self, scope: Scope, receive: Receive, send: Send, info: TokenInfo
    ) -> Receive | None:
        """Read a POST body (bounded), refuse a tool call beyond the token's scopes, and hand
        the MCP server a ``receive`` that replays the body."""
        if scope.get("method") != "POST" or not self.tool_scopes:
            return receive
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_MCP_BODY:
                await _send_json(
                    send,
                    413,
                    {"error": "invalid_request", "error_description": "body too large"},
                    {},
                )
                return None
            chunks.append(chunk)
            more = bool(message.get("more_body"))
        body = b"".join(chunks)
        missing = [s for s in _needed_for(body, self.tool_scopes) if s not in info.scopes]
        if missing:
            await self._refuse(
                send,
                403,
                "insufficient_scope",
                f"this tool needs {' '.join(missing)}",
                [*sorted(info.scopes), *missing],
            )
            return None
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return replay


def mount_mcp(
    app: FastAPI,
    ath: ATH | ATHService,
    mcp: FastMCP,
    *,
    path: str = "/mcp",
    required_scopes: Iterable[str] = (),
    tool_scopes: Mapping[str, Iterable[str]] | None = None,
    name: str | None = None,
) -> ProtectedResource:
    """Serve ``mcp`` (streamable HTTP) at ``path`` of an athkit app, protected by its tokens.

    Registers the endpoint as a protected resource (its RFC 9728 metadata, RFC 8707
    audience), wraps it in :class:`MCPAuthGate`, and runs the MCP session manager in the
    app's lifespan. Returns the resource."""
    svc = ath if isinstance(ath, ATHService) else ath.service
    tools = {k: tuple(v) for k, v in (tool_scopes or {}).items()}
    scopes = tuple(dict.fromkeys([*required_scopes, *(s for v in tools.values() for s in v)]))
    resource = svc.resources.add(
        ProtectedResource(
            f"{svc.settings.public_url}{path}",
            svc.settings.provider_id,
            scopes or tuple(svc.settings.scope_names),
            name or mcp.name,
            "mcp",
        )
    )
    mcp.settings.streamable_http_path = path
    security = mcp.settings.transport_security
    host = urlsplit(svc.settings.public_url).netloc
    if security is not None and host not in security.allowed_hosts:
        # DNS-rebinding protection stays on; the service's own public host is allowed.
        security.allowed_hosts.append(host)
        security.allowed_origins.append(svc.settings.public_url)
    inner = mcp.streamable_http_app()
    gate = MCPAuthGate(
        inner, svc, resource, required_scopes=required_scopes, tool_scopes=tools
    )
    app.router.routes.insert(0, Route(path, gate, methods=["GET", "POST", "DELETE"]))
    previous = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        async with previous(a) as state, mcp.session_manager.run():
            yield state

    app.router.lifespan_context = lifespan
    return resource


class AthkitTokenVerifier:
    """An ``mcp`` SDK ``TokenVerifier`` for an MCP server that runs apart from athkit: asks
    athkit's RFC 7662 endpoint (as a resource server listed in ``introspection_clients``)
    and accepts only live tokens whose audience is ``resource``."""

    def __init__(
        self,
        introspection_url: str,
        *,
        client_id: str,
        client_secret: str,
        resource: str,
        timeout: float = 5.0,
    ) -> None:
        self.url = introspection_url
        self.auth = httpx.BasicAuth(client_id, client_secret)
        self.resource = resource.rstrip("/")
        self.timeout = timeout

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as http:
                resp = await http.post(self.url, data={"token": token}, auth=self.auth)
        except httpx.HTTPError:
            return None
        if resp.status_code != 200:
            return None
        body = resp.json()
        if not isinstance(body, dict) or body.get("active") is not True:
            return None
        aud = str(body.get("aud") or "").rstrip("/")
        if aud and aud != self.resource and not self.resource.startswith(aud + "/"):
            return None
        info = TokenInfo(
            client_id=str(body.get("client_id", "")),
            agent_id=str(body.get("ath_agent_id", "")),
            user_id=str(body.get("sub", "")),
            provider_id=str(body.get("ath_provider_id", "")),
            scopes=frozenset(str(body.get("scope", "")).split()),
            expires_at=datetime.fromtimestamp(int(body.get("exp", 0)), UTC),
            audience=aud or None,
            agent_bound=bool(body.get("ath_agent_bound")),
        )
        return _access_token(token, info)
