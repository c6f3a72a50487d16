"""``require_scopes``: the §7 checks in front of a service's own routes."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from athkit.core.tokens import TokenInfo
from athkit.web.routes import service_of

#: Key in the ASGI scope's state where the proxy shape records the provider in the path.
PROXY_PROVIDER_KEY = "ath_proxy_provider"


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def require_scopes(*scopes: str) -> Callable[[Request], object]:
    """A FastAPI dependency: valid token, matching ``X-ATH-Agent-ID``, and every scope given.

    Use as ``Depends(require_scopes("orders:write"))``; the dependency's value is the
    :class:`TokenInfo` of the caller (agent, user, provider, scopes).
    """
    needed = tuple(scopes)

    async def dependency(request: Request) -> TokenInfo:
        svc = service_of(request)
        provider = request.scope.get("state", {}).get(PROXY_PROVIDER_KEY)
        info = await run_in_threadpool(
            svc.validate,
            bearer_token(request),
            agent_header=request.headers.get("x-ath-agent-id"),
            provider_id=provider or svc.settings.provider_id,
            required=needed,
        )
        request.state.ath = info
        return info

    dependency.__name__ = "require_scopes_" + "_".join(s.replace(":", "_") for s in needed)
    return dependency
