"""The gateway as an ASGI app: catalog, ATH endpoints, consent + OAuth bridge, proxy."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from athkit.core.handshake import HandshakePolicy
from athkit.core.operators import OperatorAccounts
from athkit.crypto.sealing import TokenSealer
from athkit.gateway.admin import CONSOLE_PATH, build_admin_router
from athkit.gateway.call_audit import ObservedProxy
from athkit.gateway.config import ConfigError, GatewayConfig
from athkit.gateway.forward_auth import MOUNT as FORWARD_AUTH
from athkit.gateway.forward_auth import ForwardAuthEndpoint
from athkit.gateway.live_providers import LiveProviders
from athkit.gateway.proxy import ProxyEndpoint
from athkit.gateway.proxy_route import ProxyFastPath
from athkit.gateway.service import GatewayService
from athkit.gateway.users import CALLBACK_PATH, SIGNIN_PATH, GatewayUsers
from athkit.oauth.consent import build_consent_router
from athkit.oauth.server import OAuthServer
from athkit.store.repositories import Store
from athkit.web.console import USER_SIGNIN_KEY, build_console_router
from athkit.web.deps import HANDSHAKE_KEY
from athkit.web.errors import install_error_handlers
from athkit.web.handshake import mount_handshake
from athkit.web.health import build_health_router, service_probes
from athkit.web.oauth_routes import build_oauth_router
from athkit.web.operator_auth import OperatorSessions
from athkit.web.ratelimit import default_rules, install_rate_limits, limits_from_settings
from athkit.web.request_id import RequestIdMiddleware, own_telemetry_only
from athkit.web.routes import build_router
from athkit.web.security_headers import harden


def sealer_from_env(config: GatewayConfig) -> TokenSealer:
    spec = os.environ.get(config.gateway.token_keys_env)
    if not spec:
        raise ConfigError(
            f"gateway.token_keys_env: environment variable {config.gateway.token_keys_env} "
            "is not set (generate a key with `athkit gateway keygen`)"
        )
    try:
        return TokenSealer.from_spec(spec)
    except ValueError as exc:
        raise ConfigError(f"gateway.token_keys_env: {exc}") from exc


def create_gateway_app(
    config: GatewayConfig,
    *,
    sealer: TokenSealer | None = None,
    store: Store | None = None,
    service: GatewayService | None = None,
    handshake: HandshakePolicy | None = None,
) -> FastAPI:
    """Build the gateway; configuration and upstream discovery problems raise at once.

    ``handshake`` mounts the 9-step handshake (docs/handshake.md) on the gateway."""
    if service is None:
        config.check_environment()
        service = GatewayService(config, sealer=sealer or sealer_from_env(config), store=store)
    svc = service
    proxy = ProxyEndpoint(svc, timeout=config.gateway.upstream_timeout)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        live.start()
        try:
            yield
        finally:
            live.stop()
            await proxy.close()
            svc.close()

    # The service's per-call writer, with the gateway's sampling and queue size.
    writer = svc.call_audit
    writer.sample = config.gateway.audit_proxy_sample
    writer.resize(config.gateway.audit_queue)
    app = FastAPI(
        title="athkit gateway", version="0.1", lifespan=lifespan, **own_telemetry_only()
    )
    app.state.athkit_audit_writer = writer
    app.state.athkit = svc
    app.include_router(build_router(service_discovery=False))
    app.include_router(build_consent_router(None))
    # The gateway as an OAuth 2.1 authorization server: MCP/OAuth clients reach the proxy with
    # a standard token bound to one provider's resource; the upstream token stays here.
    app.state.athkit_oauth = OAuthServer(svc)
    app.include_router(build_oauth_router())
    install_error_handlers(app)
    # The user pages need to know who the user is: sign-in with a provider (gateway/users.py).
    users = GatewayUsers(svc)
    svc.settings.login_url = SIGNIN_PATH
    app.include_router(users.router())
    operators = OperatorSessions(
        OperatorAccounts(
            svc.store.db, clock=svc.clock, rate=svc.shared.rate, audit=svc.store.add_audit
        ),
        secure=config.gateway.public_url.startswith("https://"),
    )
    operators.mount(app)
    live = LiveProviders(svc, poll_seconds=config.gateway.provider_poll_seconds)
    app.state.athkit_live_providers = live
    app.state.athkit_console_extra = [(CONSOLE_PATH, "providers")]
    app.include_router(build_admin_router(live, operators))
    setattr(app.state, USER_SIGNIN_KEY, SIGNIN_PATH)
    app.include_router(
        build_console_router(users.current_user, operators, config.gateway.metrics_token)
    )
    app.include_router(build_health_router("", lambda: service_probes(svc)))
    observed = ObservedProxy(proxy, svc, writer)
    decider = (
        ForwardAuthEndpoint(svc, config.forward_auth.secret())
        if config.forward_auth is not None
        else None
    )
    # Added first, so innermost: every middleware below still runs on proxied calls and decisions.
    app.add_middleware(ProxyFastPath, proxy=observed, decider=decider, decider_mount=FORWARD_AUTH)
    rules = [*default_rules(None), ("GET", re.compile(re.escape(CALLBACK_PATH)), "signin")]
    install_rate_limits(app, limits_from_settings(svc.settings, svc.shared.rate), rules)
    if getattr(app.state, HANDSHAKE_KEY, None) is None:
        setattr(app.state, HANDSHAKE_KEY, None)  # present, so the proxy reads it fast
    if handshake is None and config.handshake is not None:
        handshake = HandshakePolicy(**config.handshake.model_dump())
    if handshake is not None:
        mount_handshake(app, svc, handshake, current_user=users.current_user)
    harden(app)

    @app.get("/.well-known/ath.json")
    async def catalog() -> Response:
        return JSONResponse(
            svc.catalog().model_dump(), headers={"Cache-Control": "public, max-age=300"}
        )

    # First in the routing table: the hot path should not scan the other routes.
    app.router.routes.insert(0, Mount("/ath/proxy", app=observed))
    if decider is not None:
        app.router.routes.insert(0, Mount(FORWARD_AUTH, app=decider))
        app.router.routes.insert(0, Route(FORWARD_AUTH, endpoint=decider))

    app.add_middleware(RequestIdMiddleware)

    return app
