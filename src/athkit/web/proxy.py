"""The ``/ath/proxy/{provider_id}/{path}`` shape of §7 on a native service.

``/ath/proxy/ath-shop/api/products`` is served by the service's own ``/api/products`` route (the
seed's shape); only paths under ``api_base`` are reachable this way. The middleware records the
provider named in the path, so that ``require_scopes`` checks it against the token's provider
(``PROVIDER_MISMATCH``). The token is validated once, by the route's own dependency.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from athkit.web.deps import PROXY_PROVIDER_KEY

PREFIX = "/ath/proxy/"


class NativeProxyMiddleware:
    def __init__(self, app: ASGIApp, api_base_path: str) -> None:
        self.app = app
        self.api_base_path = api_base_path.rstrip("/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(PREFIX):
            provider, _, rest = scope["path"][len(PREFIX) :].partition("/")
            new_path = "/" + rest
            if provider and (new_path + "/").startswith(self.api_base_path + "/"):
                scope = dict(scope)
                scope["path"] = new_path
                scope["raw_path"] = new_path.encode()
                state = dict(scope.get("state") or {})
                state[PROXY_PROVIDER_KEY] = provider
                scope["state"] = state
            else:
                scope = dict(scope)
                scope["path"] = "/ath/proxy-not-found"
                scope["raw_path"] = b"/ath/proxy-not-found"
        await self.app(scope, receive, send)
