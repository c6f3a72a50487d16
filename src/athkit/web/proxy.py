"""The ``/ath/proxy/{provider_id}/{path}`` shape of §7 on a native service.

``/ath/proxy/ath-shop/api/products`` is served by the service's own ``/api/products`` route (the
seed's shape); only paths under ``api_base`` are reachable this way. The middleware records the
provider named in the path, so that ``require_scopes`` checks it against the token's provider
(``PROVIDER_MISMATCH``). The token is validated once, by the route's own dependency.

A path that no route serves (or not with this method) goes to one catch-all route that checks
the token first, as the gateway does, and only then answers 404/405: an anonymous caller learns
nothing about which routes exist.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from athkit.protocol.errors import ATHError, ErrorCode
from athkit.web.deps import PROXY_PROVIDER_KEY, require_scopes

PREFIX = "/ath/proxy/"
MISS_PATH = "/ath/proxy-not-found"
#: Key in the ASGI scope's state: why the proxied path reached the catch-all (404 or 405).
MISS_KEY = "ath_proxy_miss"
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


class NativeProxyMiddleware:
    def __init__(self, app: ASGIApp, api_base_path: str) -> None:
        self.app = app
        self.api_base_path = api_base_path.rstrip("/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(PREFIX):
            provider, _, rest = scope["path"][len(PREFIX) :].partition("/")
            new_path = "/" + rest
            state = dict(scope.get("state") or {})
            state[PROXY_PROVIDER_KEY] = provider
            scope = dict(scope, state=state)
            miss = 404
            if provider and (new_path + "/").startswith(self.api_base_path + "/"):
                miss = _route_miss(scope, new_path)
            if miss:
                state[MISS_KEY] = miss
                new_path = MISS_PATH
            scope["path"] = new_path
            scope["raw_path"] = new_path.encode()
        await self.app(scope, receive, send)


def _route_miss(scope: Scope, path: str) -> int:
    """0 when a route of the app serves ``path`` with this method, else 405 or 404."""
    app = scope.get("app")
    routes = getattr(getattr(app, "router", None), "routes", None)
    if routes is None:
        return 0
    probe = dict(scope, path=path)
    partial = False
    for route in routes:
        match, _ = route.matches(probe)
        if match == Match.FULL:
            return 0
        partial = partial or match == Match.PARTIAL
    return 405 if partial else 404


def build_proxy_miss_router() -> APIRouter:
    """The catch-all behind :data:`MISS_PATH`: token checks first, then 404/405."""
    router = APIRouter(include_in_schema=False)

    @router.api_route(MISS_PATH, methods=ALL_METHODS, dependencies=[Depends(require_scopes())])
    async def proxy_miss(request: Request) -> None:
        if request.scope.get("state", {}).get(MISS_KEY) == 405:
            raise ATHError(ErrorCode.METHOD_NOT_ALLOWED, "method not allowed on this API route")
        raise ATHError(ErrorCode.NOT_FOUND, "no such API route")

    return router
