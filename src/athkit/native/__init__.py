"""Add ATH to a FastAPI/Starlette app: the few names a service imports.

from fastapi import Depends, FastAPI
from athkit.native import ATH, require_scopes

app = FastAPI()
ath = ATH(app, public_url="https://shop.example", provider_id="shop",
          scopes={"orders:write": "Place orders"}, current_user=lambda req: ...)

@app.post("/api/orders")
def create_order(token=Depends(require_scopes("orders:write"))): ...
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI

from athkit.core.clock import Clock, system_clock
from athkit.core.handshake import HandshakePolicy, HandshakeService
from athkit.core.policy import ApprovalPolicy
from athkit.core.service import ATHService
from athkit.core.settings import ATHSettings, ScopeInfo, load_settings
from athkit.core.tokens import TokenInfo
from athkit.oauth.consent import CurrentUser, build_consent_router
from athkit.oauth.server import OAuthServer
from athkit.web.console import IsOperator, build_console_router
from athkit.web.deps import HANDSHAKE_KEY, require_scopes
from athkit.web.errors import install_error_handlers
from athkit.web.handshake import mount_handshake
from athkit.web.health import build_health_router, service_probes
from athkit.web.oauth_routes import build_oauth_router
from athkit.web.proxy import NativeProxyMiddleware, build_proxy_miss_router
from athkit.web.ratelimit import default_rules, install_rate_limits, limits_from_settings
from athkit.web.routes import build_router
from athkit.web.security_headers import harden

__all__ = [
    "ATH",
    "ATHSettings",
    "ApprovalPolicy",
    "HandshakePolicy",
    "ScopeInfo",
    "TokenInfo",
    "require_scopes",
]


class ATH:
    """Mounts ATH on ``app``: discovery, register, authorize + consent, callback, token, revoke.

    ``current_user(request)`` (sync or async) tells athkit who is signed in, or ``None``; the
    consent page then redirects to ``settings.login_url`` with ``next=``. ``operator(request)``
    says whether the signed-in person may use the operator console (``/ath/console/...``);
    ``/ath/metrics`` answers operators or a bearer ``metrics_token``. ``clock`` (seconds
    since the epoch) is the service's time source; tests inject one to reach expiry exactly.
    ``handshake=HandshakePolicy(...)`` also mounts the 9-step handshake (docs/handshake.md).
    """

    def __init__(
        self,
        app: FastAPI,
        *,
        current_user: CurrentUser,
        settings: ATHSettings | None = None,
        policy: ApprovalPolicy | None = None,
        service: ATHService | None = None,
        scopes: Mapping[str, str] | None = None,
        clock: Clock = system_clock,
        operator: IsOperator | None = None,
        metrics_token: str | None = None,
        handshake: HandshakePolicy | None = None,
        **settings_kwargs: Any,
    ) -> None:
        if service is None:
            if settings is None:
                if scopes is not None:
                    settings_kwargs["scopes"] = [
                        ScopeInfo(name=k, description=v) for k, v in scopes.items()
                    ]
                settings = load_settings(**settings_kwargs)
            service = ATHService(settings, policy=policy, clock=clock)
        self.service = service
        self.settings = service.settings
        app.state.athkit = service
        app.include_router(build_router())
        app.include_router(build_consent_router(current_user))
        # The same service as an OAuth 2.1 authorization server for MCP and OAuth clients.
        self.oauth = OAuthServer(service)
        app.state.athkit_oauth = self.oauth
        app.include_router(build_oauth_router())
        app.include_router(build_console_router(current_user, operator, metrics_token))
        app.include_router(build_proxy_miss_router())
        install_error_handlers(app)
        app.add_middleware(NativeProxyMiddleware, api_base_path=self.settings.api_base_path)
        app.include_router(build_health_router("/ath", lambda: service_probes(service)))
        limits = limits_from_settings(self.settings, service.shared.rate)
        install_rate_limits(app, limits, default_rules(self.settings.login_url))
        self.handshake: HandshakeService | None = None
        if getattr(app.state, HANDSHAKE_KEY, None) is None:
            setattr(app.state, HANDSHAKE_KEY, None)  # present, so require_scopes reads it fast
        if handshake is not None:
            self.handshake = mount_handshake(app, service, handshake, current_user)
        harden(app, html_prefixes=("/ath/",))

    def close(self) -> None:
        if self.handshake is not None:
            self.handshake.close()
        self.service.close()
