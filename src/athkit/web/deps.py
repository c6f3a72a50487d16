"""``require_scopes``: the §7 checks in front of a service's own routes."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request
from starlette.types import Scope

from athkit.core.tokens import TokenInfo
from athkit.core.workers import run_in_worker
from athkit.protocol.errors import ATHError, ErrorCode
from athkit.web.routes import service_of

#: Key in the ASGI scope's state where the proxy shape records the provider in the path.
PROXY_PROVIDER_KEY = "ath_proxy_provider"
#: Key in the ASGI scope's state where the handshake channel records the decrypted session.
CHANNEL_SESSION_KEY = "ath_channel_session"
#: Keys in the request state naming the protected resource and the scopes a route needs, so
#: a 401/403 can point the client to the resource's metadata (RFC 9728 §5.1).
RESOURCE_KEY = "ath_resource"
REQUIRED_SCOPES_KEY = "ath_required_scopes"
#: Attribute of ``app.state`` holding the handshake service when one is mounted (else None).
HANDSHAKE_KEY = "athkit_handshake"


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def _credentials(scope: Scope) -> tuple[str | None, str | None]:
    """(bearer token, ``X-ATH-Agent-ID``) in one pass over the raw headers: the first of each,
    as :func:`bearer_token` and ``request.headers.get`` read them."""
    token: str | None = None
    agent: str | None = None
    seen_auth = False
    for name, value in scope["headers"]:
        if name == b"authorization" and not seen_auth:
            seen_auth = True
            scheme, _, rest = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and rest.strip():
                token = rest.strip()
        elif name == b"x-ath-agent-id" and agent is None:
            agent = value.decode("latin-1")
    return token, agent


def require_scopes(*scopes: str) -> Callable[[Request], object]:
    """A FastAPI dependency: valid token, matching ``X-ATH-Agent-ID``, and every scope given.

    Use as ``Depends(require_scopes("orders:write"))``; the dependency's value is the
    :class:`TokenInfo` of the caller (agent, user, provider, scopes), also in
    ``request.state.ath``.
    """
    needed = tuple(scopes)

    async def dependency(request: Request) -> TokenInfo:
        svc = service_of(request)
        scope = request.scope
        state = scope.setdefault("state", {})  # what ``request.state`` reads and writes
        provider = state.get(PROXY_PROVIDER_KEY)
        resource = svc.settings.api_resource
        state[RESOURCE_KEY] = svc.resources.get(resource)
        state[REQUIRED_SCOPES_KEY] = needed
        token, agent = _credentials(scope)
        channel = state.get(CHANNEL_SESSION_KEY)
        hs = getattr(request.app.state, HANDSHAKE_KEY, None)
        if hs is not None and token and hs.is_handshake_token(token):
            # A handshake access token (docs/handshake.md): JWS, session, restrictions.
            client = scope.get("client")
            hinfo: TokenInfo = await run_in_worker(
                lambda: hs.validate_token(
                    token,
                    agent_header=agent,
                    provider_id=provider,
                    client_ip=client[0] if client else None,
                    channel_session=channel,
                    required=needed,
                )
            )
            state["ath"] = hinfo
            return hinfo
        if channel is not None:
            raise ATHError(ErrorCode.TOKEN_INVALID, "an encrypted session needs its own token")
        wanted = provider or svc.settings.provider_id
        hit = svc.validate_in_memory(
            token, agent_header=agent, provider_id=wanted, required=needed, resource=resource
        )
        if hit is not None:  # a cached token: no thread hop, no I/O
            state["ath"] = hit
            return hit
        info = await run_in_worker(
            svc.validate,
            token,
            agent_header=agent,
            provider_id=wanted,
            required=needed,
            resource=resource,
        )
        state["ath"] = info
        return info

    dependency.__name__ = "require_scopes_" + "_".join(s.replace(":", "_") for s in needed)
    return dependency
